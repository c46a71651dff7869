"""The notebooks' monitoring runs: train or reuse SSL milestones and ImageNet encoders, evaluate them at a
scale, and keep the results files."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from benthic import io
from benthic.monitoring.config import MonitorConfig
from benthic.monitoring.milestones import embed_images, evaluate_milestone, evaluate_run
from benthic.scales import Registry, Settings


@dataclass(frozen=True)
class SSLRunScale(Settings):
    """Table I's evaluation at one scale: test images per milestone (None = the whole test split), the
    probe ('fast' on cached features, 'paper' the paper's protocol), how many methods (None = all), the
    training seeds of each method (Table I's cells are their Fisher-z mean; the figures use the first), and the
    single-threaded processes that evaluate runs side by side on a CPU (seeded UMAP uses one core), and the
    precision of the milestones' embeddings (MonitorConfig.precision)."""

    n_test: int | None
    probe: str
    max_methods: int | None = None
    seeds: tuple[int, ...] = (0,)
    eval_workers: int = 1
    precision: str = "fp32"

    def validate(self) -> None:
        _check_counts(n_test=self.n_test, max_methods=self.max_methods)
        _check_probe(self.probe)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and at least one, got {self.seeds}")
        if self.eval_workers < 1:
            raise ValueError(f"eval_workers must be >= 1, got {self.eval_workers}")
        self.monitor_config()  # the precision, checked by MonitorConfig

    def monitor_config(self) -> MonitorConfig:
        """The evaluation settings of every milestone at this scale (Table I and the UMAP seed spread). UMAP keeps
        umap-learn's default length: a shorter layout moves Table I's cells beyond the spread UMAP's own seed
        gives (benchmarks/umap_epochs.py)."""
        return MonitorConfig(probe=self.probe, precision=self.precision)


@dataclass(frozen=True)
class ImageNetRunScale(Settings):
    """Table II's evaluation at one scale: test and probe-training images (None = all), how many models
    (None = all available), and the probe. Images are embedded at each model's own resolution."""

    n_test: int | None
    n_train: int | None
    probe: str
    max_models: int | None = None

    def validate(self) -> None:
        _check_counts(n_test=self.n_test, n_train=self.n_train, max_models=self.max_models)
        _check_probe(self.probe)


def _check_counts(**counts: int | None) -> None:
    bad = {k: v for k, v in counts.items() if v is not None and v < 1}
    if bad:
        raise ValueError(f"counts must be positive or None (all): {bad}")


def _check_probe(probe: str) -> None:
    if probe not in ("fast", "paper"):
        raise ValueError(f"probe must be 'fast' or 'paper', got {probe!r}")


# smoke evaluates only the first method, to stay within the notebook tests' time (two seeds: the multi-seed
# path runs in the tests); quick trains three seeds per method, because CPU training differs across processors
# and one seed's Table I moves by more than its cells' significance (a fresh clone elsewhere flipped 7 of 42 signs)
SSL_RUNS: Registry[SSLRunScale] = Registry("monitoring (SSL runs)", SSLRunScale)
SSL_RUNS.register(
    "smoke", SSLRunScale(n_test=150, probe="fast", max_methods=1, seeds=(0, 1), eval_workers=2, precision="bf16")
)
# quick: two evaluating processes, 1-14 % faster than one on the 2-core CPU when each took a whole run; one milestone
# at a time, 11 % faster than one process and 15 % faster than a run each (benchmarks/eval_workers.py, 2026-12-07).
# bf16 embeddings: 0.99 s per milestone against 2.32 s in float32 (2 000 test and 5 000 probe images), and Table I
# moves no more than UMAP's own seed does: 14 of the UMAP metrics' 24 cells within float32's three-seed range, 12 for
# three other UMAP seeds; the other metrics' r within 0.022 (benchmarks/eval_precision.py, 2026-12-07)
SSL_RUNS.register("quick", SSLRunScale(n_test=2000, probe="fast", seeds=(0, 1, 2), eval_workers=2, precision="bf16"))
SSL_RUNS.register("gpu", SSLRunScale(n_test=None, probe="fast"))
SSL_RUNS.register("paper", SSLRunScale(n_test=None, probe="paper"))
# CPU inference at 224-260 px is slow: the quick scale embeds a few hundred images
IMAGENET_RUNS: Registry[ImageNetRunScale] = Registry("monitoring (ImageNet models)", ImageNetRunScale)
IMAGENET_RUNS.register("smoke", ImageNetRunScale(n_test=60, n_train=40, probe="fast", max_models=1))
IMAGENET_RUNS.register("quick", ImageNetRunScale(n_test=300, n_train=300, probe="fast"))
IMAGENET_RUNS.register("gpu", ImageNetRunScale(n_test=None, n_train=10_000, probe="paper"))
IMAGENET_RUNS.register("paper", ImageNetRunScale(n_test=None, n_train=None, probe="paper"))


RESULTS_SUBDIR = "monitoring"


def take_stratified(x: np.ndarray, y: np.ndarray, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified subset of n images and labels (all of them when n is None or too large)."""
    from benthic.data.cifar import stratified_subset

    if n is None or n >= len(x):
        return x, y
    idx = stratified_subset(y, n, seed)
    return x[idx], y[idx]


def methods_for(scale: str, methods: str) -> list[str]:
    """The comma-separated SSL methods evaluated at `scale` (smoke keeps the first only)."""
    names = [m.strip() for m in methods.split(",") if m.strip()]
    return names[: SSL_RUNS.get(scale).max_methods]


def results_paths(dataset: str, kind: str = "ssl") -> tuple[Path, Path]:
    """Committed result files of the paper scale: (per-milestone table CSV, spectra CSV)."""
    from benthic.paths import RESULTS_DIR

    base = RESULTS_DIR / RESULTS_SUBDIR / f"paper_{kind}_{dataset}"
    return base.with_suffix(".csv"), base.with_name(base.name + "_spectra.csv")


def save_results(table: pd.DataFrame, spectra: pd.DataFrame, dataset: str, kind: str = "ssl") -> tuple[Path, Path]:
    """Write paper-scale results with command, commit and device columns into results/monitoring/."""
    from benthic.provenance import provenance

    prov = provenance()
    table_path, spectra_path = results_paths(dataset, kind)
    for df, path in ((table, table_path), (spectra, spectra_path)):
        out = df.assign(command=prov["command"], commit=prov["commit"], device=prov["device"])
        with io.atomic_path(path) as tmp:
            out.to_csv(tmp, index=False)
    return table_path, spectra_path


def load_results(dataset: str, kind: str = "ssl") -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Committed paper-scale results (table, spectra), or None when there are none for `dataset`."""
    table_path, spectra_path = results_paths(dataset, kind)
    if not table_path.exists():
        return None
    table = pd.read_csv(table_path)
    table["notes"] = table["notes"].fillna("")
    spectra = pd.read_csv(spectra_path) if spectra_path.exists() else pd.DataFrame()
    return table, spectra


def monitor_ssl_runs(
    scale: str,
    methods: list[str],
    dataset: str = "cifar10",
    device=None,
    use_committed: bool = True,
    eval_workers: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Table I data for one dataset: every milestone of every method and training seed of the scale
    (`SSLRunScale.seeds`) evaluated (metrics + LP + kNN), with a `seed` column; each seed trains its milestones if
    they are not on disk. Paper scale reads committed results/monitoring files when present (else trains and
    evaluates, and writes them). Every run is trained first; on a CPU the runs are then evaluated by
    `eval_workers` processes side by side (default the scale's). Returns (table, spectra, a sentence saying where
    the numbers come from)."""
    from benthic.data.cifar import load_cifar
    from benthic.paths import runs_dir
    from benthic.seed import default_device

    if scale == "paper" and use_committed:
        found = load_results(dataset)
        if found is not None:
            table, spectra = found
            table = table[table.method.isin(methods)]
            table = table if "seed" in table else table.assign(seed=0)  # files from before seeds were recorded
            spectra = spectra[spectra.method.isin(methods)] if len(spectra) else spectra
            prov = table[["commit", "device"]].drop_duplicates().to_dict("records")
            return table, spectra, f"committed {results_paths(dataset)[0].name} ({prov})"
    settings = SSL_RUNS.get(scale)
    config = settings.monitor_config()
    test_x, test_y = load_cifar(dataset, "test")
    test_x, test_y = take_stratified(test_x, test_y, settings.n_test, 0)
    jobs = trained_runs(scale, methods, dataset, settings.seeds, device)
    options = {
        "lp": True,
        "knn": True,
        "config": config,
        "device": device,
        "cache_dir": runs_dir(scale) / RESULTS_SUBDIR,
    }
    workers = settings.eval_workers if eval_workers is None else eval_workers
    on_cpu = str(device or default_device()) == "cpu"
    results = _evaluate_runs(jobs, test_x, test_y, options, workers if on_cpu else 1, runs_dir(scale) / "numba_cache")
    tables, spectra = [t for t, _ in results], [s for _, s in results]
    table, spectra_df = pd.concat(tables, ignore_index=True), pd.concat(spectra, ignore_index=True)
    if scale == "paper":
        save_results(table, spectra_df, dataset)
    seeds = ", ".join(map(str, settings.seeds))
    return table, spectra_df, f"computed now at scale {scale!r} on {len(test_x)} test images, training seeds {seeds}"


def trained_runs(scale: str, methods: list[str], dataset: str, seeds: tuple[int, ...], device=None) -> list[tuple]:
    """Each (method, training seed) run of the scale, trained if its milestones are not on disk, as an evaluation
    job: (milestone paths, the run's training images and labels, meta with method, dataset and seed), in
    (method, seed) order. The first seed trains last: notebook 01, running beside, trains that one meanwhile."""
    from benthic.data.cifar import load_cifar
    from benthic.ssl import get_config, train_milestones

    all_train_x, all_train_y = load_cifar(dataset, "train")
    configs = {(m, s): get_config(scale, m, dataset=dataset, device=device, seed=s) for m in methods for s in seeds}
    paths = {}
    for run in sorted(configs, key=lambda run: run[1] == seeds[0]):  # a stable sort: only the first seed moves
        paths[run] = train_milestones(configs[run])
    jobs = []
    for (method, seed), ssl_config in configs.items():
        train_x, train_y = take_stratified(all_train_x, all_train_y, ssl_config.train_subset, ssl_config.seed)
        jobs.append((paths[method, seed], train_x, train_y, {"method": method, "dataset": dataset, "seed": seed}))
    return jobs


def _evaluate_one(
    paths, test_x, test_y, train_x, train_y, meta, options, progress: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`evaluate_run` of trained milestones on the test images (a worker process's job, without a bar)."""
    n_classes = int(test_y.max()) + 1
    return evaluate_run(
        paths,
        test_x,
        test_y,
        n_classes,
        train_images=train_x,
        train_labels=train_y,
        meta=meta,
        progress=progress,
        **options,
    )


def _evaluate_runs(
    jobs: list, test_x, test_y, options: dict, workers: int, numba_cache: Path
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Every job's (table, spectra), in order: in this process, or in `workers` single-threaded spawned processes
    side by side (seeded UMAP is single-threaded, so one process leaves a core idle) sharing numba's cache. The
    processes take one milestone at a time, so none waits idle while the other evaluates a whole last run."""
    if workers <= 1:
        return [_evaluate_one(p, test_x, test_y, x, y, meta, options) for p, x, y, meta in jobs]
    from benthic.monitoring.gpu_workers import start_pool

    keep = dict(os.environ)
    n_tasks = sum(len(p) for p, *_ in jobs)
    pool = start_pool(min(workers, n_tasks), numba_cache, nice=0)
    try:
        futures = [
            [pool.submit(_evaluate_one, [path], test_x, test_y, x, y, meta, options, False) for path in paths]
            for paths, x, y, meta in jobs
        ]
        results = []
        with tqdm(total=n_tasks, desc=f"milestones evaluated ({workers} processes)") as done:
            for run in futures:  # one run's milestones, in order: its (table, spectra) joined
                parts = []
                for future in run:
                    parts.append(future.result())
                    done.update()
                results.append(tuple(pd.concat(frames, ignore_index=True) for frames in zip(*parts)))
        return results
    finally:
        os.environ.clear()
        os.environ.update(keep)  # start_pool set the workers' thread variables here; this process keeps its own
        pool.shutdown(cancel_futures=True)


def imagenet_monitor_config(probe: str) -> MonitorConfig:
    """Table II's changes to the protocol (Xu, Lowe & Trappenberg, 2022): every batch 48 (embedding and the
    linear probe), probe peak lr 0.003, entropy bins 0.8 sigma."""
    return MonitorConfig(bin_width=0.8, probe=probe, probe_lr=0.003, batch_size=48, probe_batch_size=48)


def head_spectra_runs(
    scale: str, methods: list[str], dataset: str = "cifar10", device=None
) -> tuple[pd.DataFrame, str]:
    """Spectra of the backbone, projector and predictor spaces of every milestone on disk (the test images of
    Table I at this scale), long form with method and dataset; and a sentence naming what was left out (the
    paper scale's committed results hold no networks)."""
    from benthic.data.cifar import load_cifar
    from benthic.monitoring.collapse import head_spectra
    from benthic.ssl import get_config, milestone_path

    settings = SSL_RUNS.get(scale)
    test_x, _ = take_stratified(*load_cifar(dataset, "test"), settings.n_test, 0)
    frames, missing = [], []
    for method in methods:
        config = get_config(scale, method, dataset=dataset, device=device)
        paths = [p for p in (milestone_path(config, e) for e in config.milestone_epochs()) if p.exists()]
        if not paths:
            missing.append(method)
            continue
        frames.append(head_spectra(paths, test_x, {"method": method, "dataset": dataset}, device=device))
    note = f"no milestone files on disk for {', '.join(missing)} ({dataset})" if missing else ""
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), note


def evaluate_imagenet_models(
    scale: str, dataset: str = "cifar10", models: list[str] | None = None, device=None
) -> pd.DataFrame:
    """Table II data: each available ImageNet model as a frozen encoder on CIFAR upscaled to its
    resolution (`imagenet_monitor_config`); the weights loaded are recorded per model; embeddings cached."""
    from benthic.data.cifar import load_cifar
    from benthic.models.pretrained import available_imagenet_models, load_imagenet_encoder, model_family
    from benthic.paths import runs_dir

    settings = IMAGENET_RUNS.get(scale)
    names = models if models is not None else available_imagenet_models()[: settings.max_models]
    config = imagenet_monitor_config(settings.probe)
    test_x, test_y = take_stratified(*load_cifar(dataset, "test"), settings.n_test, 0)
    train_x, train_y = take_stratified(*load_cifar(dataset, "train"), settings.n_train, 0)
    cache = runs_dir(scale) / RESULTS_SUBDIR / "imagenet"
    rows = []
    for name in tqdm(names, desc="ImageNet models"):
        encoder, size, mean, std = load_imagenet_encoder(name)
        if config.probe == "paper":  # the paper's probe trains on augmented images: embeds them itself
            row = evaluate_milestone(
                encoder,
                test_x,
                test_y,
                lp=True,
                knn=True,
                train_images=train_x,
                train_labels=train_y,
                config=config,
                device=device,
            )
        else:
            z_test, z_train = (
                _cached_embeddings(cache, name, dataset, split, x, encoder, config, device)
                for split, x in (("test", test_x), ("train", train_x))
            )
            row = evaluate_milestone(
                z_test, labels=test_y, lp=True, knn=True, train_images=z_train, train_labels=train_y, config=config
            )
        rows.append(
            {
                "model": name,
                "family": model_family(name),
                "weights": encoder.weights,
                "dataset": dataset,
                "input_size": size,
                "feature_dim": encoder.feature_dim,
                **row,
            }
        )
    return pd.DataFrame(rows)


def _cached_embeddings(
    cache: Path, name: str, dataset: str, split: str, images: np.ndarray, encoder, config: MonitorConfig, device
) -> np.ndarray:
    digest = hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()[:10]
    from benthic.models.pretrained import LITE_MODELS

    weights = "" if name in LITE_MODELS else f"-{encoder.weights}"  # Lite files keep their earlier names
    path = cache / f"{name}{weights}-{dataset}-{split}-{len(images)}-{digest}.npy"
    if path.exists():
        return np.load(path)
    z = embed_images(encoder, images, None, None, config.batch_size, device)
    io.save_npy(path, z)
    return z


def available_datasets(scale: str, wanted: str = "auto") -> tuple[list[str], list[str]]:
    """(datasets to use, messages about those left out). 'auto': CIFAR-10, plus CIFAR-100 at the paper
    scale when its files (or committed results) are present; a requested dataset that is missing
    raises FileNotFoundError saying what to fetch."""
    from benthic.data.cifar import load_cifar

    if wanted != "auto":
        return [d.strip() for d in wanted.split(",") if d.strip()], []
    use, left_out = ["cifar10"], []
    if scale == "paper":
        if load_results("cifar100") is not None:
            use.append("cifar100")
        else:
            try:
                load_cifar("cifar100", "test")
                use.append("cifar100")
            except FileNotFoundError as exc:
                left_out.append(f"CIFAR-100 left out: {exc}")
    else:
        left_out.append("CIFAR-100 is evaluated at the paper scale only (pass datasets='cifar10,cifar100' to force)")
    return use, left_out


def missing_imagenet_models() -> pd.DataFrame:
    """The paper's torchvision models that are not available here, with the file to fetch and where."""
    from benthic.models.pretrained import TORCHVISION_MODELS, available_imagenet_models, torchvision_weight_file

    have = set(available_imagenet_models())
    return pd.DataFrame(
        [
            {
                "model": n,
                "weight_file": torchvision_weight_file(n).name,
                "folder": str(torchvision_weight_file(n).parent),
            }
            for n in TORCHVISION_MODELS
            if n not in have
        ]
    )
