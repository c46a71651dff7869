"""Image collections to pretrain on without labels: a folder searched recursively, or a BenthicNet-schema CSV under
an image root. The index is compact (one uint8 array of UTF-8 relative paths plus int64 offsets, about 80 bytes
per image), so a million-image collection costs tens of MB and DataLoader workers share it copy-on-write."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from array import array
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd

from benthic import io
from benthic.data.reader import UnreadableImage, fit_to, open_rgb
from benthic.errors import UserError
from benthic.paths import safe_join

INDEX_FORMAT = "benthic-collection-1"
CSV_COLUMNS = ("dataset", "site", "image")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp")
_CHUNK_ROWS = 100_000


@dataclass(frozen=True, eq=False)
class Collection:
    """`len(c)` images under `root`; image i is `root / c.relpath(i)`. `name` labels runs; `source` says what
    it was built from (a folder or CSV path, with the partition kept)."""

    root: Path
    blob: np.ndarray
    offsets: np.ndarray
    name: str
    source: str

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def relpath(self, i: int) -> str:
        """Relative path of image `i`."""
        return self.blob[self.offsets[i] : self.offsets[i + 1]].tobytes().decode("utf-8")

    def path(self, i: int) -> Path:
        """Absolute path of image `i`, never outside `root` (a symlink out of it raises ValueError)."""
        return safe_join(self.root, self.relpath(i))

    def fingerprint(self) -> str:
        """Short hash of the index (paths and their order): names a run's training set."""
        digest = hashlib.sha1(self.offsets.tobytes())
        digest.update(self.blob.tobytes())
        return digest.hexdigest()[:10]

    def take(self, indices: np.ndarray) -> Collection:
        """The images at `indices` (in that order), as a new compact collection."""
        indices = np.asarray(indices, dtype=np.int64)
        starts, ends = self.offsets[indices], self.offsets[indices + 1]
        offsets = np.zeros(len(indices) + 1, np.int64)
        np.cumsum(ends - starts, out=offsets[1:])
        blob = np.empty(int(offsets[-1]), np.uint8)
        for lo in range(0, len(indices), _CHUNK_ROWS):  # chunked, so the gather index stays small
            s, e = starts[lo : lo + _CHUNK_ROWS], ends[lo : lo + _CHUNK_ROWS]
            o = offsets[lo : lo + len(s)]
            lens, first = e - s, int(o[0])
            pos = np.repeat(s - o, lens) + np.arange(first, first + int(lens.sum()))
            blob[first : first + int(lens.sum())] = self.blob[pos]
        return Collection(self.root, blob, offsets, self.name, self.source)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index (npz, atomically): a resumed run reads the very same list of images."""
        with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(
                fh,
                format=INDEX_FORMAT,
                root=str(self.root),
                blob=self.blob,
                offsets=self.offsets,
                name=self.name,
                source=self.source,
            )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Collection:
        """Read an index written by `save`."""
        with np.load(path, allow_pickle=False) as z:
            if str(z["format"]) != INDEX_FORMAT:
                raise ValueError(f"{path} is not a benthic collection index (format {z['format']})")
            return cls(Path(str(z["root"])), z["blob"], z["offsets"], str(z["name"]), str(z["source"]))


def _pack(relpaths: array, lengths: array) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(np.frombuffer(lengths, np.int64), out=offsets[1:])
    return np.frombuffer(relpaths, np.uint8).copy(), offsets


def _label(path: Path) -> str:
    """A run-folder-safe name of a folder or file."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem if path.is_file() else path.name).strip("_.") or "images"


def from_folder(folder: str | os.PathLike) -> Collection:
    """Every non-hidden file under `folder`, recursively, in sorted order (as `benthic annotate` lists them);
    files the reader refuses become counted skips when read. Raises UserError for a missing or empty folder."""
    root = Path(folder).resolve()
    if not root.is_dir():
        raise UserError(f"image folder {folder} does not exist or is not a folder")
    blob, lengths = array("B"), array("q")
    for here, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = os.path.relpath(here, root)
        for name in sorted(files):
            if name.startswith("."):
                continue
            encoded = (name if rel == "." else f"{rel}/{name}").encode("utf-8", "surrogateescape")
            blob.frombytes(encoded)
            lengths.append(len(encoded))
    if not lengths:
        raise UserError(f"image folder {folder} holds no files")
    packed, offsets = _pack(blob, lengths)
    return Collection(root, packed, offsets, _label(root), describe(root))


def describe(
    dataset: str | os.PathLike, image_root: str | os.PathLike | None = None, partition: str | None = None
) -> str:
    """The `source` of the collection these arguments build (a saved index is reused only for the same one)."""
    if image_root is None:
        return f"folder {Path(dataset).resolve()}"
    return f"csv {Path(dataset).resolve()} under {Path(image_root).resolve()} (partition {partition or 'all'})"


