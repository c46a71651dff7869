"""The `benthic` console script: one argparse subcommand per task. To add one, append
(name, help, "module") to COMMANDS; the module provides add_arguments(parser) and run(args) -> int.
A `benthic.errors.UserError` raised by a command is printed as one line with exit status 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from benthic.errors import UserError

COMMANDS: list[tuple[str, str, str]] = [
    (
        "train",
        "self-supervised training with milestones (SimCLR, MoCo-v2, SimSiam, BYOL, Barlow Twins)",
        "benthic.cli.train",
    ),
    (
        "annotate",
        "annotate a folder (or BenthicNet CSV) of images with CATAMI paths and descriptions",
        "benthic.cli.annotate",
    ),
    (
        "classify",
        "train and evaluate a hierarchical classifier from your own labels and a translation table",
        "benthic.cli.classify",
    ),
    (
        "embed",
        "features of a folder (or CSV) of images with any encoder: an array file plus an index CSV",
        "benthic.cli.embed",
    ),
]


def main(argv: list[str] | None = None) -> int:
    """Run `benthic <command> [options]`; only the chosen command's module is imported."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="benthic", description="benthic command line")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, module in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if argv[:1] == [name]:
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except UserError as exc:
        print(f"benthic {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
