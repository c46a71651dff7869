"""Hostile HML checkpoints: every field is validated after the weights_only load and before any image is
touched; a bad file is one UserError line naming the file and what is wrong, and `benthic annotate` prints
it as one line with exit status 2 without reading a single image."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from benthic.cli import annotate
from benthic.cli import main as cli
from benthic.errors import UserError
from benthic.hierarchy.catami import load_hierarchies
from benthic.hierarchy.hml import HMLHead
from benthic.transfer import core, encoders, hml_model


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """(path, dict) of a sound small checkpoint in the benthic-hml/1 format."""
    spec = {"kind": "random", "backbone": "small_cnn", "input_size": 32}
    torch.manual_seed(0)
    encoder = encoders.build_encoder(spec)
    hier = load_hierarchies()
    head = HMLHead.from_hierarchies(encoder.feature_dim, hier, hidden=16, dropout=0.0)
    path = tmp_path_factory.mktemp("ckpt") / "good.pt"
    hml_model.save_hml_model(path, core.Model(head, encoder).eval(), spec, hier)
    return path, torch.load(path, weights_only=True)


def _saved(tmp_path, ckpt, name="bad.pt"):
    torch.save(ckpt, tmp_path / name)
    return tmp_path / name


def _edit(ckpt, field, value):
    out = dict(ckpt)
    out[field] = value
    return out


def _state_edit(ckpt, field, key, fn):
    state = dict(ckpt[field])
    state[key] = fn(state[key].clone())
    return _edit(ckpt, field, state)


def _first_weight(ckpt, field):
    return next(k for k, v in ckpt[field].items() if v.is_floating_point() and v.ndim > 1)


def _nan(t):
    t.view(-1)[3] = float("nan")
    return t


def _inf(t):
    t.view(-1)[0] = float("inf")
    return t


def test_the_good_checkpoint_loads(good):
    model, hier, ckpt = hml_model.load_hml_model(good[0])
    assert set(hier) == set(load_hierarchies()) and ckpt["threshold"] == 0.5


# Each case: (name, how to damage the checkpoint dict, what the one-line refusal says)
FIELD_CASES = [
    ("format-tag", lambda c: _edit(c, "format", "benthic-hml/0"), "format tag 'benthic-hml/0' is not 'benthic-hml/1'"),
    ("no-format", lambda c: {k: v for k, v in c.items() if k != "format"}, "format tag None"),
    ("missing-field", lambda c: {k: v for k, v in c.items() if k != "threshold"}, "missing field(s) ['threshold']"),
    ("not-a-dict", lambda c: [1, 2, 3], "holds a list, not a benthic-hml/1 checkpoint dict"),
    ("nan-threshold", lambda c: _edit(c, "threshold", float("nan")), "threshold nan is not a probability"),
    ("zero-threshold", lambda c: _edit(c, "threshold", 0.0), "threshold 0.0 is not a probability"),
    ("one-threshold", lambda c: _edit(c, "threshold", 1.0), "threshold 1.0 is not a probability"),
    ("big-threshold", lambda c: _edit(c, "threshold", 1.5), "threshold 1.5 is not a probability"),
    ("text-threshold", lambda c: _edit(c, "threshold", "0.5"), "threshold '0.5' is not a probability"),
    ("zero-std", lambda c: _edit(c, "std", [0.2, 0.0, 0.2]), "has a value <= 0"),
    ("negative-std", lambda c: _edit(c, "std", [0.2, -0.1, 0.2]), "has a value <= 0"),
    ("nan-std", lambda c: _edit(c, "std", [float("nan"), 0.2, 0.2]), "std [nan, 0.2, 0.2] is not 3 finite numbers"),
    ("short-mean", lambda c: _edit(c, "mean", [0.5, 0.5]), "mean [0.5, 0.5] is not 3 finite numbers"),
    ("negative-size", lambda c: _edit(c, "input_size", -32), "input_size -32 is not 0 (default) or a pixel size"),
    ("huge-size", lambda c: _edit(c, "input_size", 10**6), "input_size 1000000 is not 0"),
    ("text-size", lambda c: _edit(c, "input_size", "224"), "input_size '224' is not 0"),
    ("nan-encoder", lambda c: _state_edit(c, "encoder_state", _first_weight(c, "encoder_state"), _nan), "NaN or inf"),
    ("inf-head", lambda c: _state_edit(c, "head_state", _first_weight(c, "head_state"), _inf), "head_state["),
    ("empty-state", lambda c: _edit(c, "encoder_state", {}), "encoder_state must be a non-empty dict of tensors"),
    ("no-heads", lambda c: _edit(c, "heads", {}), "heads must be a non-empty dict"),
    ("no-trained-heads", lambda c: _edit(c, "trained_heads", []), "trained_heads [] must be a non-empty list"),
    ("unknown-trained", lambda c: _edit(c, "trained_heads", ["biota", "fauna"]), "trained_heads ['biota', 'fauna']"),
    ("twice-trained", lambda c: _edit(c, "trained_heads", ["biota", "biota"]), "must be a non-empty list of distinct"),
    (
        "unknown-head",
        lambda c: _edit(c, "heads", {"fauna" if h == "relief" else h: v for h, v in c["heads"].items()}),
        "head 'fauna' is not a CATAMI head",
    ),
    (
        "unknown-node",
        lambda c: _edit(c, "heads", {**c["heads"], "relief": [*c["heads"]["relief"], ["Flat", "Dragons"]]}),
        "node 'Flat > Dragons' is in neither shipped CATAMI table",
    ),
    (
        "child-first",
        lambda c: _edit(c, "heads", {**c["heads"], "relief": c["heads"]["relief"][::-1]}),
        "comes before its parent",
    ),
    (
        "repeated-node",
        lambda c: _edit(c, "heads", {**c["heads"], "relief": [*c["heads"]["relief"], c["heads"]["relief"][0]]}),
        "is empty, not a list of names, or repeated",
    ),
    (
        "dropped-node",
        lambda c: _edit(c, "heads", {**c["heads"], "relief": c["heads"]["relief"][:-1]}),
        "the head layout does not match its node lists",
    ),
    (
        "rewired-R",
        lambda c: _state_edit(c, "head_state", "mcm.R", lambda r: torch.ones_like(r)),
        "the ancestor matrix) does not match",
    ),
    ("zero-in-dim", lambda c: _edit(c, "head_config", {**c["head_config"], "in_dim": 0}), "needs in_dim >= 1"),
    ("dropout-1", lambda c: _edit(c, "head_config", {**c["head_config"], "dropout": 1.0}), "dropout in [0, 1)"),
    ("unknown-tree", lambda c: _edit(c, "extra", {"tree": "mine"}), "extra['tree'] 'mine' is not 'catami' or 'own'"),
    (
        "own-tree-child-first",
        lambda c: _edit(
            _edit(c, "extra", {"tree": "own"}), "heads", {**c["heads"], "relief": c["heads"]["relief"][::-1]}
        ),
        "comes before its parent",
    ),
    ("bad-kind", lambda c: _edit(c, "encoder_spec", {"kind": "magic", "backbone": "x"}), "needs kind random"),
    (
        "other-backbone",
        lambda c: _edit(c, "encoder_spec", {"kind": "random", "backbone": "resnet18_cifar"}),
        "encoder_state does not fit a resnet18_cifar encoder",
    ),
]


@pytest.mark.parametrize("make,message", [c[1:] for c in FIELD_CASES], ids=[c[0] for c in FIELD_CASES])
def test_bad_field_is_refused_naming_file_and_field(good, tmp_path, make, message):
    path = _saved(tmp_path, make(good[1]))
    with pytest.raises(UserError) as info:
        hml_model.load_hml_model(path)
    text = str(info.value)
    assert text.startswith(f"checkpoint {path}: ") and message in text and "\n" not in text


def test_own_tree_named_by_the_checkpoint_needs_no_catami_names(tmp_path):
    """A translation scheme's own tree (extra['tree'] == 'own', as benthic classify records it) loads with its
    own head and node names; the structural checks still apply (see the own-tree-child-first case)."""
    from benthic.hierarchy.catami import Hierarchy

    spec = {"kind": "random", "backbone": "small_cnn", "input_size": 16}
    encoder = encoders.build_encoder(spec)
    hier = {"condition": Hierarchy("condition", [("Coral", "Bleached"), ("Coral", "Healthy"), ("Rubble",)])}
    head = HMLHead.from_hierarchies(encoder.feature_dim, hier, hidden=0)
    path = hml_model.save_hml_model(tmp_path / "own.pt", core.Model(head, encoder), spec, hier, extra={"tree": "own"})
    _, loaded, _ = hml_model.load_hml_model(path)
    assert loaded["condition"].nodes == hier["condition"].nodes
    torch.save(_edit(torch.load(path, weights_only=True), "extra", {}), tmp_path / "untagged.pt")
    with pytest.raises(UserError, match="head 'condition' is not a CATAMI head"):
        hml_model.load_hml_model(tmp_path / "untagged.pt")


def test_empty_file(tmp_path):
    (tmp_path / "e.pt").write_bytes(b"")
    with pytest.raises(UserError, match=r"e.pt: the file is empty \(0 bytes\)"):
        hml_model.load_hml_model(tmp_path / "e.pt")


def test_text_file(tmp_path):
    (tmp_path / "t.pt").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    with pytest.raises(UserError, match=r"t.pt: a text file, not a torch checkpoint \(it starts 'version https"):
        hml_model.load_hml_model(tmp_path / "t.pt")


@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_truncated_file(good, tmp_path, keep):
    data = good[0].read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(UserError, match=r"cut.pt: truncated or damaged, not loadable \(") as info:
        hml_model.load_hml_model(tmp_path / "cut.pt")
    assert "\n" not in str(info.value)


def test_random_bytes(tmp_path):
    (tmp_path / "r.pt").write_bytes(np.random.default_rng(0).integers(128, 255, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(UserError, match=r"r.pt: (not a torch checkpoint|truncated or damaged)"):
        hml_model.load_hml_model(tmp_path / "r.pt")


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_checkpoint_carrying_code_is_refused_without_running_it(tmp_path, capsys):
    torch.save({"format": "benthic-hml/1", "x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match=r"evil.pt: holds pickled code .* refused without running it"):
        hml_model.load_hml_model(tmp_path / "evil.pt")
    assert "code ran" not in capsys.readouterr().out


def test_pickle_opcodes_torch_does_not_read_are_refused_unrun(tmp_path, capsys):
    with pytest.warns(UserWarning, match="pickle protocol 5"):
        torch.save({"x": Payload()}, tmp_path / "p5.pt", pickle_protocol=pickle.HIGHEST_PROTOCOL)
        with pytest.raises(UserError, match=r"p5.pt: not a torch checkpoint \(unpickling failed: Unsupported operand"):
            hml_model.load_hml_model(tmp_path / "p5.pt")
    assert "code ran" not in capsys.readouterr().out


@pytest.mark.parametrize("case", ["nan-threshold", "zero-std", "no-trained-heads", "negative-size"])
def test_annotate_refuses_in_one_line_before_touching_an_image(good, tmp_path, monkeypatch, capsys, case):
    make = next(c[1] for c in FIELD_CASES if c[0] == case)
    path = _saved(tmp_path, make(good[1]))
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "photos" / "a.png")
    monkeypatch.setattr(annotate, "try_read", lambda *a: pytest.fail("an image was read"))
    argv = ["annotate", str(tmp_path / "photos"), "--checkpoint", str(path), "--out", str(tmp_path / "o.csv")]
    assert cli.main([*argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"benthic annotate: error: checkpoint {path}: ")
    assert not (tmp_path / "o.csv").exists()
