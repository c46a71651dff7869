"""Hostile image files through the package's one reader: bombs, memory errors, formats off the allow-list and
files that are not files are skips with a one-line reason; every mode and bit depth becomes the 8-bit RGB the
pixel rule of benthic.data.reader promises (checked pixel by pixel against hand-computed values)."""

import io
import os
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
from image_files import png16, png_bomb, tiff16
from PIL import Image, ImageOps

from benthic.data import benthicnet as bn
from benthic.data import reader
from benthic.data.reader import UnreadableImage, read_rgb, to_uint8, try_read

RAMP16 = np.array([[0, 1, 257, 4095], [4096, 30000, 65534, 65535]], dtype=np.uint16)
RAMP12 = np.array([[0, 1, 16, 2048], [2047, 4000, 4094, 4095]], dtype=np.uint16)


def scaled(values: np.ndarray, white: int) -> np.ndarray:
    """The rule by hand: round(v * 255 / white) (NumPy rounds halves to even, as the reader does)."""
    return np.rint(values.astype(np.float64) * 255 / white).astype(np.uint8)


def grey(rgb: np.ndarray) -> np.ndarray:
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    return rgb[..., 0]


# ------------------------------------------------------------------------------ bombs and memory
def test_png_bomb_header_is_a_skip_with_its_reason(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb())
    assert path.stat().st_size == 65
    pixels, why = try_read(path, 32)
    assert pixels is None
    assert why.startswith("refused as a decompression bomb (PNG)") and "10000000000 pixels" in why


def test_image_over_max_pixels_is_refused_before_decoding(tmp_path, monkeypatch):
    Image.new("RGB", (20, 10)).save(tmp_path / "big.png")
    monkeypatch.setattr(reader, "MAX_PIXELS", 199)
    monkeypatch.setattr(reader, "_to_rgb", lambda *a: pytest.fail("decoded a bomb"))
    assert try_read(tmp_path / "big.png", 8) == (
        None,
        "refused as a decompression bomb (PNG): header claims 20 x 10 pixels, over 199",
    )


def test_memory_error_while_decoding_is_a_skip(tmp_path, monkeypatch):
    Image.new("RGB", (30, 20)).save(tmp_path / "a.png")

    def exhausted(*args):
        raise MemoryError

    monkeypatch.setattr(reader, "_to_rgb", exhausted)
    assert try_read(tmp_path / "a.png", 8) == (None, "out of memory decoding this 30 x 20 image (PNG)")


def test_memory_error_while_resizing_is_a_skip(tmp_path, monkeypatch):
    Image.new("RGB", (30, 20)).save(tmp_path / "a.png")

    def exhausted(*args):
        raise MemoryError

    monkeypatch.setattr(reader, "fit_to", exhausted)
    assert try_read(tmp_path / "a.png", 8) == (None, "out of memory resizing this 30 x 20 image")


def test_benthicnet_loader_skips_a_bomb_and_keeps_going(tmp_path):
    (tmp_path / "d" / "s").mkdir(parents=True)
    Image.new("RGB", (12, 12), (1, 2, 3)).save(tmp_path / "d" / "s" / "good.png")
    (tmp_path / "d" / "s" / "bomb.png").write_bytes(png_bomb())
    frame = pd.DataFrame({"url": "", "dataset": "d", "site": "s", "image": ["good.png", "bomb.png"]})
    with pytest.warns(UserWarning, match="skipped"):
        loaded = bn.load_images(frame, tmp_path, size=8)
    assert loaded.rows.tolist() == [0] and (loaded.images[0] == (1, 2, 3)).all()
    assert "decompression bomb" in loaded.skipped[1]


# ------------------------------------------------------------------------- the allow-list by header
@pytest.mark.parametrize(
    "head,what",
    [
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "PostScript/EPS, not an image"),
        (b"\xc5\xd0\xd3\xc6" + b"\x00" * 28, "EPS (DOS binary), not an image"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF, not an image"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00", "a video (MP4/QuickTime), not an image"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIF/AVIF, not an image"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01", "a video (Matroska/WebM), not an image"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "a video or sound (RIFF/AVI/WAV), not an image"),
        (b"\x00\x00\x01\xba\x44\x00\x04\x00", "a video (MPEG), not an image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image of an accepted format"),
        (b"just some notes\n", "not an image of an accepted format"),
    ],
)
def test_formats_off_the_allow_list_are_refused_by_header(tmp_path, head, what):
    path = tmp_path / "photo.jpg"  # the name says JPEG; the header decides
    path.write_bytes(head)
    pixels, why = try_read(path, 8)
    assert pixels is None and why.startswith(what)
    assert "(JPEG, PNG, TIFF, BMP, GIF, WEBP)" in why and "\n" not in why


