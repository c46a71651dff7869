"""The one image reader of the package: every loader, the streaming trainer and `benthic annotate` decode
photos here, so they share one format allow-list, one set of corrupt-file rules and one pixel rule.

A file is recognised from its first bytes (never from its name, never by reading it whole) and refused
unless its format is on `FORMATS`; a file that cannot become an image is an `UnreadableImage` with a
one-line reason, which callers turn into a counted skip: corrupt or truncated data, a header that claims
more than `MAX_PIXELS` pixels (a decompression bomb), running out of memory while decoding.

The pixel rule (every mode and bit depth to 8-bit RGB; `to_uint8` for data wider than 8 bits):
- 8-bit data as Pillow converts it: grey and 1-bit replicated to R = G = B; palette through its colours; CMYK
  by Pillow's CMYK -> RGB formula; alpha (RGBA, LA, a palette's transparency) dropped, keeping the colour
  stored under it.
- Unsigned integers of 9-16 bits (16-bit PNG and TIFF, grey or colour): v * 255 / white, rounded, with
  white = 4095 when no sample of the image exceeds 4095 (12-bit data stored in 16-bit files, as many
  scientific cameras write them) and 65535 otherwise. Colour 16-bit files keep all 16 bits (Pillow alone
  keeps only the high byte, which turns 12-bit data nearly black). One exception: 16-bit grey + alpha,
  which Pillow can only decode to its high byte, is scaled as 16-bit data (v // 256).
- Other integers (signed, or above 65535): linearly stretched from the image's minimum (0) to its maximum (255).
- 32-bit float: v * 255 when every finite value lies in [0, 1], else linearly stretched from the minimum to
  the maximum of the finite values; NaN and infinite pixels become 0. Nothing is clipped to white or black.
- The EXIF orientation tag (1-8) is applied last, so a photo is seen upright."""

from __future__ import annotations

import io
import os
import stat
import sys
import warnings
from pathlib import Path

import numpy as np

READER_VERSION = 2
"""Bump whenever the pixels decoded from some file change: caches of decoded pixels are keyed by it.
2: wide data scaled by the pixel rule above, EXIF orientation applied, bombs and memory errors skipped."""

MAX_PIXELS = 2 * 89_478_485
"""Largest width x height decoded (Pillow's own decompression-bomb limit, 2 x Image.MAX_IMAGE_PIXELS)."""

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
# formats refused by name, so the reason says what the file is (videos, documents that Pillow would hand on)
_REFUSED = (
    (b"%!PS", "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS (DOS binary)"),
    (b"%PDF", "PDF"),
    (b"\x1a\x45\xdf\xa3", "a video (Matroska/WebM)"),
    (b"\x00\x00\x01\xba", "a video (MPEG)"),
    (b"\x00\x00\x01\xb3", "a video (MPEG)"),
)
FORMATS = ("JPEG", "PNG", "TIFF", "BMP", "GIF", "WEBP")
"""Formats the reader decodes; anything else (PostScript, video, RAW, ...) is refused by its header."""
FITS = ("stretch", "centre_square", "none")
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis")
_WIDE_MODES = ("RGB", "RGBA")  # colour modes whose 16-bit samples Pillow would cut to their high byte
_SWAP = {"16B": "16L", "16L": "16B", "16N": "16B" if sys.byteorder == "little" else "16L"}
_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270"}
_TRANSPOSE |= {7: "TRANSVERSE", 8: "ROTATE_90"}

Source = str | os.PathLike | bytes


class UnreadableImage(Exception):
    """A file that cannot become an RGB image; `str(exc)` is the one-line reason shown to the user."""


def _head(source: Source) -> bytes:
    if isinstance(source, bytes):
        return source[:16]
    with open(source, "rb") as fh:
        return fh.read(16)


def _identify(head: bytes) -> tuple[str | None, str]:
    """(allow-listed format or None, what the header says the data is when it is refused)."""
    if head[:4] == b"RIFF":
        return ("WEBP", "") if head[8:12] == b"WEBP" else (None, "a video or sound (RIFF/AVI/WAV)")
    if head[4:8] == b"ftyp":
        return None, "HEIF/AVIF" if head[8:12] in _HEIF_BRANDS else "a video (MP4/QuickTime)"
    fmt = next((name for name, magic in _MAGIC if head.startswith(magic)), None)
    if fmt is not None:
        return fmt, ""
    return None, next((what for magic, what in _REFUSED if head.startswith(magic)), "")


def sniff_format(source: Source) -> str | None:
    """The allow-listed format a file's first bytes announce, or None (reads 16 bytes, whatever its size)."""
    return _identify(_head(source))[0]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _pil_open(source: Source, fmt: str):
    from PIL import Image

    return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=[fmt])


