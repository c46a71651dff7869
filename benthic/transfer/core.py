"""One training loop for every transfer experiment: a (frozen or trainable) encoder with a head, fitted
by `fit` on cached features (linear probe) or images (fine-tuning), and `predict`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from benthic.models.augment import prepare
from benthic.scales import Settings
from benthic.seed import default_device, seed_everything


@dataclass(frozen=True)
class TrainConfig(Settings):
    """One training run: epochs, AdamW learning rate / weight decay, batch size; `augment` flips and
    rotates image batches by multiples of 90 degrees (fine-tuning only: seafloor photos have no 'up')."""

    epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 128
    augment: bool = True

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"need epochs >= 1 and batch_size >= 1, got {self.epochs} and {self.batch_size}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0, got {self.lr} and {self.weight_decay}")


# -------------------------------------------------------------------------------------- training
def random_dihedral(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per-sample random symmetry of the square (horizontal/vertical flips and a transpose, so every
    90-degree rotation and mirror) of a square NCHW batch: fine-tuning's augmentation; lossless, no resampling."""
    n = x.shape[0]
    flip_h, flip_v, rot = (
        (torch.rand(n, generator=gen) < 0.5),
        (torch.rand(n, generator=gen) < 0.5),
        (torch.rand(n, generator=gen) < 0.5),
    )
    x = torch.where(flip_h.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)
    x = torch.where(flip_v.view(-1, 1, 1, 1).to(x.device), x.flip(2), x)
    return torch.where(rot.view(-1, 1, 1, 1).to(x.device), x.transpose(2, 3), x)


class Model(nn.Module):
    """An optional encoder (fine-tuning; None for a probe on cached features) followed by a head."""

    def __init__(self, head: nn.Module, encoder: nn.Module | None = None):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x) if self.encoder is not None else x)


def _inputs(model: Model, x, idx, device, size) -> torch.Tensor:
    if model.encoder is None:
        return torch.as_tensor(x[idx], dtype=torch.float32, device=device)
    return prepare(x[idx], model.encoder.mean, model.encoder.std, size, device)


def fit(
    model: Model,
    x: np.ndarray,
    targets: Sequence[np.ndarray],
    loss_fn: Callable[..., torch.Tensor],
    cfg: TrainConfig,
    seed: int,
    size: int | None = None,
    device: str | None = None,
    progress: bool = False,
) -> Model:
    """Train `model` with AdamW on features (probe) or uint8 images (fine-tune, augmented when `cfg.augment`);
    `loss_fn(logits, *target_batches)`; batches drop nothing, BatchNorm sees batches of at least 2."""
    device = device or default_device()
    seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(x)
    bs = min(cfg.batch_size, n)
    for _ in tqdm(range(cfg.epochs), disable=not progress, desc="train", leave=False):
        order = torch.randperm(n, generator=gen).numpy()
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            if len(idx) < 2:
                continue
            xb = _inputs(model, x, idx, device, size)
            if model.encoder is not None and cfg.augment:
                xb = random_dihedral(xb, gen)
            loss = loss_fn(model(xb), *[torch.as_tensor(t[idx], device=device) for t in targets])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def predict(
    model: Model, x: np.ndarray, size: int | None = None, batch_size: int = 256, device: str | None = None
) -> np.ndarray:
    """Raw outputs (N, K) of a trained model on features or uint8 images."""
    device = device or default_device()
    model.to(device).eval()
    out = [
        model(_inputs(model, x, np.arange(s, min(s + batch_size, len(x))), device, size)).float().cpu()
        for s in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def linear_head(in_dim: int, n_classes: int) -> nn.Module:
    """The linear probe / fine-tuning classifier: BatchNorm1d (no affine: standardises features) + Linear."""
    return nn.Sequential(nn.BatchNorm1d(in_dim, affine=False), nn.Linear(in_dim, n_classes))


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits, y.long())
