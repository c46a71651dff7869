"""Source label schemes -> CATAMI targets: validated translation tables (data/translations/), per-image
HML targets and masks from multi-hot labels (BenthicNet's own CSV is already in CATAMI: see
benthic.data.benthicnet.group_labels / encode_heads), and the seeded simulation of research groups that
label to different depths or only some heads (SPEC B: mixed annotation levels)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .catami import Hierarchy
from .paths import DATA_DIR

TRANSLATIONS_DIR = DATA_DIR / "translations"
COLUMNS = ("source_label", "source_name", "head", "catami_path", "exact", "note")
Targets = dict[str, tuple[np.ndarray, np.ndarray]]  # head -> (target float32 (N, n), mask bool (N, n))


def load_translation(name_or_path: str | os.PathLike, hierarchies: Mapping[str, Hierarchy]) -> pd.DataFrame:
    """Read a translation table (a name in data/translations/ or a path) and check every row: known head,
    a path that exists in that head's hierarchy, and a note (the reason when the path is empty)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = TRANSLATIONS_DIR / f"{name_or_path}.csv"
    if not path.exists():
        raise FileNotFoundError(f"translation table {path} not found (see {TRANSLATIONS_DIR / 'README.md'})")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {list(COLUMNS)}")
    exact = []
    for row, rec in enumerate(df.itertuples(index=False), start=2):
        where = f"{path}, row {row}"
        head, cpath = rec.head.strip(), rec.catami_path.strip()
        if not rec.note.strip():
            raise ValueError(f"{where}, column 'note': a note is required (the reason when there is no path)")
        if rec.exact.strip().lower() not in ("true", "false"):
            raise ValueError(f"{where}, column 'exact': {rec.exact!r} is not true/false")
        if bool(head) != bool(cpath):
            raise ValueError(f"{where}: 'head' and 'catami_path' must both be set or both be empty")
        if head:
            if head not in hierarchies:
                raise ValueError(f"{where}, column 'head': {head!r} is not one of {list(hierarchies)}")
            if cpath not in hierarchies[head]:
                raise ValueError(f"{where}, column 'catami_path': {cpath!r} is not a node of the {head} hierarchy")
        exact.append(rec.exact.strip().lower() == "true" and bool(head))
    df["exact"] = exact
    df["head"] = df["head"].str.strip()
    df["catami_path"] = df["catami_path"].str.strip()
    return df


def translate_multi_hot(labels: np.ndarray, label_names: Sequence[str], table: pd.DataFrame,
                        hierarchies: Mapping[str, Hierarchy]) -> Targets:
    """HML targets and masks per head for multi-hot source labels (N, K) whose columns are `label_names`.

    Only what the source says is known: present labels make their CATAMI node and its ancestors 1; a node
    whose source labels are all `exact` and absent is 0, with everything below it; every other node
    (siblings included: a scheme about coral says nothing of sponges) stays unknown (mask False)."""
    labels = np.asarray(labels) > 0.5
    col = {str(n).strip().lower(): i for i, n in enumerate(label_names)}
    unknown = [n for n in table["source_name"] if n.strip().lower() not in col]
    if unknown:
        raise ValueError(f"translation table names {unknown} that are not among the data's labels {list(label_names)}")
    mapped = table[table["head"] != ""]
    out: Targets = {}
    for head, hier in hierarchies.items():
        R = hier.ancestor_matrix() > 0
        target = np.zeros((len(labels), len(hier)), np.float32)
        mask = np.zeros((len(labels), len(hier)), bool)
        for cpath, group in mapped[mapped["head"] == head].groupby("catami_path"):
            node = hier.index[hier.resolve(cpath)]
            present = labels[:, [col[s.strip().lower()] for s in group["source_name"]]].any(axis=1)
            target[np.ix_(present, R[:, node])] = 1.0  # the node and its ancestors
            mask[np.ix_(present, R[:, node])] = True
            if group["exact"].all():
                mask[np.ix_(~present, R[node])] = True  # the node and its descendants, known absent
        out[head] = (np.where(mask, target, 0).astype(np.float32), mask)
    return out


# ----------------------------------------------------------------------- mixed annotation levels
GROUPS = (
    {"name": "full", "heads": None, "max_depth": None},      # every head to the depth of the label
    {"name": "shallow", "heads": None, "max_depth": 2},      # every head, but only two levels deep
    {"name": "biota only", "heads": ("biota",), "max_depth": None},
    {"name": "substrate only", "heads": ("substrate",), "max_depth": None},
)


def restrict(targets: Targets, hierarchies: Mapping[str, Hierarchy], rows: np.ndarray,
             heads: Sequence[str] | None = None, max_depth: int | None = None) -> Targets:
    """Copy of `targets` where `rows` keep only `heads` (others unlabelled) and nodes no deeper than
    `max_depth` (deeper nodes unknown, as if the annotator had stopped there)."""
    out: Targets = {}
    for head, (target, mask) in targets.items():
        mask = mask.copy()
        if heads is not None and head not in heads:
            mask[rows] = False
        elif max_depth is not None:
            deep = hierarchies[head].depth > max_depth
            mask[np.ix_(rows, np.flatnonzero(deep))] = False
        out[head] = (np.where(mask, target, 0).astype(np.float32), mask)
    return out


def simulate_groups(targets: Targets, hierarchies: Mapping[str, Hierarchy], groups_of: np.ndarray,
                    seed: int, groups: Sequence[dict] = GROUPS) -> tuple[Targets, np.ndarray]:
    """Assign each unit (e.g. a photo: `groups_of` gives each image's unit) at random to one research group
    of `groups` and degrade its labels accordingly; returns the new targets and each image's group index."""
    units = np.unique(groups_of)
    rng = np.random.default_rng(seed)
    unit_group = dict(zip(units, rng.permutation(np.arange(len(units)) % len(groups))))
    group = np.array([unit_group[u] for u in groups_of])
    out = targets
    for g, spec in enumerate(groups):
        rows = np.flatnonzero(group == g)
        out = restrict(out, hierarchies, rows, spec.get("heads"), spec.get("max_depth"))
    return out, group
