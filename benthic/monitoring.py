"""Label-free monitoring of SSL progress (SPEC A): evaluate milestones, tabulate them per run, Pearson
tables against the linear probe (Table I/II), the paper comparison, outlier milestones and spectra for
the figures, and a monitor that logs the label-free metrics while an SSL run trains.

A metric that is undefined on a milestone (a single k-means cluster, collapsed embeddings, too few
samples...) is NaN in the tables with the reason in the `notes` column, never a silent NaN."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from . import io, metrics

METRIC_LABELS = {"ami_c1_gt": "AMI(C1,C_GT)", "ami_c1_c2": "AMI(C1,C2)", "s_gt": "S_GT", "s1": "S1",
                 "entropy": "H(Z3)", "rankme": "RankMe", "alpha_req": "alpha-ReQ"}
LABEL_BASED = ("ami_c1_gt", "s_gt")
LABEL_FREE = ("ami_c1_c2", "s1", "entropy", "rankme", "alpha_req")
ALL_METRICS = ("ami_c1_gt", "ami_c1_c2", "s_gt", "s1", "entropy", "rankme", "alpha_req")
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class MonitorConfig:
    """Evaluation settings of one milestone (paper: 50 neighbours, bin width 0.4; 0.8 and LP lr 0.003
    for supervised ImageNet models). probe: 'fast' (logistic regression on cached features) or
    'paper' (benthic.probe.linear_probe: Adam, one-cycle, AutoAugment, 20 epochs).
    center_z3: UMAP's coordinates have an arbitrary origin, so cosine k-means runs on Z3 minus its
    mean (our choice; the paper does not say); False clusters the raw coordinates.
    umap_seed: None runs umap-learn unseeded and multi-threaded, about 1.8x faster on 2 cores but not
    reproducible (the paper reports UMAP's randomness, so it likely ran this way)."""

    n_neighbors: int = 50
    bin_width: float = 0.4
    seed: int = 0
    silhouette_sample: int | None = metrics.EXACT_SILHOUETTE_MAX
    umap_knn: str = "exact"
    umap_epochs: int | None = None
    umap_seed: int | None = 0
    outlier_threshold: float = 8.0
    center_z3: bool = True
    probe: str = "fast"
    probe_lr: float = 0.08
    knn_k: int = 200
    batch_size: int = 256

    def key(self) -> str:
        """Short hash of the settings (cache file suffix)."""
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


class _Notes(list):
    def run(self, name: str, fn: Callable[[], float]) -> float:
        """fn(), or NaN with `name: reason` noted when the metric is undefined on this input."""
        try:
            return fn()
        except ValueError as exc:
            self.append(f"{name}: {exc}")
            return float("nan")


def _silhouettes(z: np.ndarray, labelings: dict[str, np.ndarray | None], config: MonitorConfig,
                 notes: _Notes) -> dict[str, float]:
    """Silhouettes of the given labelings (S1, S_GT) in one distance pass; NaN with the reason noted for a
    missing or degenerate one."""
    given = {k: v for k, v in labelings.items() if v is not None and len(z) >= 2}
    out = dict.fromkeys(labelings, float("nan"))
    try:
        out.update(zip(given, metrics.silhouettes(z, list(given.values()), config.silhouette_sample, config.seed)))
    except ValueError:  # one labeling is degenerate: score each alone to note which
        for k, v in given.items():
            out[k] = notes.run(k.upper(),
                               lambda v=v: metrics.silhouette(z, v, config.silhouette_sample, config.seed))
    return out


def _embed(encoder, images, mean, std, batch_size, device) -> np.ndarray:
    """benthic.ssl.embed, imported on first use: importing monitoring stays ~1 s instead of ~4 s (lightly)."""
    from .ssl import embed

    return embed(encoder, images, mean=mean, std=std, batch_size=batch_size, device=device)


def evaluate_milestone(source, images: np.ndarray | None = None, labels: np.ndarray | None = None,
                       n_classes: int | None = None, *, lp: bool = False, knn: bool = False,
                       train_images: np.ndarray | None = None, train_labels: np.ndarray | None = None,
                       config: MonitorConfig = MonitorConfig(), mean=None, std=None, device=None,
                       return_arrays: bool = False) -> dict:
    """All label-free metrics of one milestone, plus AMI(C1,C_GT) and S_GT when `labels` are given,
    plus LP / kNN accuracy when asked. `source` is an encoder (then `images` are embedded) or the
    test embeddings Z512 themselves (then `train_images` must be train embeddings for LP/kNN)."""
    t0 = time.perf_counter()
    is_array = isinstance(source, np.ndarray)
    if is_array:
        z = source
    elif images is None:
        raise ValueError("evaluate_milestone needs `images` to embed with the encoder")
    else:
        z = _embed(source, images, mean, std, config.batch_size, device)
    z = np.asarray(z)
    if z.ndim != 2:
        raise ValueError(f"embeddings must be 2-d (samples, features), got shape {z.shape}")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(z),):
            raise ValueError(f"labels have shape {labels.shape}; expected ({len(z)},) to match the embeddings")
    k1 = int(n_classes) if n_classes is not None else (len(np.unique(labels)) if labels is not None else 0)
    if k1 < 1:
        raise ValueError("give n_classes (k-means k1) or labels")
    notes = _Notes()
    labels_all = labels
    finite = np.isfinite(z).all(axis=1)
    if not finite.all():
        notes.append(f"dropped {int((~finite).sum())} of {len(z)} non-finite embedding rows")
        z = z[finite]
        labels = labels[finite] if labels is not None else None
    row: dict = {"n": int(len(z)), "k1": k1, "k2": 2 * k1}
    if len(z) < 3:
        notes.append(f"only {len(z)} finite embedding rows: metrics undefined")
    nan = float("nan")
    z3 = None
    if len(z) >= 2:
        z3 = notes.run("umap", lambda: metrics.umap_3d(z, config.n_neighbors, config.umap_seed, knn=config.umap_knn,
                                                      n_epochs=config.umap_epochs))
        z3 = None if isinstance(z3, float) else z3
    c1 = c2 = None
    if z3 is not None:
        zc = z3 - z3.mean(axis=0) if config.center_z3 else z3
        c1 = notes.run("k-means k1", lambda: metrics.kmeans_cosine(zc, k1, config.seed))
        c2 = notes.run("k-means k2", lambda: metrics.kmeans_cosine(zc, 2 * k1, config.seed))
        c1, c2 = (None if isinstance(c, float) else c for c in (c1, c2))
    row["ami_c1_c2"] = metrics.ami(c1, c2) if c1 is not None and c2 is not None else nan
    sil = _silhouettes(z, {"s1": c1, "s_gt": labels}, config, notes)
    row["s1"] = sil["s1"]
    row["entropy"] = metrics.entropy_3d(z3, config.bin_width) if z3 is not None else nan
    row["n_outliers"] = int(metrics.outlier_mask(z3, config.outlier_threshold).sum()) if z3 is not None else 0
    spectrum = metrics.singular_values(z) if len(z) >= 2 else np.array([])  # centred, computed once
    row["rankme"] = notes.run("RankMe", lambda: metrics.rankme(z)) if len(z) >= 2 else nan
    row["alpha_req"] = notes.run("alpha-ReQ", lambda: metrics.alpha_req(z, s=spectrum)) if len(z) >= 3 else nan
    if labels is not None:
        row["ami_c1_gt"] = metrics.ami(c1, labels) if c1 is not None else nan
        row["s_gt"] = sil["s_gt"]
    if lp or knn:
        row.update(_probes(source, z, images, labels, labels_all, lp, knn, train_images, train_labels, config, mean, std,
                           device))
    row["notes"] = "; ".join(notes)
    row["seconds"] = time.perf_counter() - t0
    if return_arrays:
        row["z3"] = z3
        row["singular_values"] = spectrum
    return row


