"""Settings of the transfer experiments (notebooks 04-05) per scale."""

from __future__ import annotations

from dataclasses import dataclass

from benthic.scales import Registry, Settings
from benthic.transfer.core import TrainConfig


@dataclass(frozen=True)
class TransferConfig(Settings):
    """Per-scale settings of notebooks 04/05 (images, fractions, seeds, probe/fine-tune/HML/SSL budgets)."""

    image_size: int = 224
    fractions: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    test_fraction: float = 0.3
    probe: TrainConfig = TrainConfig(epochs=200, lr=1e-3, batch_size=256, augment=False)
    finetune: TrainConfig = TrainConfig(epochs=30, lr=1e-4, batch_size=64)
    finetune_fractions: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
    finetune_seeds: tuple[int, ...] = (0, 1, 2)
    hml: TrainConfig = TrainConfig(epochs=100, lr=3e-5, weight_decay=1e-5, batch_size=128, augment=False)
    hml_hidden: int = 2048
    hml_dropout: float = 0.7
    ssl_backbone: str = "resnet50"
    ssl_epochs: int = 100
    ssl_size: int = 224
    ssl_batch: int = 512
    random_backbone: str = "resnet50"
    imagenet_model: str = "efficientnet-lite0"
    mixed_full_shares: tuple[float, ...] = (0.1, 0.25, 0.5)  # share of photos the fully labelled group holds
    mixed_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    max_tiles: int | None = None  # smoke: a random subset of the reef tiles

    def validate(self) -> None:
        shares = (*self.fractions, *self.finetune_fractions, *self.mixed_full_shares)
        if any(not 0 < f <= 1 for f in shares):
            raise ValueError(f"label fractions and shares must lie in (0, 1], got {shares}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must lie in (0, 1), got {self.test_fraction}")
        if not (self.seeds and self.finetune_seeds and self.mixed_seeds):
            raise ValueError("seeds, finetune_seeds and mixed_seeds need at least one seed each")
        if min(self.image_size, self.ssl_size, self.ssl_epochs, self.ssl_batch, self.hml_hidden) < 1:
            raise ValueError("image sizes, SSL epochs and batch, and the HML hidden width must be positive")
        if not 0 <= self.hml_dropout < 1 or (self.max_tiles is not None and self.max_tiles < 1):
            raise ValueError(
                f"need 0 <= hml_dropout < 1 and max_tiles >= 1 or None, got {self.hml_dropout}, {self.max_tiles}"
            )


PRESETS: Registry[TransferConfig] = Registry("transfer", TransferConfig)
# seconds: tiny images, one seed, a couple of epochs, so the notebooks' code paths all run in tests
PRESETS.register(
    "smoke",
    TransferConfig(
        image_size=32,
        fractions=(0.25, 1.0),
        seeds=(0,),
        probe=TrainConfig(20, 1e-2, 1e-5, 256, False),
        finetune=TrainConfig(1, 1e-3, 1e-5, 32),
        finetune_fractions=(1.0,),
        finetune_seeds=(0,),
        hml=TrainConfig(5, 1e-3, 1e-5, 128, False),
        hml_hidden=64,
        ssl_backbone="small_cnn",
        ssl_epochs=1,
        ssl_size=32,
        ssl_batch=64,
        random_backbone="small_cnn",
        mixed_full_shares=(0.25,),
        mixed_seeds=(0,),
        max_tiles=200,
    ),
)
# 2-core CPU, minutes: ImageNet model at 96 px, small CNNs (random / SSL) at 32 px, 3 seeds; fine-tuning
# only at 10 and 100% of labels with one seed and 8 epochs; SSL 20 epochs on the ~1 000 reef tiles
PRESETS.register(
    "quick",
    TransferConfig(
        image_size=96,
        seeds=(0, 1, 2),
        probe=TrainConfig(150, 1e-2, 1e-4, 256, False),
        finetune=TrainConfig(8, 3e-4, 1e-5, 32),
        finetune_fractions=(0.1, 1.0),
        finetune_seeds=(0,),
        hml=TrainConfig(50, 1e-3, 1e-5, 128, False),
        hml_hidden=512,
        ssl_backbone="small_cnn",
        ssl_epochs=20,
        ssl_size=32,
        ssl_batch=128,
        random_backbone="small_cnn",
    ),
)
# gpu: the reef set is small (about 1 000 tiles), so one GPU runs the papers' settings; not yet timed on a GPU
PRESETS.register("gpu", TransferConfig())
# GPU: the papers' settings (HML head AdamW lr 3e-5, wd 1e-5, 100 epochs, batch 128; ResNet-50)
PRESETS.register("paper", TransferConfig())


def get_config(scale: str, **overrides) -> TransferConfig:
    """The settings of a scale or preset with fields overridden (validated)."""
    return PRESETS.get(scale, **overrides)
