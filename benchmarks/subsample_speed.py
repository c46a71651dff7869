"""Benchmark: spatial subsampling of a 1 000 000-row SYNTHETIC catalogue (issue target: under 60 s on the
2-core CPU). Prints generation and subsampling times separately. Usage: python benchmarks/subsample_speed.py [N]"""

import sys
import time

from benthic.data.subsample import spatial_subsample
from benthic.data.synthetic import synthetic_catalogue


def main(n: int = 1_000_000, seed: int = 0) -> None:
    t0 = time.perf_counter()
    df = synthetic_catalogue(n, seed=seed)
    t1 = time.perf_counter()
    kept, report = spatial_subsample(df, progress=False)
    t2 = time.perf_counter()
    print(f"generate {n:,} rows ({df['site'].nunique():,} sites): {t1 - t0:.1f} s")
    print(
        f"subsample: {t2 - t1:.1f} s -> kept {len(kept):,} rows "
        f"({report['method'].value_counts().to_dict()}), distances used (m): "
        f"{sorted(report.loc[report['method'] == 'spatial', 'distance_m'].unique().tolist())}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