def _probes(source, z, images, labels, labels_all, lp, knn, train_images, train_labels, config, mean, std, device) -> dict:
    from . import probe

    if labels is None or train_images is None or train_labels is None:
        raise ValueError("LP/kNN accuracy needs labels, train_images and train_labels")
    is_array = isinstance(source, np.ndarray)
    out: dict = {}
    if lp and config.probe == "paper":
        if is_array:
            raise ValueError("the paper's linear probe needs an encoder, not embeddings; use probe='fast'")
        cfg = probe.ProbeConfig(lr=config.probe_lr, seed=config.seed)  # the probe embeds all test images itself
        out["lp_acc"] = probe.linear_probe(source, train_images, train_labels, images, labels_all, cfg,
                                           mean=mean, std=std, device=device)["accuracy"]
    train_z = np.asarray(train_images) if is_array else _embed(source, train_images, mean, std, config.batch_size, device)
    ok = np.isfinite(train_z).all(axis=1)
    if lp and config.probe == "fast":
        with threadpool_limits(1):  # small problem: BLAS threads only contend (10-20x slower on a busy CPU)
            out["lp_acc"] = probe.fast_probe(train_z[ok], np.asarray(train_labels)[ok], z, labels, seed=config.seed)
    elif lp and config.probe != "paper":
        raise ValueError(f"probe must be 'fast' or 'paper', got {config.probe!r}")
    if knn:
        out["knn_acc"] = probe.knn_accuracy(train_z[ok], np.asarray(train_labels)[ok], z, labels, k=config.knn_k)
    return out


