"""MoCo-v2 (Chen et al. 2020): 2-layer MLP projector (hidden 2048, out 128), InfoNCE with tau 0.1
against a queue of 4096 keys from a momentum (EMA m = 0.99) key encoder. Symmetrised: each view is
a query for the other's key, and both views' keys enter the queue."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from lightly.models.modules import MoCoProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from torch import nn

from benthic.ssl.base import SSLMethod, full_precision, gather_no_grad


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo's InfoNCE: unit queries `q` (B, D), positive keys `k` (B, D), negatives `queue` (K, D)."""
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue.t()
    logits = torch.cat((pos, neg), 1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


class MoCoV2(SSLMethod):
    lr = 0.06
    weight_decay = 5e-4
    width = 2048
    temperature = 0.1
    queue_size = 4096
    momentum = 0.99

    def __init__(
        self, backbone: nn.Module, width: int | None = None, out_dim: int = 128, queue_size: int | None = None
    ):
        super().__init__(backbone)
        self.projection = MoCoProjectionHead(backbone.feature_dim, width or self.width, out_dim)
        self.backbone_momentum = copy.deepcopy(backbone)
        self.projection_momentum = copy.deepcopy(self.projection)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_momentum)
        size = queue_size or self.queue_size
        self.register_buffer("queue", F.normalize(torch.randn(size, out_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def keys(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-norm keys from the momentum encoder."""
        return F.normalize(self.projection_momentum(self.backbone_momentum(x)).float(), dim=1)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest entries of the ring-buffer queue with `keys` (gathered across processes)."""
        keys = gather_no_grad(keys)
        size, n = len(self.queue), len(keys)
        if n > size:
            raise ValueError(f"MoCo queue of {size} is smaller than the {n} keys of one step")
        idx = (self.queue_ptr + torch.arange(n, device=keys.device)) % size
        self.queue[idx] = keys.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + n) % size)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.features(x1, x2)
        q = F.normalize(self.projection(torch.cat((h1, h2))).float(), dim=1)
        q1, q2 = q.chunk(2)
        k1, k2 = self.keys(torch.cat((x1, x2))).chunk(2)
        queue = self.queue.clone()
        with full_precision(q):
            loss = 0.5 * (info_nce(q1, k2, queue, self.temperature) + info_nce(q2, k1, queue, self.temperature))
        if self.training:
            self.enqueue(torch.cat((k1, k2)))
        return loss

    def after_step(self, progress: float) -> None:
        update_momentum(self.backbone, self.backbone_momentum, self.momentum)
        update_momentum(self.projection, self.projection_momentum, self.momentum)
