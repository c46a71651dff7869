"""Hostile settings and outputs for `benthic annotate`: every user mistake is one line on stderr with exit
status 2, refused before any image is read; outputs never overwrite an input; one run per output (an OS
lock a killed run releases); resume redoes changed images; file names that are not UTF-8 round-trip."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benthic.cli import annotate
from benthic.cli import main as cli
from benthic.errors import UserError
from benthic.hierarchy.catami import load_hierarchies
from benthic.hierarchy.hml import HMLHead
from benthic.io import umask
from benthic.transfer import core, encoders, hml_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    spec = {"kind": "random", "backbone": "small_cnn", "input_size": 16}
    torch.manual_seed(0)
    encoder = encoders.build_encoder(spec)
    head = HMLHead.from_hierarchies(encoder.feature_dim, load_hierarchies(), hidden=8, dropout=0.0)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    hml_model.save_hml_model(path, core.Model(head, encoder).eval(), spec, load_hierarchies())
    return path


@pytest.fixture()
def photos(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / f"p{i}.png")
    return root


@pytest.fixture()
def no_reading(monkeypatch):
    """Fail the test if any image is read (refusals must come before any work)."""
    monkeypatch.setattr(annotate, "try_read", lambda *a: pytest.fail("an image was read"))


def _cli(capsys, *argv):
    """(exit status, stderr) of `benthic annotate ...`."""
    capsys.readouterr()
    status = cli.main(["annotate", *map(str, argv)])
    return status, capsys.readouterr().err


def _refused(capsys, *argv, match):
    status, err = _cli(capsys, *argv)
    assert status == 2, err
    assert err.startswith("benthic annotate: error: ") and err.count("\n") == 1, err
    assert match in err, err
    return err


# -------------------------------------------------------------------------------- command line
@pytest.mark.parametrize(
    "extra,match",
    [
        (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        (["--batch-size", "-3"], "--batch-size must be >= 1, got -3"),
        (["--batch-size", "abc"], "--batch-size must be a whole number >= 1, got 'abc'"),
        (["--batch-size", "2.5"], "--batch-size must be a whole number >= 1, got '2.5'"),
        (["--heads", "biota", "--heads", "relief"], "--heads is given 2 times; name every head after one --heads"),
        (["--heads", "biota", "biota"], "--heads names 'biota' twice"),
        (["--heads", "fauna"], "heads ['fauna'] were not trained in this checkpoint"),
        (["--device", "quantum"], "device 'quantum' is not one of auto, cuda, cuda:N, mps, cpu"),
        (["--device", "cuda:x"], "device 'cuda:x' is not one of"),
        (["--image-root", "."], "--image-root is for a CSV source"),
    ],
)
def test_bad_options_are_one_line_exit_2(checkpoint, photos, tmp_path, capsys, no_reading, extra, match):
    _refused(capsys, photos, "--checkpoint", checkpoint, "--out", tmp_path / "o.csv", *extra, match=match)
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_asked_for_without_a_gpu(checkpoint, photos, tmp_path, capsys, no_reading):
    _refused(capsys, photos, "--checkpoint", checkpoint, "--device", "cuda", match="is not present here")


def test_missing_source_checkpoint_and_roots(checkpoint, photos, tmp_path, capsys, no_reading):
    _refused(capsys, tmp_path / "nope", "--checkpoint", checkpoint, match="does not exist")
    _refused(capsys, photos, "--checkpoint", tmp_path / "none.pt", match="--checkpoint")
    (tmp_path / "list.csv").write_text("url,source,dataset,site,image,latitude,longitude\n")
    _refused(capsys, tmp_path / "list.csv", "--checkpoint", checkpoint, match="pass --image-root")
    _refused(
        capsys, tmp_path / "list.csv", "--checkpoint", checkpoint, "--image-root", tmp_path / "x", match="--image-root"
    )
    (tmp_path / "empty").mkdir()
    _refused(capsys, tmp_path / "empty", "--checkpoint", checkpoint, match="no files to annotate")


def test_csv_source_with_a_shifted_row_names_its_line(checkpoint, photos, tmp_path, capsys, no_reading):
    (tmp_path / "list.csv").write_text(
        "url,source,dataset,site,image,latitude,longitude\nu,s,photos,.,p0.png,1,2\nu,s,photos,.,p1.png,1,2,extra\n"
    )
    out = tmp_path / "o.csv"
    err = _refused(
        capsys,
        tmp_path / "list.csv",
        "--checkpoint",
        checkpoint,
        "--image-root",
        tmp_path,
        "--out",
        out,
        match="line 3",
    )
    assert "has 8 field(s) but the header (line 1) has 7" in err


# ------------------------------------------------------------------------------------- outputs
def test_out_that_is_a_folder_is_refused_at_once(checkpoint, photos, tmp_path, capsys, no_reading):
    (tmp_path / "dir").mkdir()
    _refused(capsys, photos, "--checkpoint", checkpoint, "--out", tmp_path / "dir", match="is a folder")


def test_out_that_is_an_input_image_is_refused_and_unchanged(checkpoint, photos, capsys, no_reading):
    before = (photos / "p1.png").read_bytes()
    _refused(capsys, photos, "--checkpoint", checkpoint, "--out", photos / "p1.png", match="inside the image folder")
    assert (photos / "p1.png").read_bytes() == before


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_out_linked_to_an_input_image_is_refused(checkpoint, photos, tmp_path, link, no_reading):
    out = tmp_path / "out.csv"
    os.link(photos / "p2.png", out) if link == "hard" else out.symlink_to(photos / "p2.png")
    before = (photos / "p2.png").read_bytes()
    files = annotate.list_files(photos)
    with pytest.raises(UserError, match="is one of the input images|inside the image folder"):
        annotate.annotate(files, checkpoint, out, base=photos, progress=False)
    assert (photos / "p2.png").read_bytes() == before


def test_out_inside_the_image_folder_is_refused(checkpoint, photos, capsys, no_reading):
    err = _refused(capsys, photos, "--checkpoint", checkpoint, "--out", photos / "ann.csv", match="inside the image")
    assert "write it outside" in err and not (photos / "ann.csv").exists()


def test_out_over_an_existing_image_elsewhere_is_refused(checkpoint, photos, tmp_path, capsys, no_reading):
    Image.new("RGB", (4, 4)).save(tmp_path / "holiday.jpg")
    before = (tmp_path / "holiday.jpg").read_bytes()
    _refused(capsys, photos, "--checkpoint", checkpoint, "--out", tmp_path / "holiday.jpg", match="existing image")
    assert (tmp_path / "holiday.jpg").read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_folder_not_writable_is_refused_before_work(checkpoint, photos, tmp_path, capsys, no_reading):
    (tmp_path / "ro").mkdir(mode=0o555)
    _refused(capsys, photos, "--checkpoint", checkpoint, "--out", tmp_path / "ro" / "o.csv", match="cannot be written")


def test_out_under_a_file_is_refused(checkpoint, photos, tmp_path, capsys, no_reading):
    (tmp_path / "afile").write_text("x")
    _refused(
        capsys, photos, "--checkpoint", checkpoint, "--out", tmp_path / "afile" / "o.csv", match="cannot be written"
    )


def test_html_same_as_out_or_a_folder_is_refused(checkpoint, photos, tmp_path, capsys, no_reading):
    out = tmp_path / "o.csv"
    _refused(capsys, photos, "--checkpoint", checkpoint, "--out", out, "--html", out, match="are the same file")
    _refused(capsys, photos, "--checkpoint", checkpoint, "--out", out, "--html", tmp_path, match="--html")


def test_outputs_get_the_users_umask(checkpoint, photos, tmp_path, capsys):
    old = os.umask(0o027)
    try:
        assert umask() == 0o027
        status, _ = _cli(
            capsys, photos, "--checkpoint", checkpoint, "--out", tmp_path / "o.csv", "--html", tmp_path / "s.html"
        )
    finally:
        os.umask(old)
    assert status == 0
    assert (tmp_path / "o.csv").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "s.html").stat().st_mode & 0o777 == 0o640


# ---------------------------------------------------------------------------------------- lock
def test_second_run_on_the_same_output_is_refused(checkpoint, photos, tmp_path, capsys, no_reading):
    out = tmp_path / "o.csv"
    with annotate.output_lock(out):
        err = _refused(capsys, photos, "--checkpoint", checkpoint, "--out", out, match="another annotate run")
    assert f"(process {os.getpid()}) is writing" in err
    assert not out.with_name(".o.csv.lock").exists()  # released and removed


def test_kill_9_never_blocks_the_resume(checkpoint, photos, tmp_path, capsys):
    out = tmp_path / "o.csv"
    holder = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from benthic.cli.annotate import output_lock
        with output_lock(Path({str(out)!r})):
            print("locked", flush=True)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        err = _refused(capsys, photos, "--checkpoint", checkpoint, "--out", out, match=f"(process {proc.pid})")
        assert "wait for it to finish" in err
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert out.with_name(".o.csv.lock").exists()  # left behind by the killed run, but no longer locked
    status, _ = _cli(capsys, photos, "--checkpoint", checkpoint, "--out", out)
    assert status == 0 and len(pd.read_csv(out)) == 4


# -------------------------------------------------------------------------------------- resume
def _interrupted_then_resumed(checkpoint, photos, out, change):
    """Run with one batch then stop, apply `change`, resume; returns the images predicted on resume."""
    files = annotate.list_files(photos)
    real = annotate.load_predictor(checkpoint, "cpu")
    calls = []

    def stopping(images):
        if calls:
            raise KeyboardInterrupt
        calls.append(len(images))
        return real[0](images)

    with pytest.raises(KeyboardInterrupt):
        annotate.annotate(
            files, checkpoint, out, base=photos, batch_size=2, progress=False, predictor=(stopping, *real[1:])
        )
    change()
    seen = []

    def counting(images):
        seen.append(len(images))
        return real[0](images)

    annotate.annotate(
        files, checkpoint, out, base=photos, batch_size=2, progress=False, predictor=(counting, *real[1:])
    )
    return sum(seen)


def test_resume_skips_unchanged_images(checkpoint, photos, tmp_path):
    assert _interrupted_then_resumed(checkpoint, photos, tmp_path / "o.csv", lambda: None) == 2


def test_resume_redoes_an_image_whose_size_changed(checkpoint, photos, tmp_path):
    def grow():
        Image.new("RGB", (64, 64), (5, 5, 5)).save(photos / "p0.png")

    assert _interrupted_then_resumed(checkpoint, photos, tmp_path / "o.csv", grow) == 3


def test_resume_redoes_an_image_whose_mtime_changed(checkpoint, photos, tmp_path):
    def touch():
        info = os.stat(photos / "p1.png")
        os.utime(photos / "p1.png", ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))

    assert _interrupted_then_resumed(checkpoint, photos, tmp_path / "o.csv", touch) == 3


def test_resume_redoes_a_file_that_was_unreadable(checkpoint, photos, tmp_path):
    (photos / "p0.png").write_bytes(b"")  # a skipped row in the first batch

    def repair():
        Image.new("RGB", (20, 24)).save(photos / "p0.png")

    assert _interrupted_then_resumed(checkpoint, photos, tmp_path / "o.csv", repair) == 3
    table = pd.read_csv(tmp_path / "o.csv", keep_default_na=False)
    assert (table.status == "ok").all()


# -------------------------------------------------------------------------------- file names
BAD_NAMES = [
    (b"caf\xe9.png", "caf\\xe9.png"),  # Latin-1 bytes from an old share
    (b"\xff\xfe.png", "\\xff\\xfe.png"),
    ("récif, «corail».png".encode(), "récif, «corail».png"),  # valid UTF-8 with a comma: unchanged, quoted
    (b"two\nlines.png", "two\\nlines.png"),
    (b"tab\there.png", "tab\\there.png"),
]


@pytest.mark.parametrize("raw,shown", BAD_NAMES)
def test_hostile_file_names_are_annotated_and_round_trip(checkpoint, tmp_path, raw, shown):
    root = tmp_path / "photos"
    root.mkdir()
    Image.new("RGB", (20, 20), (9, 99, 199)).save(os.path.join(os.fsencode(root), raw), format="PNG")
    Image.new("RGB", (20, 20)).save(root / "zz.png")
    files = annotate.list_files(root)
    out, sheet = tmp_path / "o.csv", tmp_path / "s.html"
    annotate.annotate(files, checkpoint, out, base=root, html_path=sheet, progress=False, batch_size=1)
    out.read_bytes().decode("utf-8")  # valid UTF-8 throughout
    table = pd.read_csv(out, keep_default_na=False)
    assert sorted(table.file) == sorted([shown, "zz.png"]) and (table.status == "ok").all()
    assert sheet.read_text(encoding="utf-8").count("<img ") == 2
    # as a resume key: a run whose partial file already holds the row does not predict it again
    partial = annotate.partial_path(out, checkpoint, 16)
    real = annotate.load_predictor(checkpoint, "cpu")
    seen = []
    with pytest.raises(KeyboardInterrupt):

        def first_only(images):
            if seen:
                raise KeyboardInterrupt
            seen.append(len(images))
            return real[0](images)

        annotate.annotate(
            files, checkpoint, out, base=root, batch_size=1, progress=False, predictor=(first_only, *real[1:])
        )
    first = annotate.input_names(files, root)[0]  # the row written before the interruption
    assert partial.exists() and first in annotate.read_partial(partial, [*annotate.columns(real[1]), *annotate.STAMP])
    again = []
    annotate.annotate(
        files,
        checkpoint,
        out,
        base=root,
        batch_size=1,
        progress=False,
        predictor=(lambda x: again.append(1) or real[0](x), *real[1:]),
    )
    assert len(again) == 1  # only the other file


def test_display_name_hand_cases():
    assert annotate.display_name("a/b.png") == "a/b.png"
    assert annotate.display_name(os.fsdecode(b"\xe9t\xe9.jpg")) == "\\xe9t\\xe9.jpg"
    assert annotate.display_name("bell\x07.png") == "bell\\x07.png"
    assert annotate.display_name("ok é ü.png") == "ok é ü.png"


def test_two_inputs_with_the_same_shown_name_are_refused(checkpoint, tmp_path, no_reading):
    root = tmp_path / "photos"
    root.mkdir()
    for raw in (b"caf\xe9.png", b"caf\\xe9.png"):  # a real backslash name and the escaped byte collide
        (root / os.fsdecode(raw)).write_bytes(b"x")
    with pytest.raises(UserError, match=r"the same file name 'caf\\\\xe9.png' is listed twice"):
        annotate.annotate(annotate.list_files(root), checkpoint, tmp_path / "o.csv", base=root, progress=False)


def test_batch_size_checked_in_the_library_too(checkpoint, photos, tmp_path, no_reading):
    with pytest.raises(UserError, match="batch size must be an integer >= 1, got 0"):
        annotate.annotate(annotate.list_files(photos), checkpoint, tmp_path / "o.csv", base=photos, batch_size=0)


def test_a_file_system_without_locks_warns_and_runs(checkpoint, photos, tmp_path, monkeypatch):
    import errno
    import fcntl

    def unsupported(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", unsupported)
    with pytest.warns(UserWarning, match="no file locks on this file system"):
        table = annotate.annotate(
            annotate.list_files(photos), checkpoint, tmp_path / "o.csv", base=photos, progress=False
        )
    assert len(table) == 4 and not (tmp_path / ".o.csv.lock").exists()
