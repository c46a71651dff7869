"""Command line for SSL training: `benthic train --method barlow --dataset <folder|CSV|cifar10> ...`
(also `python -m benthic.cli.train`); runs on one CPU process, one GPU, or under torchrun with DDP. Every
option is checked before any work starts; a mistake is one line and exit status 2."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from benthic.errors import UserError
from benthic.scales import SCALES
from benthic.ssl import METHOD_NAMES, PRESETS, get_config, methods_help, run_dir, train_milestones

CIFAR = ("cifar10", "cifar100")
INDEX_FILE = "collection.npz"
CONFIG_OPTIONS = (
    "dataset",
    "backbone",
    "epochs",
    "milestone_every",
    "batch_size",
    "lr",
    "weight_decay",
    "head_width",
    "image_size",
    "train_subset",
    "augment",
    "seed",
    "precision",
    "device",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training options; unset ones keep the preset of --scale (benthic.ssl.config.PRESETS)."""
    parser.add_argument("--method", required=True, choices=METHOD_NAMES, help=methods_help())
    parser.add_argument(
        "--scale",
        default="paper",
        choices=PRESETS.names(),
        help=f"preset to start from: a scale ({', '.join(SCALES)}) or a named preset, e.g. benthicnet "
        "(default paper: the papers' settings)",
    )
    parser.add_argument(
        "--dataset",
        help="cifar10, cifar100, a folder of images (searched recursively) or a BenthicNet-schema CSV "
        "(with --image-root); no labels needed",
    )
    parser.add_argument("--image-root", help="folder the CSV's dataset/site/image paths are under")
    parser.add_argument(
        "--partition",
        default="train",
        help="with a CSV that has a partition column, train on the rows of this partition (default train; "
        "'all': every row)",
    )
    parser.add_argument("--out", help="run folder for milestones and the monitor (default runs/<scale>/ssl/<run>)")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(8, max(1, (os.cpu_count() or 2) - 1)),
        help="DataLoader processes decoding a folder/CSV collection (default: cores - 1, at most 8)",
    )
    parser.add_argument("--backbone", help="resnet18_cifar, resnet50, vit_tiny, vit_b_16, small_cnn")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--milestone-every", type=int, help="checkpoint every N epochs (plus init and last)")
    parser.add_argument("--milestones", help="explicit comma-separated milestone epochs, e.g. 0,1,2,5,10")
    parser.add_argument("--batch-size", type=int, help="global batch (split across torchrun processes)")
    parser.add_argument("--lr", type=float, help="peak one-cycle learning rate (default: the method's)")
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--head-width", type=int)
    parser.add_argument(
        "--method-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an option of the method's constructor, repeatable: e.g. symmetric=true, queue_size=4096, "
        "bn_splits=8 for mocov2 (true/false, whole or decimal numbers, else text)",
    )
    parser.add_argument("--image-size", type=int, help="training resolution; collections are decoded at it")
    parser.add_argument("--train-subset", type=int, help="stratified subset size of the CIFAR train split")
    parser.add_argument("--augment", help="an augmentation stack: simclr_cifar, cifar_16px or underwater")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--precision", choices=("bf16", "fp32"))
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step (GPU)")
    parser.add_argument("--device", help="auto, cuda, cuda:N, mps or cpu (default: cuda when present)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--monitor",
        type=int,
        metavar="N",
        help="at each milestone, print and log the label-free metrics on N unlabelled images (monitor.csv and "
        "monitor.png beside the milestones): CIFAR's test images; for a collection a fixed sample held out of "
        "training, on by default (1 image in 10, at most 1000)",
    )
    parser.add_argument("--no-monitor", action="store_true", help="no label-free monitor")
    parser.add_argument(
        "--monitor-k",
        type=int,
        metavar="K",
        help="k-means k1 of the monitor (default: the number of CIFAR classes; 10 for a collection)",
    )
    parser.add_argument(
        "--monitor-in-training",
        action="store_true",
        help="draw the monitor sample from the training images instead of holding it out",
    )


