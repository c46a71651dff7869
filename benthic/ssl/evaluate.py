"""Per-milestone evaluation for notebook 01 and results files: SSL loss and weighted kNN top-1 per
milestone, the provenance (command, commit, device) written beside committed results, and reading such a
file back to render it instead of training."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from benthic import io, paths
from benthic.device import check_precision
from benthic.probe import knn_accuracy
from benthic.provenance import provenance
from benthic.scales import Registry, Settings
from benthic.ssl.config import SSLConfig
from benthic.ssl.trainer import embed, load_encoder, milestone_epoch, read_milestone

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class KNNScale(Settings):
    """The kNN monitor at one scale: test images (None = the whole test split; the bank is the SSL training
    set) and the embedding precision (bf16 on CPU is about 2.5x faster; features within about 0.5 %)."""

    n_test: int | None
    precision: str

    def validate(self) -> None:
        if self.n_test is not None and self.n_test < 1:
            raise ValueError(f"n_test must be positive or None (all), got {self.n_test}")
        check_precision(self.precision)


KNN: Registry[KNNScale] = Registry("kNN monitor", KNNScale)
KNN.register("smoke", KNNScale(n_test=1000, precision="bf16"))
KNN.register("quick", KNNScale(n_test=5000, precision="bf16"))
KNN.register("gpu", KNNScale(n_test=None, precision="bf16"))
KNN.register("paper", KNNScale(n_test=None, precision="fp32"))


def knn_milestones(
    config: SSLConfig, paths: list[Path], k: int = 200, temperature: float = 0.1, device: str | None = None
) -> pd.DataFrame:
    """One row per milestone: method, epoch, the epoch's mean SSL loss (NaN at init) and kNN top-1 on the
    test split, with the config's training images (labels used only here) as the kNN bank."""
    from benthic.data.cifar import load_cifar, stratified_subset

    train_x, train_y = load_cifar(config.dataset, "train")
    if config.train_subset and config.train_subset < len(train_x):
        idx = stratified_subset(train_y, config.train_subset, config.seed)
        train_x, train_y = train_x[idx], train_y[idx]
    test_x, test_y = load_cifar(config.dataset, "test")
    settings = KNN.get(config.scale)
    n_test = settings.n_test
    if n_test and n_test < len(test_x):
        idx = stratified_subset(test_y, n_test, config.seed)
        test_x, test_y = test_x[idx], test_y[idx]
    history = {h["epoch"]: h for h in read_milestone(paths[-1])["history"]}
    rows = []
    for path in paths:
        encoder = load_encoder(path)
        epoch = milestone_epoch(path)
        prec = settings.precision
        acc = knn_accuracy(
            embed(encoder, train_x, device=device, precision=prec),
            train_y,
            embed(encoder, test_x, device=device, precision=prec),
            test_y,
            k=k,
            temperature=temperature,
        )
        rows.append(
            {
                "method": config.method,
                "dataset": config.dataset,
                "backbone": config.backbone,
                "epoch": epoch,
                "ssl_loss": history[epoch]["loss"] if epoch in history else np.nan,
                "knn_top1": acc,
                "milestone": str(path),
            }
        )
    return pd.DataFrame(rows)


def loss_history(paths: list[Path], method: str) -> pd.DataFrame:
    """Per-epoch training record (loss, seconds, views/s, lr) stored in a run's last milestone."""
    df = pd.DataFrame(read_milestone(paths[-1])["history"])
    df.insert(0, "method", method)
    return df


def _records(df: pd.DataFrame) -> list[dict]:
    """Rows as strict-JSON records: NaN (no loss at init) -> null."""
    clean = df.astype(object)
    return clean.where(clean.notna(), None).to_dict(orient="records")


def save_results(
    table: pd.DataFrame,
    configs: dict[str, SSLConfig],
    path: str | os.PathLike,
    command: str | None = None,
    history: pd.DataFrame | None = None,
) -> Path:
    """Write per-milestone results with the configs and provenance as JSON (results/ssl/...), and the
    per-epoch training record (`loss_history` rows) when given, so the loss figure renders from the file."""
    data = {
        "provenance": provenance(command),
        "configs": {m: c.to_dict() for m, c in configs.items()},
        "milestones": _records(table.drop(columns=["milestone"], errors="ignore")),
    }
    if history is not None:
        data["history"] = _records(history)
    return io.write_json(path, data)


