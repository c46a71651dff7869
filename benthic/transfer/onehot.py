"""The one-hot task on the reef photos: learning curves over label fractions for the linear probe and
fine-tuning, a majority baseline and the findings in words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from benthic.data.coral import split_by_photo
from benthic.transfer.config import TransferConfig
from benthic.transfer.core import Model, TrainConfig, cross_entropy, fit, linear_head, predict
from benthic.transfer.encoders import build_encoder
from benthic.transfer.results import summarize

CONDITION_CLASSES = ("Healthy coral", "Compromised coral", "Dead coral")


def onehot_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1 and balanced accuracy (scikit-learn)."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
    }


def train_onehot(
    x_train: np.ndarray,
    y_train: np.ndarray,
    n_classes: int,
    cfg: TrainConfig,
    seed: int,
    encoder: nn.Module | None = None,
    size: int | None = None,
) -> Model:
    """Linear probe (x = features, encoder None) or fine-tuning (x = uint8 images, encoder trained too)."""
    dim = x_train.shape[1] if encoder is None else encoder.feature_dim
    torch.manual_seed(seed)
    return fit(Model(linear_head(dim, n_classes), encoder), x_train, [y_train], cross_entropy, cfg, seed, size)


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


def _curve_row(
    name: str, protocol: str, frac: float, seed: int, sub: np.ndarray, y_test: np.ndarray, pred: np.ndarray
) -> dict:
    """One point of a learning curve: who, how, how many labels, and the test scores."""
    return {
        "encoder": name,
        "protocol": protocol,
        "fraction": frac,
        "seed": seed,
        "n_train": len(sub),
        "n_test": len(y_test),
        **onehot_metrics(y_test, pred),
    }


def onehot_probe_curve(
    feats: Mapping[int, Mapping[str, np.ndarray]],
    y: np.ndarray,
    photo_ids: np.ndarray,
    cfg: TransferConfig,
    n_classes: int | None = None,
) -> pd.DataFrame:
    """Linear-probe learning curve: per encoder, seed (photo split + subset + init) and label fraction, on the
    features of that seed's encoders (`feats[seed]`, rows = tiles: benthic.transfer.encoders.split_features)."""
    n_classes = n_classes or int(y.max()) + 1
    rows = []
    for seed in tqdm(cfg.seeds, desc="probe seeds", leave=False):
        tr, te = split_by_photo(photo_ids, cfg.test_fraction, seed)
        for frac in cfg.fractions:
            sub = tr[label_subset(y[tr], frac, seed)]
            for name, z in feats[seed].items():
                model = train_onehot(z[sub], y[sub], n_classes, cfg.probe, seed)
                pred = predict(model, z[te]).argmax(1)
                rows.append(_curve_row(name, "linear probe", frac, seed, sub, y[te], pred))
    return pd.DataFrame(rows)


def onehot_finetune_curve(
    specs: Mapping[int, Mapping[str, Mapping]],
    images: np.ndarray,
    y: np.ndarray,
    photo_ids: np.ndarray,
    cfg: TransferConfig,
    n_classes: int | None = None,
) -> pd.DataFrame:
    """Full fine-tuning (encoder + linear head) at `cfg.finetune_fractions` and seeds, each seed from its own
    encoder specs (`specs[seed]`: benthic.transfer.encoders.reef_encoders); same splits as the probe."""
    n_classes = n_classes or int(y.max()) + 1
    rows = []
    jobs = [(s, f, n) for s in cfg.finetune_seeds for f in cfg.finetune_fractions for n in specs[s]]
    for seed, frac, name in tqdm(jobs, desc="fine-tune", leave=False):
        tr, te = split_by_photo(photo_ids, cfg.test_fraction, seed)
        sub = tr[label_subset(y[tr], frac, seed)]
        torch.manual_seed(seed)
        encoder = build_encoder(specs[seed][name]).requires_grad_(True)
        size = getattr(encoder, "input_size", None)
        model = train_onehot(images[sub], y[sub], n_classes, cfg.finetune, seed, encoder, size)
        pred = predict(model, images[te], size, batch_size=64).argmax(1)
        rows.append(_curve_row(name, "fine-tune", frac, seed, sub, y[te], pred))
    return pd.DataFrame(rows)


def majority_baseline(y: np.ndarray, photo_ids: np.ndarray, cfg: TransferConfig) -> pd.DataFrame:
    """Reference: always predict the training split's most frequent class, on the same photo splits."""
    rows = []
    for seed in cfg.seeds:
        tr, te = split_by_photo(photo_ids, cfg.test_fraction, seed)
        pred = np.full(len(te), np.bincount(y[tr]).argmax())
        rows.append(
            {
                "encoder": "majority class",
                "protocol": "reference",
                "fraction": 1.0,
                "seed": seed,
                "n_train": len(tr),
                "n_test": len(te),
                **onehot_metrics(y[te], pred),
            }
        )
    return pd.DataFrame(rows)


def seed_summary(
    df: pd.DataFrame,
    by: Sequence[str] = ("encoder", "protocol", "fraction"),
    metrics: Sequence[str] = ("accuracy", "macro_f1"),
) -> pd.DataFrame:
    """Mean and standard deviation over seeds (columns `<metric>_mean`, `<metric>_std`, `seeds`)."""
    return summarize(df, by, metrics, over="seeds", spread="std")


def plot_learning_curves(summary: pd.DataFrame, metric: str = "macro_f1"):
    """Learning curves: `metric` (mean +- sd over seeds) against label fraction, one panel per protocol."""
    import matplotlib.pyplot as plt

    protocols = list(dict.fromkeys(summary["protocol"]))
    fig, axes = plt.subplots(1, len(protocols), figsize=(5 * len(protocols), 3.6), squeeze=False, sharey=True)
    for ax, proto in zip(axes[0], protocols):
        part = summary[summary["protocol"] == proto]
        for enc, g in part.groupby("encoder", sort=False):
            g = g.sort_values("fraction")
            ax.errorbar(
                100 * g["fraction"],
                g[f"{metric}_mean"],
                yerr=g[f"{metric}_std"].fillna(0),
                marker="o",
                capsize=3,
                label=enc,
            )
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
            out.append(
                f"{proto}, {100 * frac:g}% of labels: {best['encoder']} leads with {metric} "
                f"{best[f'{metric}_mean']:.3f} vs {second['encoder']} {second[f'{metric}_mean']:.3f} "
                f"(gap {gap:.3f}, {verdict} the seed spread {spread:.3f}; {int(best['seeds'])} seed(s))."
            )
    return out
