"""CIFAR loaders: archive decoding (tiny tar and the shipped archive), cache reuse, torchvision format,
clear errors offline, stratified subsets checked against class proportions."""

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from benthic.data import cifar
from benthic.data.cifar import CIFAR10_NAMES, load_cifar, load_cifar_archive, stratified_subset


def _colour(split: str, cls: int, k: int) -> tuple[int, int, int]:
    return (20 * cls + 5, 40 * k + (0 if split == "train" else 120), 200 - 10 * cls)


def _tiny_archive(path, per_class=(("train", 3), ("test", 2)), classes=CIFAR10_NAMES):
    """A tar.gz laid out like the shipped one, with flat-colour JPEGs (decode to the colour +-2)."""
    with tarfile.open(path, "w:gz") as tar:
        for split, n in per_class:
            for cls in classes:
                for k in range(n):
                    buf = io.BytesIO()
                    colour = _colour(split, CIFAR10_NAMES.index(cls), k)
                    Image.new("RGB", (32, 32), colour).save(buf, format="JPEG", quality=95)
                    info = tarfile.TarInfo(f"{split}/{cls}/{k:04d}.jpg")
                    info.size = len(buf.getvalue())
                    tar.addfile(info, io.BytesIO(buf.getvalue()))
        readme = b"not an image"
        info = tarfile.TarInfo("README.md")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTHIC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_tiny_archive_decodes_in_class_order_with_pixels(tmp_path, cache):
    archive = _tiny_archive(tmp_path / "tiny.tar.gz")
    x, y = load_cifar_archive(archive, "train")
    assert x.shape == (30, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(y, np.repeat(np.arange(10), 3))
    for i, (cls, k) in enumerate((c, k) for c in range(10) for k in range(3)):
        assert np.abs(x[i].astype(int) - np.array(_colour("train", cls, k))).max() <= 2
    xt, yt = load_cifar_archive(archive, "test")
    assert xt.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(yt, np.repeat(np.arange(10), 2))
    assert np.abs(xt[1].astype(int) - np.array(_colour("test", 0, 1))).max() <= 2


def test_png_members_decode_through_pil(tmp_path, cache):
    archive = tmp_path / "png.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split, cls, colour in (
            ("train", "dog", (1, 2, 3)),
            ("train", "cat", (9, 8, 7)),
            ("test", "cat", (5, 5, 5)),
        ):
            buf = io.BytesIO()
            Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
            info = tarfile.TarInfo(f"{split}/{cls}/0000.png")
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
    x, y = load_cifar_archive(archive, "train")
    np.testing.assert_array_equal(y, [3, 5])  # cat before dog, as in torchvision's order
    np.testing.assert_array_equal(x[0], np.full((32, 32, 3), (9, 8, 7)))  # lossless: exact pixels


def test_cache_is_reused_and_keyed_by_archive_content(tmp_path, cache, monkeypatch):
    archive = _tiny_archive(tmp_path / "tiny.tar.gz")
    first = load_cifar_archive(archive, "train")
    assert len(list(cache.glob("cifar10-*/*.npy"))) == 4
    monkeypatch.setattr(cifar, "_decode_archive", lambda a: pytest.fail("decoded twice"))
    again = load_cifar_archive(archive, "train")
    np.testing.assert_array_equal(first[0], again[0])
    monkeypatch.undo()
    monkeypatch.setenv("BENTHIC_CACHE", str(cache))
    _tiny_archive(archive, per_class=(("train", 1), ("test", 1)))  # changed content -> new decode
    x, _ = load_cifar_archive(archive, "train")
    assert len(x) == 10 and len(list(cache.glob("cifar10-*"))) == 2


