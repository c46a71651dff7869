"""Hostile CSVs and writes: a row with more or fewer fields than the header is refused with its line (never
shifted into the wrong columns), encodings other than UTF-8 are refused with the file and the fix, coordinates
outside the globe or NaN are refused row by row, and atomic writes give files the user's umask."""

import os

import numpy as np
import pandas as pd
import pytest
import torch

from benthic import io as bio
from benthic.data import benthicnet as bn
from benthic.data import coral
from benthic.errors import UserError

HEADER = "url,source,dataset,site,image,latitude,longitude\n"


def _row(i, lat="44.5", lon="-63.5"):
    return f"http://x/{i}.jpg,src,ds,site,img{i},{lat},{lon}\n"


def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


# ----------------------------------------------------------------------------- field counts
@pytest.mark.parametrize(
    "lines,bad_line,fields",
    [
        ([_row(0), _row(1).replace("\n", ",extra\n")], 3, 8),  # pandas alone would take the url as the index
        ([_row(0).replace(",-63.5", ""), _row(1)], 2, 6),  # pandas alone would fill longitude with NaN
        ([_row(0), "\n", _row(1), _row(2).replace("img2,", "img,2,")], 5, 8),  # blank lines still counted
        (['"a,\nb",src,ds,site,img,1,2\n', _row(1), "x\n"], 5, 1),  # a quoted newline spans lines 2-3
    ],
)
def test_rows_with_the_wrong_field_count_are_refused_with_their_line(tmp_path, lines, bad_line, fields):
    path = _write(tmp_path / "s.csv", HEADER + "".join(lines))
    with pytest.raises(
        UserError, match=rf"s.csv: line {bad_line} has {fields} field\(s\) but the header \(line 1\) has 7"
    ):
        bn.read_subset_csv(path)


def test_quoted_commas_are_one_field(tmp_path):
    path = _write(tmp_path / "s.csv", HEADER + '"http://x/a,b.jpg",src,ds,site,"img, 1",1.5,2.5\n')
    frame = bn.read_subset_csv(path)
    assert frame.loc[0, "image"] == "img, 1" and frame.loc[0, "longitude"] == 2.5


def test_extra_field_hint_and_missing_field_hint(tmp_path):
    _write(tmp_path / "a.csv", "a,b\n1,2,3\n")
    with pytest.raises(UserError, match="a comma inside a value needs the value in double quotes"):
        bio.read_csv(tmp_path / "a.csv")
    _write(tmp_path / "b.csv", "a,b\n1\n")
    with pytest.raises(UserError, match="an empty value still needs its comma"):
        bio.read_csv(tmp_path / "b.csv")


def test_nul_byte_is_refused_with_its_line(tmp_path):
    _write(tmp_path / "n.csv", "a,b\n1,2\n3,\x004\n")
    with pytest.raises(UserError, match=r"n.csv: line 3 holds a NUL byte \(UTF-16 without a BOM"):
        bio.read_csv(tmp_path / "n.csv")


def test_utf16_without_bom_is_refused(tmp_path):
    (tmp_path / "u.csv").write_bytes("a,b\n1,2\n".encode("utf-16-le"))
    with pytest.raises(UserError, match=r"u.csv: line 1 holds a NUL byte .* save it as UTF-8"):
        bio.read_csv(tmp_path / "u.csv")


def test_a_field_longer_than_the_csv_modules_default_limit_is_read(tmp_path):
    _write(tmp_path / "long.csv", "a,b\n1," + "x" * 300_000 + "\n")
    assert len(bio.read_csv(tmp_path / "long.csv").loc[0, "b"]) == 300_000


def test_coral_annotations_with_a_short_row(tmp_path):
    (tmp_path / "annotations.csv").write_text("patchid,label\np_1,0\np_2\n")
    with pytest.raises(UserError, match="annotations.csv: line 3 has 1 field"):
        coral._read_annotations(tmp_path / "annotations.csv", 3)


# -------------------------------------------------------------------------------- encodings
def test_utf8_with_and_without_bom_read_the_same(tmp_path):
    text = HEADER + _row(0).replace("site", "récif")
    plain = bn.read_subset_csv(_write(tmp_path / "a.csv", text))
    bom = bn.read_subset_csv(_write(tmp_path / "b.csv", text, "utf-8-sig"))
    pd.testing.assert_frame_equal(plain, bom)
    assert list(bom.columns)[0] == "url" and bom.loc[0, "site"] == "récif"


