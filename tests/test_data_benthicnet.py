"""BenthicNet readers on the shipped real rows: validation errors with file line and column for every bad
input, per-image label lists, safe image paths, and image loading that skips and counts bad files."""

import csv
import warnings

import numpy as np
import pytest
from PIL import Image

from benthic.data import benthicnet as bn
from benthic.hierarchy.catami import load_hierarchies
from benthic.paths import DATA_DIR

LABELLED = DATA_DIR / "benthicnet" / "benthicnet_labelled_sample.csv"
SUBSET = DATA_DIR / "benthicnet" / "benthicnet_unlabelled_sub_sample.csv"


@pytest.fixture(scope="module")
def hierarchies():
    return load_hierarchies()


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _write(path, rows, columns=None):
    columns = columns or list(rows[0])
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_shipped_files_read_and_typed(hierarchies):
    lab = bn.read_labelled_csv(LABELLED, hierarchies)
    sub = bn.read_subset_csv(SUBSET)
    assert len(lab) == 8 and len(sub) == 9
    assert lab["latitude"].dtype == np.float64 and sub["longitude"].dtype == np.float64
    assert lab.loc[0, "latitude"] == pytest.approx(-20.05703136) and lab.loc[0, "longitude"] == pytest.approx(
        -39.84970526
    )
    assert sub.loc[3, "latitude"] == pytest.approx(-15.36099238) and sub.loc[3, "gebco_bathymetry"] == pytest.approx(
        -578.775458622032
    )
    assert lab["catami_biota"].isna().sum() == 6 and lab["catami_relief"].isna().all()  # '' -> NaN


@pytest.mark.parametrize(
    "reader,path,drop",
    [
        (bn.read_labelled_csv, LABELLED, "catami_substrate"),
        (bn.read_labelled_csv, LABELLED, "latitude"),
        (bn.read_subset_csv, SUBSET, "image"),
    ],
)
def test_missing_required_column(tmp_path, reader, path, drop):
    rows = _rows(path)
    bad = _write(tmp_path / "x.csv", rows, [c for c in rows[0] if c != drop])
    with pytest.raises(ValueError, match=rf"line 1 \(header\): missing required column\(s\) \['{drop}'\]"):
        reader(bad)


def test_empty_and_header_only_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty.csv: the file is empty"):
        bn.read_subset_csv(tmp_path / "empty.csv")
    (tmp_path / "head.csv").write_text(SUBSET.read_text().splitlines()[0] + "\n")
    with pytest.raises(ValueError, match="line 2: the file has a header but no data rows"):
        bn.read_subset_csv(tmp_path / "head.csv")
    with pytest.raises(FileNotFoundError, match="absent.csv"):
        bn.read_labelled_csv(tmp_path / "absent.csv")


@pytest.mark.parametrize(
    "column,value,problem",
    [
        ("latitude", "abc", "is not a number"),
        ("latitude", "95.5", r"is outside \[-90, 90\]"),
        ("latitude", "-90.01", r"is outside \[-90, 90\]"),
        ("longitude", "181", r"is outside \[-180, 180\]"),
        ("longitude", "", "is empty"),
        ("longitude", "inf", "is not finite"),
    ],
)
def test_bad_coordinates_name_line_and_column(tmp_path, column, value, problem):
    rows = _rows(SUBSET)
    rows[3][column] = value  # data record 3 -> file line 5
    with pytest.raises(ValueError, match=rf"x.csv: line 5, column '{column}': value '{value}' {problem}"):
        bn.read_subset_csv(_write(tmp_path / "x.csv", rows))


def test_line_numbers_count_quoted_newlines_and_repeats(tmp_path):
    rows = _rows(LABELLED)
    rows[0]["original_label"] = "sediment,\nspans two lines"  # record 0 takes lines 2-3
    rows[4]["longitude"] = "west"
    rows[6]["longitude"] = "east"
    with pytest.raises(ValueError, match=r"line 7, column 'longitude': value 'west' is not a number \(1 more row"):
        bn.read_labelled_csv(_write(tmp_path / "x.csv", rows))


