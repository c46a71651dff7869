"""Settings of an SSL run (one dataclass) and their presets per scale (`PRESETS`, read by `get_config`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace

from benthic.device import check_precision
from benthic.scales import Registry, check_scale
from benthic.ssl.registry import method_spec


def method_option_names(method: str) -> tuple[str, ...]:
    """The constructor options of `method` an SSLConfig may set (all but the backbone and the head width, which
    have fields of their own)."""
    import inspect

    params = inspect.signature(method_spec(method).cls.__init__).parameters
    return tuple(n for n in params if n not in ("self", "backbone", "width"))


@dataclass(frozen=True)
class SSLConfig:
    """Everything that determines an SSL run's milestones (run-time-only fields are excluded from `key()`).

    milestones: epochs with a checkpoint; empty -> 0, every `milestone_every` epochs, and `epochs`.
    lr / weight_decay / head_width: None -> the method's defaults (Xu, Lowe & Trappenberg, 2022, arXiv:2409.06612
    for SimSiam/SimCLR/MoCo-v2; BYOL/Barlow Twins: docs/methods.md#ssl-training-choices).
    train_subset: a stratified subset of the train split of that many images (None = all).
    image_size: views are cropped straight to this size (downscaled CPU runs use 16 px).
    precision: 'bf16' trains under bfloat16 autocast (losses in float32) at every scale, the paper scale included
    (the monitoring paper does not state its precision); 'fp32' trains in full precision.
    method_options: (name, value) pairs passed to the method's constructor, e.g. (("symmetric", True),) for
    MoCo-v2's symmetrised loss; names are checked against the constructor (`method_option_names`)."""

    method: str = "simclr"
    dataset: str = "cifar10"
    backbone: str = "resnet18_cifar"
    epochs: int = 200
    milestones: tuple[int, ...] = ()
    milestone_every: int = 20
    batch_size: int = 512
    lr: float | None = None
    weight_decay: float | None = None
    momentum_range: tuple[float, float] = (0.85, 0.95)
    head_width: int | None = None
    image_size: int = 32
    augment: str = "simclr_cifar"
    train_subset: int | None = None
    seed: int = 0
    precision: str = "bf16"
    channels_last: bool = True
    scale: str = "paper"
    compile: bool = False
    device: str | None = None
    progress: bool = True
    method_options: tuple[tuple[str, bool | int | float | str], ...] = ()
    RUNTIME_FIELDS = ("compile", "device", "progress")

    def __post_init__(self):
        method_spec(self.method)
        check_precision(self.precision)
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"need epochs >= 1 and batch_size >= 2, got {self.epochs} and {self.batch_size}")
        bad = [m for m in self.milestones if not 0 <= m <= self.epochs]
        if bad:
            raise ValueError(f"milestones {bad} fall outside 0..{self.epochs}")
        check_scale(self.scale)
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(self, "momentum_range", tuple(self.momentum_range))
        options = self.method_options.items() if isinstance(self.method_options, dict) else self.method_options
        object.__setattr__(self, "method_options", tuple(sorted((str(k), v) for k, v in options)))
        allowed = method_option_names(self.method)
        unknown = [k for k, _ in self.method_options if k not in allowed]
        if unknown:
            raise ValueError(
                f"{self.method} has no option {', '.join(unknown)}: choose from {', '.join(allowed) or 'none'}"
            )

    def milestone_epochs(self) -> tuple[int, ...]:
        """Sorted epochs that get a checkpoint, always including 0 (init) and the last epoch."""
        chosen = set(self.milestones) or set(range(0, self.epochs + 1, self.milestone_every))
        return tuple(sorted(chosen | {0, self.epochs}))

    def to_dict(self) -> dict:
        """Plain dict (lists, numbers, strings) for checkpoints and results files."""
        d = asdict(self)
        d["method_options"] = [list(kv) for kv in self.method_options]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> SSLConfig:
        """Inverse of to_dict; ignores unknown keys written by other versions."""
        names = {f.name for f in fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names}
        return cls(**kw)

    def key(self) -> str:
        """Short hash of the settings that shape the result (the run folder's suffix)."""
        d = {k: v for k, v in self.to_dict().items() if k not in self.RUNTIME_FIELDS}
        d["milestones"] = list(self.milestone_epochs())
        d.pop("milestone_every")
        if not self.method_options:  # runs from before the field existed keep their folder
            d.pop("method_options")
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]

    def run_name(self) -> str:
        """Readable run folder name: method-dataset-backbone-sSEED-KEY."""
        return f"{self.method}-{self.dataset}-{self.backbone}-s{self.seed}-{self.key()}"


