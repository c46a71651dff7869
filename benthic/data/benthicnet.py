"""BenthicNet catalogues: readers for the labelled CSV (one row per annotation) and the 1M-subset CSV,
validated with errors naming file line and column; per-image CATAMI label lists for HML; image paths under
a root that never escape it; and image loading that warns, skips and counts missing or corrupt files."""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from benthic.data.reader import UnreadableImage, read_rgb
from benthic.hierarchy.catami import HEADS, Hierarchy, load_hierarchies
from benthic.paths import safe_join

IMAGE_COLUMNS = ("url", "source", "dataset", "site", "image")
SUBSET_REQUIRED = (*IMAGE_COLUMNS, "latitude", "longitude")
LABELLED_REQUIRED = (*SUBSET_REQUIRED, *(f"catami_{h}" for h in HEADS))
NUMERIC_OPTIONAL = ("gebco_bathymetry",)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp")
BENTHICNET_RELEASE = "https://doi.org/10.20383/103.0614"


def _file_line(path: Path, record: int) -> int:
    """1-based line in `path` where data record `record` (0-based, header excluded) starts."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        previous_end, k = reader.line_num, 0
        for row in reader:
            if row:  # pandas skips blank lines too
                if k == record:
                    return previous_end + 1
                k += 1
            previous_end = reader.line_num
    return record + 2


def _fail(path: Path, record: int, column: str, problem: str, n_bad: int = 1) -> None:
    more = f" ({n_bad - 1} more row(s) with the same problem in this column)" if n_bad > 1 else ""
    raise ValueError(f"{path}: line {_file_line(path, record)}, column {column!r}: {problem}{more}")


def _read(path: str | os.PathLike, required: tuple[str, ...], schema: str) -> tuple[Path, pd.DataFrame]:
    """Read every cell as text (empty stays ''), checking the file exists, is not empty and has `required`."""
    from benthic.io import read_csv  # the strict reader: field counts per row and UTF-8 checked

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BenthicNet {schema} CSV {path} not found")
    try:
        df = read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty; expected a header line with {', '.join(required)}") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: line 1 (header): missing required column(s) {missing} of the BenthicNet "
            f"{schema} schema (found {list(df.columns)})"
        )
    if df.empty:
        raise ValueError(f"{path}: line 2: the file has a header but no data rows")
    return path, df


def _coordinates(path: Path, df: pd.DataFrame) -> None:
    """Replace latitude/longitude by float64, refusing empty, NaN, non-numeric, infinite or out-of-range values
    (latitude in [-90, 90], longitude in [-180, 180]); the first bad row is named, the next ten by line too."""
    from benthic.errors import UserError

    for column, limit in (("latitude", 90.0), ("longitude", 180.0)):
        text = df[column].str.strip()
        values = pd.to_numeric(text, errors="coerce")
        nan_text = text.str.lower().str.lstrip("+-") == "nan"
        checks = (
            (text == "", "is empty; every row needs coordinates"),
            (nan_text, "is NaN; every row needs real coordinates"),
            (values.isna() & (text != "") & ~nan_text, "is not a number"),
            (values.notna() & ~np.isfinite(values.fillna(0.0)), "is not finite"),
            (values.abs() > limit, f"is outside [-{limit:g}, {limit:g}]"),
        )
        for bad, problem in checks:
            rows = np.flatnonzero(bad.to_numpy())
            if len(rows):
                first, *more = (int(k) for k in rows[:11])
                listed = ", ".join(f"line {_file_line(path, k)} {df[column].iloc[k]!r}" for k in more)
                tail = f" ({len(rows) - 1} more row(s) with the same problem in this column: {listed}" if more else ""
                tail += (", ..." if len(rows) > 11 else "") + (")" if more else "")
                raise UserError(
                    f"{path}: line {_file_line(path, first)}, column {column!r}: value {df[column].iloc[first]!r} "
                    f"{problem}{tail}"
                )
        df[column] = values.astype(np.float64)


def _finish(path: Path, df: pd.DataFrame) -> pd.DataFrame:
    """Shared checks and conversions: image-identifying text present, coordinates valid, '' -> NaN."""
    for column in IMAGE_COLUMNS:
        empty = df[column].str.strip() == ""
        if column != "source" and empty.any():
            _fail(path, int(np.flatnonzero(empty.to_numpy())[0]), column, "is empty", int(empty.sum()))
    _coordinates(path, df)
    for column in NUMERIC_OPTIONAL:
        if column in df.columns:
            text = df[column].str.strip()
            values = pd.to_numeric(text, errors="coerce")
            bad = values.isna() & (text != "")
            if bad.any():
                k = int(np.flatnonzero(bad.to_numpy())[0])
                _fail(path, k, column, f"value {df[column].iloc[k]!r} is not a number", int(bad.sum()))
            df[column] = values
    numeric = {"latitude", "longitude", *NUMERIC_OPTIONAL}
    for column in df.columns:
        if column not in numeric:
            df[column] = df[column].mask(df[column].str.strip() == "")
    return df


def read_subset_csv(path: str | os.PathLike) -> pd.DataFrame:
    """The BenthicNet-1M subset CSV (url,source,dataset,site,image,latitude,longitude,...), validated;
    latitude/longitude (and gebco_bathymetry when present) as float, empty cells as NaN."""
    path, df = _read(path, SUBSET_REQUIRED, "1M-subset")
    return _finish(path, df)


def read_labelled_csv(path: str | os.PathLike, hierarchies: dict[str, Hierarchy] | None = None) -> pd.DataFrame:
    """The labelled BenthicNet CSV (one row per annotation, catami_<head> columns), validated like the subset
    CSV plus every non-empty CATAMI path checked against `hierarchies` (default: load_hierarchies())."""
    path, df = _read(path, LABELLED_REQUIRED, "labelled")
    hierarchies = load_hierarchies() if hierarchies is None else hierarchies
    for head in HEADS:
        column = f"catami_{head}"
        df[column] = df[column].str.strip()
        for value in df[column].unique():
            if value and value not in hierarchies[head]:
                bad = (df[column] == value).to_numpy()
                _fail(
                    path,
                    int(np.flatnonzero(bad)[0]),
                    column,
                    f"unknown CATAMI path {value!r} for the {head} head (not in the hierarchy from "
                    f"benthic/hierarchy/tables/benthicnet_probes_catami_paths.csv)",
                    int(bad.sum()),
                )
    return _finish(path, df)


def group_labels(labelled: pd.DataFrame) -> pd.DataFrame:
    """One row per image (first url/coordinates/partition seen), with a column per head holding the list of
    its distinct CATAMI paths (empty list: head unlabelled) - the input `Hierarchy.encode` needs."""
    keys = ["dataset", "site", "image"]
    first = labelled.drop_duplicates(keys).set_index(keys)
    keep = [
        c
        for c in ("url", "source", "latitude", "longitude", "datetime", "partition", "gebco_bathymetry")
        if c in first.columns
    ]
    out = first[keep].copy()
    for head in HEADS:
        column = labelled[f"catami_{head}"].astype(str).str.strip()
        labelled_rows = labelled[labelled[f"catami_{head}"].notna() & (column != "")]
        paths = labelled_rows.groupby(keys, sort=False)[f"catami_{head}"]
        lists = paths.agg(lambda s: list(dict.fromkeys(s)))
        out[head] = [lists.get(k, []) for k in out.index]
    return out.reset_index()


PARTITIONS = ("train", "test")


def has_released_partition(df: pd.DataFrame) -> bool:
    """True when `df` has a `partition` column with at least one non-blank value (BenthicNet's released split)."""
    return "partition" in df.columns and not df["partition"].astype("string").fillna("").str.strip().eq("").all()


def train_test_partition(df: pd.DataFrame, **spatial: Any) -> tuple[np.ndarray, str]:
    """Per row 'train' / 'test' (or 'unassigned' / 'excluded') and a sentence saying where it comes from:
    BenthicNet's released `partition` column wherever a row has one (rows without a value are 'unassigned');
    only when the column is absent or empty, `benthic.data.subsample.spatial_partition(df, **spatial)`."""
    from benthic.data.subsample import spatial_partition
    from benthic.errors import UserError

    if not has_released_partition(df):
        out = spatial_partition(df, **spatial)
        return out, "no released `partition` column: spatial partition (benthic.data.subsample.spatial_partition)"
    values = df["partition"].astype("string").str.strip().str.lower().fillna("")
    bad = ~values.isin([*PARTITIONS, ""])
    if bad.any():
        k = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(
            f"row {k}: partition {df['partition'].iloc[k]!r} is not one of {', '.join(PARTITIONS)} "
            f"({int(bad.sum())} such row(s))"
        )
    out = values.where(values != "", "unassigned").to_numpy(dtype=object)
    n_missing = int((values == "").sum())
    note = "BenthicNet's released `partition` column"
    return out, note + (f"; {n_missing} row(s) without one left unassigned" if n_missing else "")


def encode_heads(
    grouped: pd.DataFrame, hierarchies: dict[str, Hierarchy] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per head, stacked (targets float32 (N, n_nodes), masks bool (N, n_nodes)) of group_labels' lists."""
    hierarchies = load_hierarchies() if hierarchies is None else hierarchies
    out = {}
    for head in HEADS:
        pairs = [hierarchies[head].encode(paths) for paths in grouped[head]]
        out[head] = (np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
    return out


def image_relpath(row: Mapping[str, Any]) -> str:
    """`dataset/site/image`, with the URL's image extension added when `image` does not already end with it."""
    image = str(row["image"])
    suffix = PurePosixPath(unquote(urlparse(str(row.get("url", "") or "")).path)).suffix
    if suffix.lower() in IMAGE_EXTENSIONS and not image.lower().endswith(suffix.lower()):
        image += suffix
    return f"{row['dataset']}/{row['site']}/{image}"


def image_path(root: str | os.PathLike, row: Mapping[str, Any]) -> Path:
    """Where a row's image lives under `root` (safe_join of `image_relpath`): never outside `root`."""
    return safe_join(root, image_relpath(row))


def missing_images(frame: pd.DataFrame, root: str | os.PathLike) -> pd.DataFrame:
    """The rows of `frame` whose image file is not under `root` (an unsafe path counts as missing)."""

    def absent(row: Mapping[str, Any]) -> bool:
        try:
            return not image_path(root, row).is_file()
        except ValueError:
            return True

    return frame[[absent(r) for r in frame.to_dict("records")]]


def missing_images_message(frame: pd.DataFrame, root: str | os.PathLike, examples: int = 3) -> str:
    """What to download and where to put it when images of `frame` are absent under `root` (offline runs)."""
    frame = frame.drop_duplicates(["dataset", "site", "image"])
    missing = missing_images(frame, root)
    if missing.empty:
        return f"all {len(frame)} images are present under {root}"
    lines = [
        f"{len(missing)} of {len(frame)} BenthicNet images are missing under {root}. Images are not "
        f"shipped and cannot be fetched without a network: download each row's 'url' and save it as "
        f"{root}/<dataset>/<site>/<image> (adding the URL's extension when 'image' has none), e.g.:"
    ]
    for row in missing.head(examples).to_dict("records"):
        lines.append(f"  {row['url']}\n    -> {Path(root) / image_relpath(row)}")
    lines.append(f"(BenthicNet data release with the CSVs and image sources: {BENTHICNET_RELEASE})")
    return "\n".join(lines)


class BenthicNetImages:
    """A torch-style map Dataset over catalogue rows: item i -> (uint8 (H, W, 3) array, i), or None (with a
    warning, recorded in `.skipped`) when the file is missing, corrupt or its path would escape `root`."""

    def __init__(self, frame: pd.DataFrame, root: str | os.PathLike, size: int | None = 224):
        self.records = frame.to_dict("records")
        self.root = Path(root)
        self.size = size
        self.skipped: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int] | None:
        try:
            path = image_path(self.root, self.records[i])
            return read_rgb(path, self.size, "centre_square"), i
        except (UnreadableImage, OSError, ValueError) as err:  # missing, unreadable/corrupt, unsafe path
            reason = f"{type(err).__name__}: {err}"
            self.skipped[i] = reason
            warnings.warn(f"skipping BenthicNet image of row {i}: {reason}", stacklevel=2)
            return None


def collate_skipping(batch: list[tuple[np.ndarray, int] | None]) -> dict[str, Any]:
    """DataLoader collate: drop the None items, stack the rest into uint8 (B, H, W, 3); `n_skipped` counts drops."""
    import torch

    kept = [b for b in batch if b is not None]
    images = torch.from_numpy(np.stack([b[0] for b in kept])) if kept else torch.empty(0, dtype=torch.uint8)
    return {
        "images": images,
        "index": torch.tensor([b[1] for b in kept], dtype=torch.int64),
        "n_skipped": len(batch) - len(kept),
    }


def make_loader(
    frame: pd.DataFrame,
    root: str | os.PathLike,
    size: int = 224,
    batch_size: int = 64,
    num_workers: int = 0,
    shuffle: bool = False,
    seed: int = 0,
) -> Any:
    """A torch DataLoader over `frame`'s images that skips bad files; sum batches' `n_skipped` for the count."""
    import torch
    from torch.utils.data import DataLoader

    return DataLoader(
        BenthicNetImages(frame, root, size),
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=collate_skipping,
        generator=torch.Generator().manual_seed(seed),
    )


@dataclass
class LoadedImages:
    """Decoded images (uint8 (N, size, size, 3)), the `frame` row positions they came from, and the skipped
    rows with their reasons."""

    images: np.ndarray
    rows: np.ndarray
    skipped: dict[int, str] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)


def load_images(frame: pd.DataFrame, root: str | os.PathLike, size: int = 224) -> LoadedImages:
    """Decode every image of `frame` under `root` into one array, skipping (warning, counting) bad files."""
    from tqdm.auto import tqdm

    dataset = BenthicNetImages(frame, root, size)
    items = [
        dataset[i] for i in tqdm(range(len(dataset)), desc="BenthicNet images", leave=False, disable=len(dataset) < 500)
    ]
    kept = [it for it in items if it is not None]
    if dataset.skipped:
        warnings.warn(
            f"{len(dataset.skipped)} of {len(dataset)} BenthicNet images skipped (missing or corrupt); "
            f"see LoadedImages.skipped",
            stacklevel=2,
        )
    images = np.stack([k[0] for k in kept]) if kept else np.empty((0, size, size, 3), dtype=np.uint8)
    return LoadedImages(images, np.array([k[1] for k in kept], dtype=np.int64), dict(dataset.skipped))
