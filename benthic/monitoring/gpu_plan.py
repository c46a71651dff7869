"""The plan of one window's run (`benchmarks/gpu_run.sh`) and the time it expects: its settings per scale
(`GPU_RUNS`), a cost model built from measured throughputs, and a small simulation of the three concurrent
lanes (GPU training, CPU metric workers, the paper-protocol probe) that gives the expected wall time."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

from benthic.scales import Registry, Settings
from benthic.ssl.config import SSLConfig, get_config

# Measured throughputs (views/s of one SSL training step, bf16 autocast + channels_last, batch of pairs) at a
# reference image size; other sizes scale with the pixel count. cuda: the first gpu run (results/ssl/
# gpu_cifar10.json, H200, torch 2.11) trained SimCLR at a median 2.81 s/epoch, 35 379 views/s through the
# package's pipeline, i.e. 38 900 for the step alone at PIPELINE_OVERHEAD (the H100's 49 400 of
# ../shared/docs/ENVIRONMENT-NOTES.md was the model alone, without augmentation). CPU: ENVIRONMENT-NOTES, batch 256.
TRAIN_VIEWS_PER_S: dict[tuple[str, str], tuple[float, int]] = {
    ("cuda", "resnet18_cifar"): (38_900.0, 32),
    ("cpu", "resnet18_cifar"): (191.0, 32),
    ("cpu", "small_cnn"): (16_200.0, 8),
}
# Per-step cost relative to SimCLR. simsiam and mocov2: measured in the gpu run of 2026-12-04 (H200, median
# s/epoch 2.78 and 2.67 against SimCLR's 2.81 in the run before; MoCo-v2's default one-direction loss sends one view
# through the query encoder's forward and backward and the other through the key encoder's forward only). byol
# (symmetric, momentum encoder: about 1/3 more) and barlow: estimates.
METHOD_STEP_COST = {"simclr": 1.0, "simsiam": 1.0, "mocov2": 0.95, "byol": 1.35, "barlow": 1.05}
PIPELINE_OVERHEAD = 1.10  # the package's batched view augmentation on the device before each step (estimate)
INFERENCE_SPEEDUP = 3.0  # embedding (forward only) views/s over training views/s
# one checkpoint written and the run's history read back (cuda: the first gpu run's 13 SimCLR milestones took
# 1.3 s each with their embeddings)
MILESTONE_WRITE_S = {"cuda": 0.8, "cpu": 0.2}
METHOD_START_S = {"cuda": 5.0, "cpu": 1.0}  # model build, first steps (cuDNN, allocator warm-up)
START_S = {"cuda": 10.0, "cpu": 5.0}  # interpreter, imports, CUDA context
WHEELS_S = 5.0  # pip install --no-index --no-deps of the carried wheels (with START_S: 14.9 s on the H200 machine)
CIFAR_DECODE_S = 8.4  # decoding the CIFAR-10 JPEG archive once (ENVIRONMENT-NOTES); cached after
# One milestone's label-free metrics on one core of the GPU machine (UMAP to 3-d with 50 neighbours, k-means and
# silhouettes both centred and uncentred, spectra): 51-62 s at 10 000 rows in the first gpu run (ENVIRONMENT-NOTES'
# UMAP alone: 14.8 s), i.e. about 2.2 s + 4.9 ms per row; a process's first fit compiles numba code.
UMAP_S = (2.2, 4.9e-3)
UMAP_COMPILE_S = 24.0
KNN_S_PER_PAIR = 1.8e-8  # weighted kNN, 1 thread: 3.6 s CPU for 10 000 x 20 000 (measured here)
# cached-feature probe (logistic regression, lbfgs) on 512-d features of a CIFAR ResNet-18, 1 thread: kNN and probe
# together took 36 s for 50 000 training rows on the GPU machine's cores (59 s with a worker's start-up)
FAST_PROBE_S_PER_ROW = 5.4e-4
SILHOUETTE_S_PER_PAIR = 1e-8  # 1.0 s at 10 000 rows
WORKER_START_S = 10.0  # a spawned worker imports torch, scikit-learn and umap-learn
# torchvision per-sample augmentation through a DataLoader: views/s with that many workers (GPU machine: 16.9k with
# 8 workers, ENVIRONMENT-NOTES; here: 1.2-2.1k images/s per core)
LOADER_VIEWS_PER_S = {"cuda": (16_900.0, 8), "cpu": (1_500.0, 1)}
# the paper probe's AutoAugment drawn per image and applied a chunk at a time (benthic.models.autoaugment):
# 50 000 images/s on this 2-core CPU at 32 px; cuda: 65 000, from the H200 probe alone taking 1.2 s per epoch of
# 50 000 images with the encoder's forward pass. (Per image through DataLoader workers it was 1 430 images/s with 3
# workers beside the metric workers on the GPU machine: 700 s per probe, the reason for the batched one.)
AUTOAUGMENT_PER_S = {"cuda": 65_000.0, "cpu": 50_000.0}
PROBE_START_S = 10.0  # the probe process: imports, CUDA context, loading CIFAR


@dataclass(frozen=True)
class ThroughputSettings:
    """The throughput table's measurement (benchmarks/ssl_throughput.py): backbone, batch of pairs, image size,
    timed steps, warm-up steps, repeats (the fastest counts) and DataLoader workers of the torchvision baseline."""

    backbone: str = "resnet18_cifar"
    batch_size: int = 512
    image_size: int = 32
    steps: int = 10
    warmup: int = 3
    repeats: int = 2
    workers: int = 8

    def args(self, methods: tuple[str, ...]) -> list[str]:
        """The benchmark script's command-line arguments."""
        return [
            f"--methods={','.join(methods)}",
            f"--backbones={self.backbone}",
            f"--batch-size={self.batch_size}",
            f"--image-size={self.image_size}",
            f"--steps={self.steps}",
            f"--warmup={self.warmup}",
            f"--repeats={self.repeats}",
            f"--workers={self.workers}",
        ]