def evaluate_run(checkpoints: list[str | Path], images: np.ndarray, labels: np.ndarray | None = None,
                 n_classes: int | None = None, *, meta: dict | None = None, cache_dir: str | Path | None = None,
                 **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every milestone of a run: (table with one row per epoch, spectra in long form
    epoch/rank/singular_value). `meta` columns (method, dataset...) are added to both; kwargs go to
    `evaluate_milestone`. With `cache_dir`, each milestone's row is kept as JSON and reused."""
    from .ssl import load_encoder, milestone_epoch

    meta = dict(meta or {})
    config = kwargs.get("config", MonitorConfig())
    rows, spectra = [], []
    digest = hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()[:8]
    for path in tqdm(list(checkpoints), desc=f"milestones {meta.get('method', '')}".strip(), leave=False):
        epoch = milestone_epoch(path)
        cached = Path(cache_dir) / f"{Path(path).parent.name}-e{epoch:04d}-{config.key()}-{digest}-" \
                                   f"lp{int(kwargs.get('lp', False))}{int(kwargs.get('knn', False))}.json" if cache_dir else None
        if cached is not None and cached.exists():
            row = json.loads(cached.read_text())
        else:
            row = evaluate_milestone(load_encoder(path), images, labels, n_classes, return_arrays=True, **kwargs)
            z3, sv = row.pop("z3"), row.pop("singular_values")
            row["singular_values"] = [float(s) for s in sv]
            row["z3_sample"] = z3[:500].tolist() if z3 is not None else []
            if cached is not None:
                io.write_json(cached, row)
        sv = row.pop("singular_values")
        row.pop("z3_sample", None)
        spectra += [{**meta, "epoch": epoch, "rank": i + 1, "singular_value": s} for i, s in enumerate(sv)]
        rows.append({**meta, "epoch": epoch, **row})
    table = pd.DataFrame(rows)
    first = [*meta, "epoch", "n", "k1", "k2", *ALL_METRICS, "lp_acc", "knn_acc", "n_outliers"]
    order = [c for c in first if c in table] + sorted(c for c in table if c not in first)
    return table[order], pd.DataFrame(spectra)


# --- Pearson tables -----------------------------------------------------------------------------------

def pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, float, str]:
    """(r, p, note) of scipy.stats.pearsonr over the finite pairs; NaN with a note when undefined."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3:
        return float("nan"), float("nan"), f"only {len(x)} finite pairs"
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan"), "constant input"
    res = stats.pearsonr(x, y)
    note = f"{int((~ok).sum())} pair(s) with NaN left out" if not ok.all() else ""
    return float(res.statistic), float(res.pvalue), note


def pearson_table(df: pd.DataFrame, metrics_: tuple[str, ...] = ALL_METRICS, target: str = "lp_acc",
                  group_cols: tuple[str, ...] = ("method", "dataset"), with_init: bool | None = None,
                  epoch_col: str = "epoch", init_epoch: int = 0) -> pd.DataFrame:
    """Long table of Pearson r and p between each metric and `target` across milestones, per group,
    with the init milestone ('w/ init') and without it ('w/o init'); with_init picks one, None both.
    Without an epoch column (pretrained models) there is one correlation per group, init '-'."""
    variants = [("-", None)] if epoch_col not in df else \
        [v for v in (("w/ init", True), ("w/o init", False)) if with_init is None or v[1] == with_init]
    rows = []
    for keys, group in df.groupby(list(group_cols), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for label, keep_init in variants:
            g = group if keep_init in (None, True) else group[group[epoch_col] != init_epoch]
            for m in metrics_:
                if m not in g:
                    continue
                r, p, note = pearson(g[m], g[target])
                rows.append({**dict(zip(group_cols, keys)), "metric": m, "init": label, "r": r, "p": p,
                             "n": int(np.isfinite(g[m].astype(float)).sum()), "significant": bool(p < SIGNIFICANCE),
                             "note": note})
    return pd.DataFrame(rows)


def category(r: float, p: float) -> str:
    """The paper's colour of a cell: 'positive' (black), 'negative' (red), 'n.s.' (grey, p >= 0.05)."""
    if not np.isfinite(r) or not np.isfinite(p) or p >= SIGNIFICANCE:
        return "n.s."
    return "positive" if r > 0 else "negative"


