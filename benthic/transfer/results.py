"""Result tables of the transfer notebooks: the mean and spread over repeated runs, Holm's correction for a
family of tests, the committed GPU-scale tables, and recording new ones with provenance."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def summarize(
    df: pd.DataFrame, by: Sequence[str], metrics: Sequence[str], over: str = "seeds", spread: str = "std"
) -> pd.DataFrame:
    """Mean and sample standard deviation of `metrics` per group of `by` over repeated runs (seeds or folds):
    columns `<metric>_mean`, `<metric>_<spread>` and `over` (the number of runs in the group)."""
    g = df.groupby(list(by), sort=False)
    out = g[list(metrics)].agg(["mean", "std"])
    out.columns = [f"{m}_{spread if s == 'std' else s}" for m, s in out.columns]
    out[over] = g.size()
    return out.reset_index()


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm, 1979): the i-th smallest of m times (m - i + 1), made
    non-decreasing in that order and capped at 1; reject where the adjusted p < alpha (family-wise error alpha)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = stepped
    return out


def committed(name: str) -> pd.DataFrame | None:
    """A committed GPU-scale result table results/transfer/<name>.csv, or None when absent; its provenance
    (command, commit, device) is in results/transfer/<name>.json."""
    from benthic.paths import RESULTS_DIR

    path = RESULTS_DIR / "transfer" / f"{name}.csv"
    return pd.read_csv(path) if path.exists() else None


def record(df: pd.DataFrame, name: str, command: str) -> Path:
    """Write a GPU-scale result table to results/transfer/<name>.csv with <name>.json holding the command,
    git commit and device that produced it (what `committed` renders later)."""
    from benthic.io import save_table, write_json
    from benthic.paths import RESULTS_DIR
    from benthic.provenance import provenance

    folder = RESULTS_DIR / "transfer"
    folder.mkdir(parents=True, exist_ok=True)
    save_table(df, folder / name)
    write_json(folder / f"{name}.json", {**provenance(command), "rows": len(df)})
    return folder / f"{name}.csv"
