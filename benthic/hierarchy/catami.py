"""CATAMI hierarchies (biota, substrate, relief, bedforms) and the per-node targets and masks that
hierarchical multi-label training needs, built from BenthicNet's probe paths or the CATAMI v1.4 CAAB table."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from benthic.io import read_csv

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

HEADS = ("biota", "substrate", "relief", "bedforms")
# Runtime tables ship inside the package (package data, see tables/PROVENANCE.txt); read them through
# importlib.resources so that an installed (non-editable, even zipped) package finds them too.
TABLES_DIR = files("benthic.hierarchy") / "tables"
PATHS_CSV = TABLES_DIR / "benthicnet_probes_catami_paths.csv"
CAAB_CSV = TABLES_DIR / "catami-caab-codes_1.4.csv"

_HEAD_TAG = re.compile(r"^\s*\[([A-Za-z_ ]+)\]\s*$")
_SEPARATOR = re.compile(r"\s+>\s+")
# Older spellings used by BenthicNet's earlier probe listing (catami_ex.csv) -> the finalized paths.
_ALIASES = {("Biota", "Sea spiders"): ("Biota", "Sea spider")}
_MOVED_UNDER_BIOTA = {"Bioturbation"}  # a root beside Biota in the older listing, under Biota in the final one
# The known error in the published CATAMI v1.4 table: Seagrasses' children point at a code that does not exist.
CAAB_PARENT_FIXES = {63600902: (80000901, 63600901), 63600903: (80000901, 63600901)}
# CAAB roots per head: the node whose subtree forms the head ("Physical" is dropped as a grouping level).
CAAB_HEAD_ROOTS = {"biota": "Biota", "substrate": "Substrate", "relief": "Relief", "bedforms": "Bedforms"}


def _split(text: str) -> tuple[str | None, tuple[str, ...]]:
    """Split a CATAMI path into (lower-case head tag or None, names)."""
    parts = [p.strip() for p in _SEPARATOR.split(str(text).strip())]
    head = None
    if parts and (m := _HEAD_TAG.match(parts[0])):
        head = m.group(1).strip().lower()
        parts = parts[1:]
    if not parts or any(not p or p.startswith(">") or p.endswith(">") for p in parts):
        raise ValueError(f"malformed CATAMI path {text!r}: expected '[HEAD] > A > B' or 'A > B'")
    return head, tuple(parts)


def split_path(text: str) -> tuple[str, ...]:
    """Names of a CATAMI path with any `[HEAD]` tag dropped: '[SUBSTRATE] > Substrate > X' -> ('Substrate', 'X')."""
    return _split(text)[1]


def _is_missing(value: object) -> bool:
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


class Hierarchy:
    """One CATAMI head as a forest of paths: every prefix of every path is a node, parents before children."""

    def __init__(self, head: str, paths: Iterable[tuple[str, ...]]):
        self.head = head
        nodes: list[tuple[str, ...]] = []
        index: dict[tuple[str, ...], int] = {}
        for path in paths:
            for k in range(1, len(path) + 1):
                prefix = tuple(path[:k])
                if prefix not in index:
                    index[prefix] = len(nodes)
                    nodes.append(prefix)
        if not nodes:
            raise ValueError(f"CATAMI head {head!r} has no paths")
        self.nodes = nodes
        self.index = index
        self.parent = np.array([index[p[:-1]] if len(p) > 1 else -1 for p in nodes], dtype=np.int64)
        self.depth = np.array([len(p) for p in nodes], dtype=np.int64)
        self.names = [" > ".join(p) for p in nodes]

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        return f"Hierarchy(head={self.head!r}, nodes={len(self)}, max_depth={int(self.depth.max())})"

    def resolve(self, path: str | tuple[str, ...]) -> tuple[str, ...] | None:
        """The node tuple a path names (accepting the older listing's spellings), or None when unknown."""
        if isinstance(path, str):
            head, names = _split(path)
            if head is not None and head != self.head:
                return None
        elif isinstance(path, (tuple, list)):
            names = tuple(path)
        else:
            raise ValueError(f"CATAMI path must be a string or a tuple of names, got {path!r}")
        names = _ALIASES.get(names, names)
        if names in self.index:
            return names
        if self.head == "biota" and names[0] in _MOVED_UNDER_BIOTA and ("Biota",) + names in self.index:
            return ("Biota",) + names
        return None

    def __contains__(self, path: object) -> bool:
        try:
            return self.resolve(path) is not None  # type: ignore[arg-type]
        except ValueError:
            return False

    def ancestor_matrix(self) -> np.ndarray:
        """R (n, n) float32 with R[i, j] = 1 iff node j is node i or a descendant of i (C-HMCNN's R)."""
        n = len(self)
        R = np.eye(n, dtype=np.float32)
        for j in range(n):
            a = self.parent[j]
            while a >= 0:
                R[a, j] = 1.0
                a = self.parent[a]
        return R

    def encode(self, paths: Iterable[str | tuple[str, ...]] | str | float | None) -> tuple[np.ndarray, np.ndarray]:
        """Per-node target (float32) and mask (bool) for one image's labelled paths in this head.

        Target 1 on each labelled node and its ancestors; mask False below the deepest labelled node(s)
        (unless positive through another path) and on every node when the head is unlabelled."""
        n = len(self)
        target = np.zeros(n, dtype=np.float32)
        if paths is None or isinstance(paths, (str, float)):
            paths = [] if _is_missing(paths) else [paths]  # type: ignore[list-item]
        labelled = []
        for path in paths:
            if _is_missing(path):
                continue
            node = self.resolve(path)
            if node is None:
                raise ValueError(f"unknown CATAMI path {path!r} for head {self.head!r}")
            labelled.append(self.index[node])
        if not labelled:
            return target, np.zeros(n, dtype=bool)
        R = self._R()
        positive = R[:, labelled].any(axis=1)  # the labelled nodes and all their ancestors
        target[positive] = 1.0
        deepest = [i for i in labelled if R[i, positive].sum() == 1]  # no positive node below it
        below = R[deepest, :].any(axis=0)
        below[deepest] = False  # strict descendants only
        return target, ~(below & ~positive)

    def _R(self) -> np.ndarray:
        if not hasattr(self, "_cached_R"):
            self._cached_R = self.ancestor_matrix().astype(bool)
        return self._cached_R


def read_table(path: str | os.PathLike | Traversable, **kwargs) -> pd.DataFrame:
    """pandas.read_csv of a file path (a user's table: field counts and UTF-8 checked by benthic.io.read_csv) or of
    a table shipped in the package (a Traversable of TABLES_DIR)."""
    if isinstance(path, (str, os.PathLike)):
        return read_csv(Path(path), **kwargs)
    with as_file(path) as real:  # a real file even when the package is zipped
        return pd.read_csv(real, **kwargs)


def load_hierarchies(path: str | os.PathLike | None = None) -> dict[str, Hierarchy]:
    """The four CATAMI heads from BenthicNet's probe paths CSV (column 'catami', '[HEAD] > A > B');
    default: the copy shipped in the package (benthic/hierarchy/tables/)."""
    path = Path(path) if path is not None else PATHS_CSV
    if not path.is_file():
        raise FileNotFoundError(
            f"CATAMI paths file {path} not found: copy benthicnet_probes_catami_paths.csv "
            f"(DalhousieAI/benthicnet_probes graph_info/finalized_output.csv) there"
        )
    df = read_table(path, dtype=str, keep_default_na=False)
    if "catami" not in df.columns:
        raise ValueError(f"{path}: no 'catami' column (columns: {list(df.columns)})")
    per_head: dict[str, list[tuple[str, ...]]] = {h: [] for h in HEADS}
    for row, text in enumerate(df["catami"], start=2):
        try:
            head, names = _split(text)
        except ValueError as exc:
            raise ValueError(f"{path}, row {row}, column 'catami': {exc}") from None
        if head not in per_head:
            raise ValueError(f"{path}, row {row}, column 'catami': head {head!r} is not one of {HEADS}")
        per_head[head].append(names)
    return {h: Hierarchy(h, per_head[h]) for h in HEADS}


def load_caab_table(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The CATAMI v1.4 CAAB code table with the Seagrasses parent error fixed and a 'path' column added.

    Columns: code, name (display name), parent (code or -1), cpc, path (tuple of names from the root).
    Default: the copy shipped in the package (benthic/hierarchy/tables/)."""
    path = Path(path) if path is not None else CAAB_CSV
    if not path.is_file():
        raise FileNotFoundError(
            f"CATAMI CAAB table {path} not found: copy catami-caab-codes_1.4.csv "
            f"(CATAMI v1.4, https://catami.org) there"
        )
    raw = read_table(path, dtype=str, keep_default_na=False)
    for col in ("SPECIES_CODE", "CATAMI_DISPLAY_NAME", "CATAMI_PARENT_ID"):
        if col not in raw.columns:
            raise ValueError(f"{path}: missing column {col!r}")
    table = pd.DataFrame(
        {
            "code": raw["SPECIES_CODE"].str.strip().astype(np.int64),
            "name": raw["CATAMI_DISPLAY_NAME"].str.strip(),
            "parent": raw["CATAMI_PARENT_ID"].str.strip().replace("", "-1").astype(np.int64),
            "cpc": raw.get("CPC_CODES", pd.Series([""] * len(raw))).str.strip(),
        }
    )
    for code, (wrong, right) in CAAB_PARENT_FIXES.items():
        hit = table["code"] == code
        if hit.any() and (table.loc[hit, "parent"] == wrong).all():
            table.loc[hit, "parent"] = right
    known = set(table["code"])
    by_code = dict(zip(table["code"], zip(table["name"], table["parent"])))
    paths = []
    for row, code in enumerate(table["code"], start=2):
        names: list[str] = []
        seen = set()
        c = code
        while c != -1:
            if c not in known:
                raise ValueError(f"{path}, row {row}: code {code} has an ancestor {c} that is not in the table")
            if c in seen:
                raise ValueError(f"{path}, row {row}: code {code} has a cycle in CATAMI_PARENT_ID")
            seen.add(c)
            name, c = by_code[c]
            names.append(name.split(":")[-1].strip())
        paths.append(tuple(reversed(names)))
    table["path"] = paths
    return table


def caab_hierarchies(table: pd.DataFrame | None = None) -> dict[str, Hierarchy]:
    """The four heads built from the CAAB table's parent links (Physical > Substrate etc. become roots)."""
    table = load_caab_table() if table is None else table
    out = {}
    for head, root in CAAB_HEAD_ROOTS.items():
        paths = []
        for p in table["path"]:
            if root in p:
                paths.append(tuple(p[p.index(root) :]))
        out[head] = Hierarchy(head, paths)
    return out
