"""Benchmark: what the hardened image reader (benthic.data.reader) costs per image against a bare Pillow
open + convert + resize, on the shipped reef tiles (256 px JPEGs) and on 16-bit colour PNGs (which the reader
decodes twice to keep all 16 bits), plus the time to refuse a 1 GiB video by its header. Prints milliseconds
per image (median of 3 passes). Usage: python benchmarks/reader_speed.py [n_images]"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benthic.data.coral import CORAL_ROOT
from benthic.data.reader import read_rgb, try_read

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from image_files import png16  # noqa: E402 - the tests' writer of 16-bit colour PNGs


def bare_pillow(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))


def ms_per_image(fn, files, size: int = 224) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        for f in files:
            fn(f, size)
        times.append((time.perf_counter() - start) / len(files) * 1000)
    return float(np.median(times))


def main(n_images: int = 200) -> None:
    tiles = sorted((CORAL_ROOT / "images").glob("*/*.jpg"))[:n_images]
    with tempfile.TemporaryDirectory(prefix="benthic-reader-") as tmp:
        rng = np.random.default_rng(0)
        wide = []
        for i in range(min(n_images, 50)):
            wide.append(Path(tmp) / f"w{i}.png")
            png16(wide[-1], rng.integers(0, 4096, (256, 256, 3), dtype=np.uint16))
        video = Path(tmp) / "dive.mp4"
        with open(video, "wb") as fh:
            fh.write(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00")
            fh.truncate(1 << 30)
        print(f"ms per image, resize to 224 px (median of 3 passes); {len(tiles)} reef tiles, {len(wide)} 16-bit PNGs")
        for name, files in (("reef tiles, 8-bit JPEG 256 px", tiles), ("16-bit colour PNG 256 px", wide)):
            bare, ours = ms_per_image(bare_pillow, files), ms_per_image(read_rgb, files)
            print(f"  {name:32s} bare Pillow {bare:6.2f}   benthic reader {ours:6.2f}   ({ours / bare:.2f}x)")
        start = time.perf_counter()
        _, why = try_read(video, 224)
        print(f"  refusing a 1 GiB video by its header: {(time.perf_counter() - start) * 1000:.2f} ms ({why[:40]}...)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
