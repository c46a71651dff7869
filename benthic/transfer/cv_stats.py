"""Statistics of cross-validated scores. The folds are shared by the models, so the comparison is paired:
Friedman's test (scipy) with paired post-hoc t-tests corrected by Holm; beside it, the outline's one-way
ANOVA with Tukey HSD, which ignore the pairing (Tukey pairs count only after a significant ANOVA). Transfer
efficiency with a bootstrap interval over folds; a summary per model and the per-fold plot."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from benthic.transfer.results import holm, summarize

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


def _fold_pivot(scores: pd.DataFrame, metric: str, names: Sequence[str], by: str = "model") -> pd.DataFrame:
    """Scores as a fold x model table over the folds every named model has (the pairing), checking names."""
    pivot = scores.pivot_table(index="fold", columns=by, values=metric)
    for name in names:
        if name not in pivot.columns:
            raise ValueError(f"{by} {name!r} not in the scores ({by}s: {list(pivot.columns)})")
    return pivot[list(names)].dropna()


def bootstrap_folds(n_folds: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_folds) fold indices drawn with replacement (seeded): one paired resample of the folds per row."""
    return np.random.default_rng(seed).integers(0, n_folds, size=(n_boot, n_folds))


def efficiency_table(
    scores: pd.DataFrame,
    scratch: str,
    reference: str,
    metric: str = "macro_f1",
    models: Sequence[str] | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Transfer efficiency of `models` (default: every other model) against `scratch` and `reference`: TE of
    the fold means with a percentile bootstrap interval over folds (folds resampled with replacement, the same
    folds for the three models). TE is NaN, with the reason, when the bootstrap interval of its denominator
    (reference minus scratch) includes 0: the ratio is then unstable (a denominator near 0 blows it up)."""
    others = [m for m in (models if models is not None else scores["model"].unique()) if m not in (scratch, reference)]
    pivot = _fold_pivot(scores, metric, [scratch, reference, *others])
    idx = bootstrap_folds(len(pivot), n_boot, seed)
    tail = (1 - level) / 2 * 100
    s_boot, r_boot = pivot[scratch].to_numpy()[idx].mean(1), pivot[reference].to_numpy()[idx].mean(1)
    gap_low, gap_high = np.percentile(r_boot - s_boot, [tail, 100 - tail])
    gap_reason = (
        f"the {level:.0%} bootstrap interval of reference - scratch [{gap_low:.3g}, {gap_high:.3g}] includes 0"
        if gap_low <= 0 <= gap_high
        else ""
    )
    rows = []
    for model in others:
        te, reason = transfer_efficiency(pivot[model].mean(), pivot[scratch].mean(), pivot[reference].mean())
        low = high = float("nan")
        if not gap_reason:  # the denominator's interval excludes 0; a rare resample at exactly 0 gives +-inf
            with np.errstate(divide="ignore", invalid="ignore"):
                te_boot = (pivot[model].to_numpy()[idx].mean(1) - s_boot) / (r_boot - s_boot)
            low, high = np.percentile(te_boot, [tail, 100 - tail])
        reason = gap_reason or reason
        rows.append(
            {
                "model": model,
                "scratch": scratch,
                "reference": reference,
                "metric": metric,
                f"{metric}_model": pivot[model].mean(),
                f"{metric}_scratch": pivot[scratch].mean(),
                f"{metric}_reference": pivot[reference].mean(),
                "te": float("nan") if reason else te,
                "te_ci_low": float("nan") if reason else float(low),
                "te_ci_high": float("nan") if reason else float(high),
                "gap_ci_low": float(gap_low),
                "gap_ci_high": float(gap_high),
                "folds": len(pivot),
                "n_boot": n_boot,
                "note": reason,
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


def friedman(scores: pd.DataFrame, metric: str = "macro_f1", by: str = "model", alpha: float = ALPHA) -> pd.DataFrame:
    """Friedman's rank test of `metric` across `by` groups with folds as blocks (scipy.stats.friedmanchisquare):
    the paired counterpart of the one-way ANOVA, since every model is scored on the same folds. One row."""
    from scipy.stats import friedmanchisquare

    names = list(dict.fromkeys(scores[by]))
    if len(names) < 3:
        raise ValueError(f"Friedman's test needs at least three {by}s, got {names}; use paired_tests for two")
    pivot = _fold_pivot(scores, metric, names, by)
    res = friedmanchisquare(*(pivot[n].to_numpy() for n in names))
    p = float(res.pvalue)
    return pd.DataFrame(
        [
            {
                "metric": metric,
                "groups": len(names),
                "blocks": len(pivot),
                "chi2": float(res.statistic),
                "p_value": p,
                "alpha": alpha,
                "significant": bool(p < alpha) if np.isfinite(p) else False,
                "note": "" if np.isfinite(p) else "ranks constant across folds: statistic undefined",
            }
        ]
    )


def paired_tests(
    scores: pd.DataFrame, metric: str = "macro_f1", by: str = "model", alpha: float = ALPHA
) -> pd.DataFrame:
    """Paired two-sided t-test (scipy.stats.ttest_rel) for every pair of `by` groups over the shared folds,
    p-values Holm-corrected over the pairs: mean difference a - b, t, raw and Holm p, significant (Holm p <
    alpha). A t-test rather than Wilcoxon's: with 5 folds Wilcoxon's smallest two-sided p is 0.0625."""
    from scipy.stats import ttest_rel

    names = list(dict.fromkeys(scores[by]))
    pivot = _fold_pivot(scores, metric, names, by)
    rows = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = pivot[names[i]].to_numpy(), pivot[names[j]].to_numpy()
            res = ttest_rel(a, b)
            rows.append(
                {
                    "a": names[i],
                    "b": names[j],
                    "mean_diff": float((a - b).mean()),
                    "t": float(res.statistic),
                    "p_value": float(res.pvalue),
                    "folds": len(a),
                }
            )
    table = pd.DataFrame(rows)
    finite = np.isfinite(table["p_value"])
    table["p_holm"] = np.nan
    table.loc[finite, "p_holm"] = holm(table.loc[finite, "p_value"])
    table["significant"] = table["p_holm"] < alpha
    table["correction"] = f"Holm over {int(finite.sum())} pairs"
    return table


def tukey(scores: pd.DataFrame, metric: str = "macro_f1", by: str = "model", alpha: float = ALPHA) -> pd.DataFrame:
    """Tukey HSD for every pair of `by` groups (scipy.stats.tukey_hsd): mean difference a - b, its
    (1 - alpha) confidence interval and adjusted p-value. It treats the folds as independent samples (it
    ignores the pairing); a pair is `significant` only when p < alpha AND the one-way ANOVA is significant."""
    from scipy.stats import tukey_hsd

    names, data = _groups(scores, metric, by)
    res = tukey_hsd(*data)
    ci = res.confidence_interval(1 - alpha)
    anova_ok = bool(anova(scores, metric, by, alpha).loc[0, "significant"])
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
                    "anova_significant": anova_ok,
                    "significant": bool(p < alpha) and anova_ok,
                    "note": "ignores the pairing of folds",
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
