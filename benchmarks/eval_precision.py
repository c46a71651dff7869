"""Do bf16 embeddings change Table I? The quick scale's milestones (training seed 0 of each method, trained here if
missing) are embedded in float32 and in bf16 (autocast + channels-last), test and probe images alike, and each
milestone is evaluated under UMAP seeds 0, 1, 2 from each. Every Table I cell is then set against the yardstick the
issue names: the range of r over UMAP seeds with float32 embeddings. The probe accuracy (the target of every cell)
is recomputed from each precision's own features, so no cell is exempt. A control puts the yardstick itself to the
same test: the seed-mean r of as many other UMAP seeds, float32, against the same range (how often a change that is
only UMAP's randomness lands within it). Also prints the embedding seconds.

    .venv/bin/python benchmarks/eval_precision.py
    .venv/bin/python benchmarks/eval_precision.py --seeds 0,1,2,3 --jobs 2
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
from umap_epochs import (  # benchmarks/, the script's own folder
    CONTROL,
    UMAP_METRICS,
    compare,
    control_seeds,
    correlations,
)

PRECISIONS = ("fp32", "bf16")


def embeddings(scale: str, methods: list[str]) -> tuple[dict, np.ndarray, np.ndarray, dict]:
    """{(method, epoch, precision): (test Z, probe-train Z)}, test and train labels, and the embedding seconds per
    precision (one process, the torch threads it has)."""
    from benthic.data.cifar import load_cifar
    from benthic.monitoring.runs import SSL_RUNS, take_stratified, trained_runs
    from benthic.ssl import embed, load_encoder, milestone_epoch

    test_x, test_y = take_stratified(*load_cifar("cifar10", "test"), SSL_RUNS.get(scale).n_test, 0)
    out, seconds, train_labels = {}, dict.fromkeys(PRECISIONS, 0.0), None
    for paths, train_x, train_y, meta in trained_runs(scale, methods, "cifar10", seeds=(0,)):
        train_labels = train_y
        for path in paths:
            encoder = load_encoder(path)
            for precision in PRECISIONS:
                start = time.perf_counter()
                pair = tuple(embed(encoder, x, batch_size=256, precision=precision) for x in (test_x, train_x))
                seconds[precision] += time.perf_counter() - start
                out[meta["method"], milestone_epoch(path), precision] = pair
    return out, test_y, train_labels, seconds


def _evaluate(z: np.ndarray, y: np.ndarray, train_z: np.ndarray, train_y: np.ndarray, seed: int) -> dict:
    """One milestone's Table I row as notebook 02 computes it (the fast probe on these features), this UMAP seed."""
    from benthic.monitoring.config import ALL_METRICS, MonitorConfig
    from benthic.monitoring.milestones import evaluate_milestone

    row = evaluate_milestone(
        z, labels=y, lp=True, train_images=train_z, train_labels=train_y, config=MonitorConfig(umap_seed=seed)
    )
    return {m: row[m] for m in (*ALL_METRICS, "lp_acc")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--methods", default="simsiam,simclr,mocov2")
    parser.add_argument("--seeds", default="0,1,2", help="UMAP seeds (the yardstick's range is over these)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (seeded UMAP: one core)")
    args = parser.parse_args(argv)
    from joblib import Parallel, delayed

    from benthic.monitoring.config import ALL_METRICS

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; scale {args.scale}", flush=True)
    zs, test_y, train_y, seconds = embeddings(args.scale, args.methods.split(","))
    n_milestones = len(zs) // len(PRECISIONS)
    print("embedding seconds, test and probe images of every milestone (one process):")
    for precision, sec in seconds.items():
        print(f"  {precision}: {sec:.1f} s in all, {sec / n_milestones:.2f} s per milestone")
    seeds = [int(s) for s in args.seeds.split(",")]
    others = control_seeds(seeds)
    tasks = [(key, s, key[2]) for key in zs for s in seeds]
    tasks += [(key, s, CONTROL) for key in zs if key[2] == "fp32" for s in others]
    print(
        f"{n_milestones} milestones x {len(PRECISIONS)} precisions x UMAP seeds {seeds}, and the control (float32, "
        f"UMAP seeds {others}) ...",
        flush=True,
    )
    results = Parallel(n_jobs=args.jobs)(
        delayed(_evaluate)(zs[key][0], test_y, zs[key][1], train_y, s) for key, s, _ in tasks
    )
    rows = pd.DataFrame(
        [
            {"method": m, "epoch": e, "precision": variant, "umap_seed": s, **vals}
            for ((m, e, _), s, variant), vals in zip(tasks, results)
        ]
    )
    lp = rows[rows.umap_seed == seeds[0]].pivot_table(index=["method", "epoch"], columns="precision", values="lp_acc")
    print(f"\nprobe accuracy, bf16 - fp32 features: max |difference| {(lp['bf16'] - lp['fp32']).abs().max():.4f}")
    table = compare(correlations(rows, by="precision", metrics=ALL_METRICS), by="precision", reference="fp32")
    pd.set_option("display.width", 200)
    print(
        f"\nTable I cells: r over UMAP seeds {seeds} from float32 embeddings, the bf16 seed-mean r and the control's "
        f"(float32, UMAP seeds {others})"
    )
    print(table.round(3).to_string(index=False))
    half = (table["r_max_fp32"] - table["r_min_fp32"]) / 2
    umap = table.metric.isin(UMAP_METRICS)
    for variant in ("bf16", CONTROL):
        gap = (table[f"r_mean_{variant}"] - table["r_mean_fp32"]).abs()
        within = table[f"within_{variant}"]
        print(
            f"\n{variant}: {int(within[umap].sum())} of {int(umap.sum())} cells of the UMAP metrics within float32's "
            f"UMAP-seed range; median |mean r - float32 mean r| {gap[umap].median():.3f} (max {gap[umap].max():.3f}) "
            f"against a median half-range of {half[umap].median():.3f}. Metrics without UMAP (no seed range): max "
            f"|mean r - float32 mean r| {gap[~umap].max():.3f}"
        )


if __name__ == "__main__":
    main()
