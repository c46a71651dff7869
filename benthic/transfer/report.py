"""The evaluation report of a hierarchical classifier, per head: subset accuracy, micro/macro F1, average
precision, depth reached and how often predictions go deeper than the labels, each beside the no-image prior
(every image scored by the training positive rates), so class balance is never mistaken for skill; per-level
scores as a table and a PNG; written as CSV + Markdown."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benthic.hierarchy import hml
from benthic.io import atomic_path, save_figure, save_table, write_text
from benthic.transfer.hml_probe import HML_METRICS, prior_probabilities

MODEL, PRIOR = "model", "prior (no image)"


def report_table(
    probs: Mapping[str, np.ndarray],
    targets: Mapping[str, tuple[np.ndarray, np.ndarray]],
    hierarchies: Mapping,
    rates: Mapping[str, np.ndarray],
    threshold: float = hml.THRESHOLD,
) -> pd.DataFrame:
    """One row per (head, metric) with the model's score, the no-image prior's and their difference, on the images
    that label the head (heads nobody labels here are left out); `rates` from hml_probe.prior_rates."""
    heads = [h for h in probs if h in rates and targets[h][1].any()]
    n = len(next(iter(targets.values()))[0])
    prior = prior_probabilities({h: rates[h] for h in heads}, n)
    rows = []
    for h in heads:
        target, mask = targets[h]
        ours = hml.head_metrics(probs[h], target, mask, hierarchies[h], threshold)
        base = hml.head_metrics(prior[h], target, mask, hierarchies[h], threshold)
        for metric in HML_METRICS:
            if metric in ours:
                rows.append(
                    {"head": h, "images": ours["n"], "metric": metric, MODEL: ours[metric], PRIOR: base[metric]}
                )
    table = pd.DataFrame(rows, columns=["head", "images", "metric", MODEL, PRIOR])
    table["model - prior"] = table[MODEL] - table[PRIOR]
    return table


def _level_scores(probs: np.ndarray, target: np.ndarray, mask: np.ndarray, cols: np.ndarray, threshold: float) -> dict:
    p, t, m = probs[:, cols], target[:, cols], mask[:, cols]
    micro_f1, macro_f1 = hml.masked_f1((p > threshold).astype(int), t, m)
    _, macro_ap = hml.masked_average_precision(p, t, m)
    known = m.sum()
    accuracy = float(((p > threshold) == (t > 0.5))[m].mean()) if known else float("nan")
    return {"accuracy": accuracy, "macro_f1": macro_f1, "macro_ap": macro_ap}


def level_table(
    probs: Mapping[str, np.ndarray],
    targets: Mapping[str, tuple[np.ndarray, np.ndarray]],
    hierarchies: Mapping,
    rates: Mapping[str, np.ndarray],
    threshold: float = hml.THRESHOLD,
) -> pd.DataFrame:
    """Per head and depth level: nodes, known (image, node) labels, accuracy over them, macro F1 and macro AP of
    the model and of the no-image prior."""
    rows = []
    for h in [h for h in probs if h in rates and targets[h][1].any()]:
        target, mask = targets[h]
        prior = np.tile(np.asarray(rates[h], float), (len(target), 1))
        depth = np.asarray(hierarchies[h].depth)
        for level in range(1, int(depth.max()) + 1):
            cols = np.flatnonzero(depth == level)
            if not mask[:, cols].any():
                continue
            ours = _level_scores(probs[h], target, mask, cols, threshold)
            base = _level_scores(prior, target, mask, cols, threshold)
            row = {"head": h, "level": level, "nodes": len(cols), "known labels": int(mask[:, cols].sum())}
            row.update({f"{k} ({MODEL})": v for k, v in ours.items()})
            row.update({f"{k} ({PRIOR})": v for k, v in base.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def plot_levels(levels: pd.DataFrame, metrics: Sequence[str] = ("accuracy", "macro_f1", "macro_ap")):
    """One panel per (head, metric): the model's and the prior's score per depth level."""
    import matplotlib.pyplot as plt

    heads = list(dict.fromkeys(levels["head"]))
    fig, axes = plt.subplots(len(heads), len(metrics), figsize=(3.6 * len(metrics), 2.8 * len(heads)), squeeze=False)
    for r, head in enumerate(heads):
        part = levels[levels["head"] == head]
        for ax, metric in zip(axes[r], metrics):
            x = np.arange(len(part))
            ax.bar(x - 0.2, part[f"{metric} ({MODEL})"], 0.4, label=MODEL)
            ax.bar(x + 0.2, part[f"{metric} ({PRIOR})"], 0.4, label=PRIOR, color="0.6")
            ax.set_xticks(x, [f"level {v}" for v in part["level"]])
            ax.set_ylim(0, 1.05)
            ax.set_title(f"{head}: {metric.replace('_', ' ')}", fontsize=9)
            ax.grid(alpha=0.3, axis="y")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_report(
    folder: str | os.PathLike,
    table: pd.DataFrame,
    levels: pd.DataFrame,
    context: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """Write into `folder` report.csv (per-head metrics beside the prior), levels.csv/.md and levels.png/.pdf (per
    level), and report.md: both tables with the `context` lines (data, split, encoder) and the `notes` (what was
    left out and why)."""
    import matplotlib.pyplot as plt

    folder = Path(folder)
    with atomic_path(folder / "report.csv") as tmp:
        table.to_csv(tmp, index=False)
    save_table(levels, folder / "levels")
    fig = plot_levels(levels)
    save_figure(fig, folder / "levels")
    plt.close(fig)
    text = ["# Evaluation report", "", *[f"- {c}" for c in context], ""]
    text += [
        "Every figure stands beside the no-image prior, which scores each image by the training positive rate of",
        "each node: what class balance alone earns. Read `model - prior`, not the model's figure alone.",
        "",
        table.to_markdown(index=False, floatfmt=".3f"),
        "",
        "## Per level",
        "",
        levels.to_markdown(index=False, floatfmt=".3f"),
        "",
        "![per-level scores](levels.png)",
        "",
    ]
    if notes:
        text += ["## Left out or masked", "", *[f"- {n}" for n in notes], ""]
    write_text(folder / "report.md", "\n".join(text))
    return {"csv": folder / "report.csv", "md": folder / "report.md", "png": folder / "levels.png"}
