"""Frozen-encoder features of image files, cached per encoder and per image so that a second head (another
translation table, other labels) on the same encoder and images costs seconds. An encoder is keyed by its
weights and preprocessing, an image by its bytes, with the reader's version and fit: any change re-embeds."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from benthic.data.reader import READER_VERSION, try_read
from benthic.io import atomic_path
from benthic.paths import cache_dir

FIT = "stretch"  # the whole photo squashed to a square, as `benthic annotate` and the reef tiles see it
DEFAULT_SIZE = 224


def encoder_key(encoder: nn.Module) -> str:
    """Digest of an encoder's weights (every state tensor), input size, mean/std and the reader: the cache key."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    size = getattr(encoder, "input_size", None)
    digest.update(f"{size};{tuple(encoder.mean)};{tuple(encoder.std)};{FIT};reader{READER_VERSION}".encode())
    return digest.hexdigest()[:20]


def file_key(path: str | os.PathLike) -> str:
    """Digest of a file's bytes (an image moved or renamed keeps its features)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:24]


@dataclass
class Embedded:
    """Features of the readable files (rows follow `rows`, indices into the files given) and the skipped ones
    as (index, reason); `cached` counts the rows served from the cache."""

    features: np.ndarray
    rows: np.ndarray
    skipped: list[tuple[int, str]]
    cached: int


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    with np.load(path) as data:
        return dict(zip(data["keys"].tolist(), data["features"]))


def _store(path: Path, table: dict[str, np.ndarray]) -> None:
    keys = sorted(table)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, keys=np.array(keys), features=np.stack([table[k] for k in keys]))


def default_cache() -> Path:
    """Where features are cached: cache_dir()/features (data/cache/features, or under $BENTHIC_CACHE)."""
    return cache_dir() / "features"


def embed_files(
    encoder: nn.Module,
    files: Sequence[str | os.PathLike],
    device: str,
    cache: str | os.PathLike | None = None,
    batch_size: int = 32,
    progress: bool = True,
) -> Embedded:
    """Features of `files` read by benthic.data.reader (stretched to the encoder's input size) and embedded by the
    frozen `encoder` (benthic.ssl.embed); unreadable files are skipped with their reason. `cache` None: no cache."""
    from benthic.ssl import embed

    size = int(getattr(encoder, "input_size", None) or DEFAULT_SIZE)
    store = Path(cache) / f"{encoder_key(encoder)}.npz" if cache is not None else None
    table = _load(store) if store is not None else {}
    keys = [file_key(f) if Path(f).is_file() else "" for f in files]
    todo = [i for i, k in enumerate(keys) if k not in table]
    cached = len(files) - len(todo)
    skipped: list[tuple[int, str]] = []
    for start in tqdm(range(0, len(todo), batch_size), desc="features", disable=not progress or not todo, leave=False):
        batch = [(i, *try_read(files[i], size, FIT)) for i in todo[start : start + batch_size]]
        skipped += [(i, why) for i, arr, why in batch if arr is None]
        good = [(i, arr) for i, arr, _ in batch if arr is not None]
        if good:
            z = embed(encoder, np.stack([a for _, a in good]), batch_size=batch_size, device=device)
            table.update({keys[i]: row for (i, _), row in zip(good, z)})
    if store is not None and len(todo) > len(skipped):
        _store(store, table)
    bad = {i for i, _ in skipped}
    rows = np.array([i for i in range(len(files)) if i not in bad], dtype=int)
    dim = next(iter(table.values())).shape[0] if table else int(getattr(encoder, "feature_dim", 0))
    feats = np.stack([table[keys[i]] for i in rows]).astype(np.float32) if len(rows) else np.zeros((0, dim), np.float32)
    return Embedded(feats, rows, sorted(skipped), cached)
