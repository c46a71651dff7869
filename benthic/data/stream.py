"""Stream a collection into training: images decoded and resized in DataLoader workers, batches of uint8 that
go to the device whole (the batched augmenter makes the views there). The epoch order is a seeded permutation
cut into global batches; under DDP each rank takes its slice of every global batch, so every image is seen at
most once per epoch and every rank runs the same number of steps. An unreadable or vanished file is replaced
by the next readable one in the collection and counted, so a bad file never shortens an epoch."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from benthic.data.collection import Collection, read_image
from benthic.data.reader import UnreadableImage

RETRIES = 16
"""Consecutive unreadable files tolerated for one slot before the run stops (a vanished disk, not a bad file)."""


def epoch_order(n: int, batch_size: int, seed: int, epoch: int) -> torch.Tensor:
    """(steps, batch_size) real sample indexes of one epoch: a seeded permutation, last partial batch dropped."""
    steps = n // batch_size
    if steps == 0:
        raise ValueError(f"{n} training images are fewer than one batch of {batch_size}")
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)[: steps * batch_size].view(steps, batch_size)


class EpochBatches(Sampler):
    """Batch sampler of one rank: its slice of each global batch of `epoch_order`; `set_epoch` before each epoch."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ValueError(f"batch size {batch_size} does not split over {world} processes")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.local = batch_size // world
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = epoch_order(self.n, self.batch_size, self.seed, self.epoch)
        yield from order[:, self.rank * self.local : (self.rank + 1) * self.local].tolist()


class CollectionImages(Dataset):
    """Map dataset: item i -> (uint8 (size, size, 3), failures, first reason). A file that cannot be read is
    replaced by the next readable one (i + 1, i + 2, ...; at most RETRIES tries) and counted in `failures`."""

    def __init__(self, collection: Collection, size: int, fit: str = "centre_square"):
        self.collection, self.size, self.fit = collection, size, fit

    def __len__(self) -> int:
        return len(self.collection)

    def __getitem__(self, i: int) -> tuple[np.ndarray | None, int, str]:
        reason = ""
        for k in range(RETRIES):
            j = (i + k) % len(self.collection)
            try:
                return read_image(self.collection, j, self.size, self.fit), k, reason
            except UnreadableImage as exc:
                reason = reason or f"{self.collection.relpath(j)}: {exc}"
        return None, RETRIES, reason


class StreamStopped(RuntimeError):
    """RETRIES files in a row could not be read: the collection's storage went away; the message says which."""


def collate(items: list[tuple[np.ndarray | None, int, str]]) -> dict:
    """Stack a batch: {"images": uint8 (B, H, W, 3), "skipped": files replaced, "reasons": first reasons}."""
    dead = [reason for img, _, reason in items if img is None]
    if dead:
        raise StreamStopped(f"{RETRIES} files in a row could not be read, from {dead[0]}")
    return {
        "images": torch.from_numpy(np.stack([img for img, _, _ in items])),
        "skipped": sum(n for _, n, _ in items),
        "reasons": [reason for _, n, reason in items if n],
    }


def _quiet_worker(_: int) -> None:
    """Workers decode on one thread each (torch, numba and BLAS would otherwise oversubscribe the cores)."""
    torch.set_num_threads(1)


def stream(
    collection: Collection,
    batch_size: int,
    seed: int,
    size: int,
    *,
    rank: int = 0,
    world: int = 1,
    workers: int = 0,
    pin_memory: bool = False,
    fit: str = "centre_square",
) -> DataLoader:
    """The DataLoader of one rank: call `.batch_sampler.set_epoch(e)` before iterating epoch e; workers persist
    across epochs and prefetch 4 batches each."""
    return DataLoader(
        CollectionImages(collection, size, fit),
        batch_sampler=EpochBatches(len(collection), batch_size, seed, rank, world),
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_quiet_worker if workers > 0 else None,
    )
