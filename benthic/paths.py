"""Where the project keeps data, run caches, results and figures, and safe joining of paths from CSVs."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("BENTHIC_DATA", ROOT / "data"))
RESULTS_DIR = ROOT / "results"

SCALES = ("smoke", "quick", "paper")


def check_scale(scale: str) -> str:
    """Return `scale` if it is one the package knows, else raise a ValueError naming the choices."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    return scale


def output_dir(scale: str) -> Path:
    """Folder for a scale's figures and tables: `figures/<scale>/`, or `$BENTHIC_FIGURES/<scale>` (tests)."""
    base = Path(os.environ.get("BENTHIC_FIGURES", ROOT / "figures"))
    path = base / check_scale(scale)
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir(scale: str) -> Path:
    """Folder for a scale's checkpoints and caches: `runs/<scale>/`, or `$BENTHIC_RUNS/<scale>` (tests)."""
    base = Path(os.environ.get("BENTHIC_RUNS", ROOT / "runs"))
    path = base / check_scale(scale)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Folder for decoded-data caches (git-ignored): `data/cache/`, or `$BENTHIC_CACHE`."""
    path = Path(os.environ.get("BENTHIC_CACHE", DATA_DIR / "cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_join(root: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """Join a path read from a CSV under `root`, refusing absolute paths and any that escape it."""
    root_path = Path(root).resolve()
    rel = Path(relative)
    if rel.is_absolute() or rel.drive:
        raise ValueError(f"path {str(relative)!r} is absolute; expected a path relative to {root_path}")
    joined = (root_path / rel).resolve()
    if joined != root_path and root_path not in joined.parents:
        raise ValueError(f"path {str(relative)!r} escapes the data root {root_path}")
    return joined