def test_a_1_gb_video_is_refused_without_being_read(tmp_path):
    path = tmp_path / "dive.mp4"
    with open(path, "wb") as fh:
        fh.write(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00")
        fh.truncate(1 << 30)  # sparse: 1 GiB on paper, no disk used
    tracemalloc.start()
    pixels, why = try_read(path, 8)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert pixels is None and why.startswith("a video (MP4/QuickTime)")
    assert peak < 1 << 20  # far below the file's size: only its header was read


def test_png_named_jpg_is_decoded_as_png(tmp_path):
    pixels = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    Image.fromarray(pixels).save(tmp_path / "wrong.jpg", format="PNG")
    np.testing.assert_array_equal(read_rgb(tmp_path / "wrong.jpg", None, "none"), pixels)


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.mkdir(), "a folder, not an image file"),
        (lambda p: os.mkfifo(p), "not a regular file"),  # a pipe would block a reader for ever
        (lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
        (lambda p: p.symlink_to(p.parent / "nowhere.png"), "missing file"),
        (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40), "corrupt image (JPEG): "),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30), "corrupt image (PNG): "),
        (lambda p: p.write_bytes(b"GIF89a\x01"), "corrupt image (GIF): "),
        (lambda p: p.write_bytes(b"II*\x00\xff\xff\xff\xff"), "corrupt image (TIFF): "),
    ],
)
def test_files_that_cannot_be_images_are_skips_with_one_line(tmp_path, make, reason):
    path = tmp_path / "x.png"
    make(path)
    pixels, why = try_read(path, 8)
    assert pixels is None and why.startswith(reason) and "\n" not in why


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_corrupt_skips(tmp_path, fmt):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format=fmt)
    (tmp_path / "cut").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    pixels, why = try_read(tmp_path / "cut", 8)
    assert pixels is None and why.startswith(f"corrupt image ({fmt}): ") and "truncated" in why


