#!/usr/bin/env bash
# The gpu scale in one command, for one short GPU window (at most 9 minutes on an H100/H200, start-up included):
# the throughput table, then SimCLR, SimSiam and MoCo-v2 on CIFAR-10 with every milestone's kNN, cached-feature
# probe and label-free metrics computed by CPU workers while the GPU trains, and the paper's linear probe on the
# first, an early and the last milestone of each method. Results are rewritten as they arrive under OUT:
#   OUT/results/ssl/<scale>_cifar10.json              per-milestone loss, kNN, both probes, history, provenance
#   OUT/results/monitoring/<scale>_ssl_cifar10.csv    Table I's inputs (every metric per milestone)
#   OUT/results/monitoring/<scale>_ssl_cifar10_spectra.csv
#   OUT/results/ssl/<scale>_throughput.csv            views/s: model alone, the package's pipeline, DataLoader
#   OUT/<scale>_run.log                               everything printed
#
#   benchmarks/gpu_run.sh --dry-run                   print the plan and the time it expects; run nothing
#   benchmarks/gpu_run.sh --out "$OUT"                the run (default OUT: the repository, i.e. results/ here)
#   benchmarks/gpu_run.sh --scale smoke --out DIR     the same path on a CPU in about a minute (the tests)
#
# Runs where the package is not installed (the lent GPU machine: python3 with torch, no network): the repository
# goes on PYTHONPATH, and the wheels in wheels/ (tools/fetch_wheels.sh fills them) are installed with
# pip --no-index --no-deps into a folder appended to PYTHONPATH when umap-learn or lightly is missing.
# BENTHIC_PYTHON picks the interpreter (default python3).
set -euo pipefail
started=$(date +%s.%N)
cd "$(dirname "$0")/.."
root=$PWD
PY=${BENTHIC_PYTHON:-python3}
scale=gpu out=$root dry=()
args=("$@")
while [[ $# -gt 0 ]]; do
  case "$1" in
    --scale) scale=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --dry-run) dry=(--dry-run); shift ;;
    *) shift ;;
  esac
done
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export BENTHIC_COMMAND="benchmarks/gpu_run.sh ${args[*]}"
site=${BENTHIC_SITE:-$root/runs/$scale/site}
if ! "$PY" -c "import umap, lightly" 2>/dev/null; then
  shopt -s nullglob
  wheels=("$root"/wheels/*.whl)
  if [[ ${#wheels[@]} -eq 0 ]]; then
    echo "umap-learn or lightly is missing and wheels/ is empty: run tools/fetch_wheels.sh where there is a network" >&2
    exit 2
  fi
  # pure-Python wheels: pip when the interpreter has it, else unpacking them is the same install
  "$PY" -m pip install --quiet --upgrade --no-index --no-deps --target "$site" "${wheels[@]}" ||
    for w in "${wheels[@]}"; do "$PY" -m zipfile -e "$w" "$site"; done
  export PYTHONPATH="$PYTHONPATH:$site"
fi
if [[ ${#dry[@]} -eq 0 ]]; then
  mkdir -p "$out"
  "$PY" -m benthic.monitoring.gpu_run "${args[@]}" --started "$started" 2>&1 | tee "$out/${scale}_run.log"
  exit "${PIPESTATUS[0]}"
fi
"$PY" -m benthic.monitoring.gpu_run "${args[@]}"
