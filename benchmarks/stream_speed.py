"""Benchmark: images/s into the training step when streaming a collection (DataLoader workers decode with the
package's reader, the batched augmenter makes two views per image in the training process) beside the plain
baseline SSL libraries use (torchvision ImageFolder + per-sample PIL transforms making both views in the workers,
same number of workers), on the 60 000 CIFAR-10 JPEGs as a folder (32 px) and the reef tiles (224 px); then the
peak resident memory while streaming a 1 000 000-row synthetic BenthicNet catalogue whose rows point at a few real
files. Each throughput is measured for `seconds` after a warm-up batch.
The catalogue's memory is measured in a fresh interpreter, so nothing the throughput runs loaded is counted.
Usage: python benchmarks/stream_speed.py [seconds=20] [workers=2] [catalogue_batches=300]"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from benthic.data import collection, stream
from benthic.data.cifar import ARCHIVE
from benthic.models.augment import STACKS, ViewAugmenter, view_config
from benthic.paths import DATA_DIR

REEF = DATA_DIR / "coral_condition" / "images"
BATCH = 256


def rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    """Resident memory of a process in MB from /proc: now (VmRSS) or its peak (VmHWM, which, unlike
    getrusage's maxrss, starts afresh at exec instead of inheriting the parent's)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rate(batches, seconds: float, step) -> float:
    """Images/s of `step(batch)` over `batches` for about `seconds` (the first batch is a warm-up)."""
    it = iter(batches)
    step(next(it))
    n, t0 = 0, time.perf_counter()
    for batch in it:
        n += step(batch)
        if time.perf_counter() - t0 > seconds:
            break
    return n / (time.perf_counter() - t0)


def ours(folder: Path, size: int, stack: str, workers: int, seconds: float) -> float:
    """Streamed uint8 batches, views made by the batched augmenter in this process."""
    aug = ViewAugmenter(view_config(stack, size))
    loader = stream.stream(collection.from_folder(folder), BATCH, seed=0, size=size, workers=workers)

    def step(batch):
        aug(batch["images"]), aug(batch["images"])
        return len(batch["images"])

    return _rate(loader, seconds, step)


