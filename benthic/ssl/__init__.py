"""Self-supervised training: SimCLR, MoCo-v2, SimSiam, BYOL, Barlow Twins on a shared base; milestones
(`train_milestones`), encoders from milestones (`load_encoder`) and embeddings (`embed`)."""

from benthic.ssl.config import CONFIGS, METHOD_NAMES, PAPER_METHODS, SSLConfig, get_config
from benthic.ssl.trainer import METHODS, build_method, embed, epoch_order, load_encoder, milestone_epoch, milestone_path, read_milestone, run_dir, train_milestones

__all__ = ["CONFIGS", "METHOD_NAMES", "PAPER_METHODS", "SSLConfig", "get_config", "METHODS", "build_method", "embed",
           "epoch_order", "load_encoder", "milestone_epoch", "milestone_path", "read_milestone", "run_dir",
           "train_milestones"]
