"""Cross-validated comparison of encoders on the reef-photo task: photo-grouped stratified k-fold runs of
the linear probe and fine-tuning, per-image inference time, and an augmentation ablation (rotation,
scaling, flipping) on the same folds."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from benthic.scales import Registry, Settings
from benthic.transfer import config, core, encoders, onehot
from benthic.transfer.core import TrainConfig

AUG_NAMES = ("rotation", "scaling", "flipping")


@dataclass(frozen=True)
class CVModel:
    """One compared model: an encoder spec (benthic.transfer.encoders.build_encoder), a protocol ('linear probe' on
    cached frozen features, or 'fine-tune' end to end) and the input size the encoder sees."""

    name: str
    encoder: Mapping
    protocol: str
    size: int


@dataclass(frozen=True)
class CVConfig(Settings):
    """Per-scale settings of notebook 06 (the reef tiles, probe encoders and their cached features come from
    benthic.transfer's config of the same scale, shared with notebook 04): folds, budgets, timing, ablation."""

    k: int = 5
    seed: int = 0
    probe: TrainConfig = TrainConfig(epochs=200, lr=1e-3, batch_size=256, augment=False)
    finetune: TrainConfig = TrainConfig(epochs=30, lr=1e-4, batch_size=64, augment=False)
    vit_backbone: str = "vit_b_16"
    vit_size: int = 224
    cnn_backbone: str = "resnet50"
    cnn_size: int = 224
    imagenet_finetune: bool = True
    ablation_model: str = "vit_b_16"
    ablation_size: int = 224
    ablation: TrainConfig = TrainConfig(epochs=30, lr=1e-4, batch_size=64, augment=False)
    ablation_arms: tuple[tuple[bool, bool, bool], ...] = tuple(
        (r, s, f) for r in (False, True) for s in (False, True) for f in (False, True)
    )
    timing_batches: tuple[int, ...] = (1, 64)
    timing_repeats: int = 10

    def validate(self) -> None:
        if self.k < 2:
            raise ValueError(f"cross-validation needs k >= 2 folds, got {self.k}")
        if min(self.vit_size, self.cnn_size, self.ablation_size, self.timing_repeats, *self.timing_batches) < 1:
            raise ValueError("input sizes, timing batches and timing repeats must be positive")
        if not self.ablation_arms or any(len(arm) != len(AUG_NAMES) for arm in self.ablation_arms):
            raise ValueError(f"each ablation arm switches {', '.join(AUG_NAMES)}: give one flag for each")


_FIVE_ARMS = (
    (False, False, False),
    (True, False, False),
    (False, True, False),
    (False, False, True),
    (True, True, True),
)


PRESETS: Registry[CVConfig] = Registry("crossval", CVConfig)


# seconds: 3 folds of transfer's 200-tile smoke subset, one epoch, two ablation arms
PRESETS.register(
    "smoke",
    CVConfig(
        k=3,
        probe=TrainConfig(30, 1e-2, 1e-4, 256, False),
        finetune=TrainConfig(1, 1e-3, 1e-5, 64, False),
        vit_backbone="vit_tiny",
        vit_size=32,
        cnn_backbone="small_cnn",
        cnn_size=16,
        imagenet_finetune=False,
        ablation_model="small_cnn",
        ablation_size=16,
        ablation=TrainConfig(1, 1e-3, 1e-5, 64, False),
        ablation_arms=((False, False, False), (True, True, True)),
        timing_batches=(1, 8),
        timing_repeats=1,
    ),
)


# 2-core CPU, minutes: 5 folds; probes on notebook 04's cached features; small ViT (32 px) and CNN (16 px)
# fine-tuned from scratch for a few epochs; ablation on the CNN at 16 px
PRESETS.register(
    "quick",
    CVConfig(
        k=5,
        probe=TrainConfig(150, 1e-2, 1e-4, 256, False),
        finetune=TrainConfig(3, 2e-3, 1e-5, 64, False),
        vit_backbone="vit_tiny",
        vit_size=32,
        cnn_backbone="small_cnn",
        cnn_size=16,
        imagenet_finetune=False,
        ablation_model="small_cnn",
        ablation_size=16,
        ablation=TrainConfig(3, 2e-3, 1e-5, 64, False),
        ablation_arms=_FIVE_ARMS,
        timing_batches=(1, 64),
        timing_repeats=5,
    ),
)


# gpu: the paper scale's models and folds with five ablation arms of 10 epochs (the full 2^3 ablation is the
# largest cost); not yet timed on a GPU
PRESETS.register(
    "gpu",
    CVConfig(ablation=TrainConfig(epochs=10, lr=1e-4, batch_size=64, augment=False), ablation_arms=_FIVE_ARMS),
)


# GPU: ViT-B/16 and ResNet-50 at 224 px, the SeaBot outline's fine-tuning budget (docs/methods.md#vit-transfer),
# full 2^3 ablation on ViT-B/16
PRESETS.register("paper", CVConfig())


def get_config(scale: str, **overrides) -> CVConfig:
    """The settings of a scale or preset with fields overridden (validated)."""
    return PRESETS.get(scale, **overrides)


# ------------------------------------------------------------------------------------- the task
@dataclass
class ReefTask:
    """The one-hot coral-condition task: tile images (uint8), class 0..2, photo per tile (the group), the
    photo-grouped folds, and per fold the probe encoders' specs and frozen features
    (benthic.transfer.encoders.reef_encoders: the in-domain SSL encoder of a fold never saw its test photos)."""

    images: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    specs: dict[int, dict[str, dict]]
    features: dict[int, dict[str, np.ndarray]]
    pretraining: pd.DataFrame  # per fold: photos and tiles the in-domain encoder saw, shared with the test fold (0)


def reef_task(scale: str, cfg: CVConfig, ssl_checkpoint: str | None = None) -> ReefTask:
    """Load transfer's reef tiles for `scale`, keep the tiles of the condition task, split them into `cfg.k`
    photo-grouped folds, and embed them with the three probe encoder families; the in-domain SSL encoder is
    pretrained per fold on the tiles of that fold's training photos (or is the given `ssl_checkpoint`)."""
    tcfg = config.get_config(scale)
    coral = encoders.load_reef(tcfg)
    idx, y = onehot.condition_task(coral.labels, coral.label_names)
    groups = np.asarray(coral.photo_ids)[idx]
    folds = grouped_folds(y, groups, cfg.k, cfg.seed)
    held_out = {f: np.unique(groups[te]) for f, (_, te) in enumerate(folds)}
    specs = encoders.reef_encoders(coral.images, coral.photo_ids, held_out, tcfg, scale, ssl_checkpoint=ssl_checkpoint)
    feats = encoders.split_features(specs, coral.images, scale)
    pretraining = encoders.pretraining_table(coral.photo_ids, held_out) if ssl_checkpoint is None else pd.DataFrame()
    return ReefTask(coral.images[idx], y.astype(np.int64), groups, folds, specs, encoders.take(feats, idx), pretraining)


def default_models(task: ReefTask, cfg: CVConfig) -> tuple[list[CVModel], dict[str, str]]:
    """The compared models: a ViT and a CNN fine-tuned from scratch, the three probe families (random init,
    ImageNet EfficientNet-Lite, in-domain SSL; a probe's spec is fold 0's, as timing needs one) and, where budgeted,
    the ImageNet model fine-tuned and torchvision's ImageNet-1k ViT-B/16 fine-tuned when its weights are in torch
    hub's cache; plus the roles for transfer efficiency {"scratch": random-init probe, "reference": in-domain SSL
    probe}."""
    from benthic.models.pretrained import VIT_MODELS, torchvision_weight_file

    vit, cnn = cfg.vit_backbone, cfg.cnn_backbone
    models = [
        CVModel(f"ViT {vit} scratch, fine-tune", {"kind": "random", "backbone": vit}, "fine-tune", cfg.vit_size),
        CVModel(f"CNN {cnn} scratch, fine-tune", {"kind": "random", "backbone": cnn}, "fine-tune", cfg.cnn_size),
    ]
    first = task.specs[min(task.specs)]
    names = list(first)
    for name, spec in first.items():
        models.append(CVModel(f"{name}, probe", spec, "linear probe", int(spec.get("input_size") or 224)))
    imagenet = next(n for n in names if n.startswith("ImageNet"))
    if cfg.imagenet_finetune:
        spec = first[imagenet]
        models.append(CVModel(f"{imagenet}, fine-tune", spec, "fine-tune", int(spec.get("input_size") or 224)))
        for vit_name in (m for m in VIT_MODELS if torchvision_weight_file(m).exists()):
            spec = {"kind": "imagenet", "backbone": f"imagenet:{vit_name}"}
            models.append(CVModel(f"ViT {vit_name} ImageNet-1k, fine-tune", spec, "fine-tune", 224))
    scratch = next(n for n in names if n.startswith("random init"))
    reference = next(n for n in names if n.startswith("in-domain"))
    return models, {"scratch": f"{scratch}, probe", "reference": f"{reference}, probe"}


# ------------------------------------------------------------------------------------------- folds
def grouped_folds(y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k stratified folds that keep every group (photo, survey) whole, so near-duplicate tiles never sit on
    both sides of a split (scikit-learn StratifiedGroupKFold via benthic.data.coral.photo_kfold)."""
    from benthic.data.coral import photo_kfold

    return photo_kfold(np.asarray(y), np.asarray(groups), k, seed)


def fold_table(y: np.ndarray, groups: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Per fold: test size, groups held out, groups shared with training (must be 0) and class shares."""
    y, groups = np.asarray(y), np.asarray(groups)
    classes = np.unique(y)
    rows = []
    for f, (tr, te) in enumerate(folds):
        share = {f"class {c} share": float(np.mean(y[te] == c)) for c in classes}
        rows.append(
            {
                "fold": f,
                "n_train": len(tr),
                "n_test": len(te),
                "test groups": len(np.unique(groups[te])),
                "shared groups": len(set(groups[tr]) & set(groups[te])),
                **share,
            }
        )
    return pd.DataFrame(rows)


def cross_validate(
    runners: Mapping[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]],
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
) -> pd.DataFrame:
    """Fold scores per model: `runners[name](train_idx, test_idx, fold)` returns predicted classes for
    test_idx; one row per (model, fold) with accuracy and macro F1 (scikit-learn)."""
    y = np.asarray(y)
    rows = []
    jobs = [(f, name) for f in range(len(folds)) for name in runners]
    for fold, name in tqdm(jobs, desc="cross-validation", leave=False):
        tr, te = folds[fold]
        pred = np.asarray(runners[name](tr, te, fold))
        if pred.shape != te.shape:
            raise ValueError(f"model {name!r}, fold {fold}: {pred.shape} predictions for {len(te)} test items")
        m = onehot.onehot_metrics(y[te], pred)
        rows.append(
            {
                "model": name,
                "fold": fold,
                "n_train": len(tr),
                "n_test": len(te),
                "accuracy": m["accuracy"],
                "macro_f1": m["macro_f1"],
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ augmentation
def rotate_zoom_flip(
    x: torch.Tensor,
    gen: torch.Generator,
    rotation: bool,
    scaling: bool,
    flipping: bool,
    max_angle: float = 180.0,
    scale_range: tuple[float, float] = (0.8, 1.25),
) -> torch.Tensor:
    """Per-sample random rotation (uniform in +-max_angle), zoom (log-uniform in scale_range) and
    horizontal/vertical flips (p = 0.5 each) of an NCHW batch; reflection padding; identity when all off."""
    n = x.shape[0]
    if flipping:
        fh = (torch.rand(n, generator=gen) < 0.5).view(-1, 1, 1, 1).to(x.device)
        fv = (torch.rand(n, generator=gen) < 0.5).view(-1, 1, 1, 1).to(x.device)
        x = torch.where(fh, x.flip(3), x)
        x = torch.where(fv, x.flip(2), x)
    if rotation or scaling:
        angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(max_angle) if rotation else torch.zeros(n)
        lo, hi = (math.log(scale_range[0]), math.log(scale_range[1])) if scaling else (0.0, 0.0)
        zoom = torch.exp(lo + torch.rand(n, generator=gen) * (hi - lo))
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack(
            [torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)], 1
        ).to(x.device, x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return x


class Augmented(nn.Module):
    """An encoder that augments its (normalised) input batch while training and is the plain encoder in
    eval mode; carries the encoder's feature_dim, mean, std and input_size so benthic.transfer can use it."""

    def __init__(self, encoder: nn.Module, rotation: bool, scaling: bool, flipping: bool, seed: int = 0):
        super().__init__()
        self.encoder = encoder
        self.flags = (rotation, scaling, flipping)
        self.gen = torch.Generator().manual_seed(seed)
        for attr in ("feature_dim", "mean", "std", "input_size"):
            setattr(self, attr, getattr(encoder, attr, None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and any(self.flags):
            x = rotate_zoom_flip(x, self.gen, *self.flags)
        return self.encoder(x)


def arm_name(flags: Sequence[bool]) -> str:
    """Readable name of an augmentation arm, e.g. 'rotation + flipping' or 'none'."""
    on = [n for n, f in zip(AUG_NAMES, flags) if f]
    return " + ".join(on) if on else "none"


# -------------------------------------------------------------------------------------- runners
def probe_runner(z: Mapping[int, np.ndarray], y: np.ndarray, n_classes: int, cfg: TrainConfig, seed: int) -> Callable:
    """Linear probe on each fold's cached features z[fold] (N, D): train on train_idx, predict test_idx (seed + fold)."""

    def run(tr: np.ndarray, te: np.ndarray, fold: int) -> np.ndarray:
        model = onehot.train_onehot(z[fold][tr], y[tr], n_classes, cfg, seed + fold)
        return core.predict(model, z[fold][te]).argmax(1)

    return run


def finetune_runner(
    spec: Mapping,
    images: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    cfg: TrainConfig,
    size: int,
    seed: int,
    flags: Sequence[bool] = (True, True, True),
) -> Callable:
    """End-to-end fine-tuning of a fresh encoder from `spec` + linear head, augmented per `flags`
    (rotation, scaling, flipping) through benthic.transfer's training loop."""

    def run(tr: np.ndarray, te: np.ndarray, fold: int) -> np.ndarray:
        torch.manual_seed(seed + fold)
        encoder = Augmented(encoders.build_encoder(spec).requires_grad_(True), *flags, seed=seed + fold)
        model = onehot.train_onehot(
            images[tr], y[tr], n_classes, replace(cfg, augment=False), seed + fold, encoder, size
        )
        return core.predict(model, images[te], size, batch_size=64).argmax(1)

    return run


def run_models(
    models: Sequence[CVModel],
    images: np.ndarray,
    y: np.ndarray,
    folds: Sequence,
    cfg: CVConfig,
    features: Mapping[int, Mapping[str, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """Fold scores of every model on the same folds: probes on `features[fold][spec name]` (cached frozen features of
    that fold's encoders, one row per image; the probe model's name is '<spec name>, probe'), fine-tunes on the
    images."""
    n_classes = int(y.max()) + 1
    runners = {}
    for m in models:
        if m.protocol == "linear probe":
            key = m.name.removesuffix(", probe")
            if features is None or any(key not in features.get(f, {}) for f in range(len(folds))):
                raise ValueError(f"model {m.name!r}: no cached features named {key!r} for every fold")
            z = {f: features[f][key] for f in range(len(folds))}
            runners[m.name] = probe_runner(z, y, n_classes, cfg.probe, cfg.seed)
        elif m.protocol == "fine-tune":
            runners[m.name] = finetune_runner(m.encoder, images, y, n_classes, cfg.finetune, m.size, cfg.seed)
        else:
            raise ValueError(f"model {m.name!r}: protocol must be 'linear probe' or 'fine-tune', got {m.protocol!r}")
    out = cross_validate(runners, y, folds)
    info = {m.name: m for m in models}
    out.insert(1, "protocol", out["model"].map(lambda n: info[n].protocol))
    return out


def augmentation_ablation(images: np.ndarray, y: np.ndarray, folds: Sequence, cfg: CVConfig) -> pd.DataFrame:
    """Fine-tune cfg.ablation_model from scratch per augmentation arm (rotation, scaling, flipping on/off) on
    the same folds; one row per (arm, fold) with the three flags."""
    n_classes = int(y.max()) + 1
    spec, size = {"kind": "random", "backbone": cfg.ablation_model}, cfg.ablation_size
    runners = {
        arm_name(a): finetune_runner(spec, images, y, n_classes, cfg.ablation, size, cfg.seed, a)
        for a in cfg.ablation_arms
    }
    out = cross_validate(runners, y, folds).rename(columns={"model": "arm"})
    flags = {arm_name(a): a for a in cfg.ablation_arms}
    for i, name in enumerate(AUG_NAMES):
        out[name] = out["arm"].map(lambda n: flags[n][i])
    return out