@pytest.mark.parametrize(
    "column,value",
    [
        ("catami_substrate", "Substrate > Lava lake"),
        ("catami_biota", "Biota > Dragons"),
        ("catami_substrate", "[BIOTA] > Biota > Sponges"),  # wrong head
        ("catami_relief", "Relief >"),
    ],
)  # malformed
def test_unknown_catami_paths(tmp_path, hierarchies, column, value):
    rows = _rows(LABELLED)
    rows[2][column] = value
    with pytest.raises(ValueError, match=rf"line 4, column '{column}': unknown CATAMI path"):
        bn.read_labelled_csv(_write(tmp_path / "x.csv", rows), hierarchies)


def test_tagged_and_untagged_paths_both_accepted(tmp_path, hierarchies):
    rows = _rows(LABELLED)
    rows[2]["catami_substrate"] = "[SUBSTRATE] > Substrate > Unconsolidated (soft)"
    df = bn.read_labelled_csv(_write(tmp_path / "x.csv", rows), hierarchies)
    assert len(df) == 8


@pytest.mark.parametrize("column", ["dataset", "site", "image", "url"])
def test_empty_image_identifiers(tmp_path, column):
    rows = _rows(SUBSET)
    rows[0][column] = " "
    with pytest.raises(ValueError, match=rf"line 2, column '{column}': is empty"):
        bn.read_subset_csv(_write(tmp_path / "x.csv", rows))


def test_group_labels_and_encoding_hand_checked(hierarchies):
    grouped = bn.group_labels(bn.read_labelled_csv(LABELLED, hierarchies))
    assert len(grouped) == 7  # rows 1-2 annotate the same image
    first = grouped.iloc[0]
    assert (first["dataset"], first["site"], first["image"]) == ("Bastos", "A_001_margem", "A_001_margem")
    assert first["substrate"] == [
        "Substrate > Unconsolidated (soft)",
        "Substrate > Unconsolidated (soft) > Pebble / gravel > Biologenic",
    ]
    assert first["biota"] == [] and first["relief"] == [] and first["bedforms"] == []
    assert grouped.iloc[4]["biota"] == ["Biota > Worms > Polychaetes > Tube worms"]
    enc = bn.encode_heads(grouped, hierarchies)
    sub = hierarchies["substrate"]
    target, mask = enc["substrate"][0][0], enc["substrate"][1][0]
    positive = {sub.nodes[i] for i in np.flatnonzero(target)}
    assert positive == {
        ("Substrate",),
        ("Substrate", "Unconsolidated (soft)"),
        ("Substrate", "Unconsolidated (soft)", "Pebble / gravel"),
        ("Substrate", "Unconsolidated (soft)", "Pebble / gravel", "Biologenic"),
    }
    # a sibling of a positive node is a known negative
    assert (
        mask[sub.index[("Substrate", "Consolidated (hard)")]]
        and not target[sub.index[("Substrate", "Consolidated (hard)")]]
    )
    assert enc["relief"][0].shape == (7, len(hierarchies["relief"])) and not enc["relief"][1].any()
    assert not enc["biota"][1][0].any() and enc["biota"][1][4].all()


