"""Transfer of an encoder to small labelled reef/seafloor tasks (SPEC B): one training loop for the frozen
linear probe on cached features and for full fine-tuning, for any encoder (random init, ImageNet,
in-domain SSL); a one-hot task with learning curves over label fractions and the HML task over CATAMI;
splits by photo, never by tile. Also the checkpoint of a trained HML model that `annotate` loads."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from . import hml
from .augment import BENTHICNET_MEAN, BENTHICNET_STD, prepare
from .data.coral import split_by_photo
from .io import save_npy, torch_load, torch_save
from .paths import check_scale, runs_dir
from .seed import default_device, seed_everything

CONDITION_CLASSES = ("Healthy coral", "Compromised coral", "Dead coral")


@dataclass(frozen=True)
class TrainConfig:
    """One training run: epochs, AdamW learning rate / weight decay, batch size; `augment` flips and
    rotates image batches by multiples of 90 degrees (fine-tuning only: seafloor photos have no 'up')."""

    epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 128
    augment: bool = True


@dataclass(frozen=True)
class TransferConfig:
    """Per-scale settings of notebooks 04/05 (images, fractions, seeds, probe/fine-tune/HML/SSL budgets)."""

    image_size: int = 224
    fractions: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    test_fraction: float = 0.3
    probe: TrainConfig = TrainConfig(epochs=200, lr=1e-3, batch_size=256, augment=False)
    finetune: TrainConfig = TrainConfig(epochs=30, lr=1e-4, batch_size=64)
    finetune_fractions: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
    finetune_seeds: tuple[int, ...] = (0, 1, 2)
    hml: TrainConfig = TrainConfig(epochs=100, lr=3e-5, weight_decay=1e-5, batch_size=128, augment=False)
    hml_hidden: int = 2048
    hml_dropout: float = 0.7
    ssl_backbone: str = "resnet50"
    ssl_epochs: int = 100
    ssl_size: int = 224
    ssl_batch: int = 512
    random_backbone: str = "resnet50"
    imagenet_model: str = "efficientnet-lite0"
    mixed_full_shares: tuple[float, ...] = (0.1, 0.25, 0.5)  # share of photos the fully labelled group holds
    mixed_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    max_tiles: int | None = None  # smoke: a random subset of the reef tiles


CONFIGS: dict[str, TransferConfig] = {
    # seconds: tiny images, one seed, a couple of epochs, so the notebooks' code paths all run in tests
    "smoke": TransferConfig(image_size=32, fractions=(0.25, 1.0), seeds=(0,), probe=TrainConfig(20, 1e-2, 1e-5, 256, False),
                            finetune=TrainConfig(1, 1e-3, 1e-5, 32), finetune_fractions=(1.0,), finetune_seeds=(0,),
                            hml=TrainConfig(5, 1e-3, 1e-5, 128, False), hml_hidden=64,
                            ssl_backbone="small_cnn", ssl_epochs=1, ssl_size=32, ssl_batch=64, random_backbone="small_cnn",
                            mixed_full_shares=(0.25,), mixed_seeds=(0,), max_tiles=200),
    # 2-core CPU, minutes: ImageNet model at 96 px, small CNNs (random / SSL) at 32 px, 3 seeds; fine-tuning
    # only at 10 and 100% of labels with one seed and 8 epochs; SSL 20 epochs on the ~1 000 reef tiles
    "quick": TransferConfig(image_size=96, seeds=(0, 1, 2), probe=TrainConfig(150, 1e-2, 1e-4, 256, False),
                            finetune=TrainConfig(8, 3e-4, 1e-5, 32), finetune_fractions=(0.1, 1.0), finetune_seeds=(0,),
                            hml=TrainConfig(50, 1e-3, 1e-5, 128, False), hml_hidden=512,
                            ssl_backbone="small_cnn", ssl_epochs=20, ssl_size=32, ssl_batch=128,
                            random_backbone="small_cnn"),
    # GPU: the papers' settings (HML head AdamW lr 3e-5, wd 1e-5, 100 epochs, batch 128; ResNet-50)
    "paper": TransferConfig(),
}


def get_config(scale: str, **overrides) -> TransferConfig:
    """The preset of a scale with fields overridden."""
    return replace(CONFIGS[check_scale(scale)], **overrides)


def load_reef(cfg: TransferConfig, seed: int = 0):
    """The reef-photo tiles (benthic.data.coral.load_coral) at `cfg.image_size`, limited to a seeded random
    `cfg.max_tiles` at the smoke scale."""
    from dataclasses import replace as dc_replace

    from .data.coral import load_coral

    coral = load_coral(size=cfg.image_size)
    if cfg.max_tiles is None or cfg.max_tiles >= len(coral.images):
        return coral
    keep = np.sort(np.random.default_rng(seed).choice(len(coral.images), cfg.max_tiles, replace=False))
    return dc_replace(coral, images=coral.images[keep], labels=coral.labels[keep],
                      tile_ids=[coral.tile_ids[i] for i in keep], photo_ids=coral.photo_ids[keep],
                      surveys=coral.surveys[keep])


# ------------------------------------------------------------------------------------------ encoders
def build_encoder(spec: Mapping) -> nn.Module:
    """An encoder from a spec dict (stored in checkpoints): {"kind": "random", "backbone": name},
    {"kind": "imagenet", "backbone": "imagenet:<model>"} or {"kind": "ssl", "checkpoint": milestone path};
    sets `mean`, `std` and `input_size` (spec's `input_size` overrides)."""
    from .backbones import build_backbone

    kind = spec.get("kind")
    if kind == "ssl":
        from .ssl import load_encoder

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


def features(encoder: nn.Module, images: np.ndarray, cache: str | os.PathLike | None = None,
             batch_size: int = 64) -> np.ndarray:
    """Frozen-encoder features (N, D) of uint8 NHWC images (benthic.ssl.embed), cached as .npy at `cache`."""
    from .ssl import embed

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
    from .ssl import get_config, train_milestones

    config = get_config(scale, method, backbone=cfg.ssl_backbone, epochs=cfg.ssl_epochs, milestones=(),
                        milestone_every=cfg.ssl_epochs, image_size=cfg.ssl_size, augment="underwater",
                        batch_size=min(cfg.ssl_batch, len(images)), train_subset=None, seed=seed)
    paths = train_milestones(config, images=images)
    return {"kind": "ssl", "backbone": cfg.ssl_backbone, "checkpoint": str(paths[-1]), "input_size": cfg.ssl_size}


# -------------------------------------------------------------------------------------- training
def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per-sample random horizontal/vertical flips and 90-degree rotations of a square NCHW batch."""
    n = x.shape[0]
    flip_h, flip_v, rot = (torch.rand(n, generator=gen) < 0.5), (torch.rand(n, generator=gen) < 0.5), \
        (torch.rand(n, generator=gen) < 0.5)
    x = torch.where(flip_h.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)
    x = torch.where(flip_v.view(-1, 1, 1, 1).to(x.device), x.flip(2), x)
    return torch.where(rot.view(-1, 1, 1, 1).to(x.device), x.transpose(2, 3), x)


class Model(nn.Module):
    """An optional encoder (fine-tuning; None for a probe on cached features) followed by a head."""

    def __init__(self, head: nn.Module, encoder: nn.Module | None = None):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x) if self.encoder is not None else x)


def _inputs(model: Model, x, idx, device, size) -> torch.Tensor:
    if model.encoder is None:
        return torch.as_tensor(x[idx], dtype=torch.float32, device=device)
    return prepare(x[idx], model.encoder.mean, model.encoder.std, size, device)


def fit(model: Model, x: np.ndarray, targets: Sequence[np.ndarray], loss_fn: Callable[..., torch.Tensor],
        cfg: TrainConfig, seed: int, size: int | None = None, device: str | None = None,
        progress: bool = False) -> Model:
    """Train `model` with AdamW on features (probe) or uint8 images (fine-tune, augmented when `cfg.augment`);
    `loss_fn(logits, *target_batches)`; batches drop nothing, BatchNorm sees batches of at least 2."""
    device = device or default_device()
    seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(x)
    bs = min(cfg.batch_size, n)
    for _ in tqdm(range(cfg.epochs), disable=not progress, desc="train", leave=False):
        order = torch.randperm(n, generator=gen).numpy()
        for start in range(0, n, bs):
            idx = order[start:start + bs]
            if len(idx) < 2:
                continue
            xb = _inputs(model, x, idx, device, size)
            if model.encoder is not None and cfg.augment:
                xb = _augment(xb, gen)
            loss = loss_fn(model(xb), *[torch.as_tensor(t[idx], device=device) for t in targets])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def predict(model: Model, x: np.ndarray, size: int | None = None, batch_size: int = 256,
            device: str | None = None) -> np.ndarray:
    """Raw outputs (N, K) of a trained model on features or uint8 images."""
    device = device or default_device()
    model.to(device).eval()
    out = [model(_inputs(model, x, np.arange(s, min(s + batch_size, len(x))), device, size)).float().cpu()
           for s in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def linear_head(in_dim: int, n_classes: int) -> nn.Module:
    """The linear probe / fine-tuning classifier: BatchNorm1d (no affine: standardises features) + Linear."""
    return nn.Sequential(nn.BatchNorm1d(in_dim, affine=False), nn.Linear(in_dim, n_classes))


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits, y.long())


def onehot_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1 and balanced accuracy (scikit-learn)."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred))}


def train_onehot(x_train: np.ndarray, y_train: np.ndarray, n_classes: int, cfg: TrainConfig, seed: int,
                 encoder: nn.Module | None = None, size: int | None = None) -> Model:
    """Linear probe (x = features, encoder None) or fine-tuning (x = uint8 images, encoder trained too)."""
    dim = x_train.shape[1] if encoder is None else encoder.feature_dim
    torch.manual_seed(seed)
    return fit(Model(linear_head(dim, n_classes), encoder), x_train, [y_train], _ce, cfg, seed, size)


# --------------------------------------------------------------------------------------- one-hot task
def condition_task(labels: np.ndarray, label_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The one-hot coral-condition task: tiles with exactly one of healthy / compromised / dead coral;
    returns (tile indices, class 0..2 in CONDITION_CLASSES order)."""
    lower = [str(n).strip().lower() for n in label_names]
    missing = [c for c in CONDITION_CLASSES if c.lower() not in lower]
    if missing:
        raise ValueError(f"label names {list(label_names)} lack {missing}")
    cols = [lower.index(c.lower()) for c in CONDITION_CLASSES]
    sub = np.asarray(labels)[:, cols] > 0.5
    keep = np.flatnonzero(sub.sum(axis=1) == 1)
    return keep, sub[keep].argmax(axis=1)


def label_subset(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a stratified `fraction` of `y`, at least one per class (a learning-curve point)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = max(1, int(round(fraction * len(idx))))
        picked.append(rng.choice(idx, size=k, replace=False))
    return np.sort(np.concatenate(picked))


def onehot_probe_curve(feats: Mapping[str, np.ndarray], y: np.ndarray, photo_ids: np.ndarray,
                       cfg: TransferConfig, n_classes: int | None = None) -> pd.DataFrame:
    """Linear-probe learning curve: per encoder, seed (photo split + subset + init) and label fraction."""
    n_classes = n_classes or int(y.max()) + 1
    rows = []
    for seed in tqdm(cfg.seeds, desc="probe seeds", leave=False):
        tr, te = split_by_photo(photo_ids, cfg.test_fraction, seed)
        for frac in cfg.fractions:
            sub = tr[label_subset(y[tr], frac, seed)]
            for name, z in feats.items():
                model = train_onehot(z[sub], y[sub], n_classes, cfg.probe, seed)
                pred = predict(model, z[te]).argmax(1)
                rows.append({"encoder": name, "protocol": "linear probe", "fraction": frac, "seed": seed,
                             "n_train": len(sub), "n_test": len(te), **onehot_metrics(y[te], pred)})
    return pd.DataFrame(rows)


def onehot_finetune_curve(specs: Mapping[str, Mapping], images: np.ndarray, y: np.ndarray, photo_ids: np.ndarray,
                          cfg: TransferConfig, n_classes: int | None = None) -> pd.DataFrame:
    """Full fine-tuning (encoder + linear head) at `cfg.finetune_fractions` and seeds; same splits as the probe."""
    n_classes = n_classes or int(y.max()) + 1
    rows = []
    jobs = [(s, f, n) for s in cfg.finetune_seeds for f in cfg.finetune_fractions for n in specs]
    for seed, frac, name in tqdm(jobs, desc="fine-tune", leave=False):
        tr, te = split_by_photo(photo_ids, cfg.test_fraction, seed)
        sub = tr[label_subset(y[tr], frac, seed)]
        torch.manual_seed(seed)
        encoder = build_encoder(specs[name]).requires_grad_(True)
        size = getattr(encoder, "input_size", None)
        model = train_onehot(images[sub], y[sub], n_classes, cfg.finetune, seed, encoder, size)
        pred = predict(model, images[te], size, batch_size=64).argmax(1)
        rows.append({"encoder": name, "protocol": "fine-tune", "fraction": frac, "seed": seed,
                     "n_train": len(sub), "n_test": len(te), **onehot_metrics(y[te], pred)})
    return pd.DataFrame(rows)


def majority_baseline(y: np.ndarray, photo_ids: np.ndarray, cfg: TransferConfig) -> pd.DataFrame:
    """Reference: always predict the training split's most frequent class, on the same photo splits."""
    rows = []
    for seed in cfg.seeds:
        tr, te = split_by_photo(photo_ids, cfg.test_fraction, seed)
        pred = np.full(len(te), np.bincount(y[tr]).argmax())
        rows.append({"encoder": "majority class", "protocol": "reference", "fraction": 1.0, "seed": seed,
                     "n_train": len(tr), "n_test": len(te), **onehot_metrics(y[te], pred)})
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, by: Sequence[str] = ("encoder", "protocol", "fraction"),
              metrics: Sequence[str] = ("accuracy", "macro_f1")) -> pd.DataFrame:
    """Mean and standard deviation over seeds (columns `<metric>_mean`, `<metric>_std`, `seeds`)."""
    g = df.groupby(list(by), sort=False)
    out = g[list(metrics)].agg(["mean", "std"])
    out.columns = [f"{m}_{s}" for m, s in out.columns]
    out["seeds"] = g.size()
    return out.reset_index()


# ------------------------------------------------------------------------------------------ HML task
def stack_targets(targets: Mapping[str, tuple[np.ndarray, np.ndarray]], heads: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-head (target, mask) in head order into (N, total nodes) arrays for the HML head."""
    return (np.concatenate([targets[h][0] for h in heads], 1).astype(np.float32),
            np.concatenate([targets[h][1] for h in heads], 1))


def train_hml(x_train: np.ndarray, targets: Mapping[str, tuple[np.ndarray, np.ndarray]], hierarchies: Mapping,
              cfg: TransferConfig, seed: int, encoder: nn.Module | None = None, size: int | None = None,
              train_cfg: TrainConfig | None = None) -> Model:
    """HML head (+ encoder when fine-tuning) trained with the masked MCLoss on every label it has."""
    torch.manual_seed(seed)
    dim = x_train.shape[1] if encoder is None else encoder.feature_dim
    head = hml.HMLHead.from_hierarchies(dim, hierarchies, hidden=cfg.hml_hidden, dropout=cfg.hml_dropout)
    y, m = stack_targets(targets, head.heads)

    def loss(logits, yb, mb):
        return hml.mc_loss(logits, yb, mb, head.mcm)

    return fit(Model(head, encoder), x_train, [y, m], loss, train_cfg or cfg.hml, seed, size)


def hml_probabilities(model: Model, x: np.ndarray, size: int | None = None) -> dict[str, np.ndarray]:
    """Consistent per-node probabilities per head of a trained HML model."""
    logits = torch.from_numpy(predict(model, x, size))
    return {h: p.numpy() for h, p in model.head.split(model.head.probabilities(logits.to(model.head.R.device))).items()}


def subset_targets(targets: Mapping[str, tuple[np.ndarray, np.ndarray]], idx: np.ndarray) -> dict:
    """Rows `idx` of per-head (target, mask)."""
    return {h: (t[idx], m[idx]) for h, (t, m) in targets.items()}


def hml_probe(feats: Mapping[str, np.ndarray], targets: Mapping, hierarchies: Mapping, photo_ids: np.ndarray,
              cfg: TransferConfig) -> pd.DataFrame:
    """Per-head HML metrics of a frozen-feature HML head per encoder and seed (photo splits)."""
    rows = []
    for seed in tqdm(cfg.seeds, desc="HML seeds", leave=False):
        tr, te = split_by_photo(photo_ids, cfg.test_fraction, seed)
        for name, z in feats.items():
            model = train_hml(z[tr], subset_targets(targets, tr), hierarchies, cfg, seed)
            df = hml.evaluate(hml_probabilities(model, z[te]), {h: t[te] for h, (t, _) in targets.items()},
                              {h: m[te] for h, (_, m) in targets.items()}, hierarchies)
            rows.append(df.assign(encoder=name, seed=seed))
    return pd.concat(rows, ignore_index=True)


def hml_prior(targets: Mapping, hierarchies: Mapping, photo_ids: np.ndarray, cfg: TransferConfig) -> pd.DataFrame:
    """The no-image reference of `hml_probe`: every test image gets each node's positive rate among the
    training images that label it (same photo splits), which shows how much of a score the class balance
    alone earns."""
    rows = []
    for seed in cfg.seeds:
        tr, te = split_by_photo(photo_ids, cfg.test_fraction, seed)
        probs = {}
        for h, (t, m) in targets.items():
            rate = hml.positive_rates(t[tr], m[tr])
            rate = (hierarchies[h].ancestor_matrix() * rate[None, :]).max(axis=1)  # consistent, as the head's
            probs[h] = np.tile(rate, (len(te), 1))
        df = hml.evaluate(probs, {h: t[te] for h, (t, _) in targets.items()},
                          {h: m[te] for h, (_, m) in targets.items()}, hierarchies)
        rows.append(df.assign(encoder="prior (no image)", seed=seed))
    return pd.concat(rows, ignore_index=True)


HML_METRICS = ("subset_accuracy", "micro_f1", "macro_f1", "micro_ap", "macro_ap", "mean_depth_reached",
               "mean_label_depth", "full_path_rate", "deeper_than_label_rate")


def hml_summary(df: pd.DataFrame, by: Sequence[str] = ("encoder", "head")) -> pd.DataFrame:
    """Mean and sd over seeds of the per-head HML metrics present in `df`."""
    return summarize(df, by, [m for m in HML_METRICS + ("n_train",) if m in df.columns])


def plot_hml(summary: pd.DataFrame, metrics: Sequence[str] = ("macro_ap", "macro_f1", "mean_depth_reached"),
             by: str = "encoder"):
    """Bars per head of HML metrics (mean +- sd over seeds), one panel per metric, one bar colour per `by`."""
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if f"{m}_mean" in summary.columns]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    heads = list(dict.fromkeys(summary["head"]))
    kinds = list(dict.fromkeys(summary[by]))
    width = 0.8 / max(1, len(kinds))
    for ax, m in zip(axes[0], metrics):
        for k, kind in enumerate(kinds):
            part = summary[summary[by] == kind].set_index("head").reindex(heads)
            ax.bar(np.arange(len(heads)) + k * width, part[f"{m}_mean"], width,
                   yerr=part[f"{m}_std"].fillna(0), capsize=3, label=kind)
        ax.set_xticks(np.arange(len(heads)) + width * (len(kinds) - 1) / 2, heads)
        ax.set_title(m.replace("_", " "))
        ax.grid(alpha=0.3, axis="y")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------- HML checkpoints
def save_hml_model(path: str | os.PathLike, model: Model, encoder_spec: Mapping, hierarchies: Mapping,
                   threshold: float = hml.THRESHOLD, extra: Mapping | None = None,
                   trained_heads: Sequence[str] | None = None) -> Path:
    """Save encoder + HML head in the `benthic-hml/1` format (tensors, numbers, strings, lists, dicts only).
    `trained_heads` names the heads the training data labelled (default: all), so that `annotate` never
    reports an untrained head's output as a prediction."""
    if model.encoder is None:
        raise ValueError("save_hml_model needs the encoder: pass Model(head, encoder)")
    enc = model.encoder
    return torch_save({
        "format": hml.CHECKPOINT_FORMAT,
        "encoder_spec": {k: v for k, v in encoder_spec.items() if k != "checkpoint"},
        "encoder_state": {k: v.cpu() for k, v in enc.state_dict().items()},
        "input_size": int(getattr(enc, "input_size", 0) or 0),
        "mean": [float(v) for v in enc.mean], "std": [float(v) for v in enc.std],
        "head_config": dict(model.head.config),
        "head_state": {k: v.cpu() for k, v in model.head.state_dict().items()},
        "heads": {h: [list(node) for node in hierarchies[h].nodes] for h in model.head.heads},
        "threshold": float(threshold),
        "trained_heads": list(trained_heads) if trained_heads is not None else list(model.head.heads),
        "extra": dict(extra or {}),
    }, path)


def load_hml_model(path: str | os.PathLike) -> tuple[Model, dict, dict]:
    """Load a `benthic-hml/1` checkpoint: (Model(head, encoder) in eval mode, hierarchies, checkpoint dict)."""
    from .catami import Hierarchy

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


def annotate_images(model: Model, hierarchies: Mapping, images: np.ndarray,
                    threshold: float = hml.THRESHOLD) -> list[dict[str, tuple[tuple[str, ...], float]]]:
    """Per image, the decoded CATAMI path and its probability per head (what `annotate` prints)."""
    probs = hml_probabilities(model, images, getattr(model.encoder, "input_size", None))
    decoded = {h: hml.decode(p, hierarchies[h], threshold) for h, p in probs.items()}
    return [{h: decoded[h][i] for h in decoded} for i in range(len(images))]


# ------------------------------------------------------------------------- notebook-level steps
def reef_encoders(images: np.ndarray, cfg: TransferConfig, scale: str, ssl_method: str = "barlow",
                  ssl_checkpoint: str | os.PathLike | None = None) -> dict[str, dict]:
    """The three encoder families compared (SPEC B) as specs: random init, ImageNet-supervised
    (`cfg.imagenet_model`, plus torchvision's ResNet-50 when its weights are in torch hub's cache), and
    in-domain SSL pretrained here on the reef photos' images (no labels used), or the SSL milestone
    `ssl_checkpoint` (e.g. Barlow Twins on BenthicNet-1M from `benthic.ssl`). The random and SSL encoders
    share one architecture and input size (`ssl_size`); the ImageNet models take `image_size`."""
    from .pretrained import available_imagenet_models

    if ssl_checkpoint is not None:
        from .ssl import read_milestone

        if not Path(ssl_checkpoint).is_file():
            raise FileNotFoundError(f"SSL checkpoint {ssl_checkpoint} not found: train one with benthic.ssl "
                                    f"(e.g. `benthic train`) on BenthicNet-1M and pass its milestone file")
        backbone = read_milestone(ssl_checkpoint)["config"]["backbone"]
        ssl = {f"in-domain SSL ({Path(ssl_checkpoint).parent.name})": {
            "kind": "ssl", "backbone": backbone, "checkpoint": str(ssl_checkpoint)}}
    else:
        ssl = {f"in-domain SSL ({ssl_method}, {cfg.ssl_backbone})": pretrain_ssl(images, cfg, scale, ssl_method)}
    return {
        f"random init ({cfg.random_backbone})": {"kind": "random", "backbone": cfg.random_backbone,
                                                  "input_size": cfg.ssl_size},
        **{f"ImageNet ({m})": {"kind": "imagenet", "backbone": f"imagenet:{m}", "input_size": cfg.image_size}
           for m in dict.fromkeys([cfg.imagenet_model] + (["resnet50"] if "resnet50" in available_imagenet_models() else []))},
        **ssl,
    }


def encoder_features(specs: Mapping[str, Mapping], images: np.ndarray, scale: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Cached frozen features of `images` per encoder spec (runs/<scale>/transfer/features-*.npy)."""
    out = {}
    for name, spec in tqdm(specs.items(), desc="features", leave=False):
        key = hashlib.sha1(repr(sorted(spec.items())).encode() + images_key(images).encode()
                           + str(images.shape).encode() + str(seed).encode()).hexdigest()[:12]
        cache = runs_dir(scale) / "transfer" / f"features-{key}.npy"
        torch.manual_seed(seed)
        out[name] = features(build_encoder(spec), images, cache)
    return out


def committed(name: str) -> pd.DataFrame | None:
    """A committed GPU-scale result table results/transfer/<name>.csv, or None when absent; its provenance
    (command, commit, device) is in results/transfer/<name>.json."""
    from .paths import RESULTS_DIR

    path = RESULTS_DIR / "transfer" / f"{name}.csv"
    return pd.read_csv(path) if path.exists() else None


def record(df: pd.DataFrame, name: str, command: str) -> Path:
    """Write a GPU-scale result table to results/transfer/<name>.csv with <name>.json holding the command,
    git commit and device that produced it (what `committed` renders later)."""
    from .io import save_table, write_json
    from .paths import RESULTS_DIR
    from .provenance import provenance

    folder = RESULTS_DIR / "transfer"
    folder.mkdir(parents=True, exist_ok=True)
    save_table(df, folder / name)
    write_json(folder / f"{name}.json", {**provenance(command), "rows": len(df)})
    return folder / f"{name}.csv"


def plot_learning_curves(summary: pd.DataFrame, metric: str = "macro_f1"):
    """Learning curves: `metric` (mean +- sd over seeds) against label fraction, one panel per protocol."""
    import matplotlib.pyplot as plt

    protocols = list(dict.fromkeys(summary["protocol"]))
    fig, axes = plt.subplots(1, len(protocols), figsize=(5 * len(protocols), 3.6), squeeze=False, sharey=True)
    for ax, proto in zip(axes[0], protocols):
        part = summary[summary["protocol"] == proto]
        for enc, g in part.groupby("encoder", sort=False):
            g = g.sort_values("fraction")
            ax.errorbar(100 * g["fraction"], g[f"{metric}_mean"], yerr=g[f"{metric}_std"].fillna(0),
                        marker="o", capsize=3, label=enc)
        ax.set_xscale("log")
        ax.set_xlabel("labels used (% of training tiles)")
        ax.set_title(proto)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric.replace("_", " "))
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def findings(summary: pd.DataFrame, metric: str = "macro_f1") -> list[str]:
    """One sentence per protocol and label fraction extreme: which encoder family led, by how much, and
    whether the gap exceeds the spread over seeds."""
    out = []
    for proto, part in summary.groupby("protocol", sort=False):
        for frac in sorted({part["fraction"].min(), part["fraction"].max()}):
            g = part[part["fraction"] == frac].sort_values(f"{metric}_mean", ascending=False)
            best, second = g.iloc[0], g.iloc[1] if len(g) > 1 else g.iloc[0]
            gap = best[f"{metric}_mean"] - second[f"{metric}_mean"]
            spread = np.nanmax([best[f"{metric}_std"], second[f"{metric}_std"], 0])
            verdict = "larger than" if gap > spread else "within"
            out.append(f"{proto}, {100 * frac:g}% of labels: {best['encoder']} leads with {metric} "
                       f"{best[f'{metric}_mean']:.3f} vs {second['encoder']} {second[f'{metric}_mean']:.3f} "
                       f"(gap {gap:.3f}, {verdict} the seed spread {spread:.3f}; {int(best['seeds'])} seed(s)).")
    return out


def load_benthicnet_hml(csv_path: str | os.PathLike, image_root: str | os.PathLike, size: int,
                        hierarchies: Mapping | None = None) -> tuple[np.ndarray, dict, np.ndarray, pd.DataFrame]:
    """BenthicNet labelled CSV + image root -> (images uint8, per-head targets/masks, split groups
    ('dataset/site', so a site never straddles a split), one row per kept image); images that are missing
    or corrupt are skipped with a warning, and none found raises FileNotFoundError saying what to fetch."""
    from .data.benthicnet import encode_heads, group_labels, load_images, missing_images_message, read_labelled_csv

    if not Path(csv_path).is_file():
        raise FileNotFoundError(f"BenthicNet labelled CSV {csv_path} not found: download the labelled CSV of the "
                                f"BenthicNet release (https://doi.org/10.20383/103.0614) and pass its path")
    labelled = read_labelled_csv(csv_path, hierarchies)
    grouped = group_labels(labelled)
    loaded = load_images(grouped, image_root, size) if Path(image_root).is_dir() else None
    if loaded is None or len(loaded.images) == 0:
        raise FileNotFoundError(missing_images_message(grouped, image_root))
    kept = grouped.iloc[loaded.rows].reset_index(drop=True)
    groups = (kept["dataset"].astype(str) + "/" + kept["site"].astype(str)).to_numpy()
    return loaded.images, encode_heads(kept, hierarchies), groups, kept


def export_hml_model(spec: Mapping, z: np.ndarray, targets: Mapping, hierarchies: Mapping, cfg: TransferConfig,
                     path: str | os.PathLike, seed: int = 0) -> Path:
    """Train the HML head on all labelled features `z` of encoder `spec` (built as `encoder_features` built it)
    and save encoder + head in the `benthic-hml/1` format that `annotate` loads."""
    model = train_hml(z, targets, hierarchies, cfg, seed)
    torch.manual_seed(seed)
    encoder = build_encoder(spec)
    labelled = [h for h in model.head.heads if np.asarray(targets[h][1]).any()]
    return save_hml_model(path, Model(model.head, encoder), spec, hierarchies,
                          extra={"trained_on": int(len(z)), "seed": int(seed)}, trained_heads=labelled)