@dataclass(frozen=True)
class GPURunScale(Settings):
    """One window's run at a scale: the SSL methods in training order (the costliest last, so a cut run loses
    least), the milestone epochs that also get the paper's linear probe besides the cached-feature probe of every
    milestone (first and last always; more where they fit), CPU worker processes for the label-free metrics,
    AutoAugment workers and epochs of the paper probe (the paper's 20; fewer only in the tests), the device it is
    planned for, and the command's wall budget (s)."""

    methods: tuple[str, ...] = ("simclr", "simsiam", "mocov2")
    paper_probe_epochs: tuple[int, ...] = ()
    cpu_workers: int = 9
    probe_passes: int = 20
    device: str = "cuda"
    budget_s: float = 540.0
    throughput: ThroughputSettings = field(default_factory=ThroughputSettings)

    def validate(self) -> None:
        if not self.methods:
            raise ValueError("a gpu run needs at least one SSL method")
        if self.cpu_workers < 1 or self.probe_passes < 1:
            raise ValueError(
                f"need cpu_workers >= 1 and probe_passes >= 1, got {self.cpu_workers}, {self.probe_passes}"
            )
        if self.device not in ("cuda", "cpu"):
            raise ValueError(f"device must be 'cuda' or 'cpu', got {self.device!r}")
        if self.budget_s <= 0:
            raise ValueError(f"budget_s must be positive, got {self.budget_s}")