def _relpaths(chunk: pd.DataFrame) -> pd.Series:
    """`dataset/site/image` per row, with the URL's image extension added when `image` lacks it
    (benthic.data.benthicnet.image_relpath, vectorised)."""
    image = chunk["image"]
    if "url" in chunk.columns:
        url_path = chunk["url"].str.replace(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*", "", regex=True)
        url_path = url_path.str.replace(r"[?#].*$", "", regex=True).str.rstrip("/")
        name = url_path.str.rsplit("/", n=1).str[-1]
        quoted = name.str.contains("%", regex=False)
        name = name.where(~quoted, name[quoted].map(unquote))
        suffix = name.str.extract(r"[^.](\.[^.]*)$", expand=False).fillna("")
        lower = suffix.str.lower()
        has = np.fromiter((a.endswith(b) for a, b in zip(image.str.lower(), lower)), bool, len(image))
        add = lower.isin(IMAGE_EXTENSIONS) & ~has
        image = image.where(~add, image + suffix)
    return chunk["dataset"] + "/" + chunk["site"] + "/" + image


def _csv_problem(path: Path, first_row: int, bad: np.ndarray, column: str, problem: str) -> UserError:
    from benthic.data.benthicnet import _file_line

    k = int(np.flatnonzero(bad)[0])
    more = f" ({int(bad.sum()) - 1} more row(s) like it)" if bad.sum() > 1 else ""
    return UserError(f"{path}: line {_file_line(path, first_row + k)}, column {column!r}: {problem}{more}")


def from_csv(csv_path: str | os.PathLike, image_root: str | os.PathLike, partition: str | None = "train") -> Collection:
    """The distinct images of a BenthicNet CSV (subset or labelled schema) under `image_root`, read in chunks so a
    million rows stay small. With a `partition` column, only rows whose partition equals `partition` (None: all).
    Raises UserError naming the line for a missing column, an empty field or a path escaping the root."""
    path, root = Path(csv_path), Path(image_root).resolve()
    if not path.is_file():
        raise UserError(f"CSV {csv_path} not found")
    if not root.is_dir():
        raise UserError(f"--image-root {image_root} does not exist or is not a folder")
    io.check_csv(path)  # field counts and encoding, streamed: a shifted row never reaches the index
    wanted = {*CSV_COLUMNS, "url", "partition"}
    try:
        reader = pd.read_csv(
            path,
            usecols=lambda c: c in wanted,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            chunksize=_CHUNK_ROWS,
        )
        chunks = iter(reader)
        first = next(chunks, None)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty; expected a header with {', '.join(CSV_COLUMNS)}") from None
    if first is None or not set(CSV_COLUMNS) <= set(first.columns):
        found = [] if first is None else list(first.columns)
        raise UserError(f"{path}: line 1 (header): needs columns {', '.join(CSV_COLUMNS)} (found {found})")
    use_partition = partition is not None and "partition" in first.columns
    blob, lengths, hashes, row = array("B"), array("q"), [], 0
    for chunk in itertools.chain([first], chunks):
        for column in CSV_COLUMNS:
            empty = (chunk[column].str.strip() == "").to_numpy()
            if empty.any():
                raise _csv_problem(path, row, empty, column, "is empty")
        rel = _relpaths(chunk)
        unsafe = rel.str.contains(r"(?:^|/)\.\.(?:/|$)|^/|\\|^[A-Za-z]:", regex=True).to_numpy()
        if unsafe.any():
            bad_rel = rel.iloc[int(np.flatnonzero(unsafe)[0])]
            raise _csv_problem(path, row, unsafe, "image", f"path {bad_rel!r} escapes the image root {root}")
        row += len(chunk)
        if use_partition:
            rel = rel[(chunk["partition"].str.strip() == partition).to_numpy()]
        hashes.append(pd.util.hash_pandas_object(rel, index=False).to_numpy())
        encoded = [text.encode("utf-8") for text in rel]
        blob.frombytes(b"".join(encoded))
        lengths.extend(map(len, encoded))
    if not lengths:
        which = f" with partition {partition!r}" if use_partition else ""
        raise UserError(f"{path}: no image rows{which}" + (" (pass --partition all to use every row)" if which else ""))
    packed, offsets = _pack(blob, lengths)
    _, first_seen = np.unique(np.concatenate(hashes), return_index=True)  # one entry per image (labelled CSVs repeat)
    out = Collection(root, packed, offsets, _label(path), describe(path, root, partition))
    return out if len(first_seen) == len(out) else out.take(np.sort(first_seen))


def split_holdout(collection: Collection, n: int, seed: int) -> tuple[Collection, Collection]:
    """(training images, a fixed seeded sample of `n` held out of them), both in collection order."""
    if not 0 < n < len(collection):
        raise UserError(f"cannot hold out {n} of the {len(collection)} images of {collection.source}")
    chosen = np.zeros(len(collection), bool)
    chosen[np.random.default_rng(seed).choice(len(collection), n, replace=False)] = True
    return collection.take(np.flatnonzero(~chosen)), collection.take(np.flatnonzero(chosen))


def read_image(collection: Collection, i: int, size: int, fit: str = "centre_square") -> np.ndarray:
    """uint8 (size, size, 3) pixels of image `i` by the package's one reader; UnreadableImage for a missing,
    corrupt or refused file, or a path that leaves the root."""
    try:
        path = collection.path(i)
    except ValueError as exc:
        raise UnreadableImage(str(exc)) from None
    return fit_to(open_rgb(path), size, fit)


def read_all(collection: Collection, size: int, fit: str = "centre_square") -> tuple[np.ndarray, dict[str, str]]:
    """Every readable image of a (small) collection as uint8 (N, size, size, 3), and {relpath: reason} skipped."""
    images, skipped = [], {}
    for i in range(len(collection)):
        try:
            images.append(read_image(collection, i, size, fit))
        except UnreadableImage as exc:
            skipped[collection.relpath(i)] = str(exc)
    stacked = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return stacked, skipped
