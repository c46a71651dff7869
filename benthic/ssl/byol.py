"""BYOL (Grill et al., 2020, arXiv:2006.07733): projector and predictor MLPs (hidden 4096, out 256, from the BYOL
paper), symmetric negative cosine loss against a momentum target whose EMA rate follows a cosine schedule from
0.99 to 1. Sources of the settings: the heads and the loss are BYOL's own (ImageNet); the EMA start 0.99 and the
SGD settings (peak lr 0.06, weight decay 5e-4) are lightly's CIFAR-10 benchmark base settings (lightly-ai/lightly,
benchmarks), which are also SimSiam's in the monitoring paper; 800 epochs is SimSiam's length there. Neither the
BYOL paper nor BenthicNet gives a CIFAR protocol."""

from __future__ import annotations

import copy

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule
from torch import nn

from benthic.ssl.base import SSLMethod, full_precision


class BYOL(SSLMethod):
    lr = 0.06
    weight_decay = 5e-4
    width = 4096
    base_momentum = 0.99

    def __init__(self, backbone: nn.Module, width: int | None = None, out_dim: int = 256):
        super().__init__(backbone)
        w = width or self.width
        self.projection = BYOLProjectionHead(backbone.feature_dim, w, out_dim)
        self.prediction = BYOLPredictionHead(out_dim, w, out_dim)
        self.backbone_momentum = copy.deepcopy(backbone)
        self.projection_momentum = copy.deepcopy(self.projection)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_momentum)
        self.criterion = NegativeCosineSimilarity()

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        h1, h2 = self.features(x1, x2)
        p1, p2 = self.prediction(self.projection(torch.cat((h1, h2)))).float().chunk(2)
        with torch.no_grad():
            t1, t2 = self.projection_momentum(self.backbone_momentum(torch.cat((x1, x2)))).float().chunk(2)
        with full_precision(p1):
            return 0.5 * (self.criterion(p1, t2) + self.criterion(p2, t1))

    def after_step(self, progress: float) -> None:
        m = cosine_schedule(int(progress * 10_000), 10_000, self.base_momentum, 1.0)
        update_momentum(self.backbone, self.backbone_momentum, m)
        update_momentum(self.projection, self.projection_momentum, m)
