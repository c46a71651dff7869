"""The checkpoint of a trained HML model that `benthic annotate` loads, and annotating images with it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from benthic.hierarchy import hml
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


def load_hml_model(path: str | os.PathLike) -> tuple[Model, dict, dict]:
    """Load a `benthic-hml/1` checkpoint: (Model(head, encoder) in eval mode, hierarchies, checkpoint dict)."""
    from benthic.hierarchy.catami import Hierarchy

    ckpt = torch_load(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != hml.CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {hml.CHECKPOINT_FORMAT} checkpoint")
    spec = dict(ckpt["encoder_spec"])
    if spec.get("kind") == "ssl":  # the weights are in the checkpoint: only the architecture is needed
        spec = {"kind": "random", "backbone": spec["backbone"]}
    encoder = build_encoder(spec)
    encoder.load_state_dict(ckpt["encoder_state"])
    encoder.input_size = ckpt["input_size"] or None
    encoder.mean, encoder.std = tuple(ckpt["mean"]), tuple(ckpt["std"])
    hierarchies = {h: Hierarchy(h, [tuple(n) for n in nodes]) for h, nodes in ckpt["heads"].items()}
    cfg = ckpt["head_config"]
    head = hml.HMLHead.from_hierarchies(cfg["in_dim"], hierarchies, hidden=cfg["hidden"], dropout=cfg["dropout"])
    head.load_state_dict(ckpt["head_state"])
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
