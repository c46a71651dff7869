"""The reef-photo set (Coral Condition, data/coral_condition/): labelled tiles as uint8 arrays with 9-way
multi-hot labels, cached after the first decode, and splits that never put one photo's tiles on both sides."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benthic.data.reader import READER_VERSION, UnreadableImage, open_rgb
from benthic.io import read_csv, save_npy, write_json
from benthic.paths import DATA_DIR, cache_dir

CORAL_ROOT = DATA_DIR / "coral_condition"
UPSTREAM = "https://github.com/XL-SHAO/CoralConditionDataset"


@dataclass
class CoralSet:
    """Labelled tiles: images uint8 (N, size, size, 3), labels float32 multi-hot (N, 9), and per tile its
    id, its photo (the group to split on) and its survey folder."""

    images: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    tile_ids: list[str]
    photo_ids: np.ndarray
    surveys: np.ndarray

    def __len__(self) -> int:
        return len(self.tile_ids)


def photo_id(tile_id: str) -> str:
    """The photo a tile was cut from: the tile id without its trailing `_<tile number>`."""
    head, sep, number = tile_id.rpartition("_")
    if not sep or not head or not number.isdigit():
        raise ValueError(f"tile id {tile_id!r} does not end in _<tile number>")
    return head


def _rows(path: Path) -> list[dict[str, str]]:
    """The records of a small CSV as text, through the strict reader (field counts and encoding checked)."""
    import pandas as pd

    try:
        return read_csv(path, dtype=str, keep_default_na=False).to_dict("records")
    except pd.errors.EmptyDataError:
        return []


def _read_label_names(path: Path) -> list[str]:
    """Class names from labelsets.csv in id order, checking ids are 0..K-1 (read by the strict CSV reader)."""
    rows = _rows(path)
    if not rows or not {"label", "label_name"} <= set(rows[0]):
        raise ValueError(f"{path}: expected columns 'label,label_name'")
    ids = [int(r["label"]) for r in rows]
    if sorted(ids) != list(range(len(ids))):
        raise ValueError(f"{path}: column 'label' should hold ids 0..{len(ids) - 1}, got {ids}")
    return [r["label_name"] for r in sorted(rows, key=lambda r: int(r["label"]))]


def _read_annotations(path: Path, n_classes: int) -> dict[str, np.ndarray]:
    """patchid -> multi-hot float32 vector, with errors naming the file line and column."""
    out: dict[str, np.ndarray] = {}
    rows = _rows(path)
    missing = {"patchid", "label"} - set(rows[0] if rows else [])
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    for line, row in enumerate(rows, start=2):
        vec = np.zeros(n_classes, dtype=np.float32)
        try:
            ids = [int(t) for t in row["label"].split(",") if t.strip()]
        except ValueError:
            raise ValueError(
                f"{path}: line {line}, column 'label': {row['label']!r} is not a comma-separated list of class ids"
            ) from None
        if not ids or min(ids) < 0 or max(ids) >= n_classes:
            raise ValueError(f"{path}: line {line}, column 'label': {row['label']!r} needs ids in 0..{n_classes - 1}")
        vec[ids] = 1.0
        out[row["patchid"]] = vec
    return out


def _tiles(root: Path) -> list[Path]:
    """Tile files ordered by survey folder, photo, then tile number."""
    files = list((root / "images").glob("*/*.jpg"))
    return sorted(files, key=lambda p: (p.parent.name, photo_id(p.stem), int(p.stem.rpartition("_")[2])))


def _cache_key(root: Path, files: list[Path], size: int) -> str:
    """Hash of the tables, every tile's bytes, the size and the image reader's version, so edited data (or a
    reader that decodes differently) re-decodes."""
    digest = hashlib.sha256(f"size={size};reader={READER_VERSION}".encode())
    for path in [root / "tabular_data" / "annotations.csv", root / "tabular_data" / "labelsets.csv", *files]:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load_coral(root: str | Path | None = None, size: int = 128) -> CoralSet:
    """The annotated tiles of the reef-photo set resized to `size` px (decoded once, cached in cache_dir());
    `root` defaults to the shipped 256 px copy, or a folder with the full-resolution upstream layout."""
    from PIL import Image

    root = Path(root) if root is not None else CORAL_ROOT
    tables = root / "tabular_data"
    for needed in (tables / "annotations.csv", tables / "labelsets.csv", root / "images"):
        if not needed.exists():
            raise FileNotFoundError(
                f"reef-photo set incomplete: {needed} is missing. It ships in data/coral_condition/; for full "
                f"resolution fetch {UPSTREAM} (images from commit 5e9295b6, folder coral_images/) and lay it out "
                f"as <root>/images/<survey>/<patchid>.jpg and <root>/tabular_data/*.csv"
            )
    if size < 8:
        raise ValueError(f"size={size} is too small; use at least 8 px")
    files = _tiles(root)
    folder = cache_dir() / f"coral-{_cache_key(root, files, size)}"
    if (folder / "meta.json").is_file():
        meta = json.loads((folder / "meta.json").read_text())
        return CoralSet(
            np.load(folder / "images.npy"),
            np.load(folder / "labels.npy"),
            meta["label_names"],
            meta["tile_ids"],
            np.array(meta["photo_ids"]),
            np.array(meta["surveys"]),
        )
    names = _read_label_names(tables / "labelsets.csv")
    annotations = _read_annotations(tables / "annotations.csv", len(names))
    files = [f for f in files if f.stem in annotations]
    if not files:
        raise ValueError(f"{root}: no tile under images/ has a row in {tables / 'annotations.csv'}")
    images = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            im = open_rgb(path)
        except UnreadableImage as exc:
            raise ValueError(f"{path}: {exc}; restore the tile from {UPSTREAM}") from None
        # the tiles are square: a plain Lanczos downscale keeps their detail without cropping
        images[i] = np.asarray(im.resize((size, size), Image.Resampling.LANCZOS))
    labels = np.stack([annotations[f.stem] for f in files])
    tile_ids = [f.stem for f in files]
    out = CoralSet(
        images,
        labels,
        names,
        tile_ids,
        np.array([photo_id(t) for t in tile_ids]),
        np.array([f.parent.name for f in files]),
    )
    for arr, name in ((images, "images.npy"), (labels, "labels.npy")):
        save_npy(folder / name, arr)
    write_json(
        folder / "meta.json",
        {
            "label_names": names,
            "tile_ids": tile_ids,
            "photo_ids": out.photo_ids.tolist(),
            "surveys": out.surveys.tolist(),
        },
    )
    return out


def split_by_photo(
    photo_ids: np.ndarray, test_fraction: float, seed: int, partition: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train_idx, test_idx) with whole photos in test, in a seeded random order, stopping at the
    photo count whose tile total is closest to `test_fraction` of the tiles (at least one photo each side).
    A given `partition` (per row 'train', 'test' or anything else, such as BenthicNet's released column via
    `benthic.data.benthicnet.train_test_partition`) decides instead, the same for every seed; other rows are in
    neither."""
    photo_ids = np.asarray(photo_ids)
    if partition is not None:
        return _given_partition(photo_ids, partition)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction} must be strictly between 0 and 1")
    photos, inverse, counts = np.unique(photo_ids, return_inverse=True, return_counts=True)
    if len(photos) < 2:
        raise ValueError("need tiles from at least two photos to split by photo")
    order = np.random.default_rng(seed).permutation(len(photos))
    cumulative = np.cumsum(counts[order])[:-1]  # leave at least one photo for training
    n_test = int(np.argmin(np.abs(cumulative - test_fraction * len(photo_ids)))) + 1
    in_test = np.isin(inverse, order[:n_test])
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


