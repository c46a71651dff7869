"""benchmarks/quick_goals.py's floors: the arithmetic behind the two quick-scale goals it reports as out of reach,
checked on hand-computed cases."""

from __future__ import annotations

import importlib.util

import pytest

from benthic.paths import ROOT


@pytest.fixture(scope="module")
def quick_goals():
    spec = importlib.util.spec_from_file_location("quick_goals", ROOT / "benchmarks" / "quick_goals.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(seconds, threads):
    prov = {"commit": "0123456789abcdef", "date": "2026-12-07", "device": "CPU x86_64 x2", "torch_threads": threads}
    return {"history": [{"seconds": s} for s in seconds], "provenance": prov}


def test_training_floor_sums_the_epochs_core_seconds_over_seeds_and_cores(quick_goals):
    # epochs of 10 + 20 + 30 s at one thread: 60 core-seconds per seed; three seeds on two cores: 90 s
    per_seed, floor, stamp = quick_goals.training_floor(_record([10, 20, 30], 1), seeds=3, cores=2)
    assert (per_seed, floor) == (60, 90)
    assert stamp == "commit 0123456, 2026-12-07, CPU x86_64 x2, 1 thread(s)"
    # the same epochs at two threads held two cores: twice the core-seconds
    per_seed, floor, _ = quick_goals.training_floor(_record([10, 20, 30], 2), seeds=3, cores=2)
    assert (per_seed, floor) == (120, 180)


def test_layout_epochs_for_keeps_the_other_metrics_and_scales_the_layout(quick_goals):
    # a 17 s suite of which 14 s are the 500-epoch layout: 3 s of other metrics leave 2 s, 2/14 of 500 epochs
    assert quick_goals.layout_epochs_for(5.0, 17.0, 14.0) == pytest.approx(500 * 2 / 14)
    # the other metrics alone over the goal: no layout fits
    assert quick_goals.layout_epochs_for(5.0, 20.0, 14.0) == 0.0