def _open_checked(source: Source):
    """Open `source` with Pillow restricted to the allow-listed formats, after its header names one of them."""
    from PIL import Image

    try:
        if not isinstance(source, bytes):
            info = Path(source).stat()
            if not stat.S_ISREG(info.st_mode):  # a folder, device or pipe: never opened (a pipe blocks)
                raise UnreadableImage(
                    "a folder, not an image file" if stat.S_ISDIR(info.st_mode) else "not a regular file"
                )
        if len(source) == 0 if isinstance(source, bytes) else info.st_size == 0:
            raise UnreadableImage("empty file")
        fmt, what = _identify(_head(source))
    except FileNotFoundError:
        raise UnreadableImage("missing file") from None
    except IsADirectoryError:
        raise UnreadableImage("a folder, not an image file") from None
    except OSError as exc:
        raise UnreadableImage(f"unreadable: {exc.strerror or exc}") from None
    if fmt is None:
        prefix = f"{what}, " if what else ""
        raise UnreadableImage(f"{prefix}not an image of an accepted format ({', '.join(FORMATS)})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS is checked below
            im = _pil_open(source, fmt)
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(f"refused as a decompression bomb ({fmt}): {_one_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's problem, not the run's
        raise UnreadableImage(f"corrupt image ({fmt}): {_one_line(exc)}") from None
    w, h = im.size
    if w * h > MAX_PIXELS:
        im.close()
        raise UnreadableImage(
            f"refused as a decompression bomb ({fmt}): header claims {w} x {h} pixels, over {MAX_PIXELS}"
        )
    return im, fmt


def _rawmode(args: object) -> str:
    if isinstance(args, str):
        return args
    return args[0] if isinstance(args, tuple) and args and isinstance(args[0], str) else ""


def _is_wide(im) -> bool:
    """True for RGB(A) images stored with 16 bits per sample (decided from the tiles, before decoding)."""
    raws = [_rawmode(t.args) for t in im.tile]
    return im.mode in _WIDE_MODES and bool(raws) and all(r[:-4] in _WIDE_MODES and r[-3:] in _SWAP for r in raws)


def _low_bytes(source: Source, fmt: str) -> np.ndarray:
    """The low byte of every 16-bit sample: decode again with the byte order of each tile swapped."""
    with _pil_open(source, fmt) as im:
        tiles = []
        for t in im.tile:
            raw = _rawmode(t.args)
            swapped = raw[:-3] + _SWAP[raw[-3:]]
            tiles.append(t._replace(args=swapped if isinstance(t.args, str) else (swapped, *t.args[1:])))
        im.tile = tiles
        im.load()
        return np.asarray(im)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """uint8 of pixel data wider than 8 bits by the module's pixel rule (12- or 16-bit white point for
    unsigned 16-bit data, [0, 1] or min-max for floats, min-max for other integers; NaN/inf -> 0)."""
    a = np.asarray(values)
    if np.issubdtype(a.dtype, np.floating):
        finite = np.isfinite(a)
        if not finite.any():
            return np.zeros(a.shape, np.uint8)
        lo, hi = float(a[finite].min()), float(a[finite].max())
        scaled = a * 255.0 if lo >= 0 and hi <= 1 else _stretch(a, lo, hi)
        return np.where(finite, np.rint(np.nan_to_num(scaled, posinf=0, neginf=0)), 0).astype(np.uint8)
    lo, hi = int(a.min()), int(a.max())
    if lo >= 0 and hi <= 65535:
        white = 4095 if hi <= 4095 else 65535
        return np.rint(a.astype(np.float64) * (255.0 / white)).astype(np.uint8)
    return np.rint(_stretch(a.astype(np.float64), lo, hi)).astype(np.uint8)


def _stretch(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.zeros(a.shape) if hi == lo else (a.astype(np.float64) - lo) * (255.0 / (hi - lo))


def _to_rgb(im, source: Source, fmt: str):
    """Decode `im` (not yet loaded) to an 8-bit RGB image by the pixel rule."""
    from PIL import Image

    wide = _is_wide(im)
    im.load()
    if wide:
        samples = np.asarray(im).astype(np.uint16) << 8 | _low_bytes(source, fmt)
        return Image.fromarray(to_uint8(samples[..., :3]), "RGB")
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        return Image.fromarray(to_uint8(np.asarray(im)), "L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        return im.convert("RGBA").convert("RGB")
    return im.convert("RGB")


def _orientation(im) -> int:
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - a damaged EXIF block leaves the photo as stored
        return 1
    return value if value in _TRANSPOSE else 1


def open_rgb(source: Source):
    """Decode a file (path, or its bytes) to an upright 8-bit RGB PIL image, or raise UnreadableImage."""
    from PIL import Image

    im, fmt = _open_checked(source)
    try:
        with im, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            rgb = _to_rgb(im, source, fmt)
            turn = _orientation(im)
        return rgb if turn == 1 else rgb.transpose(getattr(Image.Transpose, _TRANSPOSE[turn]))
    except MemoryError:
        raise UnreadableImage(f"out of memory decoding this {im.size[0]} x {im.size[1]} image ({fmt})") from None
    except Exception as exc:  # noqa: BLE001 - truncated data, decoder errors: a skip, not a crash
        raise UnreadableImage(f"corrupt image ({fmt}): {_one_line(exc)}") from None


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


def read_rgb(source: Source, size: int | None, fit: str = "stretch") -> np.ndarray:
    """uint8 (size, size, 3) pixels of the image at `source` (a path or the file's bytes; see `fit_to`);
    raises UnreadableImage."""
    im = open_rgb(source)
    try:
        return fit_to(im, size, fit)
    except MemoryError:
        raise UnreadableImage(f"out of memory resizing this {im.size[0]} x {im.size[1]} image") from None


def try_read(path: Source, size: int | None, fit: str = "stretch") -> tuple[np.ndarray | None, str]:
    """(pixels, "") or (None, reason): `read_rgb` for loops that count skips instead of stopping."""
    try:
        return read_rgb(path, size, fit), ""
    except UnreadableImage as exc:
        return None, str(exc)
