"""The encoders compared in transfer (random init, ImageNet, in-domain SSL), the reef tiles they see, and
their cached features."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from benthic.io import save_npy
from benthic.models.augment import BENTHICNET_MEAN, BENTHICNET_STD
from benthic.paths import runs_dir
from benthic.transfer.config import TransferConfig


def load_reef(cfg: TransferConfig, seed: int = 0):
    """The reef-photo tiles (benthic.data.coral.load_coral) at `cfg.image_size`, limited to a seeded random
    `cfg.max_tiles` at the smoke scale."""
    from dataclasses import replace as dc_replace

    from benthic.data.coral import load_coral

    coral = load_coral(size=cfg.image_size)
    if cfg.max_tiles is None or cfg.max_tiles >= len(coral.images):
        return coral
    keep = np.sort(np.random.default_rng(seed).choice(len(coral.images), cfg.max_tiles, replace=False))
    return dc_replace(
        coral,
        images=coral.images[keep],
        labels=coral.labels[keep],
        tile_ids=[coral.tile_ids[i] for i in keep],
        photo_ids=coral.photo_ids[keep],
        surveys=coral.surveys[keep],
    )


# ------------------------------------------------------------------------------------------ encoders
def build_encoder(spec: Mapping) -> nn.Module:
    """An encoder from a spec dict (stored in checkpoints): {"kind": "random", "backbone": name},
    {"kind": "imagenet", "backbone": "imagenet:<model>"} or {"kind": "ssl", "checkpoint": milestone path};
    sets `mean`, `std` and `input_size` (spec's `input_size` overrides)."""
    from benthic.models.backbones import build_backbone

    kind = spec.get("kind")
    if kind == "ssl":
        from benthic.ssl import load_encoder

        encoder = load_encoder(spec["checkpoint"]).requires_grad_(True)
    elif kind in ("random", "imagenet"):
        encoder = build_backbone(spec["backbone"])
        if kind == "random":
            encoder.mean, encoder.std = BENTHICNET_MEAN, BENTHICNET_STD
    else:
        raise ValueError(f"encoder spec kind must be 'random', 'imagenet' or 'ssl', got {kind!r}")
    if spec.get("input_size"):
        encoder.input_size = int(spec["input_size"])
    return encoder


def features(
    encoder: nn.Module, images: np.ndarray, cache: str | os.PathLike | None = None, batch_size: int = 64
) -> np.ndarray:
    """Frozen-encoder features (N, D) of uint8 NHWC images (benthic.ssl.embed), cached as .npy at `cache`."""
    from benthic.ssl import embed

    if cache is not None and Path(cache).exists():
        z = np.load(cache)
        if len(z) == len(images):
            return z
    z = embed(encoder, images, batch_size=batch_size)
    if cache is not None:
        save_npy(cache, z)
    return z


def images_key(images: np.ndarray) -> str:
    """Short fingerprint of an image array, for feature-cache names."""
    return hashlib.sha1(np.ascontiguousarray(images[:: max(1, len(images) // 64)]).data).hexdigest()[:10]


def pretrain_ssl(images: np.ndarray, cfg: TransferConfig, scale: str, method: str = "barlow", seed: int = 0) -> dict:
    """In-domain SSL on `images` with the package's trainer (underwater augmentation; Barlow Twins as the
    BenthicNet release); returns the encoder spec of the last milestone."""
    from benthic.ssl import get_config, train_milestones

    config = get_config(
        scale,
        method,
        backbone=cfg.ssl_backbone,
        epochs=cfg.ssl_epochs,
        milestones=(),
        milestone_every=cfg.ssl_epochs,
        image_size=cfg.ssl_size,
        augment="underwater",
        batch_size=min(cfg.ssl_batch, len(images)),
        train_subset=None,
        seed=seed,
    )
    paths = train_milestones(config, images=images)
    return {"kind": "ssl", "backbone": cfg.ssl_backbone, "checkpoint": str(paths[-1]), "input_size": cfg.ssl_size}


# ------------------------------------------------------------------------- notebook-level steps
def reef_encoders(
    images: np.ndarray,
    cfg: TransferConfig,
    scale: str,
    ssl_method: str = "barlow",
    ssl_checkpoint: str | os.PathLike | None = None,
) -> dict[str, dict]:
    """The three encoder families compared (Xu et al., 2024, arXiv:2409.06618; docs/methods.md#transfer-choices) as
    specs: random init, ImageNet-supervised (`cfg.imagenet_model`, plus torchvision's ResNet-50 when its weights are
    in torch hub's cache), and in-domain SSL pretrained here on the reef photos' images (no labels used), or the SSL
    milestone `ssl_checkpoint` (e.g. Barlow Twins on BenthicNet-1M from `benthic.ssl`). The random and SSL encoders
    share one architecture and input size (`ssl_size`); the ImageNet models take `image_size`."""
    from benthic.models.pretrained import available_imagenet_models

    if ssl_checkpoint is not None:
        from benthic.ssl import read_milestone

        if not Path(ssl_checkpoint).is_file():
            raise FileNotFoundError(
                f"SSL checkpoint {ssl_checkpoint} not found: train one with benthic.ssl "
                f"(e.g. `benthic train`) on BenthicNet-1M and pass its milestone file"
            )
        backbone = read_milestone(ssl_checkpoint)["config"]["backbone"]
        ssl = {
            f"in-domain SSL ({Path(ssl_checkpoint).parent.name})": {
                "kind": "ssl",
                "backbone": backbone,
                "checkpoint": str(ssl_checkpoint),
            }
        }
    else:
        ssl = {f"in-domain SSL ({ssl_method}, {cfg.ssl_backbone})": pretrain_ssl(images, cfg, scale, ssl_method)}
    return {
        f"random init ({cfg.random_backbone})": {
            "kind": "random",
            "backbone": cfg.random_backbone,
            "input_size": cfg.ssl_size,
        },
        **{
            f"ImageNet ({m})": {"kind": "imagenet", "backbone": f"imagenet:{m}", "input_size": cfg.image_size}
            for m in dict.fromkeys(
                [cfg.imagenet_model] + (["resnet50"] if "resnet50" in available_imagenet_models() else [])
            )
        },
        **ssl,
    }


def encoder_features(
    specs: Mapping[str, Mapping], images: np.ndarray, scale: str, seed: int = 0
) -> dict[str, np.ndarray]:
    """Cached frozen features of `images` per encoder spec (runs/<scale>/transfer/features-*.npy)."""
    out = {}
    for name, spec in tqdm(specs.items(), desc="features", leave=False):
        key = hashlib.sha1(
            repr(sorted(spec.items())).encode()
            + images_key(images).encode()
            + str(images.shape).encode()
            + str(seed).encode()
        ).hexdigest()[:12]
        cache = runs_dir(scale) / "transfer" / f"features-{key}.npy"
        torch.manual_seed(seed)
        out[name] = features(build_encoder(spec), images, cache)
    return out
