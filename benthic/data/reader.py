"""The one image reader of the package: every loader, the streaming trainer and `benthic annotate` decode
photos here, so they share one format allow-list, one set of corrupt-file rules and one pixel rule.

A file is recognised from its first bytes (never from its name, never by reading it whole) and refused
unless its format is on `FORMATS`; a file that cannot become an image is an `UnreadableImage` with a
one-line reason, which callers turn into a counted skip."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

READER_VERSION = 1
"""Bump whenever the pixels decoded from some file change: caches of decoded pixels are keyed by it."""

# (format name, magic bytes at offset 0); WebP is checked separately (RIFF....WEBP)
_MAGIC = (
    ("JPEG", b"\xff\xd8\xff"),
    ("PNG", b"\x89PNG\r\n\x1a\n"),
    ("TIFF", b"II*\x00"),
    ("TIFF", b"MM\x00*"),
    ("BMP", b"BM"),
    ("GIF", b"GIF87a"),
    ("GIF", b"GIF89a"),
)
FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "GIF", "WEBP")
"""Formats the reader decodes; anything else (PostScript, video, RAW, ...) is refused by its header."""
FITS = ("stretch", "centre_square", "none")


class UnreadableImage(Exception):
    """A file that cannot become an RGB image; `str(exc)` is the one-line reason shown to the user."""


def sniff_format(path: str | os.PathLike) -> str | None:
    """The allow-listed format a file's first bytes announce, or None (reads 16 bytes, whatever its size)."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((name for name, magic in _MAGIC if head.startswith(magic)), None)


def _open_checked(path: Path):
    """Open `path` with Pillow restricted to the allow-listed formats, after its header names one of them."""
    from PIL import Image

    try:
        if path.stat().st_size == 0:
            raise UnreadableImage("empty file")
        fmt = sniff_format(path)
    except FileNotFoundError:
        raise UnreadableImage("missing file") from None
    except IsADirectoryError:
        raise UnreadableImage("a folder, not an image file") from None
    except OSError as exc:
        raise UnreadableImage(f"unreadable: {exc.strerror or exc}") from None
    if fmt is None:
        raise UnreadableImage(f"not an image of an accepted format ({', '.join(FORMATS)})")
    try:
        return Image.open(path, formats=[fmt])
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's problem, not the run's
        raise UnreadableImage(f"corrupt image ({fmt}): {exc}") from None


def open_rgb(path: str | os.PathLike):
    """Decode `path` to an 8-bit RGB PIL image, or raise UnreadableImage with the reason."""
    path = Path(path)
    im = _open_checked(path)
    try:
        with im:
            im.load()
            return im.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - truncated data, decoder errors, bombs: a skip, not a crash
        raise UnreadableImage(f"corrupt image: {exc}") from None


def fit_to(im, size: int | None, fit: str = "stretch") -> np.ndarray:
    """uint8 (H, W, 3) of an RGB image resized (bilinear): 'stretch' the whole photo to size x size (as the
    reef tiles the HML heads learn from are seen), 'centre_square' the shorter side to size then the centre
    square (BenthicNet's photos of any shape), 'none' or size None as decoded."""
    from PIL import Image

    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    if size is None or fit == "none":
        return np.asarray(im, dtype=np.uint8)
    if fit == "stretch":
        return np.asarray(im.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def read_rgb(path: str | os.PathLike, size: int | None, fit: str = "stretch") -> np.ndarray:
    """uint8 (size, size, 3) pixels of the image at `path` (see `fit_to`); raises UnreadableImage."""
    return fit_to(open_rgb(path), size, fit)


def try_read(path: str | os.PathLike, size: int | None, fit: str = "stretch") -> tuple[np.ndarray | None, str]:
    """(pixels, "") or (None, reason): `read_rgb` for loops that count skips instead of stopping."""
    try:
        return read_rgb(path, size, fit), ""
    except UnreadableImage as exc:
        return None, str(exc)
