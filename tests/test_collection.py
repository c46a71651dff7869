"""Image collections to pretrain on: a folder searched recursively or a BenthicNet CSV under an image root, indexed
compactly (one byte array + offsets), paths kept under the root, the CSV's partition honoured."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benthic.data import benthicnet as bn
from benthic.data import collection as col
from benthic.data.reader import UnreadableImage, read_rgb
from benthic.errors import UserError

BENTHICNET = Path(__file__).resolve().parent.parent / "data" / "benthicnet"


def write_images(folder: Path, n: int, size: int = 12, seed: int = 0, fmt: str = "png") -> np.ndarray:
    """n random uint8 images written as folder/<k % 3>/<k>.<fmt>; returns them in the collection's (sorted) order."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    names = []
    for k, img in enumerate(images):
        path = folder / f"d{k % 3}" / f"{k:04d}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path)
        names.append(str(path.relative_to(folder)))
    return images[np.argsort(names, kind="stable")]


def test_folder_index_is_recursive_sorted_compact_and_skips_hidden(tmp_path):
    write_images(tmp_path, 7)
    (tmp_path / ".hidden.png").write_bytes(b"x")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "a.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("kept: the reader refuses it when read, a counted skip")
    c = col.from_folder(tmp_path)
    expected = sorted(
        str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and ".hidden" not in p.name
    )
    expected = [p for p in expected if not p.startswith(".cache")]
    assert sorted(c.relpath(i) for i in range(len(c))) == expected and len(c) == 8
    assert c.blob.dtype == np.uint8 and c.offsets.dtype == np.int64 and c.blob.nbytes == sum(map(len, expected))
    assert c.path(0) == tmp_path.resolve() / c.relpath(0)


def test_take_save_load_and_fingerprint(tmp_path):
    write_images(tmp_path / "imgs", 20)
    c = col.from_folder(tmp_path / "imgs")
    idx = np.array([5, 0, 19, 7])
    sub = c.take(idx)
    assert [sub.relpath(i) for i in range(4)] == [c.relpath(i) for i in idx]
    assert c.take(np.arange(len(c))).fingerprint() == c.fingerprint() != c.take(np.arange(len(c))[::-1]).fingerprint()
    back = col.Collection.load(c.save(tmp_path / "index.npz"))
    assert back.fingerprint() == c.fingerprint() and back.root == c.root and back.source == c.source
    train, held = col.split_holdout(c, 6, seed=3)
    names = lambda x: {x.relpath(i) for i in range(len(x))}  # noqa: E731
    assert len(held) == 6 and len(train) == 14 and not names(train) & names(held)
    assert names(train) | names(held) == names(c)
    assert names(col.split_holdout(c, 6, seed=3)[1]) == names(held) != names(col.split_holdout(c, 6, seed=4)[1])


def test_empty_or_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="holds no files"):
        col.from_folder(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        col.from_folder(tmp_path / "nope")


@pytest.mark.parametrize("name", ["benthicnet_labelled_sample.csv", "benthicnet_unlabelled_sub_sample.csv"])
@pytest.mark.parametrize("partition", [None, "train"])
def test_csv_index_matches_benthicnet_paths_and_partition(tmp_path, name, partition):
    frame = pd.read_csv(BENTHICNET / name, dtype=str, keep_default_na=False)
    if partition and "partition" in frame:
        frame = frame[frame.partition == partition]
    expected = list(dict.fromkeys(bn.image_relpath(r) for r in frame.to_dict("records")))  # one per image
    c = col.from_csv(BENTHICNET / name, tmp_path, partition)
    assert [c.relpath(i) for i in range(len(c))] == expected
    if name.startswith("benthicnet_labelled"):  # 8 annotation rows of 7 images; 5 of them in the train partition
        assert len(c) == (5 if partition else 7)


def _csv(tmp_path, rows):
    path = tmp_path / "catalogue.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_csv_refuses_escaping_paths_empty_fields_and_missing_columns(tmp_path):
    ok = {"dataset": "d", "site": "s", "image": "a.jpg", "url": "http://x/a.jpg"}
    with pytest.raises(UserError, match=r"line 3, column 'image': path '\.\./s/b\.jpg' escapes the image root"):
        col.from_csv(_csv(tmp_path, [ok, {**ok, "dataset": "..", "image": "b.jpg"}]), tmp_path)
    with pytest.raises(UserError, match="line 2, column 'site': is empty"):
        col.from_csv(_csv(tmp_path, [{**ok, "site": ""}]), tmp_path)
    with pytest.raises(UserError, match="needs columns dataset, site, image"):
        col.from_csv(_csv(tmp_path, [{"dataset": "d", "image": "a.jpg"}]), tmp_path)
    with pytest.raises(UserError, match="no image rows with partition 'train'"):
        col.from_csv(_csv(tmp_path, [{**ok, "partition": "test"}]), tmp_path)
    with pytest.raises(UserError, match="image-root"):
        col.from_csv(_csv(tmp_path, [ok]), tmp_path / "absent")


def test_read_image_uses_the_reader_and_never_leaves_the_root(tmp_path):
    root = tmp_path / "root"
    write_images(root, 3, size=20, fmt="jpg")
    outside = tmp_path / "outside.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(outside)
    os.symlink(outside, root / "link.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    c = col.from_folder(root)
    by_name = {c.relpath(i): i for i in range(len(c))}
    i = by_name["d0/0000.jpg"]
    np.testing.assert_array_equal(col.read_image(c, i, 16), read_rgb(root / "d0/0000.jpg", 16, "centre_square"))
    with pytest.raises(UnreadableImage, match="escapes the data root"):
        col.read_image(c, by_name["link.png"], 16)
    with pytest.raises(UnreadableImage, match="corrupt"):
        col.read_image(c, by_name["broken.jpg"], 16)
    images, skipped = col.read_all(c, 16)
    assert images.shape == (3, 16, 16, 3) and set(skipped) == {"link.png", "broken.jpg"}
