"""What the monitoring evaluates: the metric names and labels, and the evaluation settings of one milestone."""

from __future__ import annotations

from dataclasses import dataclass

from benthic import metrics
from benthic.device import check_precision
from benthic.scales import settings_key

METRIC_LABELS = {
    "ami_c1_gt": "AMI(C1,C_GT)",
    "ami_c1_c2": "AMI(C1,C2)",
    "s_gt": "S_GT",
    "s1": "S1",
    "entropy": "H(Z3)",
    "rankme": "RankMe",
    "alpha_req": "alpha-ReQ",
}
LABEL_BASED = ("ami_c1_gt", "s_gt")
LABEL_FREE = ("ami_c1_c2", "s1", "entropy", "rankme", "alpha_req")
ALL_METRICS = ("ami_c1_gt", "ami_c1_c2", "s_gt", "s1", "entropy", "rankme", "alpha_req")
SIGNIFICANCE = 0.05
CENTRING_METRICS = ("ami_c1_gt", "ami_c1_c2", "s1")  # the metrics that depend on k-means on Z3


@dataclass(frozen=True)
class MonitorConfig:
    """Evaluation settings of one milestone (paper: 50 neighbours, bin width 0.4; 0.8 and LP lr 0.003
    for supervised ImageNet models). probe: 'fast' (logistic regression on cached features) or
    'paper' (benthic.probe.linear_probe: Adam, one-cycle, AutoAugment, 20 epochs).
    center_z3: False (the paper's procedure) clusters Z3 as UMAP gives it; True clusters Z3 minus its mean (an
    option: UMAP's origin is arbitrary and the cosine distance depends on it). Each milestone reports both
    (columns `<metric>_uncentred` / `<metric>_centred` for CENTRING_METRICS; `centring_variant` picks one).
    probe_batch_size: the paper's linear probe batch (48 for the ImageNet models of Table II, where the
    paper reduced all batch sizes to 48; not stated for Table I, 256 here).
    umap_seed: None runs umap-learn unseeded and multi-threaded, about 1.8x faster on 2 cores but not
    reproducible (the paper reports UMAP's randomness, so it likely ran this way).
    precision: 'fp32' or 'bf16' (autocast + channels-last, benthic.ssl.embed) for the encoder's embeddings of the
    test and probe images; bf16 is the quick scale's, about 2.3x faster on a CPU with bf16 instructions;
    part of `key()`, so the two precisions never share cached metrics."""

    n_neighbors: int = 50
    bin_width: float = 0.4
    seed: int = 0
    silhouette_sample: int | None = metrics.EXACT_SILHOUETTE_MAX
    umap_knn: str = "exact"
    umap_epochs: int | None = None
    umap_seed: int | None = 0
    outlier_threshold: float = 8.0
    center_z3: bool = False
    probe: str = "fast"
    probe_lr: float = 0.08
    probe_batch_size: int = 256
    knn_k: int = 200
    batch_size: int = 256
    precision: str = "fp32"

    def __post_init__(self) -> None:
        check_precision(self.precision)

    def key(self) -> str:
        """Short hash of the settings (cache file suffix)."""
        return settings_key(self)