def _given_partition(photo_ids: np.ndarray, partition: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx) of a per-row 'train' / 'test' partition, checked against the rows."""
    part = np.asarray(partition, dtype=object)
    if len(part) != len(photo_ids):
        raise ValueError(f"partition has {len(part)} rows for {len(photo_ids)} images")
    tr, te = np.flatnonzero(part == "train"), np.flatnonzero(part == "test")
    if len(tr) == 0 or len(te) == 0:
        raise ValueError(f"the partition needs train and test rows, got {len(tr)} train and {len(te)} test")
    return tr, te


def photo_kfold(labels_1d: np.ndarray, photo_ids: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train_idx, test_idx) folds, photos kept whole and class shares balanced as far as whole photos
    allow (scikit-learn's StratifiedGroupKFold, shuffled with `seed`)."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels_1d, photo_ids = np.asarray(labels_1d), np.asarray(photo_ids)
    if labels_1d.ndim != 1 or len(labels_1d) != len(photo_ids):
        raise ValueError(
            f"labels_1d must be 1-D with one entry per tile ({len(photo_ids)}), got shape "
            f"{labels_1d.shape}; for multi-hot labels pass e.g. labels.argmax(1)"
        )
    n_photos = len(np.unique(photo_ids))
    if not 2 <= k <= n_photos:
        raise ValueError(f"k={k} must be between 2 and the number of photos ({n_photos})")
    folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(np.sort(tr), np.sort(te)) for tr, te in folds.split(np.zeros(len(labels_1d)), labels_1d, photo_ids)]
