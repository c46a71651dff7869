"""`benthic classify train|evaluate`: a hierarchical (HML) classifier from your own labels (a CSV of image and
label in your scheme, any depth) and a translation table, on frozen features of an encoder you name; the
checkpoint `benthic annotate` loads, the training curve and an evaluation report beside the no-image prior."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benthic.device import pick_device
from benthic.errors import UserError
from benthic.io import write_json
from benthic.scales import SCALES
from benthic.transfer import classify, labels
from benthic.transfer.encoders import encoder_by_name
from benthic.transfer.feature_cache import default_cache


# ------------------------------------------------------------------------------------------- inputs
def image_root(images: str, root: str | None) -> tuple[Path, list[str] | None]:
    """(root the labels' image paths are under, the images an --images CSV lists or None for a folder)."""
    path = Path(images)
    if path.is_dir():
        return path, None
    if path.is_file():
        return Path(root) if root else path.parent, labels.read_image_list(path)
    raise UserError(f"--images {images}: no such folder or CSV")


def labelled_set(args: argparse.Namespace, exhaustive: bool, multi_label: bool) -> labels.LabelledSet:
    """The labelled images of the command line's --images/--image-root/--labels/--translation, with notes."""
    root, listed = image_root(args.images, args.image_root)
    frame = labels.read_labels(args.labels)
    partition = getattr(args, "partition", None)
    notes = []
    if partition:
        if "partition" not in frame.columns:
            raise UserError(f"--partition {partition}: the labels CSV {args.labels} has no 'partition' column")
        frame = frame[frame["partition"].str.lower() == partition.lower()]
        if frame.empty:
            raise UserError(f"--partition {partition}: no row of {args.labels} is in that partition")
    if listed is not None:
        outside = sorted(set(frame["image"]) - set(listed))
        if outside:
            notes.append(labels.problem(f"labelled image(s) are not in {args.images}", outside, "left out"))
        frame = frame[frame["image"].isin(listed)]
        if frame.empty:
            raise UserError(f"no labelled image is listed in {args.images}")
    table, hierarchies, scheme = labels.load_table(args.translation)
    data = labels.build_set(frame, root, table, hierarchies, scheme, exhaustive=exhaustive, multi_label=multi_label)
    data.notes[:0] = notes
    return data


def print_notes(notes: list[str]) -> None:
    """Everything left out or masked, one line each."""
    for note in notes:
        print(f"  note: {note}")


# --------------------------------------------------------------------------------------------- train
def run_train(args: argparse.Namespace) -> int:
    """`benthic classify train`: prints the split, the notes, the report table and where everything went."""
    start = time.perf_counter()
    device = pick_device(args.device)
    cfg = classify.settings(
        args.scale, epochs=args.epochs, lr=args.lr, hidden=args.hidden, test_fraction=args.test_fraction
    )
    data = labelled_set(args, args.exhaustive, args.multi_label)
    encoder, spec = encoder_by_name(args.encoder, args.seed, args.input_size)
    spec = {**spec, "name": args.encoder}
    data, z = classify.embed_set(data, encoder, device, None if args.no_cache else args.cache)
    settings = {"translation": str(args.translation), "exhaustive": args.exhaustive, "multi_label": args.multi_label}
    result = classify.train(data, z, encoder, spec, args.out, cfg, args.seed, device, args.group_by, settings)
    seconds = time.perf_counter() - start
    write_json(
        Path(args.out) / "run.json",
        {
            "options": {k: v for k, v in vars(args).items() if k != "func"},
            "context": result.context,
            "notes": result.notes,
            "seconds": seconds,
        },
    )
    print(f"{len(data.images)} labelled images, {z.shape[1]}-d features ({args.encoder}, {device})")
    for line in result.context:
        print(f"  {line}")
    print_notes(result.notes)
    if not result.table.empty:
        print(result.table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {result.checkpoint}, the report and the training curve in {args.out} ({seconds:.1f} s)")
    return 0


# ------------------------------------------------------------------------------------------ evaluate
def run_evaluate(args: argparse.Namespace) -> int:
    """`benthic classify evaluate`: the report of a checkpoint on a labelled set."""
    from benthic.transfer.hml_model import read_checkpoint

    checkpoint = Path(args.checkpoint)
    extra = read_checkpoint(checkpoint).get("extra", {})
    data = labelled_set(args, bool(extra.get("exhaustive")), bool(extra.get("multi_label")))
    out = Path(args.out) if args.out else checkpoint.parent / f"evaluation-{Path(args.labels).stem}"
    table, _, notes = classify.evaluate(
        checkpoint, data, out, pick_device(args.device), None if args.no_cache else args.cache
    )
    print_notes(notes)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote the report in {out}")
    return 0


# ------------------------------------------------------------------------------------- command line
def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, help="folder the labels' image paths are under, or a CSV listing images")
    p.add_argument("--image-root", default=None, help="folder an --images CSV's paths are under (default: its folder)")
    p.add_argument(
        "--labels",
        required=True,
        help="CSV with columns image, label (one row per label); optional "
        "partition (train/test) and photo/site columns",
    )
    p.add_argument(
        "--translation",
        required=True,
        help="translation table: a shipped name or a CSV of yours (see benthic/hierarchy/tables/README.md)",
    )
    p.add_argument("--device", default=None, help="auto (default: cuda, else mps, else cpu), cuda, mps or cpu")
    p.add_argument("--cache", default=str(default_cache()), help="feature cache folder (default: %(default)s)")
    p.add_argument("--no-cache", action="store_true", help="embed every image afresh, cache nothing")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Subcommands `train` and `evaluate` of `benthic classify`."""
    sub = parser.add_subparsers(dest="action", required=True)
    train = sub.add_parser("train", help="train a classifier and write its checkpoint, curve and report")
    _data_options(train)
    train.add_argument(
        "--encoder",
        default="efficientnet-lite0",
        help="ImageNet model name, milestone file or run "
        "folder of `benthic train`, ResNet-50 state dict, or random (default: %(default)s)",
    )
    train.add_argument("--out", required=True, help="output folder")
    train.add_argument(
        "--exhaustive",
        action="store_true",
        help="every label of the scheme was annotated on every image: a parent whose children are all absent is absent",
    )
    train.add_argument(
        "--multi-label",
        action="store_true",
        help="an image may show several classes of one head "
        "(otherwise two diverging paths in a head mask that head on the image)",
    )
    train.add_argument(
        "--group-by",
        default=None,
        help="column to split by without a partition column (default: photo, else site, else each image)",
    )
    train.add_argument("--test-fraction", type=float, default=None, help="share of images for test (default: scale's)")
    train.add_argument(
        "--scale",
        default="quick",
        choices=SCALES,
        help="training budget of the HML head (benthic.transfer.config; default: %(default)s)",
    )
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--lr", type=float, default=None)
    train.add_argument("--hidden", type=int, default=None, help="hidden width of the HML head (0: linear)")
    train.add_argument("--input-size", type=int, default=None, help="image size the encoder sees (default: its own)")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(func=run_train)
    evaluate = sub.add_parser("evaluate", help="the evaluation report of a checkpoint on a labelled set")
    _data_options(evaluate)
    evaluate.add_argument("--checkpoint", required=True, help="classifier.pt of `benthic classify train`")
    evaluate.add_argument("--partition", default=None, help="only the labels rows of this partition (e.g. test)")
    evaluate.add_argument("--out", default=None, help="report folder (default: beside the checkpoint)")
    evaluate.set_defaults(func=run_evaluate)


def run(args: argparse.Namespace) -> int:
    """Entry point of `benthic classify`."""
    return args.func(args)
