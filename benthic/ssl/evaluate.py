"""Per-milestone evaluation for notebook 01 and results files: SSL loss and weighted kNN top-1 per
milestone, and the provenance (command, commit, device) written beside committed results."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..probe import knn_accuracy
from ..provenance import provenance
from .config import SSLConfig
from .trainer import embed, load_encoder, milestone_epoch, read_milestone

# per scale: test images used for kNN (None = the whole test split; the bank is the SSL training set)
# and the embedding precision (bf16 on CPU is ~2.5x faster; features within ~0.5%)
EVAL_TEST_SUBSET = {"smoke": 1000, "quick": 5000, "paper": None}
EVAL_PRECISION = {"smoke": "bf16", "quick": "bf16", "paper": "fp32"}


def knn_milestones(config: SSLConfig, paths: list[Path], k: int = 200, temperature: float = 0.1,
                   device: str | None = None) -> pd.DataFrame:
    """One row per milestone: method, epoch, the epoch's mean SSL loss (NaN at init) and kNN top-1 on the
    test split, with the config's training images (labels used only here) as the kNN bank."""
    from ..data.cifar import load_cifar, stratified_subset

    train_x, train_y = load_cifar(config.dataset, "train")
    if config.train_subset and config.train_subset < len(train_x):
        idx = stratified_subset(train_y, config.train_subset, config.seed)
        train_x, train_y = train_x[idx], train_y[idx]
    test_x, test_y = load_cifar(config.dataset, "test")
    n_test = EVAL_TEST_SUBSET[config.scale]
    if n_test and n_test < len(test_x):
        idx = stratified_subset(test_y, n_test, config.seed)
        test_x, test_y = test_x[idx], test_y[idx]
    history = {h["epoch"]: h for h in read_milestone(paths[-1])["history"]}
    rows = []
    for path in paths:
        encoder = load_encoder(path)
        epoch = milestone_epoch(path)
        prec = EVAL_PRECISION[config.scale]
        acc = knn_accuracy(embed(encoder, train_x, device=device, precision=prec), train_y,
                           embed(encoder, test_x, device=device, precision=prec), test_y, k=k, temperature=temperature)
        rows.append({"method": config.method, "dataset": config.dataset, "backbone": config.backbone, "epoch": epoch,
                     "ssl_loss": history[epoch]["loss"] if epoch in history else np.nan, "knn_top1": acc,
                     "milestone": str(path)})
    return pd.DataFrame(rows)


def loss_history(paths: list[Path], method: str) -> pd.DataFrame:
    """Per-epoch training record (loss, seconds, views/s, lr) stored in a run's last milestone."""
    df = pd.DataFrame(read_milestone(paths[-1])["history"])
    df.insert(0, "method", method)
    return df


def save_results(table: pd.DataFrame, configs: dict[str, SSLConfig], path: str | os.PathLike,
                 command: str | None = None) -> Path:
    """Write per-milestone results with the configs and provenance as JSON (results/ssl/...)."""
    clean = table.drop(columns=["milestone"], errors="ignore").astype(object)
    rows = clean.where(clean.notna(), None).to_dict(orient="records")  # NaN (no loss at init) -> null
    return io.write_json(path, {"provenance": provenance(command), "configs": {m: c.to_dict() for m, c in configs.items()},
                                "milestones": rows})
