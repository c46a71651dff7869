"""`benthic embed`: features of any image collection with any encoder, as an array file (.npy, float32, one row
per image) plus an index CSV (row, image) and a JSON of what made them, for users who take them to other tools."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from benthic.device import pick_device
from benthic.errors import UserError
from benthic.io import atomic_path, save_npy, write_json
from benthic.paths import safe_join
from benthic.transfer.encoders import encoder_by_name
from benthic.transfer.feature_cache import default_cache, embed_files


def image_files(images: str, root: str | None) -> tuple[list[Path], Path]:
    """(files, the folder their index names are relative to): every file under a folder (hidden ones aside), or
    the `image` column of a CSV joined safely under --image-root (default: the CSV's folder)."""
    from benthic.cli.annotate import list_files
    from benthic.transfer.labels import read_image_list

    path = Path(images)
    if path.is_dir():
        return list_files(path), path
    if not path.is_file():
        raise UserError(f"--images {images}: no such folder or CSV")
    base = Path(root) if root else path.parent
    try:
        return [safe_join(base, name) for name in read_image_list(path)], base.resolve()
    except ValueError as exc:
        raise UserError(f"--images {images}: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `benthic embed`."""
    parser.add_argument("--images", required=True, help="a folder of images, or a CSV with an 'image' column")
    parser.add_argument("--image-root", default=None, help="folder an --images CSV's paths are under")
    parser.add_argument(
        "--encoder",
        default="efficientnet-lite0",
        help="ImageNet model name, milestone file or run "
        "folder of `benthic train`, ResNet-50 state dict, or random (default: %(default)s)",
    )
    parser.add_argument("--out", required=True, help="output prefix: writes PREFIX.npy, PREFIX.csv and PREFIX.json")
    parser.add_argument("--input-size", type=int, default=None, help="image size the encoder sees (default: its own)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None, help="auto (default: cuda, else mps, else cpu), cuda, mps or cpu")
    parser.add_argument("--cache", default=str(default_cache()), help="feature cache folder (default: %(default)s)")
    parser.add_argument("--no-cache", action="store_true", help="embed every image afresh, cache nothing")
    parser.add_argument("--seed", type=int, default=0, help="seed of a random encoder")


def run(args: argparse.Namespace) -> int:
    """Entry point of `benthic embed`: prints how many images were embedded and lists the skipped ones."""
    start = time.perf_counter()
    files, base = image_files(args.images, args.image_root)
    if not files:
        raise UserError(f"no files under {args.images}")
    device = pick_device(args.device)
    encoder, spec = encoder_by_name(args.encoder, args.seed, args.input_size)
    got = embed_files(encoder, files, device, None if args.no_cache else args.cache, args.batch_size)
    names = [str(f.relative_to(base)) if f.is_relative_to(base) else str(f) for f in files]
    prefix = Path(args.out)
    save_npy(prefix.with_suffix(".npy"), got.features)
    with atomic_path(prefix.with_suffix(".csv")) as tmp:
        pd.DataFrame({"row": range(len(got.rows)), "image": [names[i] for i in got.rows]}).to_csv(tmp, index=False)
    write_json(
        prefix.with_suffix(".json"),
        {
            "encoder": args.encoder,
            "spec": spec,
            "input_size": getattr(encoder, "input_size", None),
            "features": list(got.features.shape),
            "device": device,
            "skipped": [{"image": names[i], "reason": why} for i, why in got.skipped],
            "seconds": time.perf_counter() - start,
        },
    )
    print(
        f"embedded {len(got.rows)} image(s) ({got.features.shape[1]}-d, {got.cached} from the cache), skipped "
        f"{len(got.skipped)}; wrote {prefix.with_suffix('.npy')} and {prefix.with_suffix('.csv')}"
    )
    for i, why in got.skipped:
        print(f"  skipped {names[i]}: {why}")
    return 0
