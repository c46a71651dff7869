"""Barlow Twins (Zbontar et al. 2021; BenthicNet's method): 3-layer projector of width 8192,
cross-correlation loss with lambda 5e-3, the correlation matrix summed across processes."""

from __future__ import annotations

import torch
from lightly.loss import BarlowTwinsLoss
from lightly.models.modules import BarlowTwinsProjectionHead
from torch import nn

from .base import SSLMethod, full_precision


class BarlowTwins(SSLMethod):
    lr = 0.06
    weight_decay = 5e-4
    width = 8192
    lambda_param = 5e-3

    def __init__(self, backbone: nn.Module, width: int | None = None):
        super().__init__(backbone)
        w = width or self.width
        self.projection = BarlowTwinsProjectionHead(backbone.feature_dim, w, w)
        self.criterion = BarlowTwinsLoss(lambda_param=self.lambda_param, gather_distributed=True)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.features(x1, x2)
        z1, z2 = self.projection(torch.cat((h1, h2))).float().chunk(2)
        with full_precision(z1):
            return self.criterion(z1, z2)
