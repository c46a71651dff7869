"""The encoders compared in transfer (random init, ImageNet, in-domain SSL), the reef tiles they see, and
their cached features."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace as dc_replace
from pathlib import Path

import numpy as np
import pandas as pd
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
    """In-domain SSL on `images` with `benthic.ssl.pretrain_encoder` (underwater augmentation; Barlow Twins as the
    BenthicNet release) in a run folder named by the images and settings, so a finished run is reused and another
    split's images get their own; returns the encoder spec (the run folder)."""
    from benthic.ssl import get_config, pretrain_encoder

    settings = {
        "backbone": cfg.ssl_backbone,
        "epochs": cfg.ssl_epochs,
        "milestones": (),
        "milestone_every": cfg.ssl_epochs,
        "image_size": cfg.ssl_size,
        "augment": "underwater",
        "batch_size": min(cfg.ssl_batch, len(images)),
        "train_subset": None,
        "seed": seed,
    }
    digest = hashlib.sha1(np.ascontiguousarray(images).data)
    digest.update(f"{images.shape};{get_config(scale, method, **settings).key()}".encode())
    folder = runs_dir(scale) / "transfer" / "ssl" / f"{method}-{digest.hexdigest()[:12]}"
    pretrain_encoder(images, method, scale, out=folder, **settings)
    return {"kind": "ssl", "backbone": cfg.ssl_backbone, "checkpoint": str(folder), "input_size": cfg.ssl_size}


# ------------------------------------------------------------------------- notebook-level steps
def held_out_photos(
    photo_ids: np.ndarray, cfg: TransferConfig, seeds: Sequence[int], partition: np.ndarray | None = None
) -> dict[int, np.ndarray]:
    """Per split seed, the photos of its test split (benthic.data.coral.split_by_photo on `photo_ids`, the tiles
    the notebook evaluates, or the given `partition`'s test rows): what that seed's in-domain encoder must never
    see."""
    from benthic.data.coral import split_by_photo

    photo_ids = np.asarray(photo_ids)
    return {
        s: np.unique(photo_ids[split_by_photo(photo_ids, cfg.test_fraction, s, partition)[1]])
        for s in dict.fromkeys(seeds)
    }


def pretraining_tiles(photo_ids: np.ndarray, held_out: np.ndarray) -> np.ndarray:
    """Indices of the tiles whose photo is not in `held_out`: the only tiles an in-domain encoder may train on."""
    return np.flatnonzero(~np.isin(np.asarray(photo_ids), np.asarray(held_out)))


def pretraining_table(photo_ids: np.ndarray, held_out: Mapping[int, np.ndarray]) -> pd.DataFrame:
    """Per split: photos and tiles the in-domain encoder pretrains on, the test photos, and the photos both
    share (0 by construction: the check a reader can see)."""
    photo_ids = np.asarray(photo_ids)
    rows = []
    for split, test in held_out.items():
        seen = np.unique(photo_ids[pretraining_tiles(photo_ids, test)])
        rows.append(
            {
                "split": split,
                "pretraining photos": len(seen),
                "pretraining tiles": len(pretraining_tiles(photo_ids, test)),
                "test photos": len(test),
                "shared photos": len(np.intersect1d(seen, test)),
            }
        )
    return pd.DataFrame(rows)


def _given_ssl(ssl_checkpoint: str | os.PathLike) -> dict[str, dict]:
    """The spec of a user's SSL encoder: a `benthic train` run folder (its last milestone) or milestone file."""
    from benthic.ssl import last_milestone, read_milestone

    path = Path(ssl_checkpoint)
    if not path.exists():
        raise FileNotFoundError(
            f"SSL checkpoint {ssl_checkpoint} not found: pass the run folder or milestone file of `benthic train`"
        )
    config = read_milestone(last_milestone(path) if path.is_dir() else path)["config"]
    name = path.name if path.is_dir() else path.parent.name
    spec = {"kind": "ssl", "backbone": config["backbone"], "checkpoint": str(path), "input_size": config["image_size"]}
    return {f"in-domain SSL ({name})": spec}


