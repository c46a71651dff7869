#!/usr/bin/env bash
# Regenerate every table and figure, or run the tests, from a fresh clone.
#
#   ./run_all.sh                      set up if needed, then run every notebook at the quick scale
#   ./run_all.sh --scale paper        the papers' settings (GPU; real data where present)
#   ./run_all.sh --only 00,02         only some notebooks
#   ./run_all.sh -p seed 1            pass a papermill parameter to every notebook
#   ./run_all.sh test [pytest args]   the test suite (what CI runs)
#   ./run_all.sh setup                only create/refresh the environment
#   ./run_all.sh gpu [--dry-run]      the gpu scale's one run for a short GPU window (benchmarks/gpu_run.sh)
#   ./run_all.sh lab                  open JupyterLab on notebooks/
#
# The environment is a virtual environment in .venv (override the interpreter with BENTHIC_PYTHON,
# e.g. inside a conda/Binder environment that already has the dependencies).
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
STAMP="$VENV/.benthic-installed"
LOCK=requirements-lock.txt  # the exact versions of this reproduction; pyproject.toml holds the ranges
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
# 2-core machines: keep BLAS/OpenMP runtimes of torch, scikit-learn and numba from oversubscribing
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc 2>/dev/null || echo 2)}"

setup() {
  if [[ -n "${BENTHIC_PYTHON:-}" ]]; then PY="$BENTHIC_PYTHON"; return; fi
  PY="$VENV/bin/python"
  local want; want=$(cat pyproject.toml "$LOCK" | sha256sum | cut -c1-16)
  if [[ -x "$PY" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then return; fi
  echo "==> setting up the environment in $VENV (first run: about 2 minutes)"
  [[ -x "$PY" ]] || python3 -m venv "$VENV"
  "$PY" -m pip install --quiet --upgrade pip wheel setuptools
  "$PY" -m pip install --progress-bar on -c "$LOCK" -e ".[dev,notebooks]"
  "$PY" -m ipykernel install --sys-prefix --name benthic --display-name "Python (benthic)" >/dev/null
  "$VENV/bin/nbstripout" --install --attributes .gitattributes >/dev/null 2>&1 || true
  echo "$want" > "$STAMP"
  echo "==> environment ready"
}

cmd="${1:-}"
case "$cmd" in
  test)
    shift; setup
    exec "$PY" -m pytest "$@" ;;
  setup)
    setup ;;
  lab)
    shift; setup
    exec "$PY" -m jupyter lab notebooks/ "$@" ;;
  gpu)  # no setup: the lent GPU machine brings its own torch (benchmarks/gpu_run.sh says how)
    shift
    if [[ -z "${BENTHIC_PYTHON:-}" && -x "$VENV/bin/python" ]]; then export BENTHIC_PYTHON="$VENV/bin/python"; fi
    exec benchmarks/gpu_run.sh "$@" ;;
  -h|--help|help)
    sed -n '2,14p' "$0" ;;
  *)
    setup
    exec "$PY" -m benthic.cli.notebooks "$@" ;;
esac
