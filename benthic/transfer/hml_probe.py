"""Hierarchical multi-label (HML) probes over a label tree: training, probabilities, the no-image prior,
summary tables and plots."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from benthic.data.coral import split_by_photo
from benthic.hierarchy import hml
from benthic.transfer.config import TransferConfig
from benthic.transfer.core import Model, TrainConfig, fit, predict
from benthic.transfer.onehot import seed_summary


# ------------------------------------------------------------------------------------------ HML task
def stack_targets(
    targets: Mapping[str, tuple[np.ndarray, np.ndarray]], heads: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-head (target, mask) in head order into (N, total nodes) arrays for the HML head."""
    return (
        np.concatenate([targets[h][0] for h in heads], 1).astype(np.float32),
        np.concatenate([targets[h][1] for h in heads], 1),
    )


def train_hml(
    x_train: np.ndarray,
    targets: Mapping[str, tuple[np.ndarray, np.ndarray]],
    hierarchies: Mapping,
    cfg: TransferConfig,
    seed: int,
    encoder: nn.Module | None = None,
    size: int | None = None,
    train_cfg: TrainConfig | None = None,
    device: str | None = None,
    losses: list[float] | None = None,
) -> Model:
    """HML head (+ encoder when fine-tuning) trained with the masked MCLoss on every label it has; each batch's
    training loss is appended to `losses` when given (see `loss_curve`)."""
    torch.manual_seed(seed)
    dim = x_train.shape[1] if encoder is None else encoder.feature_dim
    head = hml.HMLHead.from_hierarchies(dim, hierarchies, hidden=cfg.hml_hidden, dropout=cfg.hml_dropout)
    y, m = stack_targets(targets, head.heads)

    def loss(logits, yb, mb):
        value = hml.mc_loss(logits, yb, mb, head.mcm)
        if losses is not None:
            losses.append(float(value.detach()))
        return value

    return fit(Model(head, encoder), x_train, [y, m], loss, train_cfg or cfg.hml, seed, size, device=device)


def loss_curve(losses: Sequence[float], n: int, batch_size: int) -> pd.DataFrame:
    """Per-epoch mean training loss from the per-batch losses of `train_hml` on `n` samples (core.fit's batches:
    size min(batch_size, n), a last batch of one sample skipped)."""
    bs = min(batch_size, n)
    per_epoch = sum(1 for start in range(0, n, bs) if min(bs, n - start) >= 2)
    values = np.asarray(losses, float)
    epochs = len(values) // max(per_epoch, 1)
    means = values[: epochs * per_epoch].reshape(epochs, per_epoch).mean(axis=1) if per_epoch else values[:0]
    return pd.DataFrame({"epoch": np.arange(1, len(means) + 1), "train_loss": means})


def hml_probabilities(
    model: Model, x: np.ndarray, size: int | None = None, device: str | None = None
) -> dict[str, np.ndarray]:
    """Consistent per-node probabilities per head of a trained HML model (computed on `device`, returned on the CPU)."""
    logits = torch.from_numpy(predict(model, x, size, device=device))
    probs = model.head.probabilities(logits.to(model.head.R.device))
    return {h: p.cpu().numpy() for h, p in model.head.split(probs).items()}


def subset_targets(targets: Mapping[str, tuple[np.ndarray, np.ndarray]], idx: np.ndarray) -> dict:
    """Rows `idx` of per-head (target, mask)."""
    return {h: (t[idx], m[idx]) for h, (t, m) in targets.items()}