def test_archive_errors(tmp_path, cache):
    with pytest.raises(FileNotFoundError, match="data/cifar10"):
        load_cifar_archive(tmp_path / "absent.tar.gz")
    with tarfile.open(tmp_path / "bad.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("train/unicorn/0000.jpg")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"xyz"))
    with pytest.raises(ValueError, match="unknown class folder 'unicorn'"):
        load_cifar_archive(tmp_path / "bad.tar.gz")
    with tarfile.open(tmp_path / "corrupt.tar.gz", "w:gz") as tar:
        for split in ("train", "test"):
            info = tarfile.TarInfo(f"{split}/cat/0000.jpg")
            info.size = 12
            tar.addfile(info, io.BytesIO(b"\xff\xd8\xff" + b"\x00" * 9))
    with pytest.raises(ValueError, match="member 'train/cat/0000.jpg' is not a readable image"):
        load_cifar_archive(tmp_path / "corrupt.tar.gz")
    with pytest.raises(ValueError, match="unknown split"):
        load_cifar("cifar10", "val")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_cifar("mnist")


@pytest.mark.slow  # decodes 60 000 JPEGs (~10-25 s on the shared 2-core CPU) when the cache is cold
def test_shipped_archive_has_full_cifar10():
    x, y = load_cifar("cifar10", "train")
    xt, yt = load_cifar("cifar10", "test")
    assert x.shape == (50_000, 32, 32, 3) and xt.shape == (10_000, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 5000))
    np.testing.assert_array_equal(np.bincount(yt), np.full(10, 1000))
    # real photos, not blank: per-image pixel spread is substantial on average
    assert x[:500].reshape(500, -1).std(axis=1).mean() > 30


def test_missing_torchvision_format_names_url_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_cifar("cifar100", "train", root=tmp_path)
    msg = str(err.value)
    assert "cifar-100-python.tar.gz" in msg and str(tmp_path) in msg and "cifar100" in msg
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        load_cifar("cifar10", "test", root=tmp_path)


def _write_python_batches(folder, n_per_file, fine=False):
    """torchvision's python-format files (tiny; str keys as the py2 pickles load), parsed by torchvision."""
    import pickle

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = ["train", "test"] if fine else [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    expected = {}
    key = "fine_labels" if fine else "labels"
    n_classes = 100 if fine else 10
    for name in files:
        data = rng.integers(0, 256, size=(n_per_file, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, n_classes, size=n_per_file).tolist()
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": data, key: labels}, fh)
        expected[name] = (data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.array(labels))
    meta_name, meta_key = ("meta", "fine_label_names") if fine else ("batches.meta", "label_names")
    with open(folder / meta_name, "wb") as fh:
        pickle.dump({meta_key: [f"c{i}" for i in range(n_classes)]}, fh)
    return expected


@pytest.mark.parametrize(
    "name,folder,fine", [("cifar10", "cifar-10-batches-py", False), ("cifar100", "cifar-100-python", True)]
)
def test_torchvision_format_is_read_as_nhwc_uint8(tmp_path, monkeypatch, name, folder, fine):
    import torchvision

    expected = _write_python_batches(tmp_path / folder, 4, fine)
    # our stand-in files cannot match torchvision's published MD5s: bypass only the checksum
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    x, y = load_cifar(name, "test", root=tmp_path)
    ref_x, ref_y = expected["test" if fine else "test_batch"]
    assert x.dtype == np.uint8 and y.dtype == np.int64 and x.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(x, ref_x)
    np.testing.assert_array_equal(y, ref_y)
    x, _ = load_cifar(name, "train", root=tmp_path)
    assert len(x) == (4 if fine else 20)


def test_corrupt_torchvision_folder_is_reported(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(FileNotFoundError, match="incomplete or corrupted"):
        load_cifar("cifar10", "train", root=tmp_path)


def test_stratified_subset_keeps_class_shares_and_is_seeded():
    labels = np.repeat(np.arange(4), [400, 300, 200, 100])
    idx = stratified_subset(labels, 100, seed=3)
    assert len(idx) == 100 and len(np.unique(idx)) == 100 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(np.bincount(labels[idx]), [40, 30, 20, 10])
    np.testing.assert_array_equal(idx, stratified_subset(labels, 100, seed=3))
    assert not np.array_equal(idx, stratified_subset(labels, 100, seed=4))
    # uneven shares: largest remainders get the spare samples (7 * 0.4/0.3/0.2/0.1 = 2.8/2.1/1.4/0.7)
    np.testing.assert_array_equal(np.bincount(labels[stratified_subset(labels, 7, 0)], minlength=4), [3, 2, 1, 1])
    np.testing.assert_array_equal(stratified_subset(labels, 1000, 0), np.arange(1000))
    with pytest.raises(ValueError, match="between 1"):
        stratified_subset(labels, 1001, 0)


def test_stratified_subset_matches_sklearn_class_counts():
    from sklearn.model_selection import train_test_split

    labels = np.random.default_rng(1).integers(0, 10, size=5000)
    idx = stratified_subset(labels, 500, seed=0)
    _, ref = train_test_split(np.arange(5000), test_size=500, stratify=labels, random_state=0)
    assert np.abs(np.bincount(labels[idx], minlength=10) - np.bincount(labels[ref], minlength=10)).max() <= 1
