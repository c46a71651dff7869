"""Statistics of cross-validated scores: ANOVA with Tukey HSD across models, transfer efficiency, a
summary per model and the per-fold plot."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from benthic.transfer.results import summarize

ALPHA = 0.05


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


def efficiency_table(
    scores: pd.DataFrame, scratch: str, reference: str, metric: str = "macro_f1", models: Sequence[str] | None = None
) -> pd.DataFrame:
    """Transfer efficiency of `models` (default: every other model) against `scratch` and `reference` (model
    names in `scores`): per-fold TE (mean, sd over folds with a defined TE) and TE of the fold means, with reasons."""
    pivot = scores.pivot_table(index="fold", columns="model", values=metric)
    for name in (scratch, reference):
        if name not in pivot.columns:
            raise ValueError(f"model {name!r} not in the scores (models: {list(pivot.columns)})")
    rows = []
    for model in models if models is not None else pivot.columns:
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
        rows.append(
            {
                "model": model,
                "scratch": scratch,
                "reference": reference,
                "metric": metric,
                f"{metric}_model": pivot[model].mean(),
                f"{metric}_scratch": pivot[scratch].mean(),
                f"{metric}_reference": pivot[reference].mean(),
                "te_of_means": of_means,
                "te_fold_mean": float(np.nanmean(te)) if skipped < len(te) else float("nan"),
                "te_fold_sd": float(np.nanstd(te, ddof=1)) if len(te) - skipped > 1 else float("nan"),
                "folds_defined": len(te) - skipped,
                "note": "; ".join(reasons),
            }
        )
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
        raise ValueError(
            f"ANOVA needs at least two {by}s with two or more scores each; got "
            f"{ {n: len(d) for n, d in zip(names, data)} }"
        )
    constant = all(np.ptp(d) == 0 for d in data)
    if constant:
        stat, p = float("nan"), float("nan")
    else:
        res = f_oneway(*data)
        stat, p = float(res.statistic), float(res.pvalue)
    n = sum(len(d) for d in data)
    return pd.DataFrame(
        [
            {
                "metric": metric,
                "groups": len(names),
                "n": n,
                "df_between": len(names) - 1,
                "df_within": n - len(names),
                "F": stat,
                "p_value": p,
                "alpha": alpha,
                "significant": bool(p < alpha) if np.isfinite(p) else False,
                "note": "every group constant: F undefined" if constant else "",
            }
        ]
    )


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
            rows.append(
                {
                    "a": names[i],
                    "b": names[j],
                    "mean_diff": float(res.statistic[i, j]),
                    "ci_low": float(ci.low[i, j]),
                    "ci_high": float(ci.high[i, j]),
                    "p_value": p,
                    "significant": bool(p < alpha),
                }
            )
    return pd.DataFrame(rows)


def fold_summary(
    scores: pd.DataFrame, by: str = "model", metrics: Sequence[str] = ("accuracy", "macro_f1")
) -> pd.DataFrame:
    """Mean and sd over folds per group (columns `<metric>_mean`, `<metric>_sd`, `folds`)."""
    return summarize(scores, (by,), metrics, over="folds", spread="sd")


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
