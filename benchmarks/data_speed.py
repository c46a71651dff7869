"""Benchmark: CIFAR-10 first decode from the shipped JPEG archive vs cached load (issue target: cached
load under 2 s), and the reef-photo set's first decode vs cached load. Decodes into a fresh temporary
cache so the figures are first-run figures. Usage: python benchmarks/data_speed.py [coral_size]"""

import os
import sys
import tempfile
import time

from benthic.data.cifar import load_cifar
from benthic.data.coral import load_coral


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main(coral_size: int = 128) -> None:
    with tempfile.TemporaryDirectory(prefix="benthic-bench-") as cache:
        os.environ["BENTHIC_CACHE"] = cache
        (x, _), first = _timed(load_cifar, "cifar10", "train")
        (xt, _), test_cached = _timed(load_cifar, "cifar10", "test")
        (x, _), train_cached = _timed(load_cifar, "cifar10", "train")
        print(f"CIFAR-10 first decode (archive -> .npy, train+test, {len(x) + len(xt):,} images): {first:.1f} s")
        print(
            f"CIFAR-10 cached load: train {train_cached:.2f} s + test {test_cached:.2f} s "
            f"= {train_cached + test_cached:.2f} s"
        )
        coral, coral_first = _timed(load_coral, size=coral_size)
        _, coral_cached = _timed(load_coral, size=coral_size)
        print(
            f"reef-photo set at {coral_size} px ({len(coral)} tiles): first decode {coral_first:.2f} s, "
            f"cached load {coral_cached:.2f} s"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 128)
