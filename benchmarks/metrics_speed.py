"""Time every metric of one milestone (benthic.metrics, as benthic.monitoring.milestones.evaluate_milestone runs
them) on synthetic clustered embeddings, after a warm-up that pays numba's compilation; then the UMAP
variants (seeded or not, exact torch kNN or umap-learn's own) and the scaling with the sample count.

    .venv/bin/python benchmarks/metrics_speed.py                     # 10 000 x 512, scaling 2k..50k
    .venv/bin/python benchmarks/metrics_speed.py --sizes 2000,10000  # shorter scaling
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from benthic import metrics as M


def embeddings(n: int, dim: int = 512, classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered embeddings like a half-trained encoder's: class means on a 64-d subspace plus noise."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(64, dim)) / 8
    centers = rng.normal(size=(classes, 64)) * 2
    y = rng.integers(0, classes, n)
    z = (centers[y] + rng.normal(size=(n, 64))) @ basis + 0.1 * rng.normal(size=(n, dim))
    return z.astype(np.float32), y


def timed(fn, *args, **kwargs):
    """(result, wall seconds); the call's process CPU seconds are left in `timed.cpu`."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    timed.cpu = time.process_time() - c0
    return out, time.perf_counter() - t0


def milestone_times(
    z: np.ndarray, y: np.ndarray, k: int = 10, umap_seed: int | None = 0
) -> dict[str, tuple[float, float]]:
    """(wall, process CPU) seconds per step of one milestone's evaluation, the same calls as
    benthic.monitoring.milestones.evaluate_milestone; CPU time shows the cost when other processes share the cores."""
    out: dict[str, tuple[float, float]] = {}

    def wrap(name, fn, *a, **kw):
        res, wall = timed(fn, *a, **kw)
        out[name] = (wall, timed.cpu)
        return res

    z3 = wrap("umap_3d (incl. exact kNN)", M.umap_3d, z, seed=umap_seed)
    zc = z3 - z3.mean(axis=0)
    c1 = wrap("kmeans_cosine k1", M.kmeans_cosine, zc, k)
    c2 = wrap("kmeans_cosine k2", M.kmeans_cosine, zc, 2 * k)
    wrap("ami C1,C2 + C1,GT", lambda: (M.ami(c1, c2), M.ami(c1, y)))
    wrap("silhouettes S1 + S_GT (one pass)", M.silhouettes, z, [c1, y])
    wrap("entropy_3d", M.entropy_3d, z3)
    wrap("outlier_mask", M.outlier_mask, z3)
    wrap("rankme", M.rankme, z)
    s = wrap("singular_values", M.singular_values, z)
    wrap("alpha_req (given the spectrum)", M.alpha_req, z, s=s)
    out["TOTAL"] = (sum(w for w, _ in out.values()), sum(c for _, c in out.values()))
    return out


def evaluate_milestone_seconds(z: np.ndarray, y: np.ndarray, umap_seed: int | None) -> float:
    """Wall seconds of benthic.monitoring.milestones.evaluate_milestone on embeddings, as the notebooks call it."""
    from benthic.monitoring.config import MonitorConfig
    from benthic.monitoring.milestones import evaluate_milestone

    _, sec = timed(evaluate_milestone, z, labels=y, config=MonitorConfig(umap_seed=umap_seed))
    return sec


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--sizes", default="2000,5000,10000,20000,50000")
    parser.add_argument("--no-variants", action="store_true", help="skip the UMAP variants")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling with the sample count")
    args = parser.parse_args(argv)
    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} (other processes share the CPU)"
    )
    warm, _ = embeddings(1000, args.dim, seed=1)
    _, t_warm = timed(lambda: [milestone_times(warm, np.arange(1000) % 10, umap_seed=s) for s in (0, None)])
    print(f"warm-up (numba compilation of UMAP etc.) on 1000 samples: {t_warm:.1f} s")

    z, y = embeddings(args.n, args.dim)
    print(f"\nbenthic.monitoring.evaluate_milestone, all metrics of one {args.n} x {args.dim} milestone (wall s):")
    print(f"  seeded UMAP (default, reproducible):         {evaluate_milestone_seconds(z, y, 0):7.2f}")
    print(f"  unseeded UMAP (umap_seed=None, 2 threads):   {evaluate_milestone_seconds(z, y, None):7.2f}")
    for seed in (0, None):
        print(f"\nper step, {'seeded' if seed is not None else 'unseeded'} UMAP (exact kNN, default epochs):")
        print(f"  {'':34s} {'wall s':>8s} {'CPU s':>8s}")
        for name, (wall, cpu) in milestone_times(z, y, umap_seed=seed).items():
            print(f"  {name:34s} {wall:8.2f} {cpu:8.2f}")

    if not args.no_variants:
        print(f"\nUMAP variants on {args.n} x {args.dim}:")
        for label, kw in (
            ("seeded, exact torch kNN (default)", dict(seed=0, knn="exact")),
            ("seeded, umap-learn's own kNN", dict(seed=0, knn="umap")),
            ("unseeded (parallel), exact kNN", dict(seed=None, knn="exact")),
            ("unseeded (parallel), own kNN", dict(seed=None, knn="umap")),
            ("seeded, exact kNN, n_epochs=200", dict(seed=0, knn="exact", n_epochs=200)),
        ):
            _, sec = timed(M.umap_3d, z, **kw)
            print(f"  {label:36s} {sec:7.2f} s")
        _, sec = timed(M.exact_knn, z, 50)
        print(f"  {'(exact torch kNN alone, k=50)':36s} {sec:7.2f} s")

    if args.no_scaling:
        return
    print("\nscaling (wall seconds; silhouettes sample 10 000 above 10 000 rows):")
    header = None
    for n in (int(s) for s in args.sizes.split(",") if s):
        zn, yn = embeddings(n, args.dim)
        t = {name: wall for name, (wall, _) in milestone_times(zn, yn).items()}
        if header is None:
            header = ["n", "umap", "kmeans x2", "silhouettes", "spectral", "TOTAL"]
            print("  " + "".join(f"{h:>12s}" for h in header))
        row = [
            n,
            t["umap_3d (incl. exact kNN)"],
            t["kmeans_cosine k1"] + t["kmeans_cosine k2"],
            t["silhouettes S1 + S_GT (one pass)"],
            t["rankme"] + t["alpha_req (given the spectrum)"] + t["singular_values"],
            t["TOTAL"],
        ]
        print("  " + f"{row[0]:>12d}" + "".join(f"{v:>12.2f}" for v in row[1:]), flush=True)


if __name__ == "__main__":
    main()
