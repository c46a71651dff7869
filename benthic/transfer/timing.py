"""Per-image inference time of the compared encoders, per device and batch size (notebook 06)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from benthic.transfer import core, encoders
from benthic.transfer.crossval import CVConfig, CVModel


# ------------------------------------------------------------------------------ inference time
@torch.no_grad()
def inference_time(
    model: nn.Module, size: int, batch_size: int, device: str = "cpu", warmup: int = 2, repeats: int = 5
) -> float:
    """Median seconds per image of model(x) for a random normalised (batch_size, 3, size, size) batch;
    `warmup` untimed passes first; CUDA synchronised around each timed pass."""
    model = model.to(device).eval()
    x = torch.randn(batch_size, 3, size, size, device=device)
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / batch_size


def timing_table(
    models: Sequence[CVModel], n_classes: int, cfg: CVConfig, devices: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per model, device (CPU, and CUDA when present) and batch size: ms per image and images/s of
    encoder + linear head at the model's input size (weights do not change the time)."""
    devices = list(devices) if devices is not None else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for m in tqdm(models, desc="timing", leave=False):
        encoder = encoders.build_encoder(m.encoder)
        net = core.Model(core.linear_head(encoder.feature_dim, n_classes), encoder)
        for dev in devices:
            for bs in cfg.timing_batches:
                s = inference_time(net, m.size, bs, dev, repeats=cfg.timing_repeats)
                rows.append(
                    {"model": m.name, "device": dev, "batch_size": bs, "ms_per_image": 1e3 * s, "images_per_s": 1.0 / s}
                )
    return pd.DataFrame(rows)
