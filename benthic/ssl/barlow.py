"""Barlow Twins (Zbontar et al., 2021, arXiv:2103.03230; BenthicNet's method): 3-layer projector of width 8192
and the cross-correlation loss with lambda 5e-3, both from the Barlow Twins paper (ImageNet). The SGD settings
(peak lr 0.06, weight decay 5e-4) are lightly's CIFAR-10 benchmark settings (lightly-ai/lightly, benchmarks), also
SimSiam's in the monitoring paper, and 800 epochs is SimSiam's length there: neither the Barlow Twins paper nor
BenthicNet gives a CIFAR protocol. As in the official code, embeddings are standardised by a non-affine batch
norm (synchronised across processes) and the correlation matrix is summed over processes, so a DDP run computes
exactly the single-process loss on the global batch."""

from __future__ import annotations

import torch
from lightly.models.modules import BarlowTwinsProjectionHead
from torch import nn

from benthic.ssl.base import SSLMethod, full_precision, world_size


def barlow_twins_loss(c: torch.Tensor, lambda_param: float) -> torch.Tensor:
    """sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 for a cross-correlation matrix C."""
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambda_param * off_diag


class BarlowTwins(SSLMethod):
    lr = 0.06
    weight_decay = 5e-4
    width = 8192
    lambda_param = 5e-3

    def __init__(self, backbone: nn.Module, width: int | None = None):
        super().__init__(backbone)
        w = width or self.width
        self.projection = BarlowTwinsProjectionHead(backbone.feature_dim, w, w)
        self.standardise = nn.BatchNorm1d(w, affine=False)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.features(x1, x2)
        z1, z2 = self.projection(torch.cat((h1, h2))).float().chunk(2)
        with full_precision(z1):
            c = self.standardise(z1).t() @ self.standardise(z2) / (len(z1) * world_size())
            if world_size() > 1:
                from torch.distributed.nn.functional import all_reduce

                c = all_reduce(c)
            return barlow_twins_loss(c, self.lambda_param)