@dataclass
class SSLResults:
    """A results file read back: where it lies, its provenance, the configs per method, the per-milestone rows
    and the per-epoch history (None in files written before it was stored)."""

    path: Path
    provenance: dict
    configs: dict[str, SSLConfig]
    milestones: pd.DataFrame
    history: pd.DataFrame | None

    def source(self) -> str:
        """One sentence saying where the numbers come from: the file, its command, commit, device and date."""
        p, where = self.provenance, self.path
        if where.resolve().is_relative_to(paths.ROOT):
            where = where.resolve().relative_to(paths.ROOT)
        return (
            f"Rendered from {where} (not trained here): produced by `{p.get('command', '?')}` at commit "
            f"{str(p.get('commit', '?'))[:10]} on {p.get('device', '?')}, {p.get('date', '?')}."
        )

    def loss_curve(self) -> pd.DataFrame:
        """Per-epoch loss (method, epoch, loss, ...); for files without a history, each milestone's epoch loss."""
        if self.history is not None:
            return self.history
        rows = self.milestones.dropna(subset=["ssl_loss"])
        return rows[["method", "epoch", "ssl_loss"]].rename(columns={"ssl_loss": "loss"}).reset_index(drop=True)

    def only(self, methods: list[str]) -> SSLResults:
        """The same results restricted to `methods` (configs in that order); ValueError naming any the file lacks."""
        missing = [m for m in methods if m not in self.configs]
        if missing:
            raise ValueError(
                f"{self.path} has no results for {', '.join(missing)} (it has "
                f"{', '.join(self.configs)}): drop them from methods, or set use_committed=False to train"
            )

        def keep(df: pd.DataFrame) -> pd.DataFrame:
            return df[df["method"].isin(methods)].reset_index(drop=True)

        return SSLResults(
            self.path,
            self.provenance,
            {m: self.configs[m] for m in methods},
            keep(self.milestones),
            None if self.history is None else keep(self.history),
        )


MILESTONE_COLUMNS = ("method", "dataset", "backbone", "epoch", "ssl_loss", "knn_top1")
HISTORY_COLUMNS = ("method", "epoch", "loss", "seconds", "views_per_s", "lr_last_batch")


def _ordered(df: pd.DataFrame, first: tuple[str, ...]) -> pd.DataFrame:
    """`df` with the `first` columns (those present) in front, as `knn_milestones`/`loss_history` give them
    (the JSON file stores keys sorted)."""
    lead = [c for c in first if c in df]
    return df[lead + [c for c in df if c not in lead]]


def load_results(path: str | os.PathLike) -> SSLResults:
    """Read a file written by `save_results` (with or without the per-epoch history); null losses -> NaN."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"SSL results file {path} does not exist; save_results (notebook 01) writes it")
    data = json.loads(path.read_text())
    milestones = _ordered(pd.DataFrame(data["milestones"]).astype({"ssl_loss": float}), MILESTONE_COLUMNS)
    history = None
    if "history" in data:
        history = _ordered(pd.DataFrame(data["history"]).astype({"loss": float}), HISTORY_COLUMNS)
    return SSLResults(
        path, data["provenance"], {m: SSLConfig.from_dict(c) for m, c in data["configs"].items()}, milestones, history
    )


def paper_results_path(dataset: str) -> Path:
    """The committed GPU record of notebook 01 at the paper scale: results/ssl/paper_<dataset>.json."""
    return paths.RESULTS_DIR / "ssl" / f"paper_{dataset}.json"


def results_to_render(
    scale: str, dataset: str, methods: list[str], use_committed: bool = True, path: str | os.PathLike | None = None
) -> SSLResults | None:
    """What notebook 01 renders instead of training: `path` when given, else at the paper scale the committed
    results/ssl/paper_<dataset>.json when present (and use_committed); None means train."""
    if not path:
        path = paper_results_path(dataset)
        if scale != "paper" or not use_committed or not path.exists():
            return None
    return load_results(path).only(methods)


def plot_loss(history: pd.DataFrame) -> Figure:
    """One panel per method: SSL loss against epoch (each method's own loss, so scales differ)."""
    import matplotlib.pyplot as plt

    groups = list(history.groupby("method", sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3), squeeze=False)
    for ax, (m, h) in zip(axes[0], groups):
        ax.plot(h["epoch"], h["loss"], marker="o", ms=3)
        ax.set(title=m, xlabel="epoch", ylabel="SSL loss")
    fig.tight_layout()
    return fig


def plot_knn(table: pd.DataFrame, title: str) -> Figure:
    """kNN top-1 on the test split against milestone epoch, one line per method."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m, t in table.groupby("method", sort=False):
        ax.plot(t["epoch"], t["knn_top1"], marker="o", label=m)
    ax.set(xlabel="epoch", ylabel="kNN top-1 (test)", title=title)
    ax.legend()
    return fig
