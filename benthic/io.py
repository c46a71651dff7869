"""Atomic writes of checkpoints, tables and figures, so a crash never leaves a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on error delete it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as indented JSON to `path` atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_npy(path: str | os.PathLike, array: Any) -> Path:
    """Save a NumPy array as `.npy` atomically (a cache never holds a half-written array)."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)
    return Path(path)


def torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """Save a checkpoint with `torch.save` atomically (load it with `torch_load`)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def torch_load(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """Load a checkpoint safely: `weights_only=True`, so no pickled code runs."""
    import torch

    return torch.load(path, map_location=map_location, weights_only=True)


def save_table(df: Any, path_stem: str | os.PathLike, floatfmt: str = ".3f") -> tuple[Path, Path]:
    """Write a pandas DataFrame as `<stem>.csv` and `<stem>.md` (Markdown), both atomically."""
    stem = Path(path_stem)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    write_text(md_path, df.to_markdown(index=False, floatfmt=floatfmt) + "\n")
    return csv_path, md_path


def save_figure(fig: Any, path_stem: str | os.PathLike, dpi: int = 150) -> tuple[Path, Path]:
    """Save a matplotlib figure as `<stem>.png` and `<stem>.pdf`, both atomically; the PDF carries no
    creation date, so regenerating an unchanged figure leaves the file byte for byte the same."""
    stem = Path(path_stem)
    out = []
    for suffix in (".png", ".pdf"):
        target = stem.with_suffix(suffix)
        with atomic_path(target) as tmp:
            fig.savefig(
                tmp,
                dpi=dpi,
                bbox_inches="tight",
                format=suffix[1:],
                metadata={"CreationDate": None} if suffix == ".pdf" else None,
            )
        out.append(target)
    return out[0], out[1]