def wide_pearson(long: pd.DataFrame, group_cols: tuple[str, ...] = ("method", "dataset")) -> pd.DataFrame:
    """Table I/II layout for Markdown/CSV: one row per metric, one column per group and init; cells
    'r' when significant, '(r)' when not (grey in the figure), 'n/a' when undefined (see notes)."""
    def cell(r, p):
        if not np.isfinite(r):
            return "n/a"
        return f"{r:.2f}" if category(r, p) != "n.s." else f"({r:.2f})"

    long = long.assign(column=long[list(group_cols) + ["init"]].astype(str).agg(" ".join, axis=1))
    out = long.pivot_table(index="metric", columns="column", values="r", aggfunc="first", sort=False, dropna=False)
    pvals = long.pivot_table(index="metric", columns="column", values="p", aggfunc="first", sort=False, dropna=False)
    table = pd.DataFrame({c: [cell(out.loc[m, c], pvals.loc[m, c]) for m in out.index] for c in out.columns})
    table.insert(0, "metric", [METRIC_LABELS.get(m, m) for m in out.index])
    table.insert(1, "label-free", ["no" if m in LABEL_BASED else "yes" for m in out.index])
    return table


def render_pearson_table(long: pd.DataFrame, group_cols: tuple[str, ...] = ("method", "dataset"),
                         title: str = "", paper: pd.DataFrame | None = None):
    """Figure in the paper's style: grey = not significant (p >= 0.05), black = positive, red = negative.
    With `paper` (same layout), the paper's r is printed small under ours, coloured the same way."""
    import matplotlib.pyplot as plt

    colours = {"positive": "black", "negative": "#c0392b", "n.s.": "#a0a0a0"}
    if paper is not None and "p" not in paper:  # benthic.paper_tables.paper_long layout
        paper = paper.rename(columns={"group": group_cols[0], "p_derived": "p"})
    columns = list(dict.fromkeys(long[list(group_cols) + ["init"]].itertuples(index=False, name=None)))
    metric_order = list(dict.fromkeys(long.metric))
    fig, ax = plt.subplots(figsize=(2.2 + 0.85 * len(columns), 0.9 + 0.5 * len(metric_order)))
    ax.set_xlim(-2.8, len(columns))
    ax.set_ylim(len(metric_order), -1.6)
    ax.axis("off")
    for j, col in enumerate(columns):
        ax.text(j + 0.5, -1.1, "\n".join(str(c) for c in col[:-1]), ha="center", va="center", fontsize=7)
        if col[-1] != "-":
            ax.text(j + 0.5, -0.45, col[-1], ha="center", va="center", fontsize=7, style="italic")
    keys = list(group_cols) + ["init", "metric"]
    ours = {tuple(k): (r, p) for *k, r, p in long[keys + ["r", "p"]].itertuples(index=False)}
    theirs = {} if paper is None else {tuple(k): (r, p) for *k, r, p in paper[keys + ["r", "p"]].itertuples(index=False)}
    for i, m in enumerate(metric_order):
        ax.text(-2.7, i + 0.5, METRIC_LABELS.get(m, m) + ("" if m in LABEL_BASED else "  (label-free)"),
                ha="left", va="center", fontsize=8)
        for j, col in enumerate(columns):
            if (*col, m) in ours:
                r, p = ours[(*col, m)]
                ax.text(j + 0.5, i + 0.4, "n/a" if not np.isfinite(r) else f"{r:.2f}", ha="center", va="center",
                        fontsize=9, color=colours[category(r, p)])
            if (*col, m) in theirs:
                pr, pp = theirs[(*col, m)]
                ax.text(j + 0.5, i + 0.8, f"paper {pr:.2f}", ha="center", va="center", fontsize=6,
                        color=colours[category(pr, pp)])
    ax.axhline(-0.1, color="black", lw=0.6)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def compare_with_paper(ours: pd.DataFrame, paper: pd.DataFrame, group_col: str = "method") -> pd.DataFrame:
    """Cells present in both tables side by side, with agreement of sign, of significance and of the
    paper's colour (sign + significance). `paper` is `benthic.paper_tables.paper_long(...)`."""
    left = ours.rename(columns={group_col: "group"})[["group", "dataset", "metric", "init", "r", "p", "n"]]
    right = paper[["group", "dataset", "metric", "init", "r", "p_derived", "n"]]
    merged = left.merge(right, on=["group", "dataset", "metric", "init"], suffixes=("_ours", "_paper"))
    merged["sign_agree"] = np.sign(merged.r_ours) == np.sign(merged.r_paper)
    sig_ours = merged.p < SIGNIFICANCE
    sig_paper = merged.p_derived < SIGNIFICANCE
    merged["significance_agree"] = sig_ours == sig_paper
    merged["colour_agree"] = [category(a, b) == category(c, d) for a, b, c, d in
                              zip(merged.r_ours, merged.p, merged.r_paper, merged.p_derived)]
    return merged.rename(columns={group_col: "group"})


