"""Does notebook 02's two-process evaluation win on a 2-core CPU? The quick scale's seed-0 runs of each method
(trained here if missing) are evaluated as notebook 02 evaluates them (every milestone: label-free metrics, linear
probe, kNN) by one process with the machine's threads and by two single-threaded processes side by side, each taking
one milestone at a time, without the result cache; both tables must agree. Run it on an idle machine.

    .venv/bin/python benchmarks/eval_workers.py                 # 1 and 2 processes, three runs
    .venv/bin/python benchmarks/eval_workers.py --workers 1,2,3 --methods simclr,mocov2
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd
import torch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--methods", default="simsiam,simclr,mocov2")
    parser.add_argument("--workers", default="1,2", help="process counts to time")
    args = parser.parse_args(argv)
    from benthic.data.cifar import load_cifar
    from benthic.monitoring.runs import SSL_RUNS, _evaluate_runs, take_stratified, trained_runs
    from benthic.paths import runs_dir

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; scale {args.scale}", flush=True)
    settings = SSL_RUNS.get(args.scale)
    test_x, test_y = take_stratified(*load_cifar("cifar10", "test"), settings.n_test, 0)
    jobs = trained_runs(args.scale, args.methods.split(","), "cifar10", seeds=(0,))
    options = {"lp": True, "knn": True, "config": settings.monitor_config(), "cache_dir": None}
    cache = runs_dir(args.scale) / "numba_cache"
    _evaluate_runs(jobs[:1], test_x[:300], test_y[:300], options, 1, cache)  # warm-up: numba compiles in this process
    n = sum(len(paths) for paths, *_ in jobs)
    tables, rows = {}, []
    for workers in (int(w) for w in args.workers.split(",")):
        start = time.perf_counter()
        results = _evaluate_runs(jobs, test_x, test_y, options, workers, cache)
        seconds = time.perf_counter() - start
        tables[workers] = pd.concat([t for t, _ in results], ignore_index=True)
        rows.append({"processes": workers, "seconds": round(seconds, 1), "per_milestone_s": round(seconds / n, 2)})
    print(
        f"\n{len(jobs)} runs, {n} milestones, {len(test_x)} test images, torch threads {torch.get_num_threads()} in one process"
    )
    print(pd.DataFrame(rows).to_string(index=False))
    (base, first), *others = tables.items()
    cols = [c for c in first.select_dtypes("number") if c != "seconds"]  # every metric, not the timing
    for workers, other in others:
        gap = (first[cols] - other[cols]).abs().max().max()
        print(f"largest difference between {base} and {workers} process(es) over every metric: {gap:.2e}")


if __name__ == "__main__":
    main()