@pytest.mark.parametrize("encoding,name", [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_wide_encodings_are_refused_with_the_fix(tmp_path, encoding, name):
    path = _write(tmp_path / "w.csv", HEADER + _row(0), encoding)
    with pytest.raises(UserError, match=rf"w.csv: the file is {name}-encoded, not UTF-8; save it as UTF-8"):
        bn.read_subset_csv(path)


@pytest.mark.parametrize("encoding,byte", [("latin-1", "0xe9"), ("cp1252", "0x93")])
def test_single_byte_encodings_are_refused_with_line_and_fix(tmp_path, encoding, byte):
    site = "récif" if encoding == "latin-1" else "\u201creef\u201d"
    path = _write(tmp_path / "l.csv", HEADER + _row(0) + _row(1).replace("site", site), encoding)
    with pytest.raises(UserError, match=rf"l.csv: line 3 is not UTF-8 \(byte {byte} .*iconv -f"):
        bn.read_subset_csv(path)


# ------------------------------------------------------------------------------ coordinates
@pytest.mark.parametrize(
    "lat,lon,column,problem",
    [
        ("NaN", "1", "latitude", "is NaN; every row needs real coordinates"),
        ("1", "nan", "longitude", "is NaN; every row needs real coordinates"),
        ("90.0001", "1", "latitude", r"is outside \[-90, 90\]"),
        ("1", "-180.5", "longitude", r"is outside \[-180, 180\]"),
        ("-inf", "1", "latitude", "is not finite"),
        ("1", "12°E", "longitude", "is not a number"),
    ],
)
def test_bad_coordinates_refused(tmp_path, lat, lon, column, problem):
    path = _write(tmp_path / "c.csv", HEADER + _row(0) + _row(1, lat, lon))
    with pytest.raises(UserError, match=rf"c.csv: line 3, column '{column}': value .* {problem}"):
        bn.read_subset_csv(path)


def test_nan_coordinates_are_reported_row_by_row(tmp_path):
    rows = [_row(i, "nan" if i in (1, 4, 6) else "10") for i in range(8)]
    path = _write(tmp_path / "c.csv", HEADER + "".join(rows))
    with pytest.raises(UserError, match=r"line 3, .* is NaN.*\(2 more row\(s\) .*: line 6 'nan', line 8 'nan'\)"):
        bn.read_subset_csv(path)


def test_coordinates_on_the_limits_are_accepted(tmp_path):
    path = _write(tmp_path / "c.csv", HEADER + _row(0, "-90", "180") + _row(1, "90", "-180"))
    frame = bn.read_subset_csv(path)
    assert frame.latitude.tolist() == [-90.0, 90.0] and frame.longitude.tolist() == [180.0, -180.0]


# -------------------------------------------------------------------------- atomic writes
@pytest.fixture()
def mask():
    def use(value):
        os.umask(value)

    old = os.umask(0o022)
    yield use
    os.umask(old)


@pytest.mark.parametrize("value,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_get_the_umask_not_0600(tmp_path, mask, value, mode):
    mask(value)
    assert bio.umask() == value
    written = [
        bio.write_text(tmp_path / "a.txt", "x"),
        bio.write_json(tmp_path / "a.json", {"a": 1}),
        bio.save_npy(tmp_path / "a.npy", np.zeros(2)),
        bio.torch_save({"a": torch.zeros(1)}, tmp_path / "a.pt"),
        *bio.save_table(pd.DataFrame({"a": [1]}), tmp_path / "t"),
    ]
    assert {p.stat().st_mode & 0o777 for p in written} == {mode}


def test_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path, mask):
    target = tmp_path / "a.txt"
    target.write_text("old")
    target.chmod(0o640)
    bio.write_text(target, "new")
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o640


def test_failed_atomic_write_leaves_the_old_file_unchanged(tmp_path):
    target = bio.write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), bio.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_user_csvs_of_every_command_are_read_strictly(tmp_path):
    """The labels CSV of `benthic classify`, the CSV collection of `benthic train` and a user's translation table
    refuse a row with one field too many, naming its line, instead of shifting its columns."""
    from benthic.data import collection
    from benthic.hierarchy import catami
    from benthic.transfer import labels

    labels_csv = _write(tmp_path / "labels.csv", "image,label\na.jpg,coral\nb.jpg,coral,extra\n")
    with pytest.raises(UserError, match=r"line 3 has 3 field\(s\) but the header \(line 1\) has 2"):
        labels.read_labels(labels_csv)
    (tmp_path / "img").mkdir()
    catalogue = _write(tmp_path / "cat.csv", "dataset,site,image,url\nd,s,x.jpg,http://h/x.jpg,oops\n")
    with pytest.raises(UserError, match=r"line 2 has 5 field\(s\)"):
        collection.from_csv(catalogue, tmp_path / "img")
    table = _write(tmp_path / "table.csv", "a,b\n1\n")
    with pytest.raises(UserError, match=r"line 2 has 1 field\(s\)"):
        catami.read_table(table)
