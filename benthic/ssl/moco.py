"""MoCo-v2 (Chen, Fan, Girshick & He, 2020, arXiv:2003.04297): a 2-layer MLP projector (hidden 2048, out 128,
no BatchNorm as in MoCo-v2), InfoNCE with tau 0.1 of a query against its positive key and a queue of 4096
negative keys from a momentum (EMA m = 0.99) key encoder. As defined there: one direction (view 1 is the
query, view 2 the key) and B keys enqueued per step. Options: `symmetric` (each view the query for the other's
key, 2B keys per step, as in symmetrised CIFAR variants), `projector_bn` (BatchNorm in the projector's hidden
layer, which the monitoring paper leaves open) and `bn_splits` (shuffle-BN emulated on one device)."""

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


def split_forward(net: nn.Module, x: torch.Tensor, splits: int, shuffle: bool = False) -> torch.Tensor:
    """net(x) with batch-norm statistics taken over `splits` equal groups of the batch (each group one call), the
    batch shuffled first when `shuffle` and the output put back in order: MoCo's shuffle-BN on one device."""
    if splits == 1:
        return net(x)
    if len(x) % splits:
        raise ValueError(f"batch of {len(x)} does not split into {splits} equal batch-norm groups")
    order = torch.randperm(len(x), device=x.device) if shuffle else torch.arange(len(x), device=x.device)
    out = torch.cat([net(chunk) for chunk in x[order].chunk(splits)])
    return out[torch.argsort(order)]


class MoCoV2(SSLMethod):
    lr = 0.06
    weight_decay = 5e-4
    width = 2048
    temperature = 0.1
    queue_size = 4096
    momentum = 0.99

    def __init__(
        self,
        backbone: nn.Module,
        width: int | None = None,
        out_dim: int = 128,
        queue_size: int | None = None,
        symmetric: bool = False,
        projector_bn: bool = False,
        bn_splits: int = 1,
    ):
        super().__init__(backbone)
        self.symmetric, self.bn_splits = symmetric, bn_splits
        self.projection = MoCoProjectionHead(
            backbone.feature_dim, width or self.width, out_dim, batch_norm=projector_bn
        )
        self.backbone_momentum = copy.deepcopy(backbone)
        self.projection_momentum = copy.deepcopy(self.projection)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_momentum)
        size = queue_size or self.queue_size
        self.register_buffer("queue", F.normalize(torch.randn(size, out_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def queries(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-norm queries from the query encoder (batch norm over `bn_splits` groups in batch order)."""
        net = nn.Sequential(self.backbone, self.projection)
        return F.normalize(split_forward(net, x, self.bn_splits).float(), dim=1)

    @torch.no_grad()
    def keys(self, x: torch.Tensor) -> torch.Tensor:
        """Unit-norm keys from the momentum encoder (batch norm over `bn_splits` groups of a shuffled batch)."""
        net = nn.Sequential(self.backbone_momentum, self.projection_momentum)
        return F.normalize(split_forward(net, x, self.bn_splits, shuffle=self.bn_splits > 1).float(), dim=1)

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
        queue = self.queue.clone()
        if self.symmetric:
            q1, q2 = self.queries(torch.cat((x1, x2))).chunk(2)
            k1, k2 = self.keys(torch.cat((x1, x2))).chunk(2)
            with full_precision(q1):
                loss = 0.5 * (info_nce(q1, k2, queue, self.temperature) + info_nce(q2, k1, queue, self.temperature))
            new_keys = torch.cat((k1, k2))
        else:
            q, new_keys = self.queries(x1), self.keys(x2)
            with full_precision(q):
                loss = info_nce(q, new_keys, queue, self.temperature)
        if self.training:
            self.enqueue(new_keys)
        return loss

    def after_step(self, progress: float) -> None:
        update_momentum(self.backbone, self.backbone_momentum, self.momentum)
        update_momentum(self.projection, self.projection_momentum, self.momentum)