def _check_numbers(args: argparse.Namespace) -> None:
    """UserError for a number out of range or a device that does not exist."""
    minimum = {"batch_size": 2, "epochs": 1, "image_size": 1, "head_width": 1, "milestone_every": 1}
    for name, low in minimum.items():
        value = getattr(args, name)
        if value is not None and value < low:
            raise UserError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
    if args.workers < 0:
        raise UserError(f"--workers must be >= 0, got {args.workers}")
    if args.device is not None:
        from benthic.device import pick_device

        args.device = pick_device(args.device)  # auto resolved; an unknown or absent kind is a UserError
        if args.device.startswith("cuda:"):
            import torch

            if int(args.device[5:]) >= torch.cuda.device_count():
                raise UserError(f"--device {args.device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def _milestones(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(m) for m in text.split(","))
    except ValueError:
        raise UserError(f"--milestones must be comma-separated whole epochs like 0,1,2,5,10, got {text!r}") from None


def _method_option(text: str) -> tuple[str, bool | int | float | str]:
    """NAME=VALUE -> (name, value): true/false as booleans, numbers as numbers, anything else as text."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise UserError(f"--method-option takes NAME=VALUE, got {text!r}")
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return name.strip(), lowered == "true"
    for kind in (int, float):
        try:
            return name.strip(), kind(value)
        except ValueError:
            pass
    return name.strip(), value


def build_config(args: argparse.Namespace):
    """The SSLConfig of the parsed options (dataset left as given), every setting checked (UserError)."""
    _check_numbers(args)
    overrides = {name: getattr(args, name) for name in CONFIG_OPTIONS if getattr(args, name) is not None}
    if args.milestones:
        overrides["milestones"] = _milestones(args.milestones)
    if args.method_option:
        overrides["method_options"] = tuple(_method_option(text) for text in args.method_option)
    if "dataset" in overrides and overrides["dataset"] not in CIFAR:
        overrides["dataset"] = "collection"  # renamed by its index when training starts
    try:
        config = get_config(args.scale, args.method, **overrides)
        if args.milestone_every is not None and not args.milestones:
            config = replace(config, milestones=())
        _check_parts(config)
    except (ValueError, KeyError) as exc:
        raise UserError(str(exc).strip("'\"")) from None
    return replace(
        config,
        compile=args.compile,
        progress=not args.no_progress,
        channels_last=config.channels_last and not args.no_channels_last,
    )


def _check_parts(config) -> None:
    """ValueError for an unknown augmentation stack or backbone (ImageNet names are checked when loaded)."""
    from benthic.models.augment import view_config
    from benthic.models.backbones import BACKBONES

    view_config(config.augment)
    if config.backbone not in BACKBONES and not config.backbone.startswith("imagenet:"):
        raise ValueError(f"unknown --backbone {config.backbone!r}: choose one of {', '.join(BACKBONES)}")


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_paths(args: argparse.Namespace) -> None:
    """UserError for a dataset that is neither CIFAR nor an existing folder or CSV, a CSV without --image-root,
    or an --out inside the images (a run must never train on its own outputs)."""
    dataset = args.dataset
    if dataset is None and args.scale == "benthicnet":
        raise UserError("--scale benthicnet is a recipe for your own photos: give --dataset a folder or a CSV")
    if dataset is None or dataset in CIFAR:
        if args.image_root:
            raise UserError("--image-root goes with a CSV --dataset")
        return
    path = Path(dataset)
    if not path.exists():
        raise UserError(f"--dataset {dataset}: not cifar10/cifar100 and no such folder or CSV")
    if path.is_file() and not args.image_root:
        raise UserError(f"--dataset {dataset} is a file: a BenthicNet CSV needs --image-root (the images' folder)")
    if path.is_dir() and args.image_root:
        raise UserError("--image-root goes with a CSV --dataset, not with a folder")
    if args.train_subset is not None:
        raise UserError("--train-subset applies to CIFAR; hold images out of a collection with --partition")
    images = Path(args.image_root) if args.image_root else path
    if not images.is_dir():
        raise UserError(f"--image-root {args.image_root} does not exist or is not a folder")
    if args.out and _inside(Path(args.out), images):
        raise UserError(f"--out {args.out} is inside the image folder {images}: a run would train on its own outputs")
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out} exists and is not a folder")


def open_collection(args: argparse.Namespace):
    """The collection of --dataset (a folder or CSV), reusing the index saved in --out when it is the same source,
    so a resumed run sees the very same images (files removed since are counted skips)."""
    from benthic.data import collection as col

    partition = None if args.partition == "all" else args.partition
    source = col.describe(args.dataset, args.image_root, partition)
    saved = Path(args.out) / INDEX_FILE if args.out else None
    if saved is not None and saved.is_file():
        index = col.Collection.load(saved)
        if index.source == source:
            return index
    if args.image_root:
        return col.from_csv(args.dataset, args.image_root, partition)
    return col.from_folder(args.dataset)


def run(args: argparse.Namespace) -> int:
    """Check every option, build the config, train (streaming a collection), and print the milestone files."""
    config = build_config(args)
    check_paths(args)
    if args.no_monitor and (args.monitor or args.monitor_in_training):
        raise UserError("--no-monitor contradicts --monitor/--monitor-in-training")
    if config.dataset in CIFAR:
        folder = Path(args.out) if args.out else run_dir(config)
        hook = _cifar_monitor(config, args.monitor, args.monitor_k, folder) if args.monitor else None
        paths = train_milestones(config, on_milestone=hook, out=args.out)
    else:
        paths = _train_collection(config, args)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one listing
        print(f"{len(paths)} milestone(s) in {paths[-1].parent}")
        print("\n".join(map(str, paths)))
    return 0


def _train_collection(config, args: argparse.Namespace) -> list[Path]:
    """Index the collection, set the monitor sample aside, and stream the rest into training."""
    from benthic.data import collection as col
    from benthic.monitoring.config import MonitorConfig
    from benthic.monitoring.watch import DEFAULT_K1, check_sample, default_sample

    full = open_collection(args)
    k1 = args.monitor_k or DEFAULT_K1
    n = 0 if args.no_monitor else args.monitor or default_sample(len(full), k1)
    if n:
        check_sample(n, k1)
    train, sample = full, None
    if n and args.monitor_in_training:
        sample = full.take(np.sort(np.random.default_rng(config.seed).choice(len(full), min(n, len(full)), False)))
    elif n:
        train, sample = col.split_holdout(full, n, config.seed)
    if len(train) < config.batch_size:
        raise UserError(f"{full.source}: {len(train)} training images are fewer than one batch of {config.batch_size}")
    folder = Path(args.out) if args.out else run_dir(config, train)
    images = _readable_sample(sample if sample is not None else train, config, probe_only=sample is None)
    hook = None
    if sample is not None:
        from benthic.monitoring.watch import CollectionMonitor

        check_sample(len(images), k1)
        hook = _printing(CollectionMonitor(images, k1, folder, MonitorConfig(), device=config.device))
    elif not args.no_monitor:
        print(f"no monitor: {len(full)} images are too few for the default sample; pass --monitor N", file=sys.stderr)
    if not (folder / INDEX_FILE).exists():
        full.save(folder / INDEX_FILE)
    return train_milestones(config, train, on_milestone=hook, out=folder, workers=args.workers)


def _readable_sample(sample, config, probe_only: bool) -> np.ndarray:
    """The decoded monitor sample (unreadable files dropped), or with probe_only the first readable image of up
    to 200 tried; UserError when none can be read (a folder of non-images, a CSV whose files are absent)."""
    from benthic.data import collection as col

    tried = sample if not probe_only else sample.take(np.arange(min(200, len(sample))))
    images, skipped = col.read_all(tried, config.image_size)
    if not len(images):
        example = next(iter(skipped.items()))
        raise UserError(
            f"no readable image among the {len(tried)} tried of {sample.source} (e.g. {example[0]}: {example[1]})"
        )
    if skipped and not probe_only:
        print(f"monitor sample: {len(skipped)} unreadable file(s) left out of {len(tried)}", file=sys.stderr)
    return images


def _printing(monitor):
    from tqdm.auto import tqdm

    return lambda epoch, encoder: tqdm.write(monitor.summary(monitor(epoch, encoder)))


def monitor_images(dataset: str, n: int, seed: int) -> np.ndarray:
    """`n` test images of `dataset` drawn at random with `seed`, their labels unused: what the monitor sees."""
    from benthic.data.cifar import load_cifar

    images, _ = load_cifar(dataset, "test")
    if not 0 < n <= len(images):
        raise UserError(f"--monitor must be between 1 and {len(images)} (the test images of {dataset}), got {n}")
    return images[np.sort(np.random.default_rng(seed).choice(len(images), n, replace=False))]


def _cifar_monitor(config, n: int, k: int | None, folder: Path):
    """The on_milestone callback of --monitor on CIFAR: metrics per milestone on test images, logged and drawn
    beside the milestones (monitor.csv, monitor.png) and printed."""
    from benthic.data.cifar import CIFAR_CLASSES
    from benthic.monitoring.watch import CollectionMonitor, check_sample

    k = k or CIFAR_CLASSES[config.dataset]
    check_sample(n, k)
    return _printing(CollectionMonitor(monitor_images(config.dataset, n, config.seed), k, folder, device=config.device))


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m benthic.cli.train` (a UserError printed as one line, exit status 2)."""
    parser = argparse.ArgumentParser(prog="benthic train", description=__doc__)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except UserError as exc:
        print(f"benthic train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
