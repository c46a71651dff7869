"""SimCLR (Chen et al. 2020): 2-layer projector (hidden 2048, BN, out 128), NT-Xent with tau 0.5,
negatives from the whole (gathered, with gradients) batch."""

from __future__ import annotations

import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from torch import nn

from benthic.ssl.base import SSLMethod, full_precision


class SimCLR(SSLMethod):
    lr = 0.5
    weight_decay = 1e-4
    width = 2048
    temperature = 0.5

    def __init__(self, backbone: nn.Module, width: int | None = None, out_dim: int = 128):
        super().__init__(backbone)
        self.projection = SimCLRProjectionHead(backbone.feature_dim, width or self.width, out_dim, num_layers=2)
        self.criterion = NTXentLoss(temperature=self.temperature, gather_distributed=True)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.features(x1, x2)
        z = self.projection(torch.cat((h1, h2))).float()
        z1, z2 = z.chunk(2)
        with full_precision(z):
            return self.criterion(z1, z2)
