"""SimSiam (Chen & He 2021): 3-layer projector of width 2048, predictor 2048 -> 512 -> 2048,
symmetric negative cosine similarity with a stop-gradient on the target branch."""

from __future__ import annotations

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import SimSiamPredictionHead, SimSiamProjectionHead
from torch import nn

from benthic.ssl.base import SSLMethod, full_precision


class SimSiam(SSLMethod):
    lr = 0.06
    weight_decay = 5e-4
    width = 2048

    def __init__(self, backbone: nn.Module, width: int | None = None):
        super().__init__(backbone)
        w = width or self.width
        self.projection = SimSiamProjectionHead(backbone.feature_dim, w, w)
        self.prediction = SimSiamPredictionHead(w, w // 4, w)
        self.criterion = NegativeCosineSimilarity()

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.features(x1, x2)
        z = self.projection(torch.cat((h1, h2)))
        p = self.prediction(z).float()
        z1, z2 = z.float().chunk(2)
        p1, p2 = p.chunk(2)
        with full_precision(p):
            return 0.5 * (self.criterion(p1, z2.detach()) + self.criterion(p2, z1.detach()))
