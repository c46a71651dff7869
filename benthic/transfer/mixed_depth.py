"""The mixed-annotation-depth experiment (Xu et al., 2024, arXiv:2409.06618; docs/methods.md#mixed-depth-experiment):
training photos dealt to simulated research groups that label to different depths or only some heads
(benthic.hierarchy.translate.simulate_groups); an HML head trained on all of it with masking is compared, on the same
fully labelled test photos, with the fully labelled group alone, the naive reading of missing labels as negatives, and
every photo fully labelled; paired gaps over seeds say whether masking on every group beat the fully labelled group
alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from benthic.data.coral import split_by_photo
from benthic.hierarchy import hml
from benthic.transfer.config import TransferConfig
from benthic.transfer.hml_probe import hml_probabilities, subset_targets, train_hml

MIXED_ARMS = (
    "all groups (masked)",
    "fully labelled group only",
    "all groups (missing = negative)",
    "every image fully labelled (upper bound)",
)


def mixed_depth_experiment(
    z: np.ndarray,
    targets: Mapping,
    hierarchies: Mapping,
    photo_ids: np.ndarray,
    cfg: TransferConfig,
    groups: Sequence[dict] | None = None,
    full_shares: Sequence[float | None] | None = None,
    partition: np.ndarray | None = None,
) -> pd.DataFrame:
    """Training split relabelled by simulated research groups (translate.simulate_groups, by photo; the fully
    labelled group holds each share in `full_shares` of the photos, default `cfg.mixed_full_shares`; None:
    groups of equal size), for each seed in `cfg.mixed_seeds`. The HML head is trained on (a) everything
    with masking, (b) the fully labelled group only, (c) everything with missing labels read as negatives
    (the naive way) and (d) everything fully labelled (the upper bound, one run per seed repeated in each
    share's rows); all are evaluated on the same full-label test set. `groups`: translate.GROUPS (CATAMI); `partition`: a
    per-row 'train' / 'test' split used for every seed instead of photo splits."""
    from benthic.hierarchy.translate import GROUPS, simulate_groups

    groups = GROUPS if groups is None else groups
    full_shares = cfg.mixed_full_shares if full_shares is None else full_shares
    rows = []
    for seed in tqdm(cfg.mixed_seeds, desc="mixed depth", leave=False):
        tr, te = split_by_photo(photo_ids, cfg.test_fraction, seed, partition)
        truth = ({h: t[te] for h, (t, _) in targets.items()}, {h: m[te] for h, (_, m) in targets.items()})

        def run(idx, tg):
            model = train_hml(z[idx], tg, hierarchies, cfg, seed)
            return hml.evaluate(hml_probabilities(model, z[te]), *truth, hierarchies).assign(
                seed=seed, n_train=len(idx)
            )

        upper = run(tr, subset_targets(targets, tr)).assign(arm=MIXED_ARMS[3])
        for share in full_shares:
            sim, group = simulate_groups(
                subset_targets(targets, tr), hierarchies, np.asarray(photo_ids)[tr], seed, groups, share
            )
            full = np.flatnonzero(group == 0)
            naive = {h: (t, np.ones_like(m)) for h, (t, m) in sim.items()}
            arms = {
                MIXED_ARMS[0]: (tr, sim),
                MIXED_ARMS[1]: (tr[full], subset_targets(sim, full)),
                MIXED_ARMS[2]: (tr, naive),
            }
            info = {
                "full_share": 1 / len(groups) if share is None else share,
                "groups": ", ".join(f"{g['name']}: {(group == i).sum()}" for i, g in enumerate(groups)),
            }
            rows += [run(idx, tg).assign(arm=arm, **info) for arm, (idx, tg) in arms.items()]
            rows.append(upper.assign(full_share=info["full_share"], groups="every training photo fully labelled"))
    return pd.concat(rows, ignore_index=True)


def arm_gaps(runs: pd.DataFrame, metric: str = "macro_f1") -> pd.DataFrame:
    """Paired comparison of masked training on every group against the fully labelled group alone, per
    share and head: the per-seed gap in `metric` (both arms share each seed's split), its mean and sd, the
    seeds won, the one-sided paired t-test p-value (scipy) that the gap is positive, and that p Holm-corrected
    over every share and head of the metric (`p_holm`: the family the notebook reads its verdicts from)."""
    from scipy import stats

    from benthic.transfer.results import holm

    keys = [k for k in ("full_share", "head") if k in runs.columns]
    wide = runs.pivot_table(index=keys + ["seed"], columns="arm", values=metric)
    gap = (wide[MIXED_ARMS[0]] - wide[MIXED_ARMS[1]]).dropna().groupby(level=keys, sort=False)
    p = gap.apply(
        lambda d: stats.ttest_1samp(d, 0, alternative="greater").pvalue if len(d) > 1 and d.std() > 0 else float("nan")
    )
    tested = p.notna()
    p_holm = pd.Series(np.nan, index=p.index)
    p_holm[tested] = holm(p[tested].to_numpy())
    return pd.DataFrame(
        {
            "metric": metric,
            "gap_mean": gap.mean(),
            "gap_std": gap.std(),
            "seeds_won": gap.apply(lambda d: int((d > 0).sum())),
            "seeds": gap.size(),
            "p_one_sided": p,
            "p_holm": p_holm,
            "correction": f"Holm over {int(tested.sum())} tests",
        }
    ).reset_index()


def compare_arms(runs: pd.DataFrame, metric: str = "macro_f1", alpha: float = 0.05) -> list[str]:
    """One sentence per head (and share of fully labelled photos) from `arm_gaps`: whether training on every
    group (masked) beat the fully labelled group alone on `metric`, in how many seeds, and whether the
    paired gap is significant at `alpha` after Holm's correction over the shares and heads."""
    out = []
    for r in arm_gaps(runs, metric).itertuples():
        share = f" ({r.full_share:.0%} of training photos fully labelled)" if hasattr(r, "full_share") else ""
        verdict = "beat" if r.gap_mean > 0 else "did not beat"
        test = (
            "one seed only, no test"
            if r.seeds < 2
            else f"one-sided paired t-test, Holm-corrected p = {r.p_holm:.3f}, "
            + ("significant" if r.p_holm < alpha else "not significant")
            + f" at {alpha}"
        )
        out.append(
            f"{r.head}{share}, {metric.replace('_', ' ')}: training on every group (masked) {verdict} the "
            f"fully labelled group alone by {r.gap_mean:+.3f} ± {np.nan_to_num(r.gap_std):.3f} (paired over "
            f"seeds), in {r.seeds_won} of {r.seeds} seeds ({test})."
        )
    return out


def plot_mixed_depth(summary: pd.DataFrame, metrics: Sequence[str] = ("macro_f1", "macro_ap", "subset_accuracy")):
    """Per head (rows) and metric (columns): mean +- sd over seeds against the share of training photos
    that are fully labelled, one line per arm."""
    import matplotlib.pyplot as plt

    heads = list(dict.fromkeys(summary["head"]))
    fig, axes = plt.subplots(
        len(heads), len(metrics), figsize=(4.6 * len(metrics), 3.3 * len(heads)), squeeze=False, sharex=True
    )
    styles = dict(zip(MIXED_ARMS, ("o-", "s--", "x:", "-")))
    for r, head in enumerate(heads):
        for c, m in enumerate(metrics):
            ax = axes[r][c]
            for arm in MIXED_ARMS:
                part = summary[(summary["head"] == head) & (summary["arm"] == arm)].sort_values("full_share")
                if len(part):
                    ax.errorbar(
                        part["full_share"],
                        part[f"{m}_mean"],
                        yerr=part[f"{m}_std"].fillna(0),
                        fmt=styles[arm],
                        capsize=3,
                        label=arm,
                        color="grey" if arm == MIXED_ARMS[3] else None,
                    )
            ax.set_title(f"{head}: {m.replace('_', ' ')}")
            ax.grid(alpha=0.3)
            ax.set_xticks(sorted(summary["full_share"].unique()))
            ax.xaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0, decimals=0))
            if r == len(heads) - 1:
                ax.set_xlabel("share of training photos fully labelled")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig
