"""Source label schemes -> CATAMI targets: validated translation tables (benthic/hierarchy/tables/), per-image
HML targets and masks from multi-hot labels (BenthicNet's own CSV is already in CATAMI: see
benthic.data.benthicnet.group_labels / encode_heads), and the seeded simulation of research groups that
label to different depths or only some heads (mixed annotation levels: Xu et al., 2024, arXiv:2409.06618;
docs/methods.md#missing-annotation-levels and #label-translation)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benthic.hierarchy.catami import TABLES_DIR, Hierarchy, read_table, split_path

COLUMNS = ("source_label", "source_name", "head", "catami_path", "exact", "note")
Targets = dict[str, tuple[np.ndarray, np.ndarray]]  # head -> (target float32 (N, n), mask bool (N, n))


def _table_path(name_or_path: str | os.PathLike, what: str):
    """A table's file: a bare name (no suffix) means the shipped table <name>.csv of TABLES_DIR
    (benthic/hierarchy/tables/), anything else a file of yours; FileNotFoundError when absent."""
    if isinstance(name_or_path, (str, os.PathLike)):
        path = Path(name_or_path)
        if not path.suffix:
            path = TABLES_DIR / f"{name_or_path}.csv"
    else:
        path = name_or_path  # already a shipped table (an importlib.resources Traversable)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found (see {TABLES_DIR / 'README.md'})")
    return path


def load_translation(name_or_path: str | os.PathLike, hierarchies: Mapping[str, Hierarchy]) -> pd.DataFrame:
    """Read a translation table (a name in benthic/hierarchy/tables/ or a path) and check every row: known head,
    a path that exists in that head's hierarchy, and a note (the reason when the path is empty)."""
    path = _table_path(name_or_path, "translation table")
    df = read_table(path, dtype=str, keep_default_na=False)
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


def translate_multi_hot(
    labels: np.ndarray,
    label_names: Sequence[str],
    table: pd.DataFrame,
    hierarchies: Mapping[str, Hierarchy],
    exhaustive: bool = False,
) -> Targets:
    """HML targets and masks per head for multi-hot source labels (N, K) whose columns are `label_names`.

    Only what the source says is known: present labels make their CATAMI node and its ancestors 1; a node
    whose source labels are all `exact` and absent is 0, with everything below it; every other node
    (siblings included: a scheme about coral says nothing of sponges) stays unknown (mask False).
    `exhaustive=True` is for a scheme whose children partition their parent (its own tree, see
    `load_scheme`): a node whose children are all known absent is then known absent too."""
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
        if exhaustive:
            _close_absent_upwards(target, mask, hier)
        out[head] = (np.where(mask, target, 0).astype(np.float32), mask)
    return out


def _close_absent_upwards(target: np.ndarray, mask: np.ndarray, hier: Hierarchy) -> None:
    """In place, deepest level first: a parent all of whose children are known absent is known absent."""
    for depth in range(int(hier.depth.max()), 1, -1):
        for parent in np.unique(hier.parent[hier.depth == depth]):
            kids = np.flatnonzero(hier.parent == parent)
            absent = (mask[:, kids] & (target[:, kids] < 0.5)).all(axis=1)
            mask[absent, parent] = True


def load_scheme(name_or_path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Hierarchy]]:
    """A source scheme's own label tree (not CATAMI): the table's `head` / `catami_path` columns name the
    scheme's heads and paths, from which the hierarchies are built; returns (validated table, hierarchies)."""
    path = _table_path(name_or_path, "label scheme")
    raw = read_table(path, dtype=str, keep_default_na=False)
    if not {"head", "catami_path"} <= set(raw.columns):
        raise ValueError(f"{path}: a scheme needs the columns {list(COLUMNS)}")
    paths: dict[str, list[tuple[str, ...]]] = {}
    for row, (head, cpath) in enumerate(zip(raw["head"].str.strip(), raw["catami_path"].str.strip()), start=2):
        if head and cpath:
            try:
                paths.setdefault(head, []).append(split_path(cpath))
            except ValueError as err:
                raise ValueError(f"{path}, row {row}, column 'catami_path': {err}") from None
    if not paths:
        raise ValueError(f"{path}: no row names a head and a path")
    hierarchies = {head: Hierarchy(head, p) for head, p in paths.items()}
    return load_translation(path, hierarchies), hierarchies


def load_any(name_or_path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Hierarchy], bool]:
    """(validated table, hierarchies, is_catami) of a table in either form: CATAMI when every head it names is a
    CATAMI head (paths checked against BenthicNet's CATAMI paths), else a scheme's own tree (`load_scheme`)."""
    from benthic.hierarchy.catami import HEADS, load_hierarchies

    raw = read_table(_table_path(name_or_path, "translation table"), dtype=str, keep_default_na=False)
    heads = {h.strip() for h in raw.get("head", pd.Series(dtype=str)) if h.strip()}
    if heads and heads <= set(HEADS):
        hierarchies = load_hierarchies()
        return load_translation(name_or_path, hierarchies), hierarchies, True
    return *load_scheme(name_or_path), False


# ----------------------------------------------------------------------- mixed annotation levels
def default_groups(heads: Sequence[str] = ("biota", "substrate"), shallow_depth: int = 2) -> tuple[dict, ...]:
    """Simulated research groups: one labels every head to full depth, one every head but only
    `shallow_depth` levels deep, and one per head in `heads` labels only that head (to full depth)."""
    return (
        {"name": "full", "heads": None, "max_depth": None},
        {"name": "shallow", "heads": None, "max_depth": shallow_depth},
        *({"name": f"{h} only", "heads": (h,), "max_depth": None} for h in heads),
    )


GROUPS = default_groups()  # CATAMI: full, shallow (2 levels), biota only, substrate only


def restrict(
    targets: Targets,
    hierarchies: Mapping[str, Hierarchy],
    rows: np.ndarray,
    heads: Sequence[str] | None = None,
    max_depth: int | None = None,
) -> Targets:
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


def simulate_groups(
    targets: Targets,
    hierarchies: Mapping[str, Hierarchy],
    groups_of: np.ndarray,
    seed: int,
    groups: Sequence[dict] = GROUPS,
    full_share: float | None = None,
) -> tuple[Targets, np.ndarray]:
    """Assign each unit (e.g. a photo: `groups_of` gives each image's unit) at random to one research group
    of `groups` and degrade its labels accordingly; returns the new targets and each image's group index.
    Units are dealt evenly, or, with `full_share`, that share of them (at least one) goes to the first
    group (the fully labelled one) and the rest are dealt evenly to the others."""
    units = np.unique(groups_of)
    rng = np.random.default_rng(seed)
    if full_share is None:
        order = np.arange(len(units)) % len(groups)
    else:
        if not 0 < full_share < 1 or len(groups) < 2:
            raise ValueError(
                f"full_share must lie in (0, 1) with at least two groups, got {full_share} and {len(groups)} group(s)"
            )
        n_full = min(len(units) - 1, max(1, round(full_share * len(units))))
        order = np.concatenate([np.zeros(n_full, int), 1 + np.arange(len(units) - n_full) % (len(groups) - 1)])
    unit_group = dict(zip(units, rng.permutation(order)))
    group = np.array([unit_group[u] for u in groups_of])
    out = targets
    for g, spec in enumerate(groups):
        rows = np.flatnonzero(group == g)
        out = restrict(out, hierarchies, rows, spec.get("heads"), spec.get("max_depth"))
    return out, group
