#!/usr/bin/env bash
# Data-parallel training speed on this machine: the same run on 1 process (1 and 2 threads) and
# on 2 and 4 MPI ranks of 1 thread each, with the time rank 0 spent in the steps' collectives.
# The figures of docs/distributed.md. A run is STEPS optimizer steps of CONFIG without validation
# (the first epoch's steps; the training rows/s excludes everything but the steps).
#
# Usage: bench/distributed.sh [CONFIG] [STEPS]   (from the repository; needs build/release)
#        default: examples/lm_austen.json (scripts/fetch_lm_corpus.sh fetches its corpus), 40
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-examples/lm_austen.json}"
steps="${2:-40}"
moe=build/release/tools/moe/moe
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

field() { grep -o "\"$2\": *[-0-9.e+]*" "$1/summary.json" | head -1 | grep -o '[-0-9.e+]*$' || true; }
batch=$(grep -o '"batch_size": *[0-9]*' "$config" | grep -o '[0-9]*$')
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "CPU: $cpu, $(nproc) cores; $config, $steps steps of $batch rows"
printf '%-22s %10s %10s %14s\n' "run" "steps/s" "speed-up" "collectives"
base=""
run() { # NAME NP THREADS
  local dir="$out/$1" set=(--set "training.max_steps=$steps" --set "training.threads=$3"
    --set data.validation="" --set training.warmup_steps=0 --set training.epochs=1 --out "$out/$1" --quiet)
  if [ "$2" -eq 1 ]; then
    "$moe" train "$config" "${set[@]}" >/dev/null 2>&1
  else
    mpirun --oversubscribe --bind-to none -np "$2" -x OMP_NUM_THREADS=1 "$moe" train "$config" \
      "${set[@]}" >/dev/null 2>&1
  fi
  local rps coll secs
  rps=$(field "$dir" rows_per_second)
  coll=$(field "$dir" collective_seconds)
  secs=$(field "$dir" train_seconds)
  local sps
  sps=$(awk -v r="$rps" -v b="$batch" 'BEGIN {printf "%.2f", r / b}')
  [ -z "$base" ] && base=$sps
  printf '%-22s %10s %9.2fx %14s\n' "$1" "$sps" "$(awk -v a="$sps" -v b="$base" 'BEGIN {print a / b}')" \
    "$( [ -n "$coll" ] && awk -v c="$coll" -v s="$secs" 'BEGIN {printf "%.0f%% (%.1f s)", 100 * c / s, c}' || echo -)"
}
run "1 process, 1 thread" 1 1
run "1 process, 2 threads" 1 2
run "2 ranks x 1 thread" 2 1
run "4 ranks x 1 thread" 4 1
