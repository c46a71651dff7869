"""Figures of the monitoring: entropy over epochs, singular-value spectra, and metrics of ImageNet models."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benthic.monitoring.config import METRIC_LABELS
from benthic.monitoring.tables import outlier_milestones


def plot_entropy_progress(
    df: pd.DataFrame, group_cols: tuple[str, ...] = ("method", "dataset"), metric: str = "entropy"
):
    """Entropy (or another metric) against epoch, one panel per run; outlier milestones in orange."""
    import matplotlib.pyplot as plt

    groups = list(df.groupby(list(group_cols), sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3), squeeze=False)
    for ax, (keys, g) in zip(axes[0], groups):
        g = g.sort_values("epoch")
        ax.plot(g.epoch, g[metric], "o-", color="tab:blue", ms=4, label="milestone")
        out = outlier_milestones(g)
        if len(out):
            ax.plot(out.epoch, out[metric], "o", color="tab:orange", ms=7, label="outliers in Z3")
        ax.set_title(" ".join(map(str, keys if isinstance(keys, tuple) else (keys,))), fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_spectra(spectra: pd.DataFrame, group_cols: tuple[str, ...] = ("method", "dataset"), column: str | None = None):
    """Singular-value spectra s_k / s_1 (log scale) per milestone, one panel per run (one row per run and
    one column per value of `column`, e.g. 'space', when given), colour = epoch: a spectrum that drops to
    ~0 after a few ranks is a dimensional collapse."""
    import matplotlib.pyplot as plt

    runs = list(dict.fromkeys(spectra[list(group_cols)].itertuples(index=False, name=None)))
    cols = list(dict.fromkeys(spectra[column])) if column else [None]
    fig, axes = plt.subplots(
        len(runs) if column else 1,
        len(cols) if column else len(runs),
        figsize=(3.6 * (len(cols) if column else len(runs)), 3 * (len(runs) if column else 1)),
        squeeze=False,
        sharey=True,
    )
    cmap = plt.get_cmap("viridis")
    panels = []
    for i, run in enumerate(runs):
        in_run = spectra[(spectra[list(group_cols)] == pd.Series(run, index=list(group_cols))).all(axis=1)]
        for j, c in enumerate(cols):
            g = in_run if c is None else in_run[in_run[column] == c]
            ax = axes[i, j] if column else axes[0, i]
            panels.append((ax, run + (() if c is None else (c,)), g))
    for ax, keys, g in panels:
        if g.empty:
            ax.axis("off")
            continue
        epochs = sorted(g.epoch.unique())
        for e in epochs:
            s = g[g.epoch == e].sort_values("rank").singular_value.to_numpy()
            ax.semilogy(
                np.arange(1, len(s) + 1),
                np.maximum(s / s[0], 1e-12),
                color=cmap(epochs.index(e) / max(1, len(epochs) - 1)),
                lw=1,
                label=f"epoch {e}" if e in (epochs[0], epochs[-1]) else None,
            )
        ax.set_title(" ".join(map(str, keys)), fontsize=9)
        ax.set_xlabel("rank k")
        ax.legend(fontsize=7)
    for row in axes:
        row[0].set_ylabel("s_k / s_1")
    fig.tight_layout()
    return fig


def plot_models(models: pd.DataFrame, metric: str = "entropy", target: str = "lp_acc"):
    """Paper Figs. 5-6: a metric against LP accuracy across pretrained models, coloured by family,
    one panel per dataset, each point labelled with its model."""
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(models.dataset))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        sub = models[models.dataset == d]
        for family, g in sub.groupby("family", sort=False):
            ax.scatter(g[target], g[metric], label=family, s=30)
            for _, r in g.iterrows():
                ax.annotate(r.model, (r[target], r[metric]), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set(
            xlabel="LP accuracy" if target == "lp_acc" else target, ylabel=METRIC_LABELS.get(metric, metric), title=d
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