def agreement_counts(comparison: pd.DataFrame) -> dict:
    """How many compared cells agree in sign, significance and colour, out of how many."""
    return {"cells": int(len(comparison)), "sign": int(comparison.sign_agree.sum()),
            "significance": int(comparison.significance_agree.sum()), "colour": int(comparison.colour_agree.sum())}


# --- figures and findings -------------------------------------------------------------------------

def outlier_milestones(df: pd.DataFrame, min_outliers: int = 1) -> pd.DataFrame:
    """Milestones whose Z3 has outlying points (paper Figs. 2-4, orange): rows with n_outliers >= min."""
    return df[df.n_outliers >= min_outliers]


def plot_entropy_progress(df: pd.DataFrame, group_cols: tuple[str, ...] = ("method", "dataset"),
                          metric: str = "entropy"):
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


def plot_spectra(spectra: pd.DataFrame, group_cols: tuple[str, ...] = ("method", "dataset")):
    """Singular-value spectra s_k / s_1 (log scale) per milestone, one panel per run, colour = epoch:
    a spectrum that drops to ~0 after a few ranks is a dimensional collapse."""
    import matplotlib.pyplot as plt

    groups = list(spectra.groupby(list(group_cols), sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3), squeeze=False, sharey=True)
    cmap = plt.get_cmap("viridis")
    for ax, (keys, g) in zip(axes[0], groups):
        epochs = sorted(g.epoch.unique())
        for e in epochs:
            s = g[g.epoch == e].sort_values("rank").singular_value.to_numpy()
            ax.semilogy(np.arange(1, len(s) + 1), np.maximum(s / s[0], 1e-12), color=cmap(epochs.index(e) / max(1, len(epochs) - 1)),
                        lw=1, label=f"epoch {e}" if e in (epochs[0], epochs[-1]) else None)
        ax.set_title(" ".join(map(str, keys if isinstance(keys, tuple) else (keys,))), fontsize=9)
        ax.set_xlabel("rank k")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("s_k / s_1")
    fig.tight_layout()
    return fig


