"""A user's labels CSV (one row per image and label, labels of any depth in the lab's own scheme) plus a
translation table -> per-head HML targets and masks, with every problem reported with counts and examples:
images missing or outside the root, labels the table does not map, images with two incompatible paths in a
head, heads nobody labels. Also the reef photos' annotations written as such a CSV."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benthic.errors import UserError
from benthic.hierarchy import catami, hml, translate
from benthic.io import read_csv
from benthic.paths import safe_join

COLUMNS = ("image", "label")
PARTITIONS = ("train", "test")
EXAMPLES = 3  # examples named per reported problem


def problem(what: str, items: Sequence[str], action: str) -> str:
    """One report line: the count, what it is, a few examples and what the run does about it."""
    shown = ", ".join(str(i) for i in list(items)[:EXAMPLES])
    more = f" (e.g. {shown}{', ...' if len(items) > EXAMPLES else ''})" if shown else ""
    return f"{len(items)} {what}{more}: {action}"


# ----------------------------------------------------------------------------------------- inputs
def read_labels(path: str | os.PathLike) -> pd.DataFrame:
    """The labels CSV as strings: columns `image` and `label` (one row per label; an image may have several),
    optionally `partition` (train/test) and grouping columns such as `photo` or `site`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"labels CSV {path} not found")
    try:
        frame = read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"labels CSV {path} cannot be read as CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(
            f"labels CSV {path} lacks column(s) {missing}; it needs {list(COLUMNS)} (found {list(frame.columns)})"
        )
    frame = frame.apply(lambda col: col.str.strip())
    frame = frame[(frame["image"] != "") & (frame["label"] != "")].reset_index(drop=True)
    if frame.empty:
        raise UserError(f"labels CSV {path} has no row with both an image and a label")
    return frame


def read_image_list(path: str | os.PathLike) -> list[str]:
    """Image paths listed in a CSV's `image` column (the --images CSV form), in order, without repeats."""
    frame = read_csv(path, dtype=str, keep_default_na=False)
    if "image" not in frame.columns:
        raise UserError(f"image list {path} has no 'image' column (found {list(frame.columns)})")
    return list(dict.fromkeys(s.strip() for s in frame["image"] if s.strip()))


def load_table(name_or_path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, catami.Hierarchy], str]:
    """(validated table, hierarchies, scheme) of a translation table (translate.load_any), its problems as UserError."""
    try:
        table, hierarchies, is_catami = translate.load_any(name_or_path)
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    return table, hierarchies, "CATAMI" if is_catami else f"the scheme's own tree ({Path(name_or_path).stem})"


def outside_caab(table: pd.DataFrame) -> list[str]:
    """CATAMI paths of a table that are BenthicNet probe paths but not nodes of the CATAMI v1.4 CAAB table."""
    caab = catami.caab_hierarchies()
    return sorted(
        {p for h, p in zip(table["head"], table["catami_path"]) if h and caab[h].resolve(catami.split_path(p)) is None}
    )


# ------------------------------------------------------------------------------------ the labelled set
@dataclass
class LabelledSet:
    """Images with their per-head targets/masks (rows aligned with `images`), the table and trees, the
    per-image extra columns (partition, photo, site...) and the report lines of everything dropped or masked."""

    images: list[str]
    files: list[Path]
    targets: translate.Targets
    hierarchies: dict[str, catami.Hierarchy]
    table: pd.DataFrame
    scheme: str
    rows: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def info(self) -> pd.DataFrame:
        """One row per image (aligned with `images`): the labels CSV's other columns (partition, photo, site...)."""
        first = self.rows.drop(columns=["label"]).drop_duplicates("image").set_index("image")
        return first.loc[self.images].reset_index()

    def subset(self, idx: np.ndarray) -> LabelledSet:
        """The images at `idx` (same table, trees and notes)."""
        idx = np.asarray(idx, dtype=int)
        images = [self.images[i] for i in idx]
        return LabelledSet(
            images,
            [self.files[i] for i in idx],
            {h: (t[idx], m[idx]) for h, (t, m) in self.targets.items()},
            self.hierarchies,
            self.table,
            self.scheme,
            self.rows[self.rows["image"].isin(images)].reset_index(drop=True),
            list(self.notes),
        )

    def select(self, images: Sequence[str]) -> LabelledSet:
        """The set restricted to `images`, in that order (each must be in the set)."""
        row = {name: i for i, name in enumerate(self.images)}
        missing = [n for n in images if n not in row]
        if missing:
            raise ValueError(problem("image(s) are not in the labelled set", missing, "cannot select them"))
        return self.subset(np.array([row[n] for n in images], dtype=int))


