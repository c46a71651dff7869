"""`benthic classify train|evaluate` and `benthic embed` end to end on a small subset of the shipped reef photos
(evaluate reproduces train's report; annotate labels a folder with the checkpoint; embed writes an array file
and an index), and every bad input of the issue: reported with counts and examples where the run can go on,
refused in one line with exit status 2 where it cannot."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from benthic.cli import main as cli
from benthic.data import coral
from benthic.hierarchy import translate
from benthic.io import torch_load, torch_save
from benthic.transfer import labels

IMAGES = coral.CORAL_ROOT / "images"
FAST = ["--encoder", "random:small_cnn", "--input-size", "32", "--scale", "smoke", "--device", "cpu"]


def reef_subset(photos: int = 8, tiles: int = 5) -> pd.DataFrame:
    """The label rows of `tiles` tiles of each of the first `photos` preliminary-survey photos."""
    frame = labels.reef_labels()
    keep = frame.drop_duplicates("image").groupby("photo").head(tiles)
    keep = keep[keep["photo"].isin(sorted(keep["photo"].unique())[:photos])]
    return frame[frame["image"].isin(keep["image"])].reset_index(drop=True)


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture()
def subset_csv(tmp_path):
    path = tmp_path / "labels.csv"
    reef_subset().to_csv(path, index=False)
    return path


def train_args(labels_csv, out, cache, table="coral_condition_to_catami", images=IMAGES, extra=()):
    return ["classify", "train", "--images", images, "--labels", labels_csv, "--translation", table, "--out", out,
            "--cache", cache, *FAST, *extra]  # fmt: skip


# ------------------------------------------------------------------------------------------ end to end
def test_train_evaluate_annotate_embed_end_to_end(subset_csv, tmp_path, cache, capsys):
    out = tmp_path / "run"
    code, text, err = run(train_args(subset_csv, out, cache), capsys)
    assert code == 0, err
    assert "split: by 'photo'" in text and "heads trained: biota, substrate" in text
    for name in (
        "classifier.pt",
        "curve.csv",
        "curve.png",
        "report.csv",
        "report.md",
        "levels.png",
        "labels_split.csv",
    ):
        assert (out / name).is_file(), name
    ckpt = torch_load(out / "classifier.pt")
    assert ckpt["trained_heads"] == ["biota", "substrate"] and set(ckpt["extra"]["prior_rates"]) == {
        "biota",
        "substrate",
    }
    curve = pd.read_csv(out / "curve.csv")
    assert list(curve["epoch"]) == list(range(1, 6)) and np.isfinite(curve["train_loss"]).all()  # smoke: 5 epochs
    split = pd.read_csv(out / "labels_split.csv")
    assert split.groupby("photo")["partition"].nunique().max() == 1  # a photo never straddles the split
    report = pd.read_csv(out / "report.csv")
    assert {"model", "prior (no image)", "model - prior"} <= set(report.columns)
    assert (
        report.groupby("head")["images"].first().to_dict()["biota"]
        == split.query("partition == 'test'").image.nunique()
    )

    code, text, err = run(
        ["classify", "evaluate", "--checkpoint", out / "classifier.pt", "--images", IMAGES, "--labels",
         out / "labels_split.csv", "--partition", "test", "--translation", "coral_condition_to_catami", "--out",
         tmp_path / "eval", "--cache", cache, "--device", "cpu"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "eval" / "report.csv"), report)

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in split["image"].unique()[:3]:
        shutil.copy(IMAGES / name, folder / name.split("/")[-1])
    code, text, err = run(["annotate", folder, "--checkpoint", out / "classifier.pt", "--out", tmp_path / "a.csv"],
                          capsys)  # fmt: skip
    assert code == 0, err
    table = pd.read_csv(tmp_path / "a.csv")
    assert (table["status"] == "ok").all() and len(table) == 3
    assert table["biota_path"].str.startswith("Biota").all()

    code, text, err = run(["embed", "--images", folder, "--encoder", "random:small_cnn", "--input-size", 32,
                           "--out", tmp_path / "feat" / "x", "--cache", cache, "--device", "cpu"], capsys)  # fmt: skip
    assert code == 0, err
    z = np.load(tmp_path / "feat" / "x.npy")
    index = pd.read_csv(tmp_path / "feat" / "x.csv")
    assert z.shape == (3, 128) and list(index["row"]) == [0, 1, 2] and np.isfinite(z).all()
    assert json.loads((tmp_path / "feat" / "x.json").read_text())["features"] == [3, 128]


def test_own_tree_checkpoint_evaluates(subset_csv, tmp_path, cache, capsys):
    out = tmp_path / "own"
    code, _, err = run(
        train_args(subset_csv, out, cache, "coral_condition_hierarchy", extra=["--exhaustive", "--multi-label"]), capsys
    )
    assert code == 0, err
    code, _, err = run(["classify", "evaluate", "--checkpoint", out / "classifier.pt", "--images", IMAGES,
                        "--labels", out / "labels_split.csv", "--partition", "test", "--translation",
                        "coral_condition_hierarchy", "--out", tmp_path / "e", "--cache", cache], capsys)  # fmt: skip
    assert code == 0, err
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "e" / "report.csv"), pd.read_csv(out / "report.csv"))


def test_reef_labels_csv_gives_the_notebooks_targets():
    """The shipped labels CSV, translated, equals translate_multi_hot on the reef annotations' multi-hot labels."""
    shipped = pd.read_csv(coral.CORAL_ROOT / "labels.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(shipped, labels.reef_labels())
    names = coral._read_label_names(coral.CORAL_ROOT / "tabular_data" / "labelsets.csv")
    hot = coral._read_annotations(coral.CORAL_ROOT / "tabular_data" / "annotations.csv", len(names))
    for table_name, exhaustive in (("coral_condition_hierarchy", True), ("coral_condition_to_catami", False)):
        table, hier, scheme = labels.load_table(table_name)
        data = labels.build_set(shipped, IMAGES, table, hier, scheme, exhaustive=exhaustive, multi_label=True)
        multi = np.stack([hot[name.split("/")[-1][:-4]] for name in data.images])
        expected = translate.translate_multi_hot(multi, names, table, hier, exhaustive=exhaustive)
        for head, (target, mask) in expected.items():
            np.testing.assert_array_equal(data.targets[head][0], target)
            np.testing.assert_array_equal(data.targets[head][1], mask)


# ------------------------------------------------------------------------------------------ bad input
@pytest.fixture()
def messy(tmp_path):
    """A root with six real tiles of two photos and a labels CSV carrying every continuable problem."""
    rows = reef_subset(photos=4, tiles=3)
    root = tmp_path / "root"
    for name in rows["image"].unique():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(IMAGES / name, root / name)
    first = rows["image"].iloc[0]
    bad = pd.DataFrame(
        [
            {"image": "20230421_preliminary_survey/gone_1.jpg", "label": "Healthy coral", "photo": "gone"},
            {"image": "20230421_preliminary_survey/gone_2.jpg", "label": "Dead coral", "photo": "gone"},
            {"image": "../outside.jpg", "label": "Healthy coral", "photo": "x"},
            {"image": "/etc/hostname", "label": "Healthy coral", "photo": "x"},
            {"image": first, "label": "Sponge", "photo": rows["photo"].iloc[0]},
            {"image": first, "label": "Sponge", "photo": rows["photo"].iloc[0]},
            {"image": "20230421_preliminary_survey/only_unknown.jpg", "label": "Seagrass", "photo": "y"},
        ]
    )
    shutil.copy(IMAGES / first, root / "20230421_preliminary_survey" / "only_unknown.jpg")
    (root / "20230421_preliminary_survey" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    bad.loc[len(bad)] = {"image": "20230421_preliminary_survey/broken.jpg", "label": "Dead coral", "photo": "z"}
    path = tmp_path / "labels.csv"
    pd.concat([rows.drop(columns="site"), bad]).to_csv(path, index=False)
    return root, path


def test_continuable_problems_are_reported_with_counts_and_examples(messy, tmp_path, cache, capsys):
    root, path = messy
    code, text, err = run(train_args(path, tmp_path / "o", cache, images=root), capsys)
    assert code == 0, err
    assert "2 image(s) named in the labels are not under" in text and "gone_1.jpg" in text
    assert "2 image path(s) escape the image root" in text and "../outside.jpg" in text
    assert "2 label(s) absent from the translation table (e.g. 'Sponge' x2, 'Seagrass' x1)" in text
    assert "1 image(s) carry only labels the table lacks (e.g. 20230421_preliminary_survey/only_unknown.jpg)" in text
    assert "head 'relief': no image labels it" in text
    assert "1 image(s) cannot be read (e.g. 20230421_preliminary_survey/broken.jpg (corrupt image" in text
    run_json = json.loads((tmp_path / "o" / "run.json").read_text())
    assert any("escape the image root" in n for n in run_json["notes"])
    assert torch_load(tmp_path / "o" / "classifier.pt")["trained_heads"] == ["biota", "substrate"]


def test_two_incompatible_paths_in_one_head_are_masked_unless_multi_label(tmp_path):
    frame = reef_subset(photos=2, tiles=10)
    table, hier, scheme = labels.load_table("coral_condition_hierarchy")
    per_image = frame.groupby("image")["label"].apply(set)
    both = [i for i, s in per_image.items() if {"Healthy coral", "Compromised coral"} <= s]
    assert both, "the subset should hold a tile with two coral conditions"
    data = labels.build_set(frame, IMAGES, table, hier, scheme, exhaustive=True)
    conditions = {"Healthy coral", "Compromised coral", "Dead coral"}
    n_two = sum(len(s & conditions) > 1 for s in per_image)  # counted by hand from the labels
    note = next(n for n in data.notes if "incompatible paths in head 'condition'" in n)
    assert note.startswith(f"{n_two} image(s) have two incompatible paths")
    assert "Coral > Healthy coral | Coral > Compromised coral" in note
    row = data.images.index(both[0])
    assert not data.targets["condition"][1][row].any()  # masked in that head
    assert data.targets["stressor"][1][row].any()  # other heads keep their labels
    multi = labels.build_set(frame, IMAGES, table, hier, scheme, exhaustive=True, multi_label=True)
    assert not any("incompatible" in n for n in multi.notes) and multi.targets["condition"][1][row].all()


def test_a_class_without_training_image_is_reported(tmp_path, cache, capsys):
    frame = reef_subset(photos=6, tiles=4)
    dead = frame.loc[frame["label"] == "Dead coral", "image"].unique()
    assert len(dead), "the subset should hold dead coral"
    frame["partition"] = np.where(frame["photo"].isin(sorted(frame["photo"].unique())[:2]), "test", "train")
    frame.loc[frame["image"].isin(dead), "partition"] = "test"
    path = tmp_path / "labels.csv"
    frame.to_csv(path, index=False)
    code, text, err = run(
        train_args(path, tmp_path / "o", cache, "coral_condition_hierarchy", extra=["--multi-label"]), capsys
    )
    assert code == 0, err
    assert "split: the labels' partition column" in text
    n_test = frame.loc[frame["label"] == "Dead coral", "image"].nunique()
    assert f"class(es) of head 'condition' have no training image (e.g. Coral > Dead coral ({n_test} test))" in text


@pytest.mark.parametrize(
    "case, expected",
    [
        ("all_missing", "no labelled image is left"),
        ("no_label_column", "lacks column(s) ['label']"),
        ("bad_partition", "holds ['validation']"),
        ("unknown_encoder", "is not an ImageNet model"),
        ("missing_table", "not found"),
        ("absent_device", "is not present here"),
        ("one_photo", "cannot split"),
        ("no_head_labelled", "no head has a single labelled image"),
    ],
)
def test_refusals_are_one_line_with_status_2(case, expected, tmp_path, cache, capsys):
    frame = reef_subset(photos=3, tiles=2)
    extra, table = [], "coral_condition_to_catami"
    if case == "all_missing":
        frame["image"] = "nowhere/" + frame["image"]
    elif case == "no_label_column":
        frame = frame.rename(columns={"label": "class"})
    elif case == "bad_partition":
        frame["partition"] = "validation"
    elif case == "unknown_encoder":
        extra = ["--encoder", "not-a-model"]
    elif case == "missing_table":
        table = str(tmp_path / "nope.csv")
    elif case == "absent_device":
        extra = ["--device", "mps" if torch.cuda.is_available() else "cuda"]
    elif case == "one_photo":
        frame = frame[frame["photo"] == frame["photo"].iloc[0]]
    elif case == "no_head_labelled":
        frame["label"] = "Background"
        table = tmp_path / "table.csv"  # a partial (non-exact) mapping: a tile without it says nothing
        table.write_text(
            "source_label,source_name,head,catami_path,exact,note\n"
            "1,Healthy coral,condition,Coral > Healthy coral,false,partial\n0,Background,,,false,no node\n"
        )
    path = tmp_path / "labels.csv"
    frame.to_csv(path, index=False)
    argv = train_args(path, tmp_path / "o", cache, table)
    code, text, err = run(argv + extra, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("benthic classify: error:") and expected in err, err


def test_state_dict_encoder_names_missing_and_unexpected_keys(tmp_path, cache, capsys, subset_csv):
    from torchvision.models import resnet50

    state = resnet50(weights=None).state_dict()
    state.pop("layer4.2.bn3.weight")
    state["extra.weight"] = torch.zeros(1)
    torch_save(state, tmp_path / "r50.pt")
    code, _, err = run(train_args(subset_csv, tmp_path / "o", cache) + ["--encoder", tmp_path / "r50.pt"], capsys)
    assert code == 2 and "missing keys layer4.2.bn3.weight" in err and "unexpected keys extra.weight" in err


def test_evaluate_refuses_a_damaged_checkpoint_in_one_line(subset_csv, tmp_path, capsys):
    (tmp_path / "c.pt").write_text("not a checkpoint")
    argv = ["classify", "evaluate", "--checkpoint", tmp_path / "c.pt", "--images", IMAGES, "--labels", subset_csv]
    code, _, err = run([*argv, "--translation", "coral_condition_to_catami"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not a torch checkpoint" in err
