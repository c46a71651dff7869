"""Committed result tables of the transfer notebooks: read them, and record new ones with provenance."""

from __future__ import annotations

from pathlib import Path

import pandas as pd



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