GPU_RUNS: Registry[GPURunScale] = Registry("gpu run", GPURunScale)
_TINY = ThroughputSettings(backbone="small_cnn", batch_size=32, image_size=8, steps=1, warmup=1, repeats=1, workers=0)
GPU_RUNS.register("smoke", GPURunScale(cpu_workers=2, probe_passes=2, device="cpu", budget_s=900, throughput=_TINY))
GPU_RUNS.register(
    "quick",
    GPURunScale(
        cpu_workers=1,
        device="cpu",
        budget_s=7200,
        throughput=ThroughputSettings(backbone="small_cnn", batch_size=256, image_size=16, workers=1),
    ),
)
# one H100/H200 window: 9 minutes of wall time for everything; 16 CPU cores = the training process, the probe
# process (AutoAugment on the GPU), 13 metric workers at lower priority and a core to spare
# (the paper probe shares the GPU with training, so only the required first and last milestones are planned)
GPU_RUNS.register("gpu", GPURunScale(cpu_workers=13))
GPU_RUNS.register("paper", GPURunScale(budget_s=7 * 24 * 3600.0))


def train_views_per_s(device: str, backbone: str, image_size: int) -> float:
    """Measured training views/s of `backbone` on `device`, scaled to `image_size` by pixel count."""
    if (device, backbone) not in TRAIN_VIEWS_PER_S:
        known = ", ".join(f"{d}/{b}" for d, b in TRAIN_VIEWS_PER_S)
        raise ValueError(f"no measured throughput for {backbone} on {device} (known: {known})")
    rate, size = TRAIN_VIEWS_PER_S[(device, backbone)]
    return rate * (size / image_size) ** 2