def resolve_files(names: Sequence[str], root: str | os.PathLike) -> tuple[list[Path | None], list[str]]:
    """Each name joined safely under `root` (None when it escapes the root or is missing), and report lines."""
    files: list[Path | None] = []
    escaping, missing = [], []
    for name in names:
        try:
            path = safe_join(root, name)
        except ValueError:
            escaping.append(name)
            files.append(None)
            continue
        if not path.is_file():
            missing.append(name)
            path = None
        files.append(path)
    notes = []
    if escaping:
        notes.append(problem(f"image path(s) escape the image root {root}", escaping, "left out"))
    if missing:
        notes.append(problem(f"image(s) named in the labels are not under {root}", missing, "left out"))
    return files, notes


def label_lookup(table: pd.DataFrame) -> tuple[list[str], dict[str, int]]:
    """The table's source names (in order, without repeats) and a case-insensitive map from a source name or
    source label id to its column."""
    names = list(dict.fromkeys(table["source_name"].str.strip()))
    lookup = {
        str(label).strip().lower(): names.index(str(name).strip())
        for label, name in zip(table["source_label"], table["source_name"])
    }
    lookup.update({n.lower(): i for i, n in enumerate(names)})
    return names, lookup


def multi_hot(frame: pd.DataFrame, images: Sequence[str], table: pd.DataFrame) -> tuple[np.ndarray, list[str], dict]:
    """(multi-hot (N, K) over the table's source names, those names, {label the table lacks: row count})."""
    names, lookup = label_lookup(table)
    row_of = {name: i for i, name in enumerate(images)}
    out = np.zeros((len(images), len(names)), np.float32)
    unknown: dict[str, int] = {}
    for image, label in zip(frame["image"], frame["label"]):
        col = lookup.get(label.lower())
        if col is None:
            unknown[label] = unknown.get(label, 0) + 1
        elif image in row_of:
            out[row_of[image], col] = 1.0
    return out, names, unknown


def incompatible(targets: translate.Targets, hierarchies: Mapping[str, catami.Hierarchy]) -> dict[str, np.ndarray]:
    """Per head, the rows labelled with two paths where neither contains the other (two branches of one head)."""
    out = {}
    for head, (target, mask) in targets.items():
        paths = hml.true_paths(target, mask, hierarchies[head].parent)
        out[head] = np.array([len(p) > 1 for p in paths], dtype=bool)
    return out


def _conflict_examples(
    rows: np.ndarray, images: Sequence[str], target: np.ndarray, mask: np.ndarray, hier
) -> list[str]:
    paths = hml.true_paths(target[rows], mask[rows], hier.parent)
    return [f"{images[r]}: " + " | ".join(hier.names[p[-1]] for p in pp) for r, pp in zip(rows, paths)]