def stretch_milestones(milestones: tuple[int, ...], epochs: int, new_epochs: int) -> tuple[int, ...]:
    """`milestones` of an `epochs`-long run at the same fractions of a `new_epochs`-long one (rounded half up,
    duplicates merged), so a longer run keeps its milestones' spacing."""
    return tuple(sorted({(2 * m * new_epochs + epochs) // (2 * epochs) for m in milestones}))


def _check_pairs(name: str, pairs: tuple[tuple[str, float], ...]) -> None:
    """Refuse (method, value) pairs that name a method twice, an unknown method, or a value that is not positive."""
    names = [method for method, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"{name} names a method twice: {names}")
    for method, value in pairs:
        method_spec(method)
        if not value > 0:
            raise ValueError(f"{name} of {method} must be positive, got {value}")


@dataclass(frozen=True)
class SSLPreset:
    """A scale's SSL settings for every method: `base` with the method set, with the method's paper epochs (from
    the method registry) when `paper_epochs`, and with a learning rate or a length of this preset's own for the
    methods in `method_lr` / `method_epochs` ((method, value) pairs: a downscaled run may need another rate or more
    steps than the paper's). A method with epochs of its own gets the base's milestones stretched to its length."""

    base: SSLConfig
    paper_epochs: bool = False
    method_lr: tuple[tuple[str, float], ...] = ()
    method_epochs: tuple[tuple[str, int], ...] = ()

    def __post_init__(self):
        _check_pairs("method_lr", self.method_lr)
        _check_pairs("method_epochs", self.method_epochs)
        bad = [(m, e) for m, e in self.method_epochs if int(e) != e]
        if bad:
            raise ValueError(f"method_epochs must be whole epochs, got {bad}")

    def for_method(self, method: str) -> SSLConfig:
        """The SSLConfig of `method` at this preset."""
        spec = method_spec(method)
        changes = {"epochs": spec.paper_epochs} if self.paper_epochs else {}
        epochs = dict(self.method_epochs).get(method)
        if epochs is not None:
            changes["epochs"] = int(epochs)
            changes["milestones"] = stretch_milestones(self.base.milestones, self.base.epochs, int(epochs))
        lr = dict(self.method_lr).get(method)
        if lr is not None:
            changes["lr"] = lr
        return replace(self.base, method=method, **changes)


PRESETS: Registry[SSLPreset] = Registry("ssl", SSLPreset)
# quick: 2-core CPU budget (a few minutes per method in notebook 01): small CNN on 16 px views of a 5 000-image
# stratified CIFAR subset, 24 epochs (450 steps), SimSiam 48; dense early milestones. See notebooks/01. SimSiam at its
# paper lr 0.06 barely moves in 300 steps (kNN +0.012, its backbone's effective rank falling from 51 to 29);
# benchmarks/simsiam_quick.py measured peak lr 0.3 best of 0.06, 0.3 and 1.0. At 0.3 it still gained only +0.044 in
# 16 epochs; it lacks steps (+0.089 at 32 epochs, +0.122 at 48 in the benchmark). Notebook 01 from a fresh clone of
# fc70175: SimSiam +0.126 at 48 epochs, SimCLR +0.118 and MoCo-v2 +0.108 at 24 (docs/methods.md#ssl-training-choices).
QUICK_SIMSIAM_LR = 0.3
QUICK_EPOCHS = 24
QUICK_SIMSIAM_EPOCHS = 48
QUICK_MILESTONES = (0, 1, 2, 4, 6, 9, 12, 18, 24)
PRESETS.register(
    "smoke",
    SSLPreset(
        SSLConfig(
            backbone="small_cnn",
            epochs=2,
            milestones=(0, 1, 2),
            batch_size=128,
            head_width=64,
            image_size=8,
            train_subset=512,
            scale="smoke",
        )
    ),
)
PRESETS.register(
    "quick",
    SSLPreset(
        SSLConfig(
            backbone="small_cnn",
            epochs=QUICK_EPOCHS,
            milestones=QUICK_MILESTONES,
            batch_size=256,
            head_width=512,
            image_size=16,
            train_subset=5_000,
            augment="cifar_16px",
            scale="quick",
        ),
        method_lr=(("simsiam", QUICK_SIMSIAM_LR),),
        method_epochs=(("simsiam", QUICK_SIMSIAM_EPOCHS),),
    ),
)
# gpu: one short GPU window (benchmarks/gpu_run.sh): the paper scale's CIFAR ResNet-18, batch 512 and the
# methods' hyperparameters on the full train split, but few epochs, with milestones dense early so Table I has
# enough of them (13) for its correlations to mean something. 30 epochs by the first gpu run's measured 2.81 s per
# SimCLR epoch on an H200 (35 379 views/s through the package's pipeline; MoCo-v2 about 3.8 s by its key
# encoder's extra forward pass), so the three methods train in about 5.5 minutes and the whole run, the metrics of
# the last milestones included, fits its 9 (benthic.monitoring.gpu_plan prints the plan; the label-free metrics,
# about a minute of one core per milestone, set the tail). torch.compile stays off: the H100's 66 300 against
# 49 400 views/s for the model alone would save under 0.7 s per epoch, about 20 s per method, less than compiling
# three models is expected to cost (unmeasured).
GPU_MILESTONES = (0, 1, 2, 3, 4, 6, 8, 10, 13, 16, 20, 25, 30)
PRESETS.register("gpu", SSLPreset(SSLConfig(epochs=30, milestones=GPU_MILESTONES, compile=False, scale="gpu")))
PRESETS.register("paper", SSLPreset(SSLConfig(milestone_every=20, scale="paper"), paper_epochs=True))
# benthicnet: BenthicNet's own recipe (Lowe et al., 2024, arXiv:2405.05241) for a folder or CSV of seafloor photos:
# ResNet-50, Barlow Twins, batch 512, 224 px views of the underwater stack with BenthicNet normalisation. The sources
# give no learning rate or length: the method's SGD one-cycle peak lr and 100 epochs (docs/methods.md#ssl-training-
# choices); milestones dense early for the label-free monitor. `--method` still picks any other method.
BENTHICNET_MILESTONES = (0, 1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
PRESETS.register(
    "benthicnet",
    SSLPreset(
        SSLConfig(
            method="barlow",
            backbone="resnet50",
            epochs=100,
            milestones=BENTHICNET_MILESTONES,
            batch_size=512,
            image_size=224,
            augment="underwater",
            scale="paper",
        )
    ),
)


def get_config(scale: str, method: str, **overrides) -> SSLConfig:
    """The preset for (scale or preset name, method) with any fields overridden, e.g. dataset='cifar100'; a new
    `epochs` without `milestones` stretches the preset's milestones to it (`stretch_milestones`)."""
    config = PRESETS.get(scale).for_method(method)
    if "epochs" in overrides and "milestones" not in overrides and config.milestones:
        overrides["milestones"] = stretch_milestones(config.milestones, config.epochs, int(overrides["epochs"]))
    return replace(config, **overrides)
