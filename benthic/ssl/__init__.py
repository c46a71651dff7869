"""Self-supervised training: SimCLR, MoCo-v2, SimSiam, BYOL, Barlow Twins on a shared base; the method
registry (`registry`), run settings and their presets per scale (`config`), milestones
(`train_milestones`, on arrays or streamed image collections), encoders from milestones or run folders
(`load_encoder`; `pretrain_encoder` trains and loads in one call) and embeddings (`embed`)."""

from benthic.ssl.config import PRESETS, SSLConfig, get_config
from benthic.ssl.registry import METHOD_NAMES, METHODS, PAPER_METHODS, MethodSpec, method_spec, methods_help
from benthic.ssl.trainer import (
    build_method,
    embed,
    epoch_order,
    last_milestone,
    load_encoder,
    milestone_epoch,
    milestone_path,
    pretrain_encoder,
    read_milestone,
    run_dir,
    train_milestones,
)

__all__ = [
    "PRESETS",
    "METHOD_NAMES",
    "PAPER_METHODS",
    "SSLConfig",
    "get_config",
    "METHODS",
    "MethodSpec",
    "method_spec",
    "methods_help",
    "build_method",
    "embed",
    "epoch_order",
    "last_milestone",
    "load_encoder",
    "milestone_epoch",
    "milestone_path",
    "pretrain_encoder",
    "read_milestone",
    "run_dir",
    "train_milestones",
]
