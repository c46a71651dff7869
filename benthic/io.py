"""Atomic writes of checkpoints, tables and figures, so a crash never leaves a half-written file, and the strict
CSV reader every CSV a user hands the package goes through."""

from __future__ import annotations

import codecs
import csv
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benthic.errors import UserError


def umask() -> int:
    """The process's file-mode creation mask, read without changing it where Linux shows it (/proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            return next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it over `path`, on error delete it. The file
    gets the permissions an ordinary write would: those of the file it replaces, else 0666 less the umask
    (the temporary file itself is created 0600, private while it is incomplete)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~umask()
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically, UTF-8 encoded whatever the locale."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
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


_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
ENCODING_FIX = (
    "save it as UTF-8 (a spreadsheet's 'CSV UTF-8' format, or: iconv -f <its encoding> -t UTF-8 in.csv > out.csv)"
)


def _utf8_lines(path: Path, fh: Any) -> Iterator[str]:
    """The lines of a binary file as text, refusing any encoding but UTF-8 (with or without BOM) by line."""
    for number, raw in enumerate(fh, start=1):
        if number == 1:
            wide = next((name for bom, name in _WIDE_BOMS if raw.startswith(bom)), None)
            if wide:
                raise UserError(f"{path}: the file is {wide}-encoded, not UTF-8; {ENCODING_FIX}")
            raw = raw.removeprefix(codecs.BOM_UTF8)
        if b"\x00" in raw:
            raise UserError(
                f"{path}: line {number} holds a NUL byte (UTF-16 without a BOM, or not text); {ENCODING_FIX}"
            )
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(
                f"{path}: line {number} is not UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the "
                f"line; Latin-1/Windows-1252 files look like this); {ENCODING_FIX}"
            ) from None


def check_csv(path: str | os.PathLike) -> int:
    """Number of records of a CSV after checking it is UTF-8 and that every record has as many fields as the
    header (blank lines skipped, as pandas does); UserError naming the file and line otherwise."""
    path = Path(path)
    limit = csv.field_size_limit(2**31 - 1)  # pandas reads fields of any length; so must the check
    try:
        with open(path, "rb") as fh:
            reader = csv.reader(_utf8_lines(path, fh))
            try:
                return _count_records(path, reader)
            except csv.Error as exc:
                raise UserError(f"{path}: line {reader.line_num}: not readable as CSV ({exc})") from None
    finally:
        csv.field_size_limit(limit)


def _count_records(path: Path, reader: Any) -> int:
    header = next(reader, None)
    start, n = reader.line_num + 1, 0
    for row in reader:
        if row and len(row) != len(header):
            more = len(row) > len(header)
            hint = (
                "a comma inside a value needs the value in double quotes"
                if more
                else "an empty value still needs its comma"
            )
            raise UserError(
                f"{path}: line {start} has {len(row)} field(s) but the header (line 1) has {len(header)}; {hint}"
            )
        n += bool(row)
        start = reader.line_num + 1
    return n


def read_csv(path: str | os.PathLike, **kwargs: Any) -> Any:
    """pandas.read_csv of a UTF-8 file (BOM or not) after `check_csv`: a record with more or fewer fields than
    the header is refused with its line, never shifted into the wrong columns (pandas alone would silently
    take an extra first field as the index and fill a short row with NaN)."""
    import pandas as pd

    check_csv(path)
    return pd.read_csv(path, encoding="utf-8-sig", **kwargs)
