"""Hand-built image files the hostile-input tests need and Pillow cannot write: 16-bit colour PNG and TIFF,
16-bit grey + alpha PNG, and a PNG header claiming a huge image (a decompression bomb)."""

import struct
import zlib

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png16(path, samples: np.ndarray) -> None:
    """A 16-bit PNG of uint16 samples (H, W, C): C = 2 grey + alpha, 3 RGB, 4 RGBA (filter 0 on each row)."""
    h, w, c = samples.shape
    colour_type = {2: 4, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    body = _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + body)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A 65-byte PNG whose header claims width x height RGB pixels (an empty data stream follows)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")


def tiff16(path, samples: np.ndarray, deflate: bool = False) -> None:
    """A little-endian RGB or RGBA TIFF of uint16 samples (H, W, 3|4) in one strip, raw or deflate-compressed."""
    h, w, c = samples.shape
    data = samples.astype("<u2").tobytes()
    if deflate:
        data = zlib.compress(data)
    bits_at = 8 + len(data)
    tags = [
        (256, 3, 1, w),
        (257, 3, 1, h),
        (258, 3, c, bits_at),
        (259, 3, 1, 8 if deflate else 1),
        (262, 3, 1, 2),
        (273, 4, 1, 8),
        (277, 3, 1, c),
        (278, 3, 1, h),
        (279, 4, 1, len(data)),
        (284, 3, 1, 1),
    ] + ([(338, 3, 1, 2)] if c == 4 else [])
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *t) for t in tags) + b"\0\0\0\0"
    with open(path, "wb") as fh:
        fh.write(b"II*\x00" + struct.pack("<I", bits_at + 2 * c) + data + struct.pack(f"<{c}H", *[16] * c) + ifd)
