#!/usr/bin/env bash
# Fill wheels/ (git-ignored) with the pure-Python packages the lent GPU machine lacks, at the versions of
# requirements-lock.txt, for its Python 3.12 on x86_64 Linux. Run it where there is a network, before the tree
# travels; benchmarks/gpu_run.sh installs them there with pip install --no-index --no-deps --target.
#   umap-learn, pynndescent    the label-free metrics (UMAP)
#   lightly (+ hydra-core, omegaconf, antlr4-python3-runtime)   the SSL methods' heads and losses
#   tabulate                   Markdown tables
# antlr4-python3-runtime is published as an sdist only: pip wheel builds it here (pure Python, any platform).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${BENTHIC_PYTHON:-.venv/bin/python}
[[ -x "$PY" ]] || PY=python3
dest=wheels
lock=requirements-lock.txt
mkdir -p "$dest"
pin() { grep -i "^$1==" "$lock" || { echo "$1 is not in $lock" >&2; exit 1; }; }
binary=()
for name in umap-learn pynndescent lightly hydra-core omegaconf tabulate; do binary+=("$(pin "$name")"); done
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --dest "$dest" "${binary[@]}"
"$PY" -m pip wheel --quiet --no-deps --wheel-dir "$dest" "$(pin antlr4-python3-runtime)"
ls -l "$dest"
du -sh "$dest"