def baseline(folder: Path, size: int, stack: str, workers: int, seconds: float) -> float:
    """ImageFolder + per-sample PIL transforms (two views per image) in the workers: SimCLR-style pipelines."""
    cfg = STACKS[stack]
    blur = [transforms.RandomApply([transforms.GaussianBlur(int(0.1 * size) // 2 * 2 + 1, cfg.blur_sigma)], cfg.blur_p)]
    one = transforms.Compose(
        [
            transforms.RandomResizedCrop(size, scale=cfg.crop_scale),
            transforms.RandomHorizontalFlip(cfg.hflip),
            transforms.RandomVerticalFlip(cfg.vflip),
            transforms.RandomApply(
                [transforms.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)], p=cfg.jitter_p
            ),
            transforms.RandomGrayscale(cfg.grayscale_p),
            *(blur if cfg.blur_p else []),
            transforms.ToTensor(),
            transforms.Normalize(cfg.mean, cfg.std),
        ]
    )
    data = datasets.ImageFolder(str(folder), transform=TwoViews(one))
    loader = DataLoader(data, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True)
    return _rate(loader, seconds, lambda batch: len(batch[1]))


class TwoViews:
    """Two independent draws of a per-sample transform (picklable for workers)."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, image):
        return self.transform(image), self.transform(image)


def model_alone(backbone: str, size: int, seconds: float, batch: int = 8) -> float:
    """Images/s of a training step of the benthicnet preset (Barlow Twins, bf16 autocast, channels_last, SGD) on
    views already made: the rate a pipeline has to feed."""
    from benthic.ssl import get_config
    from benthic.ssl.trainer import build_method, make_optimizer

    config = get_config("benthicnet", "barlow", backbone=backbone, image_size=size, batch_size=batch)
    method = build_method(config).to(memory_format=torch.channels_last)
    optimizer, _ = make_optimizer(method, config, 1000)
    views = [torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last) for _ in range(2)]

    def step(_):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = method(views[0], views[1])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return batch

    return _rate(iter(int, 1), seconds, step)


def extract_cifar(target: Path) -> Path:
    """The 60 000 CIFAR-10 JPEGs of the shipped archive as a folder (train/ and test/, a folder per class inside)."""
    t0 = time.perf_counter()
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(target, filter="data")
    (target / "README.md").unlink(missing_ok=True)
    n = sum(1 for _ in target.rglob("*.jpg"))
    print(f"extracted {n:,} CIFAR-10 JPEGs in {time.perf_counter() - t0:.1f} s")
    return target


def synthetic_catalogue(root: Path, rows: int = 1_000_000, per_site: int = 1000) -> Path:
    """A BenthicNet-schema CSV of `rows` distinct images: site0000 holds `per_site` hard links to the reef tiles,
    every other site is a symlink to it, so each row is a real file while only the tiles take disk space."""
    tiles = sorted(REEF.rglob("*.jpg"))
    real = root / "synthetic" / "site0000"
    real.mkdir(parents=True)
    for k in range(per_site):
        os.link(tiles[k % len(tiles)], real / f"img{k:04d}.jpg")
    for s in range(1, rows // per_site):
        os.symlink(real, root / "synthetic" / f"site{s:04d}")
    k = np.arange(rows)
    frame = pd.DataFrame(
        {
            "url": [f"https://example.org/img{j:04d}.jpg" for j in k % per_site],
            "source": "synthetic",
            "dataset": "synthetic",
            "site": [f"site{s:04d}" for s in k // per_site],
            "image": [f"img{j:04d}" for j in k % per_site],
            "latitude": np.round(np.linspace(-40, 40, rows), 5),
            "longitude": np.round(np.linspace(100, 160, rows), 5),
            "partition": np.where(k % 10 == 0, "test", "train"),
        }
    )
    path = root / "catalogue.csv"
    frame.to_csv(path, index=False)
    return path


def pss_mb(pid: int | str = "self") -> float:
    """Proportional set size in MB: shared pages split between the processes sharing them (sums honestly)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def catalogue_memory(csv: Path, root: Path, workers: int, batches: int) -> None:
    """In a fresh process: index the catalogue's train rows, then stream `batches` batches at 64 px, sampling the
    memory of this process and of its workers as it goes."""
    start = rss_mb()
    t0 = time.perf_counter()
    index = collection.from_csv(csv, root, "train")
    peak_index = rss_mb(field="VmHWM")
    print(
        f"indexed {len(index):,} train rows in {time.perf_counter() - t0:.1f} s: {index.blob.nbytes / 1e6:.1f} MB of "
        f"paths + {index.offsets.nbytes / 1e6:.1f} MB of offsets; RSS {start:.0f} MB after imports, "
        f"{rss_mb():.0f} MB after indexing, peak {peak_index:.0f} MB (CSV read in chunks of 100 000 rows)"
    )
    loader = stream.stream(index, BATCH, seed=0, size=64, workers=workers)
    it = iter(loader)
    samples, t0 = [], time.perf_counter()
    for b in range(batches):
        next(it)
        if b % max(1, batches // 4) == 0 or b == batches - 1:
            pids = ["self", *(w.pid for w in it._workers)] if workers else ["self"]
            samples.append((b + 1, [rss_mb(p) for p in pids], sum(pss_mb(p) for p in pids)))
    rate = batches * BATCH / (time.perf_counter() - t0)
    for b, rss, pss in samples:
        each = ", ".join(f"{r:.0f}" for r in rss[1:])
        print(f"  after {b:5d} batches: RSS main {rss[0]:4.0f} MB, workers {each} MB; PSS all together {pss:5.0f} MB")
    print(
        f"streamed {batches * BATCH:,} images at 64 px ({rate:.0f} images/s); peak RSS of the main process "
        f"{rss_mb(field='VmHWM'):.0f} MB"
    )


def catalogue_run(tmp: Path, workers: int, batches: int) -> None:
    """Write the 1M-row catalogue, then measure its memory in a fresh interpreter (nothing else loaded)."""
    t0 = time.perf_counter()
    csv = synthetic_catalogue(tmp / "bn")
    took = time.perf_counter() - t0
    print(f"\n1 000 000-row synthetic catalogue written in {took:.0f} s ({csv.stat().st_size / 1e6:.0f} MB)")
    sys.stdout.flush()
    cmd = [sys.executable, __file__, "--catalogue", str(csv), str(tmp / "bn"), str(workers), str(batches)]
    subprocess.run(cmd, check=True)


def main(seconds: float = 20, workers: int = 2, catalogue_batches: int = 300) -> None:
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - workers))
    print(
        f"{os.cpu_count()} CPU cores, {workers} DataLoader workers, batch {BATCH}, {torch.get_num_threads()} torch threads"
    )
    with tempfile.TemporaryDirectory(prefix="benthic-stream-") as tmp:
        tmp = Path(tmp)
        cifar = extract_cifar(tmp / "cifar")
        print(f"\n{'images/s into the step':32s} {'stream + batched views':>24s} {'ImageFolder + PIL views':>24s}")
        for name, folder, size, stack in (
            ("CIFAR-10 JPEG folder, 32 px", cifar, 32, "simclr_cifar"),
            ("reef tiles (1 011), 224 px", REEF, 224, "underwater"),
        ):
            a = ours(folder, size, stack, workers, seconds)
            b = baseline(folder, size, stack, workers, seconds)
            print(f"{name:32s} {a:24.0f} {b:24.0f}   ({a / b:.2f}x)")
        for backbone in ("small_cnn", "resnet50"):
            rate = model_alone(backbone, 224, seconds)
            print(f"for scale: the Barlow Twins step alone on ready 224 px views, {backbone}: {rate:.1f} images/s")
        catalogue_run(tmp, workers, catalogue_batches)
    print(
        "no pixel cache is built: each epoch decodes the files again in the workers; the index holds 8 bytes of "
        "offset + the relative path's UTF-8 bytes per image (46-82 bytes per path in data/benthicnet's real rows)"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--catalogue"]:
        catalogue_memory(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        sys.exit(0)
    args = [float(a) for a in sys.argv[1:]]
    main(args[0] if args else 20, int(args[1]) if len(args) > 1 else 2, int(args[2]) if len(args) > 2 else 300)
