"""The label-free monitoring paper's own numbers (Xu, Lowe & Trappenberg; Tables I and II), as data,
for side-by-side comparison with ours only. These are THE PAPER'S values, never our results.

The paper marks significance (p < 0.05) by colour, which its text does not carry; `paper_long`
derives p from r and the number of points the paper used (two-sided t test), so significance of the
paper's cells near the threshold is approximate (r is rounded to 2 decimals)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

PAPER_METRICS = ("ami_c1_gt", "ami_c1_c2", "s_gt", "s1", "entropy")

# Table I: (method, dataset) -> metric -> (r w/ init, r w/o init)
TABLE_I = {
    ("simsiam", "cifar10"): {
        "ami_c1_gt": (0.97, 0.96),
        "ami_c1_c2": (0.00, -0.21),
        "s_gt": (0.93, 0.97),
        "s1": (0.05, -0.59),
        "entropy": (0.82, 0.92),
    },
    ("simsiam", "cifar100"): {
        "ami_c1_gt": (0.98, 0.98),
        "ami_c1_c2": (-0.62, -0.71),
        "s_gt": (0.94, 0.96),
        "s1": (0.16, -0.57),
        "entropy": (0.86, 0.87),
    },
    ("simclr", "cifar10"): {
        "ami_c1_gt": (0.93, 0.97),
        "ami_c1_c2": (0.71, 0.91),
        "s_gt": (0.89, 0.62),
        "s1": (0.59, -0.07),
        "entropy": (-0.57, -0.83),
    },
    ("simclr", "cifar100"): {
        "ami_c1_gt": (0.93, 0.97),
        "ami_c1_c2": (0.76, 0.90),
        "s_gt": (0.95, 0.91),
        "s1": (0.28, -0.78),
        "entropy": (0.18, -0.20),
    },
    ("mocov2", "cifar10"): {
        "ami_c1_gt": (0.92, 0.95),
        "ami_c1_c2": (0.64, 0.80),
        "s_gt": (0.37, -0.29),
        "s1": (-0.09, -0.78),
        "entropy": (-0.26, -0.62),
    },
    ("mocov2", "cifar100"): {
        "ami_c1_gt": (0.88, 0.91),
        "ami_c1_c2": (0.47, 0.61),
        "s_gt": (0.51, -0.11),
        "s1": (-0.47, -0.85),
        "entropy": (0.60, 0.47),
    },
}
PAPER_EPOCHS = {"simsiam": 800, "simclr": 1000, "mocov2": 800}  # milestones every 20 epochs + init

# Table II: (family, dataset) -> metric -> r
TABLE_II = {
    ("ResNet", "cifar10"): {"ami_c1_gt": 0.86, "ami_c1_c2": 0.83, "s_gt": 0.95, "s1": 0.95, "entropy": -0.19},
    ("ResNet", "cifar100"): {"ami_c1_gt": 0.92, "ami_c1_c2": 0.96, "s_gt": 0.97, "s1": 0.99, "entropy": -0.87},
    ("DenseNet", "cifar10"): {"ami_c1_gt": 0.73, "ami_c1_c2": -0.67, "s_gt": -0.15, "s1": 0.44, "entropy": 0.75},
    ("DenseNet", "cifar100"): {"ami_c1_gt": 0.69, "ami_c1_c2": 0.32, "s_gt": 0.10, "s1": -0.06, "entropy": -0.89},
    ("EfficientNet", "cifar10"): {"ami_c1_gt": 0.80, "ami_c1_c2": 0.38, "s_gt": 0.24, "s1": -0.16, "entropy": -0.85},
    ("EfficientNet", "cifar100"): {"ami_c1_gt": 0.72, "ami_c1_c2": 0.45, "s_gt": 0.83, "s1": -0.12, "entropy": -0.54},
    ("Overall", "cifar10"): {"ami_c1_gt": 0.20, "ami_c1_c2": 0.03, "s_gt": 0.16, "s1": -0.06, "entropy": -0.34},
    ("Overall", "cifar100"): {"ami_c1_gt": 0.38, "ami_c1_c2": 0.23, "s_gt": 0.21, "s1": 0.13, "entropy": -0.52},
}
PAPER_MODELS = {"ResNet": 5, "DenseNet": 4, "EfficientNet": 8, "Overall": 17}


def pearson_p(r: float, n: int) -> float:
    """Two-sided p-value of a Pearson r over n points (t test with n - 2 degrees of freedom)."""
    if n < 3 or not np.isfinite(r):
        return float("nan")
    if abs(r) >= 1:
        return 0.0
    t = r * np.sqrt((n - 2) / (1 - r * r))
    return float(2 * stats.t.sf(abs(t), n - 2))


def paper_long(table: str = "I") -> pd.DataFrame:
    """The paper's Table I or II in long form (group, dataset, metric, init, r, n, p_derived),
    p derived from r and the paper's number of milestones/models. Source column says 'paper'."""
    rows = []
    if table == "I":
        for (method, dataset), metrics in TABLE_I.items():
            n_init = PAPER_EPOCHS[method] // 20 + 1
            for metric, (r_with, r_without) in metrics.items():
                for init, r, n in (("w/ init", r_with, n_init), ("w/o init", r_without, n_init - 1)):
                    rows.append(dict(group=method, dataset=dataset, metric=metric, init=init, r=r, n=n))
    elif table == "II":
        for (family, dataset), metrics in TABLE_II.items():
            for metric, r in metrics.items():
                rows.append(dict(group=family, dataset=dataset, metric=metric, init="-", r=r, n=PAPER_MODELS[family]))
    else:
        raise ValueError(f"table must be 'I' or 'II', got {table!r}")
    df = pd.DataFrame(rows)
    df["p_derived"] = [pearson_p(r, n) for r, n in zip(df.r, df.n)]
    df["source"] = "paper"
    return df
