"""Reef-photo loader: counts, multi-hot labels against annotations.csv (hand-checked rows), pixels against a
direct decode, cache, clear errors, and photo-grouped splits / folds (checked with scikit-learn)."""

import numpy as np
import pytest
from PIL import Image

from benthic.data.coral import CORAL_ROOT, load_coral, photo_id, photo_kfold, split_by_photo


@pytest.fixture(scope="module")
def coral():
    return load_coral(size=64)


def test_loader_counts_and_types(coral):
    assert len(coral) == 975 and coral.images.shape == (975, 64, 64, 3) and coral.images.dtype == np.uint8
    assert coral.labels.shape == (975, 9) and coral.labels.dtype == np.float32
    assert set(np.unique(coral.labels)) == {0.0, 1.0} and coral.labels.sum(1).min() >= 1
    assert coral.label_names[0] == "Background" and coral.label_names[8] == "Physical issues"
    assert len(set(coral.tile_ids)) == 975
    # 29 preliminary-survey photos plus one single-tile photo for 7 of the 9 later surveys
    assert len(set(coral.photo_ids)) == 36
    assert (coral.surveys == "20230421_preliminary_survey").sum() == 968
    assert "20230412_0008_1" not in coral.tile_ids  # shipped tile without a row in annotations.csv


@pytest.mark.parametrize(
    "tile,ids",
    [
        ("20230412_0001_1", [2]),
        ("20230412_0001_2", [1, 2]),
        ("20230412_0029_4", [1, 3, 5]),
        ("AOM_0032_00_20230929_0001_1", [1, 3]),
        ("ALK_0030_11_20230927_0001_1", [4]),
        ("HWB_0029_12_20230926_0001_1", [0]),
    ],
)
def test_multi_hot_matches_annotations(coral, tile, ids):
    expected = np.zeros(9, dtype=np.float32)
    expected[ids] = 1
    np.testing.assert_array_equal(coral.labels[coral.tile_ids.index(tile)], expected)


def test_pixels_and_groups_match_the_files(coral):
    i = coral.tile_ids.index("20230412_0029_4")
    path = CORAL_ROOT / "images" / "20230421_preliminary_survey" / "20230412_0029_4.jpg"
    ref = np.asarray(Image.open(path).convert("RGB").resize((64, 64), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(coral.images[i], ref)
    assert coral.photo_ids[i] == "20230412_0029" and coral.surveys[i] == "20230421_preliminary_survey"
    assert photo_id("CBK_0001_00_20230804_0001_1") == "CBK_0001_00_20230804_0001"
    with pytest.raises(ValueError, match="tile number"):
        photo_id("nonumber")


def test_second_load_comes_from_cache(coral, monkeypatch):
    import PIL.Image

    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: pytest.fail("decoded again"))
    again = load_coral(size=64)
    np.testing.assert_array_equal(again.images, coral.images)
    np.testing.assert_array_equal(again.labels, coral.labels)
    assert again.tile_ids == coral.tile_ids and list(again.photo_ids) == list(coral.photo_ids)


def _tiny_root(tmp_path, label_rows):
    root = tmp_path / "coral"
    (root / "images" / "s1").mkdir(parents=True)
    (root / "tabular_data").mkdir()
    (root / "tabular_data" / "labelsets.csv").write_text("label,label_name\n0,a\n1,b\n2,c\n")
    for k in (1, 2):
        Image.new("RGB", (20, 20), (10 * k, 0, 0)).save(root / "images" / "s1" / f"p_0001_{k}.jpg")
    (root / "tabular_data" / "annotations.csv").write_text("patchid,label\n" + "".join(label_rows))
    return root


def test_bad_inputs_raise_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTHIC_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="annotations.csv is missing.*XL-SHAO"):
        load_coral(tmp_path / "nowhere")
    root = _tiny_root(tmp_path, ['p_0001_1,"0,2"\n', "p_0001_2,x\n"])
    with pytest.raises(ValueError, match="line 3, column 'label'"):
        load_coral(root, size=16)
    root = _tiny_root(tmp_path / "b", ["p_0001_1,7\n"])
    with pytest.raises(ValueError, match="line 2, column 'label'.*0..2"):
        load_coral(root, size=16)
    root = _tiny_root(tmp_path / "c", ['p_0001_1,"0,2"\n'])
    small = load_coral(root, size=16)
    assert small.tile_ids == ["p_0001_1"] and small.labels.tolist() == [[1, 0, 1]]
    assert small.images.shape == (1, 16, 16, 3)


def test_split_by_photo_keeps_photos_whole_and_is_seeded(coral):
    tr, te = split_by_photo(coral.photo_ids, 0.25, seed=0)
    assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(coral)
    assert not set(coral.photo_ids[tr]) & set(coral.photo_ids[te])
    assert abs(len(te) - 0.25 * len(coral)) <= 35  # within one photo of the target
    tr2, te2 = split_by_photo(coral.photo_ids, 0.25, seed=0)
    np.testing.assert_array_equal(te, te2)
    _, te3 = split_by_photo(coral.photo_ids, 0.25, seed=1)
    assert not np.array_equal(te, te3)
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_by_photo(coral.photo_ids, 1.0, 0)


def test_split_by_photo_hand_case():
    # five photos of two tiles: 40 % test is exactly two whole photos whatever the seed
    photos = np.repeat(np.array(list("abcde")), 2)
    seen = set()
    for seed in range(8):
        tr, te = split_by_photo(photos, 0.4, seed)
        assert len(te) == 4 and len(tr) == 6 and not set(photos[tr]) & set(photos[te])
        assert all(np.sum(photos[te] == p) in (0, 2) for p in "abcde")
        seen.add(tuple(te))
    assert len(seen) > 1  # different seeds pick different photos
    # a tiny fraction still puts one photo in test; a large one still leaves one for training
    assert len(split_by_photo(photos, 0.01, 0)[1]) == 2 and len(split_by_photo(photos, 0.99, 0)[0]) == 2


@pytest.mark.filterwarnings("ignore:The least populated class")  # rare classes have < k photos
def test_photo_kfold_matches_sklearn_and_keeps_photos_whole(coral):
    from sklearn.model_selection import StratifiedGroupKFold

    y = coral.labels.argmax(1)
    folds = photo_kfold(y, coral.photo_ids, 4, seed=0)
    assert len(folds) == 4
    tests = np.concatenate([te for _, te in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(len(coral)))
    for tr, te in folds:
        assert not set(coral.photo_ids[tr]) & set(coral.photo_ids[te])
    ref = StratifiedGroupKFold(4, shuffle=True, random_state=0).split(y, y, coral.photo_ids)
    for (_, te), (_, ref_te) in zip(folds, ref):
        np.testing.assert_array_equal(te, np.sort(ref_te))
    with pytest.raises(ValueError, match="1-D"):
        photo_kfold(coral.labels, coral.photo_ids, 4, 0)
    with pytest.raises(ValueError, match="number of photos"):
        photo_kfold(y, coral.photo_ids, 37, 0)
