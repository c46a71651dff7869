"""Does a shorter UMAP layout change Table I? The quick scale's milestones (training seed 0 of each method, trained
here if missing) are evaluated under UMAP seeds 0, 1, 2 at umap-learn's default length (500 epochs up to 10 000
rows) and at shorter ones; each Table I cell of the metrics that depend on UMAP (AMI(C1,C_GT), AMI(C1,C2), S1,
H(Z3)) is then set against the yardstick the issue names: the range of r over UMAP seeds at the default length. A
control puts the yardstick itself to the test: the seed-mean r of as many other UMAP seeds at the default length
(how often UMAP's randomness alone lands within the range; a shortcut is as good as that, not as good as always).

    .venv/bin/python benchmarks/umap_epochs.py                    # 200 and 100 epochs against the default
    .venv/bin/python benchmarks/umap_epochs.py --epochs 200 --seeds 0,1,2,3
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

UMAP_METRICS = ("ami_c1_gt", "ami_c1_c2", "s1", "entropy")
CONTROL = "control"  # the reference under other UMAP seeds: the yardstick applied to UMAP's randomness alone


def _evaluate(z: np.ndarray, y: np.ndarray, seed: int, epochs: int | None) -> tuple[dict, float]:
    """The milestone's metrics as the notebooks compute them, with this UMAP seed and length; and the wall seconds."""
    from benthic.monitoring.config import MonitorConfig
    from benthic.monitoring.milestones import evaluate_milestone

    start = time.perf_counter()
    row = evaluate_milestone(z, labels=y, config=MonitorConfig(umap_seed=seed, umap_epochs=epochs))
    return {m: row[m] for m in UMAP_METRICS}, time.perf_counter() - start


def milestone_embeddings(scale: str, methods: list[str]) -> tuple[dict, np.ndarray, pd.DataFrame]:
    """{(method, epoch): test embeddings}, the test labels, and each milestone's probe accuracy (the cached
    Table I evaluation of notebook 02, computed here when missing)."""
    from benthic.data.cifar import load_cifar
    from benthic.monitoring.milestones import evaluate_run
    from benthic.monitoring.runs import RESULTS_SUBDIR, SSL_RUNS, take_stratified, trained_runs
    from benthic.paths import runs_dir
    from benthic.ssl import embed, load_encoder, milestone_epoch

    settings = SSL_RUNS.get(scale)
    test_x, test_y = take_stratified(*load_cifar("cifar10", "test"), settings.n_test, 0)
    embeddings, probes = {}, []
    for paths, train_x, train_y, meta in trained_runs(scale, methods, "cifar10", seeds=(0,)):
        table, _ = evaluate_run(
            paths,
            test_x,
            test_y,
            10,
            meta=meta,
            cache_dir=runs_dir(scale) / RESULTS_SUBDIR,
            lp=True,
            knn=True,
            train_images=train_x,
            train_labels=train_y,
            config=settings.monitor_config(),
        )
        probes.append(table[["method", "epoch", "lp_acc"]])
        for path in paths:
            embeddings[meta["method"], milestone_epoch(path)] = embed(
                load_encoder(path), test_x, batch_size=256, precision=settings.precision
            )
    return embeddings, test_y, pd.concat(probes, ignore_index=True)


def correlations(rows: pd.DataFrame, by: str = "umap_epochs", metrics: tuple[str, ...] = UMAP_METRICS) -> pd.DataFrame:
    """Pearson r of each of `metrics` with the probe accuracy (`lp_acc` in `rows`), per method, variant (column
    `by`) and UMAP seed, w/ and w/o init."""
    from benthic.monitoring.tables import pearson_table

    out = []
    for (variant, seed), g in rows.assign(dataset="cifar10").groupby([by, "umap_seed"], sort=False):
        out.append(pearson_table(g, metrics, "lp_acc").assign(**{by: variant, "umap_seed": seed}))
    return pd.concat(out, ignore_index=True)


def control_seeds(seeds: list[int]) -> list[int]:
    """As many UMAP seeds as `seeds`, none of them among it: the control's."""
    return [max(seeds) + 1 + i for i in range(len(seeds))]


