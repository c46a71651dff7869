"""Dimensional collapse read from singular-value spectra: a summary per run and a one-line finding."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benthic.monitoring.tables import pearson


def collapse_summary(
    spectra: pd.DataFrame, group_cols: tuple[str, ...] = ("method", "dataset"), rel: float = 1e-3
) -> pd.DataFrame:
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


def collapse_finding(summary: pd.DataFrame, table: pd.DataFrame) -> str:
    """A data-driven sentence per run on dimensional collapse: effective rank of the spectrum and the
    number of directions above 1e-3 s_1 at the first and last milestone, RankMe and entropy trends."""
    lines = []
    for _, s in summary.iterrows():
        t = table[(table.method == s.method) & (table.dataset == s.dataset)].sort_values("epoch")
        trained = t[t.epoch > 0]
        ent_r = pearson(trained.epoch, trained.entropy)[0] if len(trained) >= 3 else float("nan")
        change = s.eff_rank_last / s.eff_rank_first
        verdict = (
            "its embeddings concentrate in fewer directions during training (towards dimensional collapse)"
            if change < 0.9
            else "its embeddings spread over more directions during training"
            if change > 1.1
            else "its effective dimensionality stays about the same"
        )
        lines.append(
            f"{s.method} ({s.dataset}): effective rank {s.eff_rank_first:.1f} -> {s.eff_rank_last:.1f} "
            f"(x{change:.2f}), {s.dims_above_first} -> {s.dims_above_last} directions above 1e-3 s_1, "
            f"RankMe {t.rankme.iloc[0]:.1f} -> {t.rankme.iloc[-1]:.1f}; entropy vs epoch after init "
            f"r = {ent_r:+.2f}: {verdict}."
        )
    return "\n".join(lines)
