"""How much of a milestone's Z3 metrics is UMAP's own randomness: the label-free monitoring paper asks
whether its entropy drops and outlier milestones come from "stochastic elements introduced by the
dimensionality reduction". Here the same embeddings are projected with several UMAP seeds, and the
spread across seeds is set against the change from one milestone to the next."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from benthic import io, metrics
from benthic.monitoring.config import METRIC_LABELS, MonitorConfig
from benthic.monitoring.runs import SSL_RUNS, take_stratified
from benthic.scales import Registry, Settings

Z3_METRICS = ("entropy", "ami_c1_c2", "n_outliers")


@dataclass(frozen=True)
class SpreadScale(Settings):
    """Extra UMAP seeds (the Table I evaluation's own seed is reused) and the joblib processes that run them."""

    seeds: tuple[int, ...]
    n_jobs: int = 1

    def validate(self) -> None:
        if not self.seeds or self.n_jobs < 1:
            raise ValueError(f"need at least one extra UMAP seed and n_jobs >= 1, got {self.seeds}, {self.n_jobs}")


# smoke stays in-process, as worker processes would each pay numba's compilation
SPREAD: Registry[SpreadScale] = Registry("UMAP seed spread", SpreadScale)
SPREAD.register("smoke", SpreadScale(seeds=(1,)))
SPREAD.register("quick", SpreadScale(seeds=(1, 2), n_jobs=2))
SPREAD.register("gpu", SpreadScale(seeds=(1, 2, 3), n_jobs=8))
SPREAD.register("paper", SpreadScale(seeds=(1, 2, 3, 4), n_jobs=2))


def z3_metrics(z: np.ndarray, n_classes: int, umap_seed: int, config: MonitorConfig = MonitorConfig()) -> dict:
    """The metrics that depend on the UMAP projection (H(Z3), AMI(C1,C2), outlying points in Z3) for one
    UMAP seed, computed as benthic.monitoring.milestones.evaluate_milestone computes them."""
    z3 = metrics.umap_3d(z, config.n_neighbors, umap_seed, knn=config.umap_knn, n_epochs=config.umap_epochs)
    zc = z3 - z3.mean(axis=0) if config.center_z3 else z3
    c1 = metrics.kmeans_cosine(zc, n_classes, config.seed)
    c2 = metrics.kmeans_cosine(zc, 2 * n_classes, config.seed)
    return {
        "entropy": metrics.entropy_3d(z3, config.bin_width),
        "ami_c1_c2": metrics.ami(c1, c2),
        "n_outliers": int(metrics.outlier_mask(z3, config.outlier_threshold).sum()),
    }


def seed_spread(
    checkpoints: list[str | Path],
    images: np.ndarray,
    n_classes: int,
    seeds: tuple[int, ...] = (0, 1, 2),
    config: MonitorConfig = MonitorConfig(),
    meta: dict | None = None,
    cache_dir: str | Path | None = None,
    device=None,
    n_jobs: int = 2,
) -> pd.DataFrame:
    """Z3 metrics of every milestone under every UMAP seed in `seeds`, one row per (epoch, seed). Seeded
    UMAP runs single-threaded, so `n_jobs` processes (joblib) work through the projections side by side;
    with `cache_dir` each (milestone, seed) result is kept as JSON and reused."""
    from joblib import Parallel, delayed

    from benthic.ssl import embed, load_encoder, milestone_epoch

    meta = dict(meta or {})
    tasks, rows = [], []
    for path in tqdm(list(checkpoints), desc=f"embed {meta.get('method', '')}".strip(), leave=False):
        epoch = milestone_epoch(path)
        todo = []
        for seed in seeds:
            cached = (
                (
                    Path(cache_dir) / f"{Path(path).parent.name}-e{epoch:04d}-{config.key()}-n{len(images)}"
                    f"-umap{seed}.json"
                )
                if cache_dir
                else None
            )
            if cached is not None and cached.exists():
                rows.append({**meta, "epoch": epoch, "umap_seed": seed, **json.loads(cached.read_text())})
            else:
                todo.append((seed, cached))
        if todo:
            z = embed(
                load_encoder(path), images, batch_size=config.batch_size, device=device, precision=config.precision
            )
            tasks += [(epoch, seed, cached, z) for seed, cached in todo]
    results = Parallel(n_jobs=n_jobs)(
        delayed(z3_metrics)(z, n_classes, seed, config) for _, seed, _, z in tqdm(tasks, desc="UMAP seeds", leave=False)
    )
    for (epoch, seed, cached, _), res in zip(tasks, results):
        if cached is not None:
            io.write_json(cached, res)
        rows.append({**meta, "epoch": epoch, "umap_seed": seed, **res})
    cols = [*meta, "epoch", "umap_seed", *Z3_METRICS]
    return pd.DataFrame(rows, columns=cols).sort_values(["epoch", "umap_seed"], ignore_index=True)


def run_seed_spread(
    scale: str,
    methods: list[str],
    dataset: str = "cifar10",
    table: pd.DataFrame | None = None,
    device=None,
    train: bool = True,
) -> pd.DataFrame:
    """`seed_spread` for every method's milestones at `scale` (trained by notebook 01 or here, idempotently;
    with train=False a method whose milestones are not all on disk is left out, and a line says so), on the
    test images the Table I evaluation uses, with the extra seeds of SPREAD; the rows of the
    evaluation's own UMAP seed are taken from its `table` (benthic.monitoring.runs.monitor_ssl_runs) when given."""
    from benthic.data.cifar import load_cifar
    from benthic.paths import runs_dir
    from benthic.ssl import get_config, milestone_path, train_milestones

    settings, config = SPREAD.get(scale), SSL_RUNS.get(scale).monitor_config()
    configs = {m: get_config(scale, m, dataset=dataset, device=device) for m in methods}
    if not train:
        missing = [
            m for m, c in configs.items() if not all(milestone_path(c, e).exists() for e in c.milestone_epochs())
        ]
        if missing:
            print(
                f"UMAP seed spread: no milestones on disk for {', '.join(missing)} ({dataset}); train them "
                f"(notebook 01 at scale {scale!r}) to include them"
            )
        methods = [m for m in methods if m not in missing]
    if not methods:
        return pd.DataFrame(columns=["method", "dataset", "epoch", "umap_seed", *Z3_METRICS])
    x, y = load_cifar(dataset, "test")
    x, y = take_stratified(x, y, SSL_RUNS.get(scale).n_test, 0)
    seeds = settings.seeds if table is not None else (config.umap_seed, *settings.seeds)
    out = [
        seed_spread(
            train_milestones(configs[m]),
            x,
            int(y.max()) + 1,
            seeds,
            config,
            meta={"method": m, "dataset": dataset},
            cache_dir=runs_dir(scale) / "monitoring",
            device=device,
            n_jobs=settings.n_jobs,
        )
        for m in methods
    ]
    if table is not None:
        own = table[(table["dataset"] == dataset) & table["method"].isin(methods)]
        out.append(own.assign(umap_seed=config.umap_seed)[["method", "dataset", "epoch", "umap_seed", *Z3_METRICS]])
    df = pd.concat(out, ignore_index=True)
    df["order"] = df["method"].map({m: i for i, m in enumerate(methods)})  # the caller's method order
    return df.sort_values(["order", "epoch", "umap_seed"], ignore_index=True).drop(columns="order")


def spread_summary(
    df: pd.DataFrame, metric: str = "entropy", group_cols: tuple[str, ...] = ("method", "dataset")
) -> pd.DataFrame:
    """Per run: the typical spread of `metric` across UMAP seeds at one milestone (median sd), the typical
    change between consecutive milestones (median |change| of the seed means), the share of those changes
    larger than twice the two milestones' larger seed sd, and how many milestones show outliers in Z3 under
    every seed versus under some seed only."""
    rows = []
    for keys, g in df.groupby(list(group_cols), sort=False):
        per = (
            g.groupby("epoch")
            .agg(
                mean=(metric, "mean"),
                sd=(metric, "std"),
                out_all=("n_outliers", lambda n: bool((n > 0).all())),
                out_any=("n_outliers", lambda n: bool((n > 0).any())),
            )
            .sort_index()
        )
        step = per["mean"].diff().abs().iloc[1:]
        noise = np.maximum(per["sd"].to_numpy()[1:], per["sd"].to_numpy()[:-1])
        rows.append(
            {
                **dict(zip(group_cols, keys if isinstance(keys, tuple) else (keys,))),
                "milestones": len(per),
                "seeds": int(g["umap_seed"].nunique()),
                f"{metric}_seed_sd_median": float(per["sd"].median()),
                f"{metric}_step_median": float(step.median()) if len(step) else float("nan"),
                "steps_beyond_2sd": float((step.to_numpy() > 2 * noise).mean()) if len(step) else float("nan"),
                "outliers_every_seed": int(per["out_all"].sum()),
                "outliers_some_seed": int(per["out_any"].sum()),
            }
        )
    return pd.DataFrame(rows)


def spread_finding(summary: pd.DataFrame, metric: str = "entropy") -> str:
    """One sentence per run, computed from `spread_summary`."""
    name = METRIC_LABELS.get(metric, metric)
    out = []
    for r in summary.itertuples(index=False):
        d = r._asdict()
        noise, step = d[f"{metric}_seed_sd_median"], d[f"{metric}_step_median"]
        out.append(
            f"{d['method']} {d['dataset']}: {name} varies by {noise:.3f} (median sd over {d['seeds']} UMAP "
            f"seeds) at a fixed milestone, against a median change of {step:.3f} between milestones; "
            f"{d['steps_beyond_2sd']:.0%} of the changes exceed twice the seed spread. Outliers in Z3 appear "
            f"under every seed at {d['outliers_every_seed']} milestone(s) and under some seed only at "
            f"{d['outliers_some_seed'] - d['outliers_every_seed']}."
        )
    return "\n".join(out)


def seed_mean_pearson(
    table: pd.DataFrame,
    spread: pd.DataFrame,
    metrics_: tuple[str, ...] = ("entropy", "ami_c1_c2"),
    target: str = "lp_acc",
) -> pd.DataFrame:
    """Table I's Pearson r of the Z3 metrics with `target`, from one UMAP seed (the table's) beside the same
    correlation from the metrics averaged over every UMAP seed of `spread`: does averaging out UMAP's
    randomness change the verdict?"""
    from benthic.monitoring.tables import pearson_table

    keys = ["method", "dataset", "epoch"]
    mean = spread.groupby(keys, sort=False)[list(metrics_)].mean().reset_index()
    averaged = table.drop(columns=list(metrics_)).merge(mean, on=keys, how="inner")
    one = pearson_table(table[table.set_index(keys).index.isin(averaged.set_index(keys).index)], metrics_, target)
    both = one.merge(
        pearson_table(averaged, metrics_, target),
        on=["method", "dataset", "metric", "init"],
        suffixes=("_one_seed", "_seed_mean"),
    )
    n_seeds = spread.groupby(["method", "dataset"])["umap_seed"].nunique().rename("umap_seeds").reset_index()
    return (
        both[
            [
                "method",
                "dataset",
                "metric",
                "init",
                "r_one_seed",
                "p_one_seed",
                "r_seed_mean",
                "p_seed_mean",
                "n_one_seed",
            ]
        ]
        .rename(columns={"n_one_seed": "milestones"})
        .merge(n_seeds, on=["method", "dataset"])
    )


def plot_seed_spread(df: pd.DataFrame, metric: str = "entropy", group_cols: tuple[str, ...] = ("method", "dataset")):
    """`metric` against epoch per run: the seed mean, a band from the lowest to the highest seed, and
    each seed's value as a dot."""
    import matplotlib.pyplot as plt

    groups = list(df.groupby(list(group_cols), sort=False))
    fig, axes = plt.subplots(1, len(groups), figsize=(3.8 * len(groups), 3), squeeze=False)
    for ax, (keys, g) in zip(axes[0], groups):
        per = g.groupby("epoch")[metric].agg(["mean", "min", "max"]).sort_index()
        ax.fill_between(
            per.index, per["min"], per["max"], color="tab:blue", alpha=0.25, lw=0, label="range over UMAP seeds"
        )
        ax.plot(per.index, per["mean"], "-", color="tab:blue", lw=1.2, label="mean")
        ax.plot(g["epoch"], g[metric], ".", color="tab:blue", ms=3)
        ax.set_title(" ".join(map(str, keys if isinstance(keys, tuple) else (keys,))), fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig
