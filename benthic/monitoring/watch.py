"""The label-free monitor of a run on a collection: at each milestone, the label-free metrics of the encoder on a
fixed sample of unlabelled images, written to monitor.csv and drawn as monitor.png (metric vs epoch) beside the
milestones, both rewritten whole at every milestone so a stopped run keeps everything measured so far."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from benthic import io
from benthic.errors import UserError
from benthic.monitoring.config import MonitorConfig
from benthic.monitoring.hook import MilestoneMonitor

DEFAULT_K1 = 10
"""k-means k1 when there are no classes to count: 10, the number of CIFAR-10 classes the metrics were
validated with (Xu, Lowe & Trappenberg, 2022, arXiv:2409.06612); choose it near the number of visual kinds
(substrates, biota) you expect."""
DEFAULT_SHARE = 10  # the default sample is 1 image in this many, ...
DEFAULT_MAX = 1000  # ... at most this many (UMAP and k-means stay a few seconds per milestone on a CPU)


def smallest_sample(k1: int, config: MonitorConfig = MonitorConfig()) -> int:
    """Fewest images the monitor accepts: more than UMAP's neighbours and than 2 k1."""
    return max(config.n_neighbors, 2 * k1) + 1


def check_sample(n: int, k1: int, config: MonitorConfig = MonitorConfig()) -> None:
    """UserError unless a sample of `n` images exceeds UMAP's neighbours and 2 k1."""
    if k1 < 2:
        raise UserError(f"--monitor-k (k-means k1) must be >= 2, got {k1}")
    if n < smallest_sample(k1, config):
        raise UserError(
            f"--monitor {n} is too small: the sample must exceed UMAP's {config.n_neighbors} neighbours and "
            f"2 k1 = {2 * k1}, so at least {smallest_sample(k1, config)} images"
        )


def default_sample(n_images: int, k1: int, config: MonitorConfig = MonitorConfig()) -> int:
    """Monitor sample size of a collection of `n_images`: 1 in 10, at most 1000, at least the smallest accepted
    plus 20 % (room for unreadable files); 0 (no monitor) when that would be more than a quarter of the images."""
    low = -(-smallest_sample(k1, config) * 6 // 5)
    if n_images < 4 * low:
        return 0
    return int(min(DEFAULT_MAX, max(low, n_images // DEFAULT_SHARE)))


class CollectionMonitor(MilestoneMonitor):
    """`monitor(epoch, encoder)`: the label-free metrics on `images`, appended to <folder>/monitor.csv and drawn
    in <folder>/monitor.png. A resumed run reuses the logged rows of its milestones (same sample, k1 and settings,
    checked by a hash in the `sample` column) instead of computing them again."""

    def __init__(
        self, images: np.ndarray, k1: int, folder: str | Path, config: MonitorConfig = MonitorConfig(), device=None
    ):
        check_sample(len(images), k1, config)
        self.png_path = Path(folder) / "monitor.png"
        super().__init__(images, k1, config, device=device, log_path=Path(folder) / "monitor.csv")
        digest = hashlib.sha1(np.ascontiguousarray(images).data)
        digest.update(f"{k1}-{config.key()}".encode())
        self.tags = {"sample": digest.hexdigest()[:10]}
        self.logged = self._logged()

    def _logged(self) -> dict[int, dict]:
        """Rows of monitor.csv written for this very sample and settings, by epoch."""
        if not self.log_path.is_file():
            return {}
        table = pd.read_csv(self.log_path)
        if "sample" not in table.columns:
            return {}
        return {int(r["epoch"]): r for r in table[table["sample"] == self.tags["sample"]].to_dict("records")}

    def __call__(self, epoch: int, encoder) -> dict:
        import matplotlib.pyplot as plt

        if int(epoch) in self.logged:
            self.rows.append(self.logged[int(epoch)])
            return self.rows[-1]
        row = super().__call__(epoch, encoder)
        fig = self.plot()
        fig.suptitle(f"label-free metrics on {len(self.images)} unlabelled images (k1 = {self.n_classes})", fontsize=8)
        fig.tight_layout()
        with io.atomic_path(self.png_path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        plt.close(fig)
        return row
