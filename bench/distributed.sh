#!/usr/bin/env bash
# Data-parallel training speed on this machine: the same run on 1 process (1 and 2 threads) and
# on 2 and 4 MPI ranks of 1 thread each, data parallel and with the experts placed on the ranks,
# with the time rank 0 spent in collectives (summary.json's collective_seconds: the steps' own
# and the expert-parallel exchanges inside the layers).
# The figures of docs/distributed.md. A run is STEPS optimizer steps of CONFIG, validated on the
# first 200 lines of its validation file (the training rows/s excludes everything but the
# steps); every configuration runs ROUNDS times, in turn with the others, and its best round is
# shown (the machine is shared and noisy).
#
# Usage: bench/distributed.sh [CONFIG] [STEPS] [ROUNDS]   (needs build/release)
#        default: examples/lm_austen.json (scripts/fetch_lm_corpus.sh fetches its corpus), 40, 2
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-examples/lm_austen.json}"
steps="${2:-40}"
rounds="${3:-2}"
moe=build/release/tools/moe/moe
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
validation=$(grep -o '"validation": *"[^"]*"' "$config" | head -1 | sed 's/.*: *"//; s/"$//')
head -200 "$validation" >"$out/validation.txt"

field() { grep -o "\"$2\": *[-0-9.e+]*" "$1/summary.json" | head -1 | grep -o '[-0-9.e+]*$' || true; }
batch=$(grep -o '"batch_size": *[0-9]*' "$config" | grep -o '[0-9]*$')
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "CPU: $cpu, $(nproc) cores; $config, $steps steps of $batch rows"
names=("1 process, 1 thread" "1 process, 2 threads" "2 ranks x 1 thread" "4 ranks x 1 thread"
       "2 ranks, expert parallel" "4 ranks, expert parallel")
args=("1 1" "1 2" "2 1" "4 1" "2 1 --set model.moe.expert_parallel=true"
      "4 1 --set model.moe.expert_parallel=true")
best=()
note=()
for round in $(seq "$rounds"); do
  for i in "${!names[@]}"; do
    # shellcheck disable=SC2086 # the arguments are words
    set -- ${args[$i]}
    np=$1 threads=$2
    shift 2
    dir="$out/run$i"
    rm -rf "$dir"
    common=("$@" --set "training.max_steps=$steps" --set "training.threads=$threads"
      --set "data.validation=$out/validation.txt" --set training.warmup_steps=0
      --set training.epochs=1 --out "$dir" --quiet)
    if [ "$np" -eq 1 ]; then
      "$moe" train "$config" "${common[@]}" >/dev/null 2>&1
    else
      mpirun --oversubscribe --bind-to none -np "$np" -x OMP_NUM_THREADS=1 "$moe" train \
        "$config" "${common[@]}" >/dev/null 2>&1
    fi
    sps=$(awk -v r="$(field "$dir" rows_per_second)" -v b="$batch" 'BEGIN {printf "%.2f", r / b}')
    if [ -z "${best[$i]:-}" ] || awk -v a="$sps" -v b="${best[$i]}" 'BEGIN {exit !(a > b)}'; then
      best[$i]=$sps
      coll=$(field "$dir" collective_seconds)
      secs=$(field "$dir" train_seconds)
      note[$i]=$([ -n "$coll" ] && awk -v c="$coll" -v s="$secs" 'BEGIN {printf "%.0f%% (%.2f s)", 100 * c / s, c}' || echo -)
    fi
  done
done
printf '%-30s %10s %10s %16s\n' "run (best of $rounds)" "steps/s" "speed-up" "collectives"
for i in "${!names[@]}"; do
  printf '%-30s %10s %9.2fx %16s\n' "${names[$i]}" "${best[$i]}" \
    "$(awk -v a="${best[$i]}" -v b="${best[0]}" 'BEGIN {print a / b}')" "${note[$i]}"
done