def seconds_per_epoch(config: SSLConfig, n_train: int, device: str) -> float:
    """Expected seconds of one training epoch of `config` on `n_train` images through the package's pipeline."""
    views = 2 * config.batch_size * (n_train // config.batch_size)
    rate = train_views_per_s(device, config.backbone, config.image_size)
    return views / rate * METHOD_STEP_COST.get(config.method, 1.35) * PIPELINE_OVERHEAD


def milestone_seconds(config: SSLConfig, n_train: int, n_test: int, device: str) -> float:
    """Main-process cost of one milestone: the checkpoint, and embedding the train and test images."""
    rate = train_views_per_s(device, config.backbone, config.image_size) * INFERENCE_SPEEDUP
    return MILESTONE_WRITE_S[device] + (n_train + n_test) / rate


def worker_seconds(n_train: int, n_test: int) -> tuple[float, float]:
    """One core's time for a milestone's two jobs: (kNN + cached-feature probe, label-free metrics: UMAP, k-means,
    silhouettes)."""
    probes = KNN_S_PER_PAIR * n_test * n_train + FAST_PROBE_S_PER_ROW * n_train
    return probes, UMAP_S[0] + UMAP_S[1] * n_test + 2 * SILHOUETTE_S_PER_PAIR * n_test**2


def paper_probe_seconds(
    n_train: int, device: str, epochs: int = 20, backbone: str = "resnet18_cifar", image_size: int = 32
) -> float:
    """One paper-protocol linear probe on `device`: `epochs` passes of batched AutoAugment and the frozen encoder's
    forward pass over the training images."""
    forward = train_views_per_s(device, backbone, image_size) * INFERENCE_SPEEDUP
    return PROBE_START_S + epochs * n_train * (1 / AUTOAUGMENT_PER_S[device] + 1 / forward)


def throughput_seconds(t: ThroughputSettings, methods: tuple[str, ...], device: str) -> float:
    """The throughput table: per method five timed modes of (warm-up + repeats x steps) steps, plus start-up."""
    steps = t.warmup + t.repeats * t.steps
    step_views = 2 * t.batch_size
    model = train_views_per_s(device, t.backbone, t.image_size)
    rate, workers = LOADER_VIEWS_PER_S[device]
    loader = rate * max(t.workers, 1) / workers
    per_method = steps * step_views * (2 / model + 3 / loader) + 3.0 + (2.0 if t.workers else 0.0)
    return START_S[device] + CIFAR_DECODE_S + len(methods) * per_method


@dataclass(frozen=True)
class Phase:
    """One line of the plan: what runs, when it is expected to start and end (s from the command's start)."""

    lane: str
    what: str
    start: float
    end: float


@dataclass(frozen=True)
class Plan:
    """The run's settings, per-method configs and paper-probe epochs, its phases and the expected total."""

    scale: str
    settings: GPURunScale
    configs: dict[str, SSLConfig]
    probe_epochs: dict[str, tuple[int, ...]]
    n_train: int
    n_test: int
    phases: list[Phase]
    total_s: float

    def fits(self) -> bool:
        """True when the expected total is within the budget."""
        return self.total_s <= self.settings.budget_s


def trim_to_fit(
    config: SSLConfig, seconds: float, epoch_s: float, milestone_s: float, min_epochs: int
) -> SSLConfig | None:
    """`config` when its epochs and milestones fit in `seconds`; else the same run cut to the epochs that fit (its
    milestones below the new end, which becomes the last one) if at least `min_epochs` (or all of a shorter run);
    else None."""
    spare = seconds - milestone_s * len(config.milestone_epochs())
    if spare >= epoch_s * config.epochs:
        return config
    epochs = int(spare // epoch_s)
    if epochs < min(min_epochs, config.epochs):
        return None
    return replace(config, epochs=epochs, milestones=tuple(m for m in config.milestone_epochs() if m < epochs))


def probe_epochs(config: SSLConfig, extra: tuple[int, ...]) -> tuple[int, ...]:
    """The milestones of `config` that get the paper's probe: first, last and those of `extra` that are milestones."""
    ms = config.milestone_epochs()
    return tuple(sorted({ms[0], ms[-1]} | (set(extra) & set(ms))))


def make_plan(scale: str, n_train: int | None = None, n_test: int | None = None, **overrides) -> Plan:
    """The plan of the run at `scale` (settings overridden by `overrides`), with its expected phases and total.
    n_train / n_test default to the scale's SSL training subset (50 000 = all of CIFAR-10) and 10 000 test images."""
    from benthic.monitoring.runs import SSL_RUNS

    s = GPU_RUNS.get(scale, **overrides)
    configs = {m: get_config(scale, m) for m in s.methods}
    first = next(iter(configs.values()))
    n_train = n_train or first.train_subset or 50_000
    n_test = n_test or SSL_RUNS.get(scale).n_test or 10_000
    probes = {m: probe_epochs(c, s.paper_probe_epochs) for m, c in configs.items()}
    phases = [Phase("setup", "start, carried wheels, imports", 0.0, WHEELS_S + START_S[s.device])]
    t = phases[-1].end
    tp = throughput_seconds(s.throughput, s.methods, s.device)
    phases.append(Phase("setup", f"throughput table ({len(s.methods)} methods, CPUs otherwise idle)", t, t + tp))
    t += tp + START_S[s.device]
    jobs, probe_jobs = [], []
    for m, c in configs.items():
        epoch_s = seconds_per_epoch(c, n_train, s.device)
        mile_s = milestone_seconds(c, n_train, n_test, s.device)
        start = t
        t += METHOD_START_S[s.device]
        last = 0
        for e in c.milestone_epochs():
            t += (e - last) * epoch_s + mile_s
            last = e
            jobs += [(t, job_s) for job_s in worker_seconds(n_train, n_test)]
            if e in probes[m] and not (e == 0 and probe_jobs and probe_jobs[0][1] == 0):  # the init is shared
                probe_jobs.append((t, e, e in (0, c.epochs)))
        phases.append(
            Phase(
                "gpu",
                f"train {m}: {c.epochs} epochs x {epoch_s:.2f} s, {len(c.milestone_epochs())} milestones",
                start,
                t,
            )
        )
    train_end = t
    pool_end = _pool_finish(jobs, s.cpu_workers, n_test)
    phases.append(
        Phase(
            "cpu", f"kNN + cached-feature probe, label-free metrics: {len(jobs) // 2} milestones", jobs[0][0], pool_end
        )
    )
    probe_s = paper_probe_seconds(n_train, s.device, s.probe_passes, first.backbone, first.image_size)
    # optional probes are planned only where they do not lengthen the run; at run time they also use the slack
    probe_end, ran = _probe_lane(probe_jobs, probe_s, jobs[0][0], max(train_end, pool_end))
    what = f"paper-protocol probe: {ran} of {len(probe_jobs)} milestones x {probe_s:.0f} s (the rest if time allows)"
    phases.append(Phase("probe", what, jobs[0][0], probe_end))
    total = max(train_end, pool_end, probe_end) + 1.0
    phases.append(Phase("end", "last results written", total, total))
    return Plan(scale, s, configs, probes, n_train, n_test, phases, total)


def _probe_lane(
    probes: list[tuple[float, int, bool]], probe_s: float, start: float, deadline: float
) -> tuple[float, int]:
    """(end, probes run) of the paper-probe process taking `probes` (arrival, epoch, required) in arrival order: an
    optional one only when the required ones still to come fit after it (as `ProbeLane` decides at run time)."""
    end, ran = start, 0
    for i, (arrival, _, required) in enumerate(probes):
        after = max(end, arrival) + probe_s
        later = sum(r for _, _, r in probes[i + 1 :])
        if required or after + later * probe_s <= deadline:
            end, ran = after, ran + 1
    return end, ran


def _pool_finish(jobs: list[tuple[float, float]], workers: int, n_test: int) -> float:
    """When a FIFO pool of `workers` processes finishes `jobs` (arrival, seconds), each worker's first job also
    paying its start-up and numba's compilation."""
    first_job = WORKER_START_S + UMAP_COMPILE_S * (1.0 if n_test > 4096 else 1 / 3)
    free = [(jobs[0][0], True) for _ in range(workers)]
    heapq.heapify(free)
    end = jobs[0][0]
    for arrival, seconds in sorted(jobs):
        at, fresh = heapq.heappop(free)
        done = max(at, arrival) + seconds + (first_job if fresh else 0.0)
        heapq.heappush(free, (done, False))
        end = max(end, done)
    return end


def format_plan(plan: Plan) -> str:
    """The plan as text: settings, milestones, the expected phases and the total against the budget."""
    s = plan.settings
    lines = [
        f"gpu run plan, scale {plan.scale!r}, planned for {s.device} "
        f"({'H100/H200 figures' if s.device == 'cuda' else '2-core CPU figures'} from ENVIRONMENT-NOTES)",
        f"  data: {plan.n_train} training images, {plan.n_test} test images; methods in order: {', '.join(s.methods)}",
    ]
    for m, c in plan.configs.items():
        lines.append(
            f"  {m}: {c.backbone}, {c.image_size} px, batch {c.batch_size}, {c.epochs} epochs, {c.precision}, "
            f"compile={c.compile}; milestones {list(c.milestone_epochs())}; paper probe at {list(plan.probe_epochs[m])}"
        )
    lines.append(
        f"  CPU: {s.cpu_workers} metric workers; paper probe ({s.probe_passes} epochs of AutoAugment, drawn per "
        f"image, applied on the {s.device} device); "
        f"every milestone: kNN, cached-feature probe, label-free metrics on {plan.n_test} test images"
    )
    lines.append(f"  {'lane':6s} {'start':>7s} {'end':>7s}  what")
    for p in plan.phases:
        lines.append(f"  {p.lane:6s} {p.start:7.0f} {p.end:7.0f}  {p.what}")
    verdict = "fits" if plan.fits() else "DOES NOT FIT"
    lines.append(
        f"  expected total: {plan.total_s:.0f} s ({plan.total_s / 60:.1f} min) against a budget of "
        f"{s.budget_s:.0f} s: {verdict}"
    )
    return "\n".join(lines)
