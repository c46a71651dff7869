"""Code style: `ruff format --check` and `ruff check` pass over the package, tests, benchmarks and notebooks
(settings in pyproject.toml). Fix a failure with `ruff format` and `ruff check --fix` (or the pre-commit hooks)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TARGETS = ["benthic", "tests", "benchmarks", "notebooks"]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ruff") is None,
    reason="ruff is not installed (it comes with the dev extra: pip install -e '.[dev]')",
)


def _ruff(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ruff", *args, *TARGETS]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_code_is_formatted():
    result = _ruff("format", "--check", "--no-cache")
    assert result.returncode == 0, "unformatted files (run `ruff format`):\n" + result.stdout + result.stderr


def test_code_passes_lint():
    result = _ruff("check", "--no-cache", "--output-format", "concise")
    assert result.returncode == 0, "ruff check failed (try `ruff check --fix`):\n" + result.stdout + result.stderr