def build_set(
    frame: pd.DataFrame,
    root: str | os.PathLike,
    table: pd.DataFrame,
    hierarchies: Mapping[str, catami.Hierarchy],
    scheme: str,
    exhaustive: bool = False,
    multi_label: bool = False,
) -> LabelledSet:
    """The labelled images of `frame` (see `read_labels`) under `root`, translated by `table`.

    Left out, each reported with counts and examples: paths escaping `root`, images that are missing, images
    none of whose labels the table knows. Unknown labels on other images are ignored (reported with counts).
    An image with two paths on different branches of one head is masked in that head unless `multi_label`
    (a scheme where one image may show several classes of a head). `exhaustive` as translate_multi_hot."""
    images = list(dict.fromkeys(frame["image"]))
    files, notes = resolve_files(images, root)
    hot, names, unknown = multi_hot(frame, images, table)
    if unknown:
        counts = sorted(unknown.items(), key=lambda kv: -kv[1])
        notes.append(
            problem("label(s) absent from the translation table", [f"{k!r} x{v}" for k, v in counts], "ignored")
        )
    known = hot.any(axis=1)
    unlabelled = [n for n, f, k in zip(images, files, known) if f is not None and not k]
    if unlabelled:
        notes.append(problem("image(s) carry only labels the table lacks", unlabelled, "left out"))
    keep = np.flatnonzero([f is not None and k for f, k in zip(files, known)])
    if not len(keep):
        raise UserError("no labelled image is left: " + "; ".join(notes or ["the labels CSV names no image"]))
    images, files, hot = [images[i] for i in keep], [files[i] for i in keep], hot[keep]
    try:
        targets = translate.translate_multi_hot(hot, names, table, hierarchies, exhaustive=exhaustive)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not multi_label:
        for head, rows in incompatible(targets, hierarchies).items():
            if rows.any():
                target, mask = targets[head]
                bad = np.flatnonzero(rows)
                examples = _conflict_examples(bad, images, target, mask, hierarchies[head])
                notes.append(
                    problem(
                        f"image(s) have two incompatible paths in head {head!r}",
                        examples,
                        "masked in that head (pass --multi-label if an image may show several classes of one head)",
                    )
                )
                mask, target = mask.copy(), target.copy()
                mask[bad], target[bad] = False, 0.0
                targets[head] = (target, mask)
    for head, (_, mask) in targets.items():
        if not mask.any():
            notes.append(f"head {head!r}: no image labels it: not trained, not reported")
    if not any(m.any() for _, m in targets.values()):
        raise UserError("no head has a single labelled image: " + "; ".join(notes))
    rows = frame[frame["image"].isin(images)].reset_index(drop=True)
    return LabelledSet(images, files, targets, dict(hierarchies), table, scheme, rows, notes)


# ---------------------------------------------------------------------------------------- reef photos
def reef_labels(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The reef photos' annotations (data/coral_condition) as a labels CSV frame: one row per (tile, label name)
    with the tile's path under images/, its photo and its survey site; tiles without annotation are left out."""
    from benthic.data import coral

    root = Path(root) if root is not None else coral.CORAL_ROOT
    names = coral._read_label_names(root / "tabular_data" / "labelsets.csv")
    annotations = coral._read_annotations(root / "tabular_data" / "annotations.csv", len(names))
    rows = [
        {
            "image": f.relative_to(root / "images").as_posix(),
            "label": names[k],
            "photo": coral.photo_id(f.stem),
            "site": f.parent.name.split("_", 1)[-1],
        }
        for f in coral._tiles(root)
        if f.stem in annotations
        for k in np.flatnonzero(annotations[f.stem])
    ]
    return pd.DataFrame(rows, columns=["image", "label", "photo", "site"])


def reef_set(table: str | os.PathLike, tiles=None, exhaustive: bool = False) -> LabelledSet:
    """The reef photos' labelled set (`reef_labels` through `build_set`, several classes per head allowed: a tile
    shows several coral conditions), in the order of `tiles` (a benthic.data.coral.CoralSet) when given."""
    from benthic.data import coral

    data = build_set(reef_labels(), coral.CORAL_ROOT / "images", *load_table(table), exhaustive, multi_label=True)
    if tiles is None:
        return data
    return data.select([f"{survey}/{tile}.jpg" for survey, tile in zip(tiles.surveys, tiles.tile_ids)])
