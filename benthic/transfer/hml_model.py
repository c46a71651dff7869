"""The checkpoint of a trained HML model that `benthic annotate` loads, and annotating images with it.
Loading validates every field after the weights_only load and before any image is touched, so a damaged or
hand-edited checkpoint is one line naming the file and the field, never confident predictions from NaN."""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from benthic.errors import UserError
from benthic.hierarchy import hml
from benthic.hierarchy.catami import HEADS
from benthic.io import torch_load, torch_save
from benthic.transfer.config import TransferConfig
from benthic.transfer.core import Model
from benthic.transfer.encoders import build_encoder
from benthic.transfer.hml_probe import hml_probabilities, train_hml


# --------------------------------------------------------------------------------- HML checkpoints
def save_hml_model(
    path: str | os.PathLike,
    model: Model,
    encoder_spec: Mapping,
    hierarchies: Mapping,
    threshold: float = hml.THRESHOLD,
    extra: Mapping | None = None,
    trained_heads: Sequence[str] | None = None,
) -> Path:
    """Save encoder + HML head in the `benthic-hml/1` format (tensors, numbers, strings, lists, dicts only).
    `trained_heads` names the heads the training data labelled (default: all), so that `annotate` never
    reports an untrained head's output as a prediction."""
    if model.encoder is None:
        raise ValueError("save_hml_model needs the encoder: pass Model(head, encoder)")
    enc = model.encoder
    return torch_save(
        {
            "format": hml.CHECKPOINT_FORMAT,
            "encoder_spec": {k: v for k, v in encoder_spec.items() if k != "checkpoint"},
            "encoder_state": {k: v.cpu() for k, v in enc.state_dict().items()},
            "input_size": int(getattr(enc, "input_size", 0) or 0),
            "mean": [float(v) for v in enc.mean],
            "std": [float(v) for v in enc.std],
            "head_config": dict(model.head.config),
            "head_state": {k: v.cpu() for k, v in model.head.state_dict().items()},
            "heads": {h: [list(node) for node in hierarchies[h].nodes] for h in model.head.heads},
            "threshold": float(threshold),
            "trained_heads": list(trained_heads) if trained_heads is not None else list(model.head.heads),
            "extra": dict(extra or {}),
        },
        path,
    )


FIELDS = (
    "format",
    "encoder_spec",
    "encoder_state",
    "input_size",
    "mean",
    "std",
    "head_config",
    "head_state",
    "heads",
    "threshold",
    "trained_heads",
)
INPUT_SIZES = (8, 4096)
"""Accepted range of a checkpoint's input size in pixels (0 stands for 'not recorded': annotate's default)."""


