"""`benthic annotate`: bad files listed with reasons and skipped, good ones annotated with consistent CATAMI
paths, an interrupted run resumes without redoing finished images, outputs parse, CLI and HTML sheet."""

import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benthic.cli import annotate
from benthic.cli import main as cli
from benthic.errors import UserError
from benthic.hierarchy.catami import load_hierarchies
from benthic.hierarchy.hml import HMLHead
from benthic.transfer import core, encoders, hml_model

N_GOOD = 7


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small encoder + HML head checkpoint in the benthic-hml/1 format (weights need no training here)."""
    spec = {"kind": "random", "backbone": "small_cnn", "input_size": 32}
    encoder = encoders.build_encoder(spec)
    hier = load_hierarchies()
    head = HMLHead.from_hierarchies(encoder.feature_dim, hier, hidden=16, dropout=0.0)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    hml_model.save_hml_model(path, core.Model(head, encoder).eval(), spec, hier)
    return path


@pytest.fixture()
def folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i in range(N_GOOD):
        where = root / "sub" if i % 3 == 0 else root
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(where / f"good_{i}.jpg")
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / "good_png.png")
    (root / "empty.jpg").write_bytes(b"")
    full = (root / "good_0.jpg").read_bytes() if (root / "good_0.jpg").exists() else (root / "good_1.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (root / "notes.txt").write_text("not an image\n")
    (root / "loop_a.jpg").symlink_to(root / "loop_b.jpg")  # a symlink loop: unreadable even for root
    (root / "loop_b.jpg").symlink_to(root / "loop_a.jpg")
    (root / "dangling.jpg").symlink_to(root / "nowhere.jpg")
    (root / ".hidden.jpg").write_bytes(b"ignored")
    locked = root / "locked.jpg"
    locked.write_bytes(full)
    locked.chmod(0)
    return root


EXPECTED_BAD = {
    "empty.jpg": "empty file",
    "truncated.jpg": "corrupt image",
    "notes.txt": "not an image",
    "loop_a.jpg": "unreadable",
    "loop_b.jpg": "unreadable",
    "dangling.jpg": "missing file",
}


def _check_table(table, hier):
    bad = table[table.status == "skipped"].set_index("file")["reason"].to_dict()
    for name, why in EXPECTED_BAD.items():
        assert why in bad[name], (name, bad[name])
    if os.geteuid() != 0:  # root reads a mode-000 file; everyone else cannot
        assert "unreadable" in bad["locked.jpg"]
    ok = table[table.status == "ok"]
    assert {"sub/good_0.jpg", "good_1.jpg", "good_png.png"} <= set(ok.file)
    assert len(ok) == N_GOOD + 1 + (os.geteuid() == 0)
    assert not any(f.startswith(".") for f in table.file)
    for row in ok.itertuples():
        assert row.description
        for h in hier:
            path, level = getattr(row, f"{h}_path"), getattr(row, f"{h}_level_probs")
            if path:
                node = tuple(path.split(" > "))
                assert node in hier[h].index
                probs = [float(q) for q in level.split(" > ")]
                assert len(probs) == len(node) and all(0.5 < q <= 1 for q in probs)
                assert all(a >= b - 1e-6 for a, b in zip(probs, probs[1:]))  # a parent is never less likely
                assert float(getattr(row, f"{h}_prob")) == pytest.approx(probs[-1], abs=1e-4)


def test_bad_files_listed_and_good_ones_annotated(checkpoint, folder, tmp_path):
    out = tmp_path / "out" / "ann.csv"
    annotate.annotate(annotate.list_files(folder), checkpoint, out, base=folder, batch_size=4, progress=False)
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == annotate.columns(list(load_hierarchies()))
    _check_table(table, load_hierarchies())
    assert not list(out.parent.glob(".*partial"))  # the progress file is removed once the output is written


def test_interrupted_run_resumes_without_redoing(checkpoint, folder, tmp_path):
    files = annotate.list_files(folder)
    real = annotate.load_predictor(checkpoint)
    seen: list[int] = []

    def counting(fail_on_call=None):
        calls = {"n": 0}

        def predict(images):
            calls["n"] += 1
            if calls["n"] == fail_on_call:
                raise KeyboardInterrupt
            seen.append(len(images))
            return real[0](images)

        return (predict, real[1], real[2])

    out = tmp_path / "ann.csv"
    with pytest.raises(KeyboardInterrupt):
        annotate.annotate(
            files, checkpoint, out, base=folder, batch_size=3, progress=False, predictor=counting(fail_on_call=3)
        )
    assert not out.exists()
    first = sum(seen)
    assert first > 0
    partial = annotate.partial_path(out, checkpoint, real[2])
    with open(partial, "a") as fh:  # a row cut off mid-write by the interruption
        fh.write("good_9.jpg,ok,,Biota > Spo")
    table = annotate.annotate(files, checkpoint, out, base=folder, batch_size=3, progress=False, predictor=counting())
    n_ok = int((table.status == "ok").sum())
    assert sum(seen) == n_ok  # every good image predicted exactly once over both runs
    assert sum(seen) - first == n_ok - first and first < n_ok
    fresh = annotate.annotate(files, checkpoint, tmp_path / "fresh.csv", base=folder, batch_size=5, progress=False)
    pd.testing.assert_frame_equal(
        pd.read_csv(out, keep_default_na=False), pd.read_csv(tmp_path / "fresh.csv", keep_default_na=False)
    )
    assert len(fresh) == len(files)


def test_cli_writes_csv_and_contact_sheet(checkpoint, folder, tmp_path, capsys):
    out, sheet = tmp_path / "cli.csv", tmp_path / "sheet.html"
    assert (
        cli.main(
            [
                "annotate",
                str(folder),
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                "--html",
                str(sheet),
                "--batch-size",
                "8",
            ]
        )
        == 0
    )
    table = pd.read_csv(out, keep_default_na=False)
    _check_table(table, load_hierarchies())
    page = sheet.read_text()
    assert page.count("<img ") == int((table.status == "ok").sum())
    assert "truncated.jpg</code>: corrupt image" in page
    assert "skipped notes.txt: not an image" in capsys.readouterr().out
    assert (
        cli.main(
            [
                "annotate",
                str(folder),
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(tmp_path / "two.csv"),
                "--heads",
                "biota",
                "substrate",
            ]
        )
        == 0
    )
    two = pd.read_csv(tmp_path / "two.csv", keep_default_na=False)
    assert list(two.columns) == annotate.columns(["biota", "substrate"])
    assert all(" relief" not in d and "bedforms" not in d for d in two.description)
    with pytest.raises(ValueError, match="were not trained in this checkpoint"):
        annotate.annotate([], checkpoint, tmp_path / "x.csv", heads=["qualifiers"])
    capsys.readouterr()
    assert cli.main(["annotate", str(tmp_path / "nope"), "--checkpoint", str(checkpoint)]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(UserError, match="checkpoint .*missing.pt: not found"):
        annotate.load_predictor(tmp_path / "missing.pt")


def test_heads_without_training_labels_are_never_reported(tmp_path, folder):
    """A checkpoint trained on biota labels only: relief/bedforms outputs are noise and must not appear."""
    spec = {"kind": "random", "backbone": "small_cnn", "input_size": 32}
    encoder = encoders.build_encoder(spec)
    hier = load_hierarchies()
    head = HMLHead.from_hierarchies(encoder.feature_dim, hier, hidden=16, dropout=0.0)
    path = tmp_path / "biota_only.pt"
    hml_model.save_hml_model(path, core.Model(head, encoder).eval(), spec, hier, trained_heads=["biota"])
    _, heads, _ = annotate.load_predictor(path)
    assert heads == ["biota"]
    table = annotate.annotate(annotate.list_files(folder), path, tmp_path / "b.csv", base=folder, progress=False)
    assert list(table.columns) == annotate.columns(["biota"])
    with pytest.raises(ValueError, match="were not trained"):
        annotate.annotate([], path, tmp_path / "r.csv", heads=["relief"])
