"""Benchmark: `benthic annotate` throughput (images/s, end to end: decode + resize + encoder + HML head +
decoding + CSV rows) on the shipped reef-photo tiles (256 px JPEGs), per encoder, on the CPU and on the
GPU when one is present (printed as unmeasured otherwise). Head weights are untrained: speed does not
depend on them. Usage: python benchmarks/annotate_speed.py [n_images] [batch_size]"""

import sys
import tempfile
import time
from pathlib import Path

import torch

from benthic.cli import annotate
from benthic.data.coral import CORAL_ROOT
from benthic.hierarchy.catami import load_hierarchies
from benthic.hierarchy.hml import HMLHead
from benthic.transfer import core, encoders, hml_model

ENCODERS = {  # name -> encoder spec (input size in the spec)
    "small CNN, 32 px": {"kind": "random", "backbone": "small_cnn", "input_size": 32},
    "ViT-tiny, 32 px": {"kind": "random", "backbone": "vit_tiny", "input_size": 32},
    "EfficientNet-Lite0 (ImageNet), 224 px": {
        "kind": "imagenet",
        "backbone": "imagenet:efficientnet-lite0",
        "input_size": 224,
    },
}


def checkpoint(spec: dict, folder: Path) -> Path:
    encoder = encoders.build_encoder(spec)
    hier = load_hierarchies()
    head = HMLHead.from_hierarchies(encoder.feature_dim, hier, hidden=2048, dropout=0.7)
    return hml_model.save_hml_model(folder / "model.pt", core.Model(head, encoder).eval(), spec, hier)


def main(n_images: int = 256, batch_size: int = 32) -> None:
    files = sorted((CORAL_ROOT / "images").glob("*/*.jpg"))[:n_images]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"annotate throughput on {len(files)} reef tiles, batch {batch_size}, torch threads {torch.get_num_threads()}"
    )
    for name, spec in ENCODERS.items():
        with tempfile.TemporaryDirectory(prefix="benthic-annotate-") as tmp:
            ckpt = checkpoint(spec, Path(tmp))
            for dev in devices:
                predictor = annotate.load_predictor(ckpt, dev)
                annotate.annotate(
                    files[:batch_size],
                    ckpt,
                    Path(tmp) / "warm.csv",
                    batch_size=batch_size,
                    progress=False,
                    predictor=predictor,
                )  # warm-up, not timed
                start = time.perf_counter()
                table = annotate.annotate(
                    files, ckpt, Path(tmp) / "out.csv", batch_size=batch_size, progress=False, predictor=predictor
                )
                seconds = time.perf_counter() - start
                print(f"  {name:40s} {dev:4s}: {len(table) / seconds:7.1f} images/s ({seconds:.1f} s)")
    if "cuda" not in devices:
        print("  GPU: not measured (no CUDA device on this machine)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
