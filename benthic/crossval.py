"""Cross-validated comparison of encoders on the reef-photo task (SPEC D): grouped stratified k-fold runs
through benthic.transfer (linear probe / fine-tune), per-image inference time, transfer efficiency,
one-way ANOVA + Tukey HSD across models over folds (scipy), and an augmentation ablation
(rotation, scaling, flipping) on the same folds."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import transfer
from .paths import check_scale
from .transfer import TrainConfig

ALPHA = 0.05
AUG_NAMES = ("rotation", "scaling", "flipping")


@dataclass(frozen=True)
class CVModel:
    """One compared model: an encoder spec (benthic.transfer.build_encoder), a protocol ('linear probe' on
    cached frozen features, or 'fine-tune' end to end) and the input size the encoder sees."""

    name: str
    encoder: Mapping
    protocol: str
    size: int


@dataclass(frozen=True)
class CVConfig:
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
        (r, s, f) for r in (False, True) for s in (False, True) for f in (False, True))
    timing_batches: tuple[int, ...] = (1, 64)
    timing_repeats: int = 10


_FIVE_ARMS = ((False, False, False), (True, False, False), (False, True, False), (False, False, True),
              (True, True, True))
CONFIGS: dict[str, CVConfig] = {
    # seconds: 3 folds of transfer's 200-tile smoke subset, one epoch, two ablation arms
    "smoke": CVConfig(k=3, probe=TrainConfig(30, 1e-2, 1e-4, 256, False), finetune=TrainConfig(1, 1e-3, 1e-5, 64, False),
                      vit_backbone="vit_tiny", vit_size=32, cnn_backbone="small_cnn", cnn_size=16,
                      imagenet_finetune=False, ablation_model="small_cnn", ablation_size=16,
                      ablation=TrainConfig(1, 1e-3, 1e-5, 64, False),
                      ablation_arms=((False, False, False), (True, True, True)), timing_batches=(1, 8),
                      timing_repeats=1),
    # 2-core CPU, minutes: 5 folds; probes on notebook 04's cached features; small ViT (32 px) and CNN (16 px)
    # fine-tuned from scratch for a few epochs; ablation on the CNN at 16 px
    "quick": CVConfig(k=5, probe=TrainConfig(150, 1e-2, 1e-4, 256, False), finetune=TrainConfig(3, 2e-3, 1e-5, 64, False),
                      vit_backbone="vit_tiny", vit_size=32, cnn_backbone="small_cnn", cnn_size=16,
                      imagenet_finetune=False, ablation_model="small_cnn", ablation_size=16,
                      ablation=TrainConfig(3, 2e-3, 1e-5, 64, False), ablation_arms=_FIVE_ARMS,
                      timing_batches=(1, 64), timing_repeats=5),
    # GPU: ViT-B/16 and ResNet-50 at 224 px, the seed paper's fine-tuning budget, full 2^3 ablation on ViT-B/16
    "paper": CVConfig(),
}


def get_config(scale: str, **overrides) -> CVConfig:
    """The preset of a scale with fields overridden."""
    return replace(CONFIGS[check_scale(scale)], **overrides)


# ------------------------------------------------------------------------------------- the task
@dataclass
class ReefTask:
    """The one-hot coral-condition task: tile images (uint8), class 0..2, photo per tile (the group), and the
    frozen features of the probe encoders (benthic.transfer.reef_encoders, cached, shared with notebook 04)."""

    images: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    specs: dict[str, dict]
    features: dict[str, np.ndarray]


def reef_task(scale: str) -> ReefTask:
    """Load transfer's reef tiles for `scale`, keep the tiles of the condition task, and embed them with the
    three probe encoder families (random init, ImageNet, in-domain SSL pretrained on all tiles' images)."""
    tcfg = transfer.get_config(scale)
    coral = transfer.load_reef(tcfg)
    idx, y = transfer.condition_task(coral.labels, coral.label_names)
    specs = transfer.reef_encoders(coral.images, tcfg, scale)
    feats = transfer.encoder_features(specs, coral.images, scale)
    return ReefTask(coral.images[idx], y.astype(np.int64), np.asarray(coral.photo_ids)[idx], specs,
                    {k: z[idx] for k, z in feats.items()})


def default_models(task: ReefTask, cfg: CVConfig) -> tuple[list[CVModel], dict[str, str]]:
    """The compared models: a ViT and a CNN fine-tuned from scratch, the three probe families (random init,
    ImageNet EfficientNet-Lite, in-domain SSL) and, where budgeted, the ImageNet model fine-tuned; plus the
    roles for transfer efficiency {"scratch": random-init probe, "reference": in-domain SSL probe}."""
    vit, cnn = cfg.vit_backbone, cfg.cnn_backbone
    models = [CVModel(f"ViT {vit} scratch, fine-tune", {"kind": "random", "backbone": vit}, "fine-tune", cfg.vit_size),
              CVModel(f"CNN {cnn} scratch, fine-tune", {"kind": "random", "backbone": cnn}, "fine-tune", cfg.cnn_size)]
    names = list(task.specs)
    for name, spec in task.specs.items():
        models.append(CVModel(f"{name}, probe", spec, "linear probe", int(spec.get("input_size") or 224)))
    imagenet = next(n for n in names if n.startswith("ImageNet"))
    if cfg.imagenet_finetune:
        spec = task.specs[imagenet]
        models.append(CVModel(f"{imagenet}, fine-tune", spec, "fine-tune", int(spec.get("input_size") or 224)))
    scratch = next(n for n in names if n.startswith("random init"))
    reference = next(n for n in names if n.startswith("in-domain"))
    return models, {"scratch": f"{scratch}, probe", "reference": f"{reference}, probe"}


# ------------------------------------------------------------------------------------------- folds
def grouped_folds(y: np.ndarray, groups: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k stratified folds that keep every group (photo, survey) whole, so near-duplicate tiles never sit on
    both sides of a split (scikit-learn StratifiedGroupKFold via benthic.data.coral.photo_kfold)."""
    from .data.coral import photo_kfold

    return photo_kfold(np.asarray(y), np.asarray(groups), k, seed)


def fold_table(y: np.ndarray, groups: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Per fold: test size, groups held out, groups shared with training (must be 0) and class shares."""
    y, groups = np.asarray(y), np.asarray(groups)
    classes = np.unique(y)
    rows = []
    for f, (tr, te) in enumerate(folds):
        share = {f"class {c} share": float(np.mean(y[te] == c)) for c in classes}
        rows.append({"fold": f, "n_train": len(tr), "n_test": len(te), "test groups": len(np.unique(groups[te])),
                     "shared groups": len(set(groups[tr]) & set(groups[te])), **share})
    return pd.DataFrame(rows)


def cross_validate(runners: Mapping[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]], y: np.ndarray,
                   folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
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
        m = transfer.onehot_metrics(y[te], pred)
        rows.append({"model": name, "fold": fold, "n_train": len(tr), "n_test": len(te),
                     "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ augmentation
def augment_batch(x: torch.Tensor, gen: torch.Generator, rotation: bool, scaling: bool, flipping: bool,
                  max_angle: float = 180.0, scale_range: tuple[float, float] = (0.8, 1.25)) -> torch.Tensor:
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
        theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1),
                             torch.stack([sin, cos, torch.zeros(n)], 1)], 1).to(x.device, x.dtype)
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
            x = augment_batch(x, self.gen, *self.flags)
        return self.encoder(x)


def arm_name(flags: Sequence[bool]) -> str:
    """Readable name of an augmentation arm, e.g. 'rotation + flipping' or 'none'."""
    on = [n for n, f in zip(AUG_NAMES, flags) if f]
    return " + ".join(on) if on else "none"


# -------------------------------------------------------------------------------------- runners
def probe_runner(z: np.ndarray, y: np.ndarray, n_classes: int, cfg: TrainConfig, seed: int) -> Callable:
    """Linear probe on cached features z (N, D): train on train_idx, predict test_idx (seed + fold)."""
    def run(tr: np.ndarray, te: np.ndarray, fold: int) -> np.ndarray:
        model = transfer.train_onehot(z[tr], y[tr], n_classes, cfg, seed + fold)
        return transfer.predict(model, z[te]).argmax(1)
    return run


def finetune_runner(spec: Mapping, images: np.ndarray, y: np.ndarray, n_classes: int, cfg: TrainConfig,
                    size: int, seed: int, flags: Sequence[bool] = (True, True, True)) -> Callable:
    """End-to-end fine-tuning of a fresh encoder from `spec` + linear head, augmented per `flags`
    (rotation, scaling, flipping) through benthic.transfer's training loop."""
    def run(tr: np.ndarray, te: np.ndarray, fold: int) -> np.ndarray:
        torch.manual_seed(seed + fold)
        encoder = Augmented(transfer.build_encoder(spec).requires_grad_(True), *flags, seed=seed + fold)
        model = transfer.train_onehot(images[tr], y[tr], n_classes, replace(cfg, augment=False), seed + fold,
                                      encoder, size)
        return transfer.predict(model, images[te], size, batch_size=64).argmax(1)
    return run


def run_models(models: Sequence[CVModel], images: np.ndarray, y: np.ndarray, folds: Sequence, cfg: CVConfig,
               features: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Fold scores of every model on the same folds: probes on `features[spec name]` (cached frozen features,
    one row per image; the probe model's name is '<spec name>, probe'), fine-tunes on the images."""
    n_classes = int(y.max()) + 1
    runners = {}
    for m in models:
        if m.protocol == "linear probe":
            key = m.name.removesuffix(", probe")
            if features is None or key not in features:
                raise ValueError(f"model {m.name!r}: no cached features named {key!r}")
            runners[m.name] = probe_runner(features[key], y, n_classes, cfg.probe, cfg.seed)
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
    runners = {arm_name(a): finetune_runner(spec, images, y, n_classes, cfg.ablation, size, cfg.seed, a)
               for a in cfg.ablation_arms}
    out = cross_validate(runners, y, folds).rename(columns={"model": "arm"})
    flags = {arm_name(a): a for a in cfg.ablation_arms}
    for i, name in enumerate(AUG_NAMES):
        out[name] = out["arm"].map(lambda n: flags[n][i])
    return out


# ------------------------------------------------------------------------------ inference time
@torch.no_grad()
def inference_time(model: nn.Module, size: int, batch_size: int, device: str = "cpu", warmup: int = 2,
                   repeats: int = 5) -> float:
    """Median seconds per image of model(x) for a random normalised (batch_size, 3, size, size) batch;
    `warmup` untimed passes first; CUDA synchronised around each timed pass."""
    model = model.to(device).eval()
    x = torch.randn(batch_size, 3, size, size, device=device)
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / batch_size


def timing_table(models: Sequence[CVModel], n_classes: int, cfg: CVConfig, devices: Sequence[str] | None = None) -> pd.DataFrame:
    """Per model, device (CPU, and CUDA when present) and batch size: ms per image and images/s of
    encoder + linear head at the model's input size (weights do not change the time)."""
    devices = list(devices) if devices is not None else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for m in tqdm(models, desc="timing", leave=False):
        encoder = transfer.build_encoder(m.encoder)
        net = transfer.Model(transfer.linear_head(encoder.feature_dim, n_classes), encoder)
        for dev in devices:
            for bs in cfg.timing_batches:
                s = inference_time(net, m.size, bs, dev, repeats=cfg.timing_repeats)
                rows.append({"model": m.name, "device": dev, "batch_size": bs, "ms_per_image": 1e3 * s,
                             "images_per_s": 1.0 / s})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ transfer efficiency
def transfer_efficiency(pretrained: float, scratch: float, reference: float, eps: float = 1e-9) -> tuple[float, str]:
    """TE = (S_pretrained - S_scratch) / (S_reference - S_scratch), all scores at equal labels (same folds):
    the fraction of the gap between training from scratch and the in-domain reference that pretraining
    closes (1 = as good as the reference, 0 = no better than scratch, > 1 beats it, < 0 hurts). Returns
    (NaN, reason) when the reference does not beat scratch (gap <= eps): the ratio means nothing then."""
    vals = (pretrained, scratch, reference)
    if any(v is None or not np.isfinite(v) for v in vals):
        return float("nan"), "a score is missing or not finite"
    gap = reference - scratch
    if gap <= eps:
        return float("nan"), f"reference does not beat scratch (gap {gap:.3g}): nothing to close"
    return float((pretrained - scratch) / gap), ""


def efficiency_table(scores: pd.DataFrame, scratch: str, reference: str, metric: str = "macro_f1",
                     models: Sequence[str] | None = None) -> pd.DataFrame:
    """Transfer efficiency of `models` (default: every other model) against `scratch` and `reference` (model
    names in `scores`): per-fold TE (mean, sd over folds with a defined TE) and TE of the fold means, with reasons."""
    pivot = scores.pivot_table(index="fold", columns="model", values=metric)
    for name in (scratch, reference):
        if name not in pivot.columns:
            raise ValueError(f"model {name!r} not in the scores (models: {list(pivot.columns)})")
    rows = []
    for model in (models if models is not None else pivot.columns):
        if model in (scratch, reference):
            continue
        if model not in pivot.columns:
            raise ValueError(f"model {model!r} not in the scores (models: {list(pivot.columns)})")
        per_fold = [transfer_efficiency(p, s, r) for p, s, r in zip(pivot[model], pivot[scratch], pivot[reference])]
        te = np.array([v for v, _ in per_fold])
        of_means, reason = transfer_efficiency(pivot[model].mean(), pivot[scratch].mean(), pivot[reference].mean())
        skipped = int(np.isnan(te).sum())
        reasons = [reason] if reason else []
        if skipped:
            kinds = sorted({r.split(" (gap")[0] for _, r in per_fold if r})
            reasons.append(f"{skipped} of {len(te)} fold(s) undefined: " + "; ".join(kinds))
        rows.append({"model": model, "scratch": scratch, "reference": reference, "metric": metric,
                     f"{metric}_model": pivot[model].mean(), f"{metric}_scratch": pivot[scratch].mean(),
                     f"{metric}_reference": pivot[reference].mean(), "te_of_means": of_means,
                     "te_fold_mean": float(np.nanmean(te)) if skipped < len(te) else float("nan"),
                     "te_fold_sd": float(np.nanstd(te, ddof=1)) if len(te) - skipped > 1 else float("nan"),
                     "folds_defined": len(te) - skipped, "note": "; ".join(reasons)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------- statistics
def _groups(scores: pd.DataFrame, metric: str, by: str) -> tuple[list[str], list[np.ndarray]]:
    names = list(dict.fromkeys(scores[by]))
    return names, [scores.loc[scores[by] == n, metric].to_numpy(float) for n in names]


def anova(scores: pd.DataFrame, metric: str = "macro_f1", by: str = "model", alpha: float = ALPHA) -> pd.DataFrame:
    """One-way ANOVA of `metric` across `by` groups over folds (scipy.stats.f_oneway): one row with F, p,
    degrees of freedom and whether p < alpha. Folds are shared by the models, so this ignores the pairing
    (conservative); a note says when every group is constant and F is undefined."""
    from scipy.stats import f_oneway

    names, data = _groups(scores, metric, by)
    if len(names) < 2 or any(len(d) < 2 for d in data):
        raise ValueError(f"ANOVA needs at least two {by}s with two or more scores each; got "
                         f"{ {n: len(d) for n, d in zip(names, data)} }")
    constant = all(np.ptp(d) == 0 for d in data)
    if constant:
        stat, p = float("nan"), float("nan")
    else:
        res = f_oneway(*data)
        stat, p = float(res.statistic), float(res.pvalue)
    n = sum(len(d) for d in data)
    return pd.DataFrame([{"metric": metric, "groups": len(names), "n": n, "df_between": len(names) - 1,
                          "df_within": n - len(names), "F": stat, "p_value": p, "alpha": alpha,
                          "significant": bool(p < alpha) if np.isfinite(p) else False,
                          "note": "every group constant: F undefined" if constant else ""}])


def tukey(scores: pd.DataFrame, metric: str = "macro_f1", by: str = "model", alpha: float = ALPHA) -> pd.DataFrame:
    """Tukey HSD for every pair of `by` groups (scipy.stats.tukey_hsd): mean difference a - b, its
    (1 - alpha) confidence interval, adjusted p-value and whether p < alpha."""
    from scipy.stats import tukey_hsd

    names, data = _groups(scores, metric, by)
    res = tukey_hsd(*data)
    ci = res.confidence_interval(1 - alpha)
    rows = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            p = float(res.pvalue[i, j])
            rows.append({"a": names[i], "b": names[j], "mean_diff": float(res.statistic[i, j]),
                         "ci_low": float(ci.low[i, j]), "ci_high": float(ci.high[i, j]), "p_value": p,
                         "significant": bool(p < alpha)})
    return pd.DataFrame(rows)


def summarize(scores: pd.DataFrame, by: str = "model", metrics: Sequence[str] = ("accuracy", "macro_f1")) -> pd.DataFrame:
    """Mean and sd over folds per group (columns `<metric>_mean`, `<metric>_sd`, `folds`)."""
    g = scores.groupby(by, sort=False)
    out = g[list(metrics)].agg(["mean", "std"])
    out.columns = [f"{m}_{'sd' if s == 'std' else s}" for m, s in out.columns]
    out["folds"] = g.size()
    return out.reset_index()


# -------------------------------------------------------------------------------------- figures
def plot_fold_scores(scores: pd.DataFrame, metric: str = "macro_f1", by: str = "model", title: str = ""):
    """Each fold's score per group (points, folds joined across groups by colour) with the mean as a bar."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(scores[by]))
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 3.8))
    means = [scores.loc[scores[by] == n, metric].mean() for n in names]
    ax.bar(range(len(names)), means, color="0.85", edgecolor="0.4")
    for fold, g in scores.groupby("fold"):
        g = g.set_index(by).reindex(names)
        ax.plot(range(len(names)), g[metric], "o-", alpha=0.7, lw=0.8, ms=4, label=f"fold {fold}")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
