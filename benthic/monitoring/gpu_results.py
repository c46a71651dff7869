"""The committed results of the gpu run (`benchmarks/gpu_run.sh`) read back for notebooks 01 and 02, at every
scale: kNN per milestone beside the quick run and published reference accuracies, the two linear probes side by
side, the throughput table, and Table I with its agreement with the paper."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from benthic.monitoring.gpu_record import result_paths
from benthic.monitoring.paper_tables import paper_long
from benthic.monitoring.tables import agreement_counts, compare_with_paper, pearson, pearson_table
from benthic.paths import ROOT
from benthic.ssl.evaluate import SSLResults, load_results

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Published CIFAR-10 ResNet-18 accuracies, for sanity, not for matching (longer schedules than the gpu run):
# kNN (k = 200) after 200 epochs at batch 128 from lightly's benchmarks (Susmelj et al. 2020, github.com/lightly-ai/
# lightly), online linear top-1 after 1000 epochs from solo-learn (da Costa et al. 2022, JMLR 23(56), arXiv:2108.01775).
REFERENCE = {
    "simclr": {"knn_200ep_lightly": 0.847, "linear_1000ep_solo_learn": 0.907},
    "mocov2": {"knn_200ep_lightly": 0.838, "linear_1000ep_solo_learn": 0.929},
    "simsiam": {"knn_200ep_lightly": 0.819, "linear_1000ep_solo_learn": 0.905},
}
LP_FAST = "cached-feature probe (logistic regression on frozen features, no augmentation)"
LP_PAPER = "paper-protocol probe (Adam one-cycle, AutoAugment, 20 epochs)"
MISSING = (
    "No committed gpu results ({path}): they come from one GPU window, `benchmarks/gpu_run.sh --out DIR` on an "
    "H100/H200, whose files are then committed under results/."
)


@dataclass
class GPUResults:
    """The gpu run's files: per-milestone SSL results, Table I's inputs (None if absent) and the throughput table."""

    ssl: SSLResults
    monitoring: pd.DataFrame | None
    throughput: pd.DataFrame | None

    def source(self) -> str:
        """Where the numbers come from (file, command, commit, device, date)."""
        return self.ssl.source()

    def last(self) -> pd.DataFrame:
        """Each method's last milestone row."""
        m = self.ssl.milestones
        return m.sort_values("epoch").groupby("method", sort=False).tail(1).set_index("method")


def load_gpu(dataset: str = "cifar10", root: str | os.PathLike = ROOT) -> GPUResults | None:
    """The committed gpu results under `root` (the repository by default), or None when there are none."""
    paths = result_paths(Path(root), "gpu", dataset)
    if not paths["ssl"].exists():
        return None
    ssl = load_results(paths["ssl"])
    numeric = {c: float for c in ("knn_top1", "lp_fast", "lp_paper") if c in ssl.milestones}
    ssl.milestones = ssl.milestones.astype(numeric)
    # notes: "" where a milestone has none (read as text, never as an all-NaN float column)
    monitoring = pd.read_csv(paths["monitoring"], converters={"notes": str}) if paths["monitoring"].exists() else None
    throughput = pd.read_csv(paths["throughput"]) if paths["throughput"].exists() else None
    return GPUResults(ssl, monitoring, throughput)


def knn_beside(gpu: GPUResults, quick: SSLResults | None = None) -> pd.DataFrame:
    """Per method: the gpu run's last milestone (epoch, kNN, both probes), the quick run's last kNN when given, and
    the published reference accuracies."""
    rows = []
    last = gpu.last()
    quick_last = None
    if quick is not None:
        q = quick.milestones
        quick_last = q.sort_values("epoch").groupby("method").tail(1).set_index("method")
    for method, r in last.iterrows():
        row = {"method": method, "gpu_epoch": int(r["epoch"]), "gpu_knn": r["knn_top1"]}
        row |= {"gpu_lp_fast": r.get("lp_fast", np.nan), "gpu_lp_paper": r.get("lp_paper", np.nan)}
        if quick_last is not None and method in quick_last.index:
            row |= {
                "quick_epoch": int(quick_last.loc[method, "epoch"]),
                "quick_knn": quick_last.loc[method, "knn_top1"],
            }
        rows.append(row | REFERENCE.get(method, {}))
    return pd.DataFrame(rows)


def probe_agreement(gpu: GPUResults) -> tuple[pd.DataFrame, dict]:
    """The milestones with both probes: each accuracy and their difference, and a summary over the distinct probed
    networks (the shared init counts once): how many, mean and largest absolute difference, Pearson r."""
    m = gpu.ssl.milestones
    both = m.dropna(subset=["lp_fast", "lp_paper"])[["method", "epoch", "lp_fast", "lp_paper"]].reset_index(drop=True)
    both["paper_minus_fast"] = both["lp_paper"] - both["lp_fast"]
    distinct = both.drop_duplicates(subset=["epoch", "lp_fast", "lp_paper"])
    diff = distinct["paper_minus_fast"].abs()
    r, p, _ = pearson(distinct["lp_fast"], distinct["lp_paper"])
    summary = {
        "networks": int(len(distinct)),
        "mean_abs_diff": float(diff.mean()) if len(diff) else float("nan"),
        "max_abs_diff": float(diff.max()) if len(diff) else float("nan"),
        "pearson_r": r,
        "pearson_p": p,
    }
    return both, summary


def table_i(gpu: GPUResults) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Table I from the gpu run (Pearson r of each metric with the cached-feature probe across milestones, w/ and
    w/o init), its cell-by-cell comparison with the paper, and the agreement counts."""
    if gpu.monitoring is None:
        raise FileNotFoundError("the gpu run's monitoring CSV (results/monitoring/gpu_ssl_<dataset>.csv) is missing")
    long = pearson_table(gpu.monitoring, target="lp_acc")
    comparison = compare_with_paper(long, paper_long("I"))
    return long, comparison, agreement_counts(comparison)


def plot_knn(gpu: GPUResults, quick: SSLResults | None = None) -> Figure:
    """kNN top-1 against epoch per method (one colour each): the gpu run (solid) and the quick run (dashed) when
    given."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    colours: dict[str, str] = {}
    for label, res, style in (("gpu", gpu.ssl, "-"), ("quick", quick, "--")):
        if res is None:
            continue
        for method, t in res.milestones.sort_values("epoch").groupby("method", sort=True):
            colour = colours.setdefault(method, f"C{len(colours)}")
            ax.plot(t["epoch"], t["knn_top1"], style, color=colour, marker="o", ms=3, label=f"{method} ({label})")
    ax.set(xlabel="epoch", ylabel="kNN top-1 (test)", title="kNN per milestone: gpu run beside the quick run")
    ax.legend(fontsize=7)
    return fig