def reef_encoders(
    images: np.ndarray,
    photo_ids: np.ndarray,
    held_out: Mapping[int, np.ndarray],
    cfg: TransferConfig,
    scale: str,
    ssl_method: str = "barlow",
    ssl_checkpoint: str | os.PathLike | None = None,
) -> dict[int, dict[str, dict]]:
    """Per split (a seed or fold: the keys of `held_out`, its test photos), the specs of the three encoder families
    compared (Xu et al., 2024, arXiv:2409.06618; docs/methods.md#transfer-choices): random init, ImageNet-supervised
    (`cfg.imagenet_model`, plus torchvision's ResNet-50 when its weights are in torch hub's cache), and in-domain SSL
    pretrained on the images of the tiles (`photo_ids`) of that split's training photos only (no labels used), or
    the user's `ssl_checkpoint` (run folder or milestone) for every split. Random init and SSL share `ssl_size`."""
    from benthic.models.pretrained import available_imagenet_models

    fixed = {
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
    }
    given = _given_ssl(ssl_checkpoint) if ssl_checkpoint is not None else None
    name = f"in-domain SSL ({ssl_method}, {cfg.ssl_backbone})"
    out = {}
    for split, test in tqdm(held_out.items(), desc="in-domain SSL per split", leave=False):
        own = given or {name: pretrain_ssl(images[pretraining_tiles(photo_ids, test)], cfg, scale, ssl_method)}
        out[split] = {**fixed, **own}
    return out


def encoder_features(
    specs: Mapping[str, Mapping], images: np.ndarray, scale: str, seed: int = 0
) -> dict[str, np.ndarray]:
    """Cached frozen features of `images` per encoder spec (runs/<scale>/transfer/features-*.npy), keyed by the
    built encoder's weights and preprocessing, so encoders pretrained on different splits never share a cache."""
    from benthic.transfer.feature_cache import encoder_key

    out = {}
    for name, spec in tqdm(specs.items(), desc="features", leave=False):
        torch.manual_seed(seed)
        encoder = build_encoder(spec)
        key = hashlib.sha1(f"{encoder_key(encoder)};{images_key(images)};{images.shape}".encode()).hexdigest()[:12]
        out[name] = features(encoder, images, runs_dir(scale) / "transfer" / f"features-{key}.npy")
    return out


def split_features(
    specs: Mapping[int, Mapping[str, Mapping]], images: np.ndarray, scale: str, seed: int = 0
) -> dict[int, dict[str, np.ndarray]]:
    """`encoder_features` per split of `reef_encoders`; an encoder shared by splits (random, ImageNet) is embedded
    once."""
    done: dict[str, np.ndarray] = {}
    out: dict[int, dict[str, np.ndarray]] = {}
    for split, named in specs.items():
        for name, spec in named.items():
            key = repr(sorted(spec.items()))
            if key not in done:
                done[key] = encoder_features({name: spec}, images, scale, seed)[name]
            out.setdefault(split, {})[name] = done[key]
    return out


def take(feats: Mapping[int, Mapping[str, np.ndarray]], rows: np.ndarray) -> dict[int, dict[str, np.ndarray]]:
    """The rows `rows` (e.g. a task's tiles) of every split's features."""
    return {split: {name: z[rows] for name, z in named.items()} for split, named in feats.items()}


def per_split(
    run: Callable[[Mapping[str, np.ndarray], TransferConfig], pd.DataFrame],
    feats: Mapping[int, Mapping[str, np.ndarray]],
    cfg: TransferConfig,
) -> pd.DataFrame:
    """An evaluation over photo splits, `run(features, cfg)` (e.g. benthic.transfer.hml_probe.hml_probe), done one
    seed at a time (cfg.seeds = (seed,)) on that seed's features, so each split's in-domain encoder is scored only on
    photos it never saw."""
    return pd.concat([run(feats[s], dc_replace(cfg, seeds=(s,))) for s in cfg.seeds], ignore_index=True)


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
