"""What a fresh process pays before its first UMAP (the cost every notebook and metric worker pays once): importing
umap-learn, the first seeded fit (numba compiles, or loads its on-disk cache) and a second fit in the same process,
each in new interpreters, first with an empty numba cache folder and then with the one the first process filled.

    .venv/bin/python benchmarks/umap_startup.py            # 2 000 x 64 points, 3 processes per cache state
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import umap
t1 = time.perf_counter()
from benthic import metrics as M
z = np.random.default_rng(0).normal(size=({n}, 64)).astype(np.float32)
t2 = time.perf_counter()
M.umap_3d(z, seed=0)
t3 = time.perf_counter()
M.umap_3d(z, seed=1)
t4 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "first_fit": t3 - t2, "second_fit": t4 - t3}}))
"""


def one_process(n: int, cache: str | None) -> dict:
    """Seconds of import, first and second seeded UMAP fit in a new interpreter (`cache`: NUMBA_CACHE_DIR)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    env.pop("NUMBA_CACHE_DIR", None)
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = cache
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(n=n)], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="points per fit")
    p.add_argument("--repeats", type=int, default=3, help="processes per cache state")
    args = p.parse_args()
    print(
        f"{args.n} x 64 points, seeded UMAP to 3-d (benthic.metrics.umap_3d, 50 neighbours), one thread, new process each"
    )
    print(f"{'numba cache':34s} {'import s':>9s} {'first fit s':>12s} {'second fit s':>13s}")
    with tempfile.TemporaryDirectory() as folder:
        states = [("default (umap-learn's own cache)", None), ("fresh folder, first process", folder)]
        for label, cache in states:
            r = one_process(args.n, cache)
            print(f"{label:34s} {r['import']:9.2f} {r['first_fit']:12.2f} {r['second_fit']:13.2f}")
        for i in range(args.repeats):
            r = one_process(args.n, folder)
            label = f"same folder, process {i + 2}"
            print(f"{label:34s} {r['import']:9.2f} {r['first_fit']:12.2f} {r['second_fit']:13.2f}")


if __name__ == "__main__":
    main()