def hml_probe(
    feats: Mapping[str, np.ndarray],
    targets: Mapping,
    hierarchies: Mapping,
    photo_ids: np.ndarray,
    cfg: TransferConfig,
    partition: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per-head HML metrics of a frozen-feature HML head per encoder and seed (photo splits, or the given
    per-row 'train' / 'test' `partition` for every seed)."""
    rows = []
    for seed in tqdm(cfg.seeds, desc="HML seeds", leave=False):
        tr, te = split_by_photo(photo_ids, cfg.test_fraction, seed, partition)
        for name, z in feats.items():
            model = train_hml(z[tr], subset_targets(targets, tr), hierarchies, cfg, seed)
            df = hml.evaluate(
                hml_probabilities(model, z[te]),
                {h: t[te] for h, (t, _) in targets.items()},
                {h: m[te] for h, (_, m) in targets.items()},
                hierarchies,
            )
            rows.append(df.assign(encoder=name, seed=seed))
    return pd.concat(rows, ignore_index=True)


def prior_rates(train_targets: Mapping, hierarchies: Mapping) -> dict[str, np.ndarray]:
    """Per head, each node's positive rate among the training images that label it, made consistent as the head's
    outputs are (a node never below its descendants): the no-image prior's scores."""
    out = {}
    for h, (t, m) in train_targets.items():
        rate = hml.positive_rates(t, m)
        out[h] = (hierarchies[h].ancestor_matrix() * rate[None, :]).max(axis=1)
    return out


def prior_probabilities(rates: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The prior's probabilities for `n` images: every image gets the rates of `prior_rates`."""
    return {h: np.tile(np.asarray(r, float), (n, 1)) for h, r in rates.items()}


def hml_prior(
    targets: Mapping,
    hierarchies: Mapping,
    photo_ids: np.ndarray,
    cfg: TransferConfig,
    partition: np.ndarray | None = None,
) -> pd.DataFrame:
    """The no-image reference of `hml_probe`: every test image gets each node's positive rate among the
    training images that label it (same photo splits or `partition`), which shows how much of a score the class
    balance alone earns."""
    rows = []
    for seed in cfg.seeds:
        tr, te = split_by_photo(photo_ids, cfg.test_fraction, seed, partition)
        probs = prior_probabilities(prior_rates(subset_targets(targets, tr), hierarchies), len(te))
        df = hml.evaluate(
            probs, {h: t[te] for h, (t, _) in targets.items()}, {h: m[te] for h, (_, m) in targets.items()}, hierarchies
        )
        rows.append(df.assign(encoder="prior (no image)", seed=seed))
    return pd.concat(rows, ignore_index=True)


HML_METRICS = (
    "subset_accuracy",
    "micro_f1",
    "macro_f1",
    "micro_ap",
    "macro_ap",
    "mean_depth_reached",
    "mean_label_depth",
    "full_path_rate",
    "deeper_than_label_rate",
)


def hml_summary(df: pd.DataFrame, by: Sequence[str] = ("encoder", "head")) -> pd.DataFrame:
    """Mean and sd over seeds of the per-head HML metrics present in `df`."""
    return seed_summary(df, by, [m for m in HML_METRICS + ("n_train",) if m in df.columns])


def plot_hml(
    summary: pd.DataFrame, metrics: Sequence[str] = ("macro_ap", "macro_f1", "mean_depth_reached"), by: str = "encoder"
):
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
            ax.bar(
                np.arange(len(heads)) + k * width,
                part[f"{m}_mean"],
                width,
                yerr=part[f"{m}_std"].fillna(0),
                capsize=3,
                label=kind,
            )
        ax.set_xticks(np.arange(len(heads)) + width * (len(kinds) - 1) / 2, heads)
        ax.set_title(m.replace("_", " "))
        ax.grid(alpha=0.3, axis="y")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def load_benthicnet_hml(
    csv_path: str | os.PathLike, image_root: str | os.PathLike, size: int, hierarchies: Mapping | None = None
) -> tuple[np.ndarray, dict, np.ndarray, pd.DataFrame]:
    """BenthicNet labelled CSV + image root -> (images uint8, per-head targets/masks, split groups
    ('dataset/site', so a site never straddles a split), one row per kept image); images that are missing
    or corrupt are skipped with a warning, and none found raises FileNotFoundError saying what to fetch."""
    from benthic.data.benthicnet import (
        encode_heads,
        group_labels,
        load_images,
        missing_images_message,
        read_labelled_csv,
    )

    if not Path(csv_path).is_file():
        raise FileNotFoundError(
            f"BenthicNet labelled CSV {csv_path} not found: download the labelled CSV of the "
            f"BenthicNet release (https://doi.org/10.20383/103.0614) and pass its path"
        )
    labelled = read_labelled_csv(csv_path, hierarchies)
    grouped = group_labels(labelled)
    loaded = load_images(grouped, image_root, size) if Path(image_root).is_dir() else None
    if loaded is None or len(loaded.images) == 0:
        raise FileNotFoundError(missing_images_message(grouped, image_root))
    kept = grouped.iloc[loaded.rows].reset_index(drop=True)
    groups = (kept["dataset"].astype(str) + "/" + kept["site"].astype(str)).to_numpy()
    return loaded.images, encode_heads(kept, hierarchies), groups, kept


def released_partition(rows: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    """BenthicNet's released `partition` of `load_benthicnet_hml`'s rows (per row 'train', 'test', ...) and where
    the split comes from: None, with the fallback named, when the CSV has no such column or it is empty (then
    the notebooks split by site at random per seed, as for the reef photos)."""
    from benthic.data.benthicnet import has_released_partition, train_test_partition

    if not has_released_partition(rows):
        return None, "no released `partition` column: sites split at random per seed (split_by_photo)"
    return train_test_partition(rows)
