"""Where the project keeps data, run caches, results and figures, and safe joining of paths from CSVs.

Data sets live in a data folder (`data_dir`: the repository's data/, `$BENTHIC_DATA` or an argument); outputs go
under ROOT (`project_home`): the repository root in a source checkout, else `$BENTHIC_HOME` or the current
directory, so an installed package never writes into site-packages."""

from __future__ import annotations

import os
from pathlib import Path

from benthic.scales import check_scale

PACKAGE_PARENT = Path(__file__).resolve().parent.parent  # the source checkout, or site-packages once installed


def is_checkout(folder: str | os.PathLike) -> bool:
    """True when `folder` is this project's source checkout (it has pyproject.toml and notebooks/)."""
    folder = Path(folder)
    return (folder / "pyproject.toml").is_file() and (folder / "notebooks").is_dir()


IN_CHECKOUT = is_checkout(PACKAGE_PARENT)  # False for a non-editable install (site-packages, pip --target)


def project_home() -> Path:
    """The writable folder outputs go under (runs/, figures/, results/, executed/): the repository root when the
    package runs from its source checkout, else `$BENTHIC_HOME` or the current directory (never site-packages)."""
    if IN_CHECKOUT:
        return PACKAGE_PARENT
    return Path(os.environ.get("BENTHIC_HOME") or Path.cwd()).resolve()


def data_dir() -> Path:
    """The data-set folder: `$BENTHIC_DATA`, else `data/` of the project folder (the repository's data/ in a
    checkout); loaders also take their own root argument. Runtime tables (CATAMI, translations) are not here:
    they ship in the package (benthic/hierarchy/tables/)."""
    env = os.environ.get("BENTHIC_DATA")
    return Path(env) if env else project_home() / "data"


ROOT = project_home()  # the project folder: repository root in a checkout, else $BENTHIC_HOME or the cwd
DATA_DIR = data_dir()
RESULTS_DIR = ROOT / "results"


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