def collapse_summary(spectra: pd.DataFrame, group_cols: tuple[str, ...] = ("method", "dataset"),
                     rel: float = 1e-3) -> pd.DataFrame:
    """Per run, first vs last milestone: how many singular values exceed `rel` * s_1, and the
    entropy-based effective rank of the spectrum (RankMe formula on centred embeddings)."""
    rows = []
    for keys, g in spectra.groupby(list(group_cols), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        row = dict(zip(group_cols, keys))
        for label, e in (("first", g.epoch.min()), ("last", g.epoch.max())):
            s = g[g.epoch == e].sort_values("rank").singular_value.to_numpy()
            p = s / s.sum() + 1e-7
            row[f"epoch_{label}"] = int(e)
            row[f"dims_above_{label}"] = int((s > rel * s[0]).sum())
            row[f"eff_rank_{label}"] = float(np.exp(-(p * np.log(p)).sum()))
        rows.append(row)
    return pd.DataFrame(rows)


# --- monitoring during training -------------------------------------------------------------------

class MilestoneMonitor:
    """Training callback: `monitor(epoch, encoder)` computes the label-free metrics of the encoder on
    unlabelled `images` (what a user without labels would watch), keeps them in `table` (and in the CSV
    `log_path` when given), and with live=True redraws a small plot in the notebook."""

    def __init__(self, images: np.ndarray, n_classes: int, config: MonitorConfig = MonitorConfig(),
                 live: bool = False, device=None, log_path: str | Path | None = None):
        self.images, self.n_classes, self.config, self.live, self.device = images, n_classes, config, live, device
        self.log_path = log_path
        self.rows: list[dict] = []
        self._handle = None

    def __call__(self, epoch: int, encoder) -> dict:
        row = {"epoch": int(epoch), **evaluate_milestone(encoder, self.images, None, self.n_classes,
                                                         config=self.config, device=self.device)}
        self.rows.append(row)
        if self.log_path is not None:  # rewritten whole after each milestone: a crash loses nothing logged
            with io.atomic_path(self.log_path) as tmp:
                self.table.to_csv(tmp, index=False)
        if self.live:
            self._redraw()
        return row

    def summary(self, row: dict) -> str:
        """One line of a milestone's label-free metrics, for a terminal."""
        return f"epoch {row['epoch']}: " + "  ".join(f"{METRIC_LABELS[m]} {row[m]:.3f}" for m in LABEL_FREE)

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def plot(self):
        """The label-free metrics against epoch, one small panel each."""
        import matplotlib.pyplot as plt

        df = self.table
        fig, axes = plt.subplots(1, len(LABEL_FREE), figsize=(2.6 * len(LABEL_FREE), 2.3))
        for ax, m in zip(axes, LABEL_FREE):
            ax.plot(df.epoch, df[m], "o-", ms=3)
            ax.set_title(METRIC_LABELS[m], fontsize=8)
            ax.set_xlabel("epoch", fontsize=7)
            ax.tick_params(labelsize=6)
        fig.tight_layout()
        return fig

    def _redraw(self) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig = self.plot()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)


def train_with_monitor(config, monitor: MilestoneMonitor, images: np.ndarray | None = None) -> list[Path]:
    """Train an SSL run and call `monitor(epoch, encoder)` as each milestone lands (in memory, through
    train_milestones' on_milestone hook; milestones already on disk are replayed); returns the milestone files."""
    from .ssl import train_milestones

    return train_milestones(config, images, on_milestone=monitor)


# --- experiment drivers for notebooks 02 and 03 ---------------------------------------------------

# test images evaluated per milestone (None = the whole test split) and the probe used, per scale
# (smoke evaluates only the first method, to stay within the notebook tests' time)
SSL_SCALES = {"smoke": {"n_test": 150, "probe": "fast", "max_methods": 1},
              "quick": {"n_test": 2000, "probe": "fast", "max_methods": None},
              "paper": {"n_test": None, "probe": "paper", "max_methods": None}}
# ImageNet models: images embedded at each model's resolution (CPU inference at 224-260 px is slow)
IMAGENET_SCALES = {"smoke": {"n_test": 60, "n_train": 40, "max_models": 1, "probe": "fast"},
                   "quick": {"n_test": 300, "n_train": 300, "max_models": None, "probe": "fast"},
                   "paper": {"n_test": None, "n_train": None, "max_models": None, "probe": "paper"}}
RESULTS_SUBDIR = "monitoring"