def test_image_path_extension_and_escape(tmp_path):
    sub = bn.read_subset_csv(SUBSET)
    row = sub.iloc[0].to_dict()
    assert (
        bn.image_path(tmp_path, row) == (tmp_path / "FK200429" / "FK200429_S0353" / (row["image"] + ".jpg")).resolve()
    )
    row8 = sub.iloc[8].to_dict()  # 'WA154_GER4.5m171113TurtleBay1  (1)': a dot but no extension
    assert bn.image_path(tmp_path, row8).name == "WA154_GER4.5m171113TurtleBay1  (1).jpg"
    lab = bn.read_labelled_csv(LABELLED)
    assert bn.image_path(tmp_path, lab.iloc[5].to_dict()).name == "Station1_DSC0233.JPG"  # already has it
    assert bn.image_path(tmp_path, lab.iloc[3].to_dict()).suffix == ".tif"
    with pytest.raises(ValueError, match="escapes"):
        bn.image_path(tmp_path, dict(row, dataset="../.."))
    with pytest.raises(ValueError, match="escapes"):
        bn.image_path(tmp_path, dict(row, site="..", image="../../../etc/passwd"))
    with pytest.raises(ValueError, match="absolute"):
        bn.image_path(tmp_path, dict(row, dataset="/etc"))


def _stand_in_images(root, frame):
    """Write a distinct flat-colour image for every row at its image_path (format from the extension)."""
    colours = {}
    for i, row in enumerate(frame.to_dict("records")):
        path = bn.image_path(root, row)
        path.parent.mkdir(parents=True, exist_ok=True)
        colour = (10 + 20 * i, 200 - 15 * i, 60)
        Image.new("RGB", (40 + 8 * i, 30), colour).save(path)
        colours[i] = colour
    return colours


def test_load_images_skips_and_counts_corrupt_missing_and_escaping(tmp_path):
    frame = bn.group_labels(bn.read_labelled_csv(LABELLED))
    frame.loc[6, "dataset"] = "../.."  # escaping path: skipped, not read
    colours = _stand_in_images(tmp_path, frame.iloc[:6])
    bn.image_path(tmp_path, frame.iloc[1]).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    bn.image_path(tmp_path, frame.iloc[3]).unlink()
    with pytest.warns(UserWarning) as caught:
        out = bn.load_images(frame, tmp_path, size=16)
    messages = [str(w.message) for w in caught]
    assert sum("skipping BenthicNet image" in m for m in messages) == 3
    assert "3 of 7 BenthicNet images skipped" in messages[-1]
    assert out.n_skipped == 3 and sorted(out.skipped) == [1, 3, 6]
    assert "escapes" in out.skipped[6] and "missing file" in out.skipped[3]
    np.testing.assert_array_equal(out.rows, [0, 2, 4, 5])
    assert out.images.shape == (4, 16, 16, 3) and out.images.dtype == np.uint8
    for k, i in enumerate(out.rows):  # flat colours survive resize/crop (JPEG/TIFF/PNG within +-3)
        assert np.abs(out.images[k].astype(int) - np.array(colours[i])).max() <= 3
    message = bn.missing_images_message(frame, tmp_path)
    assert (
        message.startswith("2 of 7 BenthicNet images are missing") and "Chesterfield/CI_01/CI_01_H00001.png" in message
    )
    assert frame.loc[3, "url"] in message


def test_loader_batches_skip_and_count(tmp_path):
    frame = bn.read_subset_csv(SUBSET)
    _stand_in_images(tmp_path, frame)
    bn.image_path(tmp_path, frame.iloc[2]).write_bytes(b"")  # truncated to nothing
    bn.image_path(tmp_path, frame.iloc[7]).unlink()
    loader = bn.make_loader(frame, tmp_path, size=24, batch_size=4)
    seen, skipped = [], 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for batch in loader:
            assert batch["images"].shape[1:] == (24, 24, 3)
            seen += batch["index"].tolist()
            skipped += batch["n_skipped"]
    assert skipped == 2 and seen == [0, 1, 3, 4, 5, 6, 8]
    assert len([w for w in caught if "skipping BenthicNet image" in str(w.message)]) == 2
    assert sorted(loader.dataset.skipped) == [2, 7]


def test_missing_images_message_when_all_present(tmp_path):
    frame = bn.read_subset_csv(SUBSET)
    _stand_in_images(tmp_path, frame)
    assert bn.missing_images_message(frame, tmp_path) == f"all 9 images are present under {tmp_path}"
    assert bn.missing_images(frame, tmp_path).empty
