"""Pearson tables of the metrics against linear-probe accuracy (Tables I and II), the comparison with
the paper's values, and the milestones that are outliers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from benthic.monitoring.config import ALL_METRICS, LABEL_BASED, METRIC_LABELS, SIGNIFICANCE
from benthic.monitoring.paper_tables import pearson_p


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


def pearson_table(
    df: pd.DataFrame,
    metrics_: tuple[str, ...] = ALL_METRICS,
    target: str = "lp_acc",
    group_cols: tuple[str, ...] = ("method", "dataset"),
    with_init: bool | None = None,
    epoch_col: str = "epoch",
    init_epoch: int = 0,
) -> pd.DataFrame:
    """Long table of Pearson r and p between each metric and `target` across milestones, per group,
    with the init milestone ('w/ init') and without it ('w/o init'); with_init picks one, None both.
    Without an epoch column (pretrained models) there is one correlation per group, init '-'."""
    variants = (
        [("-", None)]
        if epoch_col not in df
        else [v for v in (("w/ init", True), ("w/o init", False)) if with_init is None or v[1] == with_init]
    )
    rows = []
    for keys, group in df.groupby(list(group_cols), sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        for label, keep_init in variants:
            g = group if keep_init in (None, True) else group[group[epoch_col] != init_epoch]
            for m in metrics_:
                if m not in g:
                    continue
                r, p, note = pearson(g[m], g[target])
                rows.append(
                    {
                        **dict(zip(group_cols, keys)),
                        "metric": m,
                        "init": label,
                        "r": r,
                        "p": p,
                        "n": int(np.isfinite(g[m].astype(float)).sum()),
                        "significant": bool(p < SIGNIFICANCE),
                        "note": note,
                    }
                )
    return pd.DataFrame(rows)


def seed_pearson_table(
    df: pd.DataFrame,
    metrics_: tuple[str, ...] = ALL_METRICS,
    target: str = "lp_acc",
    group_cols: tuple[str, ...] = ("method", "dataset"),
    seed_col: str = "seed",
) -> pd.DataFrame:
    """`pearson_table` per training seed, combined per cell: r is the seeds' mean in Fisher z (tanh of the mean
    arctanh), p that mean's p at one run's n (comparable with a single run's and the paper's), with the seeds'
    lowest and highest r and `sign_stable` (every seed's r defined and of the same sign). One seed gives
    `pearson_table`'s r and p."""
    df = df if seed_col in df else df.assign(**{seed_col: 0})
    per_seed = pearson_table(df, metrics_, target, (*group_cols, seed_col))
    n_seeds = df[seed_col].nunique()
    rows = []
    for keys, g in per_seed.groupby([*group_cols, "metric", "init"], sort=False):
        r = g["r"].to_numpy(float)
        finite = r[np.isfinite(r)]
        mean = float(np.tanh(np.arctanh(np.clip(finite, -1 + 1e-12, 1 - 1e-12)).mean())) if len(finite) else np.nan
        n = int(np.median(g["n"]))
        p = pearson_p(mean, n)
        stable = len(finite) == n_seeds and (np.all(finite > 0) or np.all(finite < 0))
        notes = sorted({x for x in g["note"] if x})
        rows.append(
            {
                **dict(zip([*group_cols, "metric", "init"], keys)),
                "r": mean,
                "p": p,
                "n": n,
                "significant": bool(p < SIGNIFICANCE),
                "seeds": len(finite),
                "r_min": float(finite.min()) if len(finite) else np.nan,
                "r_max": float(finite.max()) if len(finite) else np.nan,
                "sign_stable": bool(stable),
                "note": "; ".join(notes),
            }
        )
    return pd.DataFrame(rows)


def _seeded(long: pd.DataFrame) -> bool:
    """True for a `seed_pearson_table` over more than one seed (its cells carry a range and a sign check)."""
    return "r_min" in long and long["seeds"].max() > 1


def category(r: float, p: float) -> str:
    """The paper's colour of a cell: 'positive' (black), 'negative' (red), 'n.s.' (grey, p >= 0.05)."""
    if not np.isfinite(r) or not np.isfinite(p) or p >= SIGNIFICANCE:
        return "n.s."
    return "positive" if r > 0 else "negative"


def wide_pearson(long: pd.DataFrame, group_cols: tuple[str, ...] = ("method", "dataset")) -> pd.DataFrame:
    """Table I/II layout for Markdown/CSV: one row per metric, one column per group and init; cells
    'r' when significant, '(r)' when not (grey in the figure), 'n/a' when undefined (see notes). From
    `seed_pearson_table` with several seeds: the seeds' range follows in brackets, and a dagger marks a cell whose
    sign the seeds do not share."""
    seeded = _seeded(long)

    def cell(row):
        if not np.isfinite(row.r):
            return "n/a"
        text = f"{row.r:.2f}" if category(row.r, row.p) != "n.s." else f"({row.r:.2f})"
        if seeded:
            text += f" [{row.r_min:.2f}, {row.r_max:.2f}]" + ("" if row.sign_stable else " †")
        return text

    long = long.assign(column=long[list(group_cols) + ["init"]].astype(str).agg(" ".join, axis=1))
    long = long.assign(cell=[cell(row) for row in long.itertuples(index=False)])
    out = long.pivot_table(index="metric", columns="column", values="cell", aggfunc="first", sort=False)
    metrics_order = list(dict.fromkeys(long.metric))
    table = out.reindex(index=metrics_order, columns=list(dict.fromkeys(long.column)))
    table = table.reset_index(drop=True).rename_axis(columns=None).fillna("n/a")
    table.insert(0, "metric", [METRIC_LABELS.get(m, m) for m in metrics_order])
    table.insert(1, "label-free", ["no" if m in LABEL_BASED else "yes" for m in metrics_order])
    return table


def render_pearson_table(
    long: pd.DataFrame,
    group_cols: tuple[str, ...] = ("method", "dataset"),
    title: str = "",
    paper: pd.DataFrame | None = None,
):
    """Figure in the paper's style: grey = not significant (p >= 0.05), black = positive, red = negative.
    With `paper` (same layout), the paper's r is printed small under ours, coloured the same way. From
    `seed_pearson_table` with several seeds, the seeds' range is printed under r, and a dagger marks a cell whose
    sign the seeds do not share."""
    import matplotlib.pyplot as plt

    colours = {"positive": "black", "negative": "#c0392b", "n.s.": "#a0a0a0"}
    if paper is not None and "p" not in paper:  # benthic.monitoring.paper_tables.paper_long layout
        paper = paper.rename(columns={"group": group_cols[0], "p_derived": "p"})
    columns = list(dict.fromkeys(long[list(group_cols) + ["init"]].itertuples(index=False, name=None)))
    metric_order = list(dict.fromkeys(long.metric))
    seeded = _seeded(long)
    fig, ax = plt.subplots(figsize=(2.2 + 0.85 * len(columns), 0.9 + (0.65 if seeded else 0.5) * len(metric_order)))
    ax.set_xlim(-2.8, len(columns))
    ax.set_ylim(len(metric_order), -1.6)
    ax.axis("off")
    for j, col in enumerate(columns):
        ax.text(j + 0.5, -1.1, "\n".join(str(c) for c in col[:-1]), ha="center", va="center", fontsize=7)
        if col[-1] != "-":
            ax.text(j + 0.5, -0.45, col[-1], ha="center", va="center", fontsize=7, style="italic")
    keys = list(group_cols) + ["init", "metric"]
    ours = {tuple(k): (r, p) for *k, r, p in long[keys + ["r", "p"]].itertuples(index=False)}
    spread = (
        {
            tuple(k): (lo, hi, ok)
            for *k, lo, hi, ok in long[keys + ["r_min", "r_max", "sign_stable"]].itertuples(index=False)
        }
        if seeded
        else {}
    )
    theirs = (
        {} if paper is None else {tuple(k): (r, p) for *k, r, p in paper[keys + ["r", "p"]].itertuples(index=False)}
    )
    for i, m in enumerate(metric_order):
        ax.text(
            -2.7,
            i + 0.5,
            METRIC_LABELS.get(m, m) + ("" if m in LABEL_BASED else "  (label-free)"),
            ha="left",
            va="center",
            fontsize=8,
        )
        for j, col in enumerate(columns):
            if (*col, m) in ours:
                r, p = ours[(*col, m)]
                lo, hi, stable = spread.get((*col, m), (np.nan, np.nan, True))
                ax.text(
                    j + 0.5,
                    i + (0.3 if seeded else 0.4),
                    "n/a" if not np.isfinite(r) else f"{r:.2f}" + ("" if stable else "\u2020"),
                    ha="center",
                    va="center",
                    fontsize=9,
                    color=colours[category(r, p)],
                )
                if seeded and np.isfinite(lo):
                    ax.text(
                        j + 0.5, i + 0.6, f"{lo:.2f} .. {hi:.2f}", ha="center", va="center", fontsize=6, color="#555555"
                    )
            if (*col, m) in theirs:
                pr, pp = theirs[(*col, m)]
                ax.text(
                    j + 0.5,
                    i + (0.87 if seeded else 0.8),
                    f"paper {pr:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color=colours[category(pr, pp)],
                )
    ax.axhline(-0.1, color="black", lw=0.6)
    if seeded:
        seeds = int(long["seeds"].max())
        title += f"\n{seeds} training seeds: Fisher-z mean r, the seeds' range beneath; \u2020 the seeds disagree on the sign"
    if title:
        ax.set_title(title.strip(), fontsize=9)
    fig.tight_layout()
    return fig


def compare_with_paper(ours: pd.DataFrame, paper: pd.DataFrame, group_col: str = "method") -> pd.DataFrame:
    """Cells present in both tables side by side, with agreement of sign, of significance and of the
    paper's colour (sign + significance). `paper` is `benthic.monitoring.paper_tables.paper_long(...)`; a
    `sign_stable` column of ours (`seed_pearson_table`) comes along."""
    keep = ["group", "dataset", "metric", "init", "r", "p", "n", *(["sign_stable"] if "sign_stable" in ours else [])]
    left = ours.rename(columns={group_col: "group"})[keep]
    right = paper[["group", "dataset", "metric", "init", "r", "p_derived", "n"]]
    merged = left.merge(right, on=["group", "dataset", "metric", "init"], suffixes=("_ours", "_paper"))
    merged["sign_agree"] = np.sign(merged.r_ours) == np.sign(merged.r_paper)
    sig_ours = merged.p < SIGNIFICANCE
    sig_paper = merged.p_derived < SIGNIFICANCE
    merged["significance_agree"] = sig_ours == sig_paper
    merged["colour_agree"] = [
        category(a, b) == category(c, d)
        for a, b, c, d in zip(merged.r_ours, merged.p, merged.r_paper, merged.p_derived)
    ]
    return merged.rename(columns={group_col: "group"})


def agreement_counts(comparison: pd.DataFrame, stable_only: bool = False) -> dict:
    """How many compared cells agree in sign, significance and colour, out of how many; `stable_only`: over the
    cells whose sign every training seed shares (`seed_pearson_table`'s `sign_stable`)."""
    if stable_only:
        comparison = comparison[comparison["sign_stable"].astype(bool)]
    return {
        "cells": int(len(comparison)),
        "sign": int(comparison.sign_agree.sum()),
        "significance": int(comparison.significance_agree.sum()),
        "colour": int(comparison.colour_agree.sum()),
    }


def outlier_milestones(df: pd.DataFrame, min_outliers: int = 1) -> pd.DataFrame:
    """Milestones whose Z3 has outlying points (paper Figs. 2-4, orange): rows with n_outliers >= min."""
    return df[df.n_outliers >= min_outliers]


PAPER_FAMILIES = ("ResNet", "DenseNet", "EfficientNet")  # the torchvision families of the paper's Table II


def table_ii(models: pd.DataFrame, metrics_: tuple[str, ...] = ALL_METRICS) -> pd.DataFrame:
    """Pearson r/p of each metric with LP accuracy across models within each family (other families, such as
    EfficientNet-Lite, in their own rows) and "Overall" across the paper's families only, as in the paper; when
    none of the paper's models is here, the Overall cells are NaN with a note saying so."""
    within = pearson_table(models, metrics_, group_cols=("family", "dataset"), epoch_col="__none__")
    paper_models = models[models.family.isin(PAPER_FAMILIES)]
    if len(paper_models):
        overall = pearson_table(
            paper_models.assign(family="Overall"), metrics_, group_cols=("family", "dataset"), epoch_col="__none__"
        )
        return pd.concat([within, overall], ignore_index=True)
    note = "none of the paper's torchvision models (ResNet, DenseNet, EfficientNet) is available here"
    overall = within.drop_duplicates(["dataset", "metric"]).assign(
        family="Overall", r=float("nan"), p=float("nan"), n=0, significant=False, note=note
    )
    return pd.concat([within, overall], ignore_index=True)