def take_stratified(x: np.ndarray, y: np.ndarray, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified subset of n images and labels (all of them when n is None or too large)."""
    from .data.cifar import stratified_subset

    if n is None or n >= len(x):
        return x, y
    idx = stratified_subset(y, n, seed)
    return x[idx], y[idx]


def methods_for(scale: str, methods: str) -> list[str]:
    """The comma-separated SSL methods evaluated at `scale` (smoke keeps the first only)."""
    names = [m.strip() for m in methods.split(",") if m.strip()]
    return names[:SSL_SCALES[scale]["max_methods"]]


def results_paths(dataset: str, kind: str = "ssl") -> tuple[Path, Path]:
    """Committed result files of the paper scale: (per-milestone table CSV, spectra CSV)."""
    from .paths import RESULTS_DIR

    base = RESULTS_DIR / RESULTS_SUBDIR / f"paper_{kind}_{dataset}"
    return base.with_suffix(".csv"), base.with_name(base.name + "_spectra.csv")


def save_results(table: pd.DataFrame, spectra: pd.DataFrame, dataset: str, kind: str = "ssl") -> tuple[Path, Path]:
    """Write paper-scale results with command, commit and device columns into results/monitoring/."""
    from .provenance import provenance

    prov = provenance()
    table_path, spectra_path = results_paths(dataset, kind)
    for df, path in ((table, table_path), (spectra, spectra_path)):
        out = df.assign(command=prov["command"], commit=prov["commit"], device=prov["device"])
        with io.atomic_path(path) as tmp:
            out.to_csv(tmp, index=False)
    return table_path, spectra_path


def load_results(dataset: str, kind: str = "ssl") -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Committed paper-scale results (table, spectra), or None when there are none for `dataset`."""
    table_path, spectra_path = results_paths(dataset, kind)
    if not table_path.exists():
        return None
    table = pd.read_csv(table_path)
    table["notes"] = table["notes"].fillna("")
    spectra = pd.read_csv(spectra_path) if spectra_path.exists() else pd.DataFrame()
    return table, spectra


def monitor_ssl_runs(scale: str, methods: list[str], dataset: str = "cifar10", device=None,
                     use_committed: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Table I data for one dataset: every milestone of every method evaluated (metrics + LP + kNN).
    Paper scale reads committed results/monitoring files when present (else trains and evaluates, and
    writes them). Returns (table, spectra, a sentence saying where the numbers come from)."""
    from .data.cifar import load_cifar
    from .paths import runs_dir
    from .ssl import get_config, train_milestones

    if scale == "paper" and use_committed:
        found = load_results(dataset)
        if found is not None:
            table, spectra = found
            table = table[table.method.isin(methods)]
            spectra = spectra[spectra.method.isin(methods)] if len(spectra) else spectra
            prov = table[["commit", "device"]].drop_duplicates().to_dict("records")
            return table, spectra, f"committed {results_paths(dataset)[0].name} ({prov})"
    settings = SSL_SCALES[scale]
    config = MonitorConfig(probe=settings["probe"])
    test_x, test_y = load_cifar(dataset, "test")
    test_x, test_y = take_stratified(test_x, test_y, settings["n_test"], 0)
    tables, spectra = [], []
    for method in methods:
        ssl_config = get_config(scale, method, dataset=dataset, device=device)
        paths = train_milestones(ssl_config)
        train_x, train_y = load_cifar(dataset, "train")
        train_x, train_y = take_stratified(train_x, train_y, ssl_config.train_subset, ssl_config.seed)
        t, s = evaluate_run(paths, test_x, test_y, int(test_y.max()) + 1, lp=True, knn=True,
                            train_images=train_x, train_labels=train_y, config=config, device=device,
                            meta={"method": method, "dataset": dataset}, cache_dir=runs_dir(scale) / RESULTS_SUBDIR)
        tables.append(t)
        spectra.append(s)
    table, spectra_df = pd.concat(tables, ignore_index=True), pd.concat(spectra, ignore_index=True)
    if scale == "paper":
        save_results(table, spectra_df, dataset)
    return table, spectra_df, f"computed now at scale {scale!r} on {len(test_x)} test images"


def evaluate_imagenet_models(scale: str, dataset: str = "cifar10", models: list[str] | None = None,
                             device=None) -> pd.DataFrame:
    """Table II data: each available ImageNet model as a frozen encoder on CIFAR upscaled to its
    resolution (batch 48), metrics with bin width 0.8 sigma and probe lr 0.003; embeddings cached."""
    from .data.cifar import load_cifar
    from .paths import runs_dir
    from .pretrained import available_imagenet_models, load_imagenet_encoder, model_family

    settings = IMAGENET_SCALES[scale]
    names = models if models is not None else available_imagenet_models()[:settings["max_models"]]
    config = MonitorConfig(bin_width=0.8, probe=settings["probe"], probe_lr=0.003, batch_size=48)
    test_x, test_y = take_stratified(*load_cifar(dataset, "test"), settings["n_test"], 0)
    train_x, train_y = take_stratified(*load_cifar(dataset, "train"), settings["n_train"], 0)
    cache = runs_dir(scale) / RESULTS_SUBDIR / "imagenet"
    rows = []
    for name in tqdm(names, desc="ImageNet models"):
        encoder, size, mean, std = load_imagenet_encoder(name)
        if config.probe == "paper":  # the paper's probe trains on augmented images: embeds them itself
            row = evaluate_milestone(encoder, test_x, test_y, lp=True, knn=True, train_images=train_x,
                                     train_labels=train_y, config=config, device=device)
        else:
            z_test, z_train = (_cached_embeddings(cache, name, dataset, split, x, encoder, config, device)
                               for split, x in (("test", test_x), ("train", train_x)))
            row = evaluate_milestone(z_test, labels=test_y, lp=True, knn=True, train_images=z_train,
                                     train_labels=train_y, config=config)
        rows.append({"model": name, "family": model_family(name), "dataset": dataset, "input_size": size,
                     "feature_dim": encoder.feature_dim, **row})
    return pd.DataFrame(rows)


def _cached_embeddings(cache: Path, name: str, dataset: str, split: str, images: np.ndarray, encoder,
                       config: MonitorConfig, device) -> np.ndarray:
    digest = hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()[:10]
    path = cache / f"{name}-{dataset}-{split}-{len(images)}-{digest}.npy"
    if path.exists():
        return np.load(path)
    z = _embed(encoder, images, None, None, config.batch_size, device)
    io.save_npy(path, z)
    return z


def table_ii(models: pd.DataFrame, metrics_: tuple[str, ...] = ALL_METRICS) -> pd.DataFrame:
    """Pearson r/p of each metric with LP accuracy across models within each family and overall."""
    within = pearson_table(models, metrics_, group_cols=("family", "dataset"), epoch_col="__none__")
    overall = pearson_table(models.assign(family="Overall"), metrics_, group_cols=("family", "dataset"),
                            epoch_col="__none__")
    return pd.concat([within, overall], ignore_index=True)


def available_datasets(scale: str, wanted: str = "auto") -> tuple[list[str], list[str]]:
    """(datasets to use, messages about those left out). 'auto': CIFAR-10, plus CIFAR-100 at the paper
    scale when its files (or committed results) are present; a requested dataset that is missing
    raises FileNotFoundError saying what to fetch."""
    from .data.cifar import load_cifar

    if wanted != "auto":
        return [d.strip() for d in wanted.split(",") if d.strip()], []
    use, left_out = ["cifar10"], []
    if scale == "paper":
        if load_results("cifar100") is not None:
            use.append("cifar100")
        else:
            try:
                load_cifar("cifar100", "test")
                use.append("cifar100")
            except FileNotFoundError as exc:
                left_out.append(f"CIFAR-100 left out: {exc}")
    else:
        left_out.append("CIFAR-100 is evaluated at the paper scale only (pass datasets='cifar10,cifar100' to force)")
    return use, left_out


def collapse_finding(summary: pd.DataFrame, table: pd.DataFrame) -> str:
    """A data-driven sentence per run on dimensional collapse: effective rank of the spectrum and the
    number of directions above 1e-3 s_1 at the first and last milestone, RankMe and entropy trends."""
    lines = []
    for _, s in summary.iterrows():
        t = table[(table.method == s.method) & (table.dataset == s.dataset)].sort_values("epoch")
        trained = t[t.epoch > 0]
        ent_r = pearson(trained.epoch, trained.entropy)[0] if len(trained) >= 3 else float("nan")
        change = s.eff_rank_last / s.eff_rank_first
        verdict = ("its embeddings concentrate in fewer directions during training (towards dimensional collapse)"
                   if change < 0.9 else "its embeddings spread over more directions during training"
                   if change > 1.1 else "its effective dimensionality stays about the same")
        lines.append(f"{s.method} ({s.dataset}): effective rank {s.eff_rank_first:.1f} -> {s.eff_rank_last:.1f} "
                     f"(x{change:.2f}), {s.dims_above_first} -> {s.dims_above_last} directions above 1e-3 s_1, "
                     f"RankMe {t.rankme.iloc[0]:.1f} -> {t.rankme.iloc[-1]:.1f}; entropy vs epoch after init "
                     f"r = {ent_r:+.2f}: {verdict}.")
    return "\n".join(lines)


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
        ax.set(xlabel="LP accuracy" if target == "lp_acc" else target, ylabel=METRIC_LABELS.get(metric, metric), title=d)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def missing_imagenet_models() -> pd.DataFrame:
    """The paper's torchvision models that are not available here, with the file to fetch and where."""
    from .pretrained import TORCHVISION_MODELS, available_imagenet_models, torchvision_weight_file

    have = set(available_imagenet_models())
    return pd.DataFrame([{"model": n, "weight_file": torchvision_weight_file(n).name,
                          "folder": str(torchvision_weight_file(n).parent)} for n in TORCHVISION_MODELS if n not in have])
