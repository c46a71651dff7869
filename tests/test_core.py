"""The spine: safe paths under a data root, atomic writes, the notebook runner's parameter parsing."""

import os

import pytest

from benthic import io, paths
from benthic.cli.notebooks import parse_value
from benthic.scales import check_scale


def test_safe_join_keeps_paths_under_root(tmp_path):
    assert paths.safe_join(tmp_path, "ds/site/img.jpg") == (tmp_path / "ds/site/img.jpg").resolve()
    for bad in ("../outside.jpg", "ds/../../x.jpg", "/etc/passwd"):
        with pytest.raises(ValueError):
            paths.safe_join(tmp_path, bad)


def test_safe_join_refuses_symlink_escape(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(ValueError):
        paths.safe_join(root, "link/secret.jpg")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "r.json"
    io.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert io.json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"], "temporary file left behind"


def test_torch_checkpoint_round_trip_is_weights_only(tmp_path):
    import torch

    state = {"w": torch.arange(3.0), "epoch": 4, "name": "simclr"}
    io.torch_save(state, tmp_path / "c.pt")
    back = io.torch_load(tmp_path / "c.pt")
    assert torch.equal(back["w"], state["w"]) and back["epoch"] == 4


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5
    assert parse_value("true") is True and parse_value("None") is None and parse_value("x") == "x"


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="smoke, quick, gpu, paper"):
        check_scale("huge")


def test_provenance_names_the_commit_and_thread_count():
    import subprocess

    import torch

    from benthic.provenance import provenance

    prov = provenance("./run_all.sh --only 01")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.ROOT, capture_output=True, text=True).stdout.strip()
    assert prov["command"] == "./run_all.sh --only 01" and prov["commit"] == head
    assert prov["torch_threads"] == torch.get_num_threads() and prov["torch"] == torch.__version__


def test_save_npy_round_trip_and_no_temp_left(tmp_path):
    import numpy as np

    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    io.save_npy(tmp_path / "a.npy", arr)
    assert np.array_equal(np.load(tmp_path / "a.npy"), arr)
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]


def test_save_figure_writes_the_same_bytes_for_the_same_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benthic.io import save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    first = [p.read_bytes() for p in save_figure(fig, tmp_path / "a")]
    second = [p.read_bytes() for p in save_figure(fig, tmp_path / "a")]
    assert first == second and first[1].startswith(b"%PDF") and b"CreationDate" not in first[1]