def test_bytes_and_path_give_the_same_pixels(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 255, (9, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    from_bytes = read_rgb((tmp_path / "a.png").read_bytes(), None, "none")
    np.testing.assert_array_equal(from_bytes, pixels)
    np.testing.assert_array_equal(read_rgb(tmp_path / "a.png", None, "none"), pixels)


# --------------------------------------------------------------------------- modes and bit depths
@pytest.mark.parametrize("ext", ["png", "tif"])
@pytest.mark.parametrize("ramp,white", [(RAMP16, 65535), (RAMP12, 4095)])
def test_16_bit_grey_is_scaled_by_its_white_point(tmp_path, ext, ramp, white):
    Image.fromarray(ramp).save(tmp_path / f"g.{ext}")
    got = grey(read_rgb(tmp_path / f"g.{ext}", None, "none"))
    np.testing.assert_array_equal(got, scaled(ramp, white))
    assert got.max() == 255  # the brightest sample is white, not clipped and not near black


@pytest.mark.parametrize("writer", ["png", "tiff", "tiff-deflate"])
@pytest.mark.parametrize("white", [65535, 4095])
def test_16_bit_colour_keeps_all_16_bits(tmp_path, writer, white):
    rgb = np.stack([RAMP16 if white == 65535 else RAMP12, RAMP12[:, ::-1], np.full((2, 4), 100, np.uint16)], axis=2)
    path = tmp_path / "c.img"
    png16(path, rgb) if writer == "png" else tiff16(path, rgb, deflate=writer == "tiff-deflate")
    got = read_rgb(path, None, "none")
    np.testing.assert_array_equal(got, scaled(rgb, white))
    naive = np.asarray(Image.open(path).convert("RGB"))
    if white == 4095:  # Pillow alone keeps the high byte: 12-bit data tops out at 15 of 255
        assert naive.max() <= 15 and got.max() == 255


def test_16_bit_rgba_png_drops_alpha_and_scales_colour(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint16)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 65535, 32768, 257, 0
    png16(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(read_rgb(tmp_path / "a.png", None, "none"), np.full((2, 2, 3), [255, 128, 1]))


def test_16_bit_grey_alpha_png_is_its_high_byte(tmp_path):
    la = np.stack([RAMP16, np.full((2, 4), 65535, np.uint16)], axis=2)
    png16(tmp_path / "la.png", la)
    np.testing.assert_array_equal(grey(read_rgb(tmp_path / "la.png", None, "none")), RAMP16 >> 8)


def test_float_in_unit_range_is_times_255(tmp_path):
    values = np.array([[0.0, 0.25, 0.5], [0.75, 0.999, 1.0]], np.float32)
    Image.fromarray(values).save(tmp_path / "f.tif")
    np.testing.assert_array_equal(grey(read_rgb(tmp_path / "f.tif", None, "none")), [[0, 64, 128], [191, 255, 255]])


def test_float_outside_unit_range_is_stretched_and_nan_is_black(tmp_path):
    values = np.array([[-2.0, 0.0, 2.0], [6.0, np.nan, np.inf]], np.float32)
    Image.fromarray(values).save(tmp_path / "f.tif")
    expected = [[0, 64, 128], [255, 0, 0]]  # (v + 2) * 255 / 8 over the finite values; NaN and inf -> 0
    np.testing.assert_array_equal(grey(read_rgb(tmp_path / "f.tif", None, "none")), expected)


def test_32_bit_integers_beyond_16_bits_are_stretched(tmp_path):
    values = np.array([[-1000, 0], [99_000, 199_000]], np.int32)
    Image.fromarray(values).save(tmp_path / "i.tif")
    expected = np.rint((values + 1000) * 255 / 200_000).astype(np.uint8)
    np.testing.assert_array_equal(grey(read_rgb(tmp_path / "i.tif", None, "none")), expected)


@pytest.mark.parametrize(
    "values,expected",
    [
        (np.array([0, 4095], np.uint16), [0, 255]),
        (np.array([0, 4096], np.uint16), [0, 16]),
        (np.array([7, 7], np.uint16), [0, 0]),
        (np.array([np.nan, np.nan], np.float32), [0, 0]),
        (np.array([3.0, 3.0], np.float32), [0, 0]),
        (np.array([0.5, np.inf], np.float64), [128, 0]),
    ],
)
def test_to_uint8_hand_cases(values, expected):
    np.testing.assert_array_equal(to_uint8(values), expected)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    got = read_rgb(tmp_path / "c.jpg", None, "none")
    assert got.shape == (8, 8, 3) and np.abs(got.astype(int) - [255, 0, 0]).max() <= 3


def test_palette_with_transparency_gives_its_colours_without_warning(tmp_path):
    im = Image.new("P", (2, 2))
    im.putpalette([200, 10, 20, 0, 90, 180] + [0] * 762)
    im.putpixel((1, 1), 1)
    im.save(tmp_path / "p.png", transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = read_rgb(tmp_path / "p.png", None, "none")
    np.testing.assert_array_equal(got, [[[200, 10, 20], [200, 10, 20]], [[200, 10, 20], [0, 90, 180]]])


@pytest.mark.parametrize("mode,value,expected", [("LA", (77, 0), 77), ("1", 1, 255), ("L", 200, 200)])
def test_grey_modes_are_replicated(tmp_path, mode, value, expected):
    Image.new(mode, (3, 2), value).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "g.png", None, "none"), np.full((2, 3, 3), expected))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    pixels = np.zeros((16, 24, 3), np.uint8)
    pixels[:8, :8] = (255, 0, 0)  # a red top-left corner shows where the photo's top-left ends up
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "o.jpg", exif=exif, quality=100)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.jpg")).convert("RGB"))
    got = read_rgb(tmp_path / "o.jpg", None, "none")
    np.testing.assert_array_equal(got, expected)
    assert got.shape[:2] == ((24, 16) if orientation >= 5 else (16, 24))


def test_reader_version_was_bumped_for_the_new_pixel_rule():
    assert reader.READER_VERSION >= 2


def test_cifar_cache_is_keyed_by_the_reader_version(tmp_path, monkeypatch):
    import tarfile

    from benthic.data import cifar

    monkeypatch.setenv("BENTHIC_CACHE", str(tmp_path / "cache"))
    with tarfile.open(tmp_path / "a.tar.gz", "w:gz") as tar:
        for split in ("train", "test"):
            buf = io.BytesIO()
            Image.new("RGB", (32, 32), (9, 9, 9)).save(buf, format="PNG")
            info = tarfile.TarInfo(f"{split}/cat/0.png")
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
    cifar.load_cifar_archive(tmp_path / "a.tar.gz")
    monkeypatch.setattr(cifar, "READER_VERSION", reader.READER_VERSION + 1)
    cifar.load_cifar_archive(tmp_path / "a.tar.gz")
    names = sorted(p.name for p in (tmp_path / "cache").glob("cifar10-*"))
    assert len(names) == 2 and names[0].endswith(f"reader{reader.READER_VERSION}")


def test_unreadable_image_reason_is_one_line_for_a_multiline_decoder_error(tmp_path, monkeypatch):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")

    def noisy(*args):
        raise OSError("first line\n  second line\n")

    monkeypatch.setattr(reader, "_to_rgb", noisy)
    with pytest.raises(UnreadableImage, match=r"^corrupt image \(PNG\): first line second line$"):
        read_rgb(tmp_path / "a.png", 4)