def compare(corr: pd.DataFrame, by: str = "umap_epochs", reference: str = "default") -> pd.DataFrame:
    """Per Table I cell: r of the `reference` variant (of column `by`) over the UMAP seeds (min, max, mean) beside
    each other variant's mean r over its seeds, and whether that mean lies within the reference's seed range."""
    keys = ["method", "metric", "init"]
    base = corr[corr[by] == reference].groupby(keys, sort=False)["r"].agg(["min", "max", "mean"])
    base.columns = [f"r_min_{reference}", f"r_max_{reference}", f"r_mean_{reference}"]
    low, high = base[f"r_min_{reference}"], base[f"r_max_{reference}"]
    frames = [base]
    for variant in [v for v in corr[by].unique() if v != reference]:
        mean = corr[corr[by] == variant].groupby(keys, sort=False)["r"].mean().rename(f"r_mean_{variant}")
        inside = (mean >= low - 1e-12) & (mean <= high + 1e-12)
        frames += [mean, inside.rename(f"within_{variant}")]
    return pd.concat(frames, axis=1).reset_index()


def _label(name: str) -> str:
    return "control (default length, other UMAP seeds)" if name == CONTROL else f"{name} epochs"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--methods", default="simsiam,simclr,mocov2")
    parser.add_argument("--epochs", default="200,100", help="shorter UMAP lengths to compare with the default")
    parser.add_argument("--seeds", default="0,1,2", help="UMAP seeds (the yardstick's range is over these)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (seeded UMAP: one core)")
    args = parser.parse_args(argv)
    from joblib import Parallel, delayed

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; scale {args.scale}", flush=True)
    embeddings, labels, probes = milestone_embeddings(args.scale, args.methods.split(","))
    lengths = [None, *(int(e) for e in args.epochs.split(","))]
    seeds = [int(s) for s in args.seeds.split(",")]
    others = control_seeds(seeds)
    tasks = [(key, s, e) for key in embeddings for s in seeds for e in lengths]
    tasks += [(key, s, CONTROL) for key in embeddings for s in others]
    n = len(next(iter(embeddings.values())))
    print(
        f"{len(embeddings)} milestones x {len(seeds)} UMAP seeds x {len(lengths)} lengths on {n} test images, and "
        f"the control (UMAP seeds {others}, default length), {args.jobs} processes ...",
        flush=True,
    )
    results = Parallel(n_jobs=args.jobs)(
        delayed(_evaluate)(embeddings[key], labels, s, None if e == CONTROL else e) for key, s, e in tasks
    )
    rows = pd.DataFrame(
        [
            {
                "method": m,
                "epoch": ep,
                "umap_seed": s,
                "umap_epochs": "default" if e is None else str(e),  # the control keeps its name
                "seconds": sec,
                **vals,
            }
            for ((m, ep), s, e), (vals, sec) in zip(tasks, results)
        ]
    )
    print("\nseconds per milestone evaluation (median; UMAP dominates):")
    print(rows.groupby("umap_epochs", sort=False)["seconds"].median().round(2).to_string())
    table = compare(correlations(rows.merge(probes, on=["method", "epoch"])))
    pd.set_option("display.width", 200)
    print(
        f"\nTable I cells of the UMAP metrics: r over UMAP seeds {seeds} at the default length, and the seed-mean r "
        f"at each shorter length and of the control (UMAP seeds {others}; within: inside the default's seed range)"
    )
    print(table.round(3).to_string(index=False))
    for col in [c for c in table if c.startswith("within_")]:
        ok = int(table[col].sum())
        gap = (table[col.replace("within", "r_mean")] - table["r_mean_default"]).abs()
        half = (table["r_max_default"] - table["r_min_default"]) / 2
        print(
            f"{_label(col.removeprefix('within_'))}: {ok} of {len(table)} cells within the default's UMAP-seed range; "
            f"median |mean r - default mean r| {gap.median():.3f} against a median half-range of {half.median():.3f}"
        )


if __name__ == "__main__":
    main()