def _bad(path: str | os.PathLike, problem: str) -> UserError:
    return UserError(f"checkpoint {path}: {problem}")


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The dict of a checkpoint file (weights_only load), or UserError in one line naming the file and what is
    wrong with it: missing, empty, text, truncated or damaged, or carrying pickled code."""
    path = Path(path)
    if not path.is_file():
        raise _bad(path, "not found (train one with benthic.transfer.hml_model.save_hml_model)")
    with open(path, "rb") as fh:
        head = fh.read(512)
    if not head:
        raise _bad(path, "the file is empty (0 bytes); a run stopped while saving it? Save it again")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(c.isprintable() or c.isspace() for c in text):
        raise _bad(path, f"a text file, not a torch checkpoint (it starts {text[:40]!r})")
    try:
        return torch_load(path)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # a class or function to import: code, refused unrun
            raise _bad(
                path,
                "holds pickled code or objects other than tensors, numbers, strings, lists and "
                "dicts; refused without running it (weights_only load)",
            ) from None
        detail = str(exc).partition("WeightsUnpickler error:")[2].strip() or str(exc)
        raise _bad(path, f"not a torch checkpoint (unpickling failed: {_first_line(Exception(detail))})") from None
    except Exception as exc:  # noqa: BLE001 - torch reports a cut zip as RuntimeError, a cut pickle as EOFError
        raise _bad(path, f"truncated or damaged, not loadable ({type(exc).__name__}: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


@functools.lru_cache(maxsize=1)
def _catami_nodes() -> dict[str, set[tuple[str, ...]]]:
    """Per head, every node of the shipped CATAMI tables (BenthicNet's probe paths and the CAAB v1.4 codes)."""
    from benthic.hierarchy.catami import caab_hierarchies, load_hierarchies

    tables = (load_hierarchies(), caab_hierarchies())
    return {h: set().union(*(set(t[h].nodes) for t in tables)) for h in HEADS}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def _check_state(path: Path, state: object, field: str) -> None:
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _bad(path, f"{field} must be a non-empty dict of tensors")
    for key, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            n = int((~torch.isfinite(value)).sum())
            raise _bad(path, f"{field}[{key!r}] holds {n} NaN or infinite value(s); the training diverged?")


def _check_scalars(path: Path, ckpt: dict) -> None:
    size = ckpt["input_size"]
    if (
        not isinstance(size, int)
        or isinstance(size, bool)
        or not (size == 0 or INPUT_SIZES[0] <= size <= INPUT_SIZES[1])
    ):
        raise _bad(path, f"input_size {size!r} is not 0 (default) or a pixel size in {list(INPUT_SIZES)}")
    for field in ("mean", "std"):
        values = ckpt[field]
        if not isinstance(values, (list, tuple)) or len(values) != 3 or not all(_is_number(v) for v in values):
            raise _bad(path, f"{field} {values!r} is not 3 finite numbers (one per RGB channel)")
    if min(ckpt["std"]) <= 0:
        raise _bad(path, f"std {ckpt['std']!r} has a value <= 0; pixels would be divided by it")
    threshold = ckpt["threshold"]
    if not _is_number(threshold) or not 0 < threshold < 1:
        raise _bad(path, f"threshold {threshold!r} is not a probability strictly between 0 and 1")
    cfg = ckpt["head_config"]
    if not isinstance(cfg, dict) or not {"in_dim", "hidden", "dropout"} <= set(cfg):
        raise _bad(path, f"head_config {cfg!r} lacks in_dim, hidden and dropout")
    if not all(isinstance(cfg[k], int) and not isinstance(cfg[k], bool) for k in ("in_dim", "hidden")) or (
        cfg["in_dim"] < 1 or cfg["hidden"] < 0 or not _is_number(cfg["dropout"]) or not 0 <= cfg["dropout"] < 1
    ):
        raise _bad(path, f"head_config {cfg!r} needs in_dim >= 1, hidden >= 0 and dropout in [0, 1)")
    spec = ckpt["encoder_spec"]
    if not isinstance(spec, dict) or spec.get("kind") not in ("random", "imagenet", "ssl") or not spec.get("backbone"):
        raise _bad(path, f"encoder_spec {spec!r} needs kind random, imagenet or ssl and a backbone name")


def _tree(path: Path, ckpt: dict) -> str:
    """The label tree a checkpoint names: 'catami' (default; its heads and nodes must be in the shipped CATAMI
    tables) or 'own' (a translation scheme's own tree, `extra['tree']` as benthic classify records it)."""
    extra = ckpt.get("extra")
    tree = extra.get("tree", "catami") if isinstance(extra, dict) else "catami"
    if tree not in ("catami", "own"):
        raise _bad(path, f"extra['tree'] {tree!r} is not 'catami' or 'own'")
    return tree


def _check_heads(path: Path, ckpt: dict) -> None:
    """Head names and node lists (every prefix present, parents first, no repeats; in the shipped CATAMI
    tables unless the checkpoint names its own tree) and the trained heads."""
    heads, catami = ckpt["heads"], _tree(path, ckpt) == "catami"
    known = _catami_nodes() if catami else {}
    if not isinstance(heads, dict) or not heads:
        raise _bad(path, "heads must be a non-empty dict of head -> node paths")
    for h, nodes in heads.items():
        if catami and h not in HEADS:
            raise _bad(path, f"head {h!r} is not a CATAMI head ({', '.join(HEADS)})")
        if not isinstance(h, str) or not h:
            raise _bad(path, f"head name {h!r} is not a non-empty string")
        if not isinstance(nodes, list) or not nodes:
            raise _bad(path, f"head {h!r} has no nodes")
        seen: set[tuple[str, ...]] = set()
        for node in nodes:
            node = tuple(node) if isinstance(node, (list, tuple)) else ()
            if not node or not all(isinstance(n, str) for n in node) or node in seen:
                raise _bad(path, f"head {h!r}: node {node!r} is empty, not a list of names, or repeated")
            if len(node) > 1 and node[:-1] not in seen:
                raise _bad(path, f"head {h!r}: node {' > '.join(node)!r} comes before its parent")
            if catami and node not in known[h]:
                raise _bad(path, f"head {h!r}: node {' > '.join(node)!r} is in neither shipped CATAMI table")
            seen.add(node)
    trained = ckpt["trained_heads"]
    if not isinstance(trained, list) or not trained or len(set(trained)) != len(trained) or set(trained) - set(heads):
        raise _bad(path, f"trained_heads {trained!r} must be a non-empty list of distinct heads among {list(heads)}")


def _check_layout(path: Path, ckpt: dict, head: hml.HMLHead) -> None:
    state = ckpt["head_state"]
    for key, value in head.state_dict().items():
        if key not in state or tuple(state[key].shape) != tuple(value.shape):
            got = tuple(state[key].shape) if key in state else "missing"
            raise _bad(
                path,
                f"head_state[{key!r}] is {got}, but the heads' {sum(head.sizes)} nodes need "
                f"{tuple(value.shape)}: the head layout does not match its node lists",
            )
    if not torch.equal(state["mcm.R"].float(), head.R.float()):
        raise _bad(path, "head_state['mcm.R'] (the ancestor matrix) does not match the heads' node lists")


def validate_checkpoint(ckpt: object, path: str | os.PathLike) -> dict:
    """`ckpt` checked field by field (format tag, finite weights, std > 0, threshold in (0, 1), input size,
    heads and their layout); UserError naming the file and the first bad field."""
    path = Path(path)
    if not isinstance(ckpt, dict):
        raise _bad(path, f"holds a {type(ckpt).__name__}, not a {hml.CHECKPOINT_FORMAT} checkpoint dict")
    if ckpt.get("format") != hml.CHECKPOINT_FORMAT:
        raise _bad(path, f"format tag {ckpt.get('format')!r} is not {hml.CHECKPOINT_FORMAT!r} (not an HML model)")
    missing = [f for f in FIELDS if f not in ckpt]
    if missing:
        raise _bad(path, f"missing field(s) {missing}")
    _check_scalars(path, ckpt)
    _check_state(path, ckpt["encoder_state"], "encoder_state")
    _check_state(path, ckpt["head_state"], "head_state")
    _check_heads(path, ckpt)
    return ckpt


def load_hml_model(path: str | os.PathLike) -> tuple[Model, dict, dict]:
    """Load and validate a `benthic-hml/1` checkpoint: (Model(head, encoder) in eval mode, hierarchies,
    checkpoint dict); UserError in one line for a file that is not a sound checkpoint."""
    from benthic.hierarchy.catami import Hierarchy

    ckpt = validate_checkpoint(read_checkpoint(path), path)
    spec = dict(ckpt["encoder_spec"])
    if spec.get("kind") == "ssl":  # the weights are in the checkpoint: only the architecture is needed
        spec = {"kind": "random", "backbone": spec["backbone"]}
    hierarchies = {h: Hierarchy(h, [tuple(n) for n in nodes]) for h, nodes in ckpt["heads"].items()}
    cfg = ckpt["head_config"]
    head = hml.HMLHead.from_hierarchies(cfg["in_dim"], hierarchies, hidden=cfg["hidden"], dropout=cfg["dropout"])
    _check_layout(Path(path), ckpt, head)
    try:
        encoder = build_encoder(spec)
        encoder.load_state_dict(ckpt["encoder_state"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise _bad(path, f"encoder_state does not fit a {spec['backbone']} encoder ({_first_line(exc)})") from None
    if getattr(encoder, "feature_dim", cfg["in_dim"]) != cfg["in_dim"]:
        raise _bad(
            path, f"head_config in_dim {cfg['in_dim']} differs from the encoder's {encoder.feature_dim} features"
        )
    encoder.input_size = ckpt["input_size"] or None
    encoder.mean, encoder.std = tuple(ckpt["mean"]), tuple(ckpt["std"])
    try:
        head.load_state_dict(ckpt["head_state"])
    except RuntimeError as exc:
        raise _bad(path, f"head_state does not fit the heads' layout ({_first_line(exc)})") from None
    return Model(head, encoder).eval(), hierarchies, ckpt


def annotate_images(
    model: Model, hierarchies: Mapping, images: np.ndarray, threshold: float = hml.THRESHOLD
) -> list[dict[str, tuple[tuple[str, ...], float]]]:
    """Per image, the decoded CATAMI path and its probability per head (what `annotate` prints)."""
    probs = hml_probabilities(model, images, getattr(model.encoder, "input_size", None))
    decoded = {h: hml.decode(p, hierarchies[h], threshold) for h, p in probs.items()}
    return [{h: decoded[h][i] for h in decoded} for i in range(len(images))]


def export_hml_model(
    spec: Mapping,
    z: np.ndarray,
    targets: Mapping,
    hierarchies: Mapping,
    cfg: TransferConfig,
    path: str | os.PathLike,
    seed: int = 0,
) -> Path:
    """Train the HML head on all labelled features `z` of encoder `spec` (built as `encoder_features` built it)
    and save encoder + head in the `benthic-hml/1` format that `annotate` loads."""
    model = train_hml(z, targets, hierarchies, cfg, seed)
    torch.manual_seed(seed)
    encoder = build_encoder(spec)
    labelled = [h for h in model.head.heads if np.asarray(targets[h][1]).any()]
    return save_hml_model(
        path,
        Model(model.head, encoder),
        spec,
        hierarchies,
        extra={"trained_on": int(len(z)), "seed": int(seed)},
        trained_heads=labelled,
    )
