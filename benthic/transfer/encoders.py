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


# ------------------------------------------------------------------------------ encoders by name (CLI)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision's ResNet-50 weights


def _user_error(message: str) -> Exception:
    from benthic.errors import UserError

    return UserError(message)


def _named(keys: list[str], limit: int = 5) -> str:
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def resnet50_from_state_dict(path: str | os.PathLike) -> nn.Module:
    """A ResNet-50 from a plain torchvision-style state dict a user brings (`conv1.weight`, `layer1.0...`; a
    `state_dict` wrapper and `module.` prefixes accepted; the ImageNet classifier `fc.*` is not needed): refuses,
    naming them, keys the network lacks or that the file lacks, so a half-loaded encoder never runs silently."""
    from benthic.io import torch_load
    from benthic.models.backbones import resnet50

    try:
        state = torch_load(path)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is this file's problem
        raise _user_error(f"encoder file {path} cannot be loaded as a state dict: {str(exc).splitlines()[0]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _user_error(f"encoder file {path} is neither a benthic milestone nor a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    encoder = resnet50()
    try:
        result = encoder.trunk.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        sizes = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        raise _user_error(f"encoder file {path} does not fit a ResNet-50: {_named(sizes) or exc}") from None
    if result.missing_keys or result.unexpected_keys:
        parts = [f"missing keys {_named(result.missing_keys)}"] if result.missing_keys else []
        parts += [f"unexpected keys {_named(result.unexpected_keys)}"] if result.unexpected_keys else []
        raise _user_error(f"encoder file {path} is not a torchvision ResNet-50 state dict: {'; '.join(parts)}")
    encoder.mean, encoder.std, encoder.input_size = IMAGENET_MEAN, IMAGENET_STD, 224
    return encoder


def _latest_milestone(folder: Path) -> Path:
    from benthic.ssl import milestone_epoch

    found = []
    for path in folder.glob("epoch*.pt"):
        try:
            found.append((milestone_epoch(path), path))
        except ValueError:
            continue
    if not found:
        raise _user_error(f"encoder folder {folder} holds no milestone (epochNNNN.pt) of a `benthic train` run")
    return max(found)[1]


def _from_file(path: Path) -> tuple[nn.Module, dict]:
    from benthic.io import torch_load
    from benthic.ssl import load_encoder
    from benthic.ssl.trainer import CHECKPOINT_FORMAT

    try:
        obj = torch_load(path)
    except Exception:  # noqa: BLE001 - resnet50_from_state_dict names the problem
        obj = None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        encoder = load_encoder(path).requires_grad_(False)
        return encoder, {"kind": "ssl", "backbone": obj["config"]["backbone"], "checkpoint": str(path)}
    return resnet50_from_state_dict(path), {"kind": "random", "backbone": "resnet50", "weights": str(path)}


def encoder_by_name(name: str, seed: int = 0, input_size: int | None = None) -> tuple[nn.Module, dict]:
    """(frozen encoder in eval mode with feature_dim, input_size, mean and std set; the spec a checkpoint stores) for
    a name as the command line takes it: an ImageNet model (efficientnet-lite0, imagenet:resnet50, ...), the
    milestone file or run folder of `benthic train` (its last milestone), a torchvision-style ResNet-50 state
    dict, or `random` / `random:<backbone>` (seeded random init, default ResNet-50) for a baseline."""
    from benthic.models.backbones import BACKBONES
    from benthic.models.pretrained import LITE_MODELS, TORCHVISION_MODELS

    path = Path(name).expanduser()
    model = name.removeprefix("imagenet:")
    if name == "random" or name.startswith("random:"):
        backbone = name.partition(":")[2] or "resnet50"
        if backbone not in BACKBONES:
            raise _user_error(f"encoder {name!r}: random backbones are {', '.join(BACKBONES)}")
        torch.manual_seed(seed)
        spec = {"kind": "random", "backbone": backbone, "input_size": input_size or 224, "seed": seed}
        encoder = build_encoder(spec)
    elif model in LITE_MODELS or model in TORCHVISION_MODELS:
        spec = {"kind": "imagenet", "backbone": f"imagenet:{model}"}
        try:
            encoder = build_encoder(spec)
        except FileNotFoundError as exc:
            raise _user_error(str(exc)) from None
    elif path.is_dir() or path.is_file():
        encoder, spec = _from_file(_latest_milestone(path) if path.is_dir() else path)
    else:
        raise _user_error(
            f"encoder {name!r} is not an ImageNet model ({', '.join((*LITE_MODELS, *TORCHVISION_MODELS))}), "
            f"'random', nor an existing milestone, run folder or state-dict file"
        )
    if input_size:
        encoder.input_size = spec["input_size"] = int(input_size)
    return encoder.requires_grad_(False).eval(), spec
