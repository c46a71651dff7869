"""Wall time of the `benthic classify` road on the shipped reef photos (975 labelled tiles), each step as a user runs
it (a fresh process, imports included): train on an empty feature cache, a second head on the same encoder (another
translation table: features from the cache), evaluate on the test split, annotate a folder, embed every image.

    .venv/bin/python benchmarks/classify_speed.py [--encoder efficientnet-lite0] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REEF = ROOT / "data" / "coral_condition"


def step(name: str, argv: list[str]) -> float:
    """Run `benthic <argv>` in a fresh process; print and return its wall time (stop on failure)."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "benthic.cli.main", *map(str, argv)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{name} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    print(f"{name:<44} {seconds:7.1f} s", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="efficientnet-lite0")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        common = ["--images", REEF / "images", "--labels", REEF / "labels.csv", "--cache", tmp / "cache"]
        common += ["--device", args.device]
        train = ["classify", "train", *common, "--encoder", args.encoder]
        print(
            f"encoder {args.encoder}, device {args.device}, {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}"
        )
        total = step("train, CATAMI table (features computed)", [*train, "--translation", "coral_condition_to_catami",
                                                              "--out", tmp / "catami"])  # fmt: skip
        total += step("train, own tree (features from the cache)", [*train, "--translation", "coral_condition_hierarchy",
                      "--exhaustive", "--multi-label", "--out", tmp / "own"])  # fmt: skip
        evaluate = ["classify", "evaluate", *common, "--translation", "coral_condition_to_catami", "--checkpoint"]
        total += step("evaluate on the test split", [*evaluate, tmp / "catami" / "classifier.pt", "--labels",
                      tmp / "catami" / "labels_split.csv", "--partition", "test", "--out", tmp / "eval"])  # fmt: skip
        folder = tmp / "photo"
        folder.mkdir()
        for tile in (REEF / "images" / "20230421_preliminary_survey").glob("20230412_0001_*.jpg"):
            shutil.copy(tile, folder / tile.name)
        device = [] if args.device == "auto" else ["--device", args.device]
        total += step(f"annotate a folder ({len(list(folder.iterdir()))} tiles of one photo)", ["annotate", folder,
                      "--checkpoint", tmp / "catami" / "classifier.pt", "--out", tmp / "a.csv", *device])  # fmt: skip
        total += step("embed every image (1011, from the cache)", ["embed", "--images", REEF / "images", "--encoder",
                      args.encoder, "--out", tmp / "feat", "--cache", tmp / "cache", "--device", args.device])  # fmt: skip
        print(f"{'all steps':<44} {total:7.1f} s")


if __name__ == "__main__":
    main()
