"""Command line for SSL training: `python -m benthic.cli.train --method simclr --dataset cifar10 ...`
(also `benthic train ...`); runs on one CPU process, one GPU, or under torchrun with DDP."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import numpy as np

from benthic.scales import SCALES
from benthic.ssl import METHOD_NAMES, PRESETS, get_config, methods_help, train_milestones


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training options; unset ones keep the preset of --scale (benthic.ssl.config.PRESETS)."""
    parser.add_argument("--method", required=True, choices=METHOD_NAMES, help=methods_help())
    parser.add_argument(
        "--scale",
        default="paper",
        choices=PRESETS.names(),
        help=f"preset to start from: a scale ({', '.join(SCALES)}) or a named preset "
        "(default paper: the papers' settings)",
    )
    parser.add_argument("--dataset", help="cifar10 or cifar100")
    parser.add_argument("--backbone", help="resnet18_cifar, resnet50, vit_tiny, vit_b_16, small_cnn")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--milestone-every", type=int, help="checkpoint every N epochs (plus init and last)")
    parser.add_argument("--milestones", help="explicit comma-separated milestone epochs, e.g. 0,1,2,5,10")
    parser.add_argument("--batch-size", type=int, help="global batch (split across torchrun processes)")
    parser.add_argument("--lr", type=float, help="peak one-cycle learning rate (default: the method's)")
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--head-width", type=int)
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--train-subset", type=int, help="stratified subset size of the train split")
    parser.add_argument("--augment", help="simclr_cifar or underwater")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--precision", choices=("bf16", "fp32"))
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the training step (GPU)")
    parser.add_argument("--device", help="cpu, cuda (default: cuda when present)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--monitor",
        type=int,
        metavar="N",
        help="at each milestone, print and log the label-free metrics on N random unlabelled test "
        "images (monitor.csv beside the milestones)",
    )
    parser.add_argument(
        "--monitor-k",
        type=int,
        metavar="K",
        help="k-means k1 of the monitor (default: the dataset's number of classes)",
    )


def run(args: argparse.Namespace) -> int:
    """Build the config from the parsed options, train, and print the milestone files."""
    overrides = {
        name: getattr(args, name)
        for name in (
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
        if getattr(args, name) is not None
    }
    if args.milestones:
        overrides["milestones"] = tuple(int(m) for m in args.milestones.split(","))
    config = get_config(args.scale, args.method, **overrides)
    if args.milestone_every is not None and not args.milestones:
        config = replace(config, milestones=())
    config = replace(
        config,
        compile=args.compile,
        progress=not args.no_progress,
        channels_last=config.channels_last and not args.no_channels_last,
    )
    paths = train_milestones(
        config, on_milestone=_monitor(config, args.monitor, args.monitor_k) if args.monitor else None
    )
    print(f"{len(paths)} milestone(s) in {paths[-1].parent}")
    for path in paths:
        print(path)
    return 0


def monitor_images(dataset: str, n: int, seed: int) -> np.ndarray:
    """`n` test images of `dataset` drawn at random with `seed`, their labels unused: what the monitor sees."""
    from benthic.data.cifar import load_cifar

    images, _ = load_cifar(dataset, "test")
    if not 0 < n <= len(images):
        raise ValueError(f"--monitor must be between 1 and {len(images)} (the test images of {dataset}), got {n}")
    return images[np.sort(np.random.default_rng(seed).choice(len(images), n, replace=False))]


def _monitor(config, n: int, k: int | None):
    """The on_milestone callback of --monitor: metrics per milestone, logged to <run dir>/monitor.csv and printed."""
    from tqdm.auto import tqdm

    from benthic.data.cifar import CIFAR_CLASSES
    from benthic.monitoring.hook import MilestoneMonitor
    from benthic.ssl import run_dir

    k = k or CIFAR_CLASSES.get(config.dataset)
    if not k:
        raise ValueError(f"give --monitor-k (k-means k1) for dataset {config.dataset!r}")
    monitor = MilestoneMonitor(
        monitor_images(config.dataset, n, config.seed),
        k,
        device=config.device,
        log_path=run_dir(config) / "monitor.csv",
    )
    return lambda epoch, encoder: tqdm.write(monitor.summary(monitor(epoch, encoder)))


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m benthic.cli.train`."""
    parser = argparse.ArgumentParser(prog="benthic train", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
