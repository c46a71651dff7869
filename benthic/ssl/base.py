"""Shared base of the SSL methods, and the distributed pieces they need (batch norm synchronised
across processes on any device, gathering without gradients)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def full_precision(x: torch.Tensor):
    """Context that turns autocast off, so losses are computed in float32 under bf16 training."""
    return torch.autocast(x.device.type, enabled=False)


def world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from every process along dim 0 (for queues; no gradient)."""
    if world_size() == 1:
        return x
    out = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, 0)


class SSLMethod(nn.Module):
    """A self-supervised method: `backbone` (the encoder kept after training) plus heads; `forward(x1, x2)`
    returns the loss of a batch of view pairs; `after_step(progress)` runs after each optimiser step
    (momentum encoders); `lr`/`weight_decay` are the method's SGD defaults; `width` its head width."""

    lr: float = 0.06
    weight_decay: float = 5e-4
    width: int = 2048

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def features(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder features of both views in one pass (one batch-norm batch, faster on a GPU)."""
        h = self.backbone(torch.cat((x1, x2), 0))
        return h.chunk(2, 0)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def after_step(self, progress: float) -> None:
        """Hook after an optimiser step; `progress` = finished steps / total steps in [0, 1]."""


class DistributedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics span all processes, with gradients through the all-reduce.
    torch's SyncBatchNorm refuses CPU tensors; this one runs on any device (used for CPU/gloo runs)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-d input, got {x.dim()}-d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        count = torch.tensor([x.numel() / x.shape[1]], device=x.device, dtype=torch.float32)
        stats = torch.cat((xf.sum(dims), (xf * xf).sum(dims), count))
        stats = all_reduce(stats)
        c = x.shape[1]
        n = stats[-1]
        mean, var = stats[:c] / n, stats[c : 2 * c] / n - (stats[:c] / n) ** 2
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
                self.num_batches_tracked.add_(1)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Make every batch norm synchronise across processes: torch SyncBatchNorm on CUDA, else
    DistributedBatchNorm (same parameters and buffers, so checkpoints stay interchangeable)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, DistributedBatchNorm):
        out = DistributedBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        out.load_state_dict(module.state_dict())
        for new, old in zip(out.parameters(), module.parameters()):  # keep momentum encoders frozen
            new.requires_grad_(old.requires_grad)
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, convert_batchnorm(child, device))
    return out
