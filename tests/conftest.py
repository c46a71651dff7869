"""Shared test settings: keep test outputs out of the repository and torch on few threads."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_outputs(tmp_path_factory):
    """Send figures, runs and caches written during tests to a temporary folder."""
    base = tmp_path_factory.mktemp("benthic-out")
    for var, sub in (("BENTHIC_FIGURES", "figures"), ("BENTHIC_RUNS", "runs")):
        os.environ.setdefault(var, str(base / sub))
    yield


def pytest_configure(config):
    os.environ.setdefault("MPLBACKEND", "Agg")
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
