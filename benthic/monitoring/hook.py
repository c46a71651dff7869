"""Watch a training run without labels: a milestone hook that computes and logs the label-free metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benthic import io
from benthic.monitoring.config import LABEL_FREE, METRIC_LABELS, MonitorConfig
from benthic.monitoring.milestones import evaluate_milestone


class MilestoneMonitor:
    """Training callback: `monitor(epoch, encoder)` computes the label-free metrics of the encoder on
    unlabelled `images` (what a user without labels would watch), keeps them in `table` (and in the CSV
    `log_path` when given), and with live=True redraws a small plot in the notebook."""

    def __init__(
        self,
        images: np.ndarray,
        n_classes: int,
        config: MonitorConfig = MonitorConfig(),
        live: bool = False,
        device=None,
        log_path: str | Path | None = None,
    ):
        self.images, self.n_classes, self.config, self.live, self.device = images, n_classes, config, live, device
        self.log_path = log_path
        self.rows: list[dict] = []
        self.tags: dict = {}  # constant columns added to every row (e.g. which sample the metrics are of)
        self._handle = None

    def __call__(self, epoch: int, encoder) -> dict:
        row = {
            "epoch": int(epoch),
            **evaluate_milestone(encoder, self.images, None, self.n_classes, config=self.config, device=self.device),
            **self.tags,
        }
        self.rows.append(row)
        if self.log_path is not None:  # rewritten whole after each milestone: a crash loses nothing logged
            with io.atomic_path(self.log_path) as tmp:
                self.table.to_csv(tmp, index=False)
        if self.live:
            self._redraw()
        return row

    def summary(self, row: dict) -> str:
        """One line of a milestone's label-free metrics, for a terminal."""
        return f"epoch {row['epoch']}: " + "  ".join(f"{METRIC_LABELS[m]} {row[m]:.3f}" for m in LABEL_FREE)

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def plot(self):
        """The label-free metrics against epoch, one small panel each."""
        import matplotlib.pyplot as plt

        df = self.table
        fig, axes = plt.subplots(1, len(LABEL_FREE), figsize=(2.6 * len(LABEL_FREE), 2.3))
        for ax, m in zip(axes, LABEL_FREE):
            ax.plot(df.epoch, df[m], "o-", ms=3)
            ax.set_title(METRIC_LABELS[m], fontsize=8)
            ax.set_xlabel("epoch", fontsize=7)
            ax.tick_params(labelsize=6)
        fig.tight_layout()
        return fig

    def _redraw(self) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig = self.plot()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)


def train_with_monitor(config, monitor: MilestoneMonitor, images=None, **train_options) -> list[Path]:
    """Train an SSL run and call `monitor(epoch, encoder)` as each milestone lands (in memory, through
    train_milestones' on_milestone hook; milestones already on disk are replayed); returns the milestone files.
    images: an array or a benthic.data.collection.Collection; train_options: out=, workers= of train_milestones."""
    from benthic.ssl import train_milestones

    return train_milestones(config, images, on_milestone=monitor, **train_options)
