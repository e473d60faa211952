#!/usr/bin/env bash
# Checkpoints that survive SIGKILL, and exact resume, through the moe command.
#
# 1. 2 epochs, then `--resume` to 4, gives model and training state bit-identical to 4 epochs
#    run at once; resume refuses a changed key, --out with --resume, a directory with no run.
# 2. KILLS times: start an EPOCHS-epoch `moe train` (or `moe train --resume` once a checkpoint
#    exists) with a checkpoint every 4 steps, SIGKILL it after a random delay, then load what
#    is left:
#    `moe eval` on last/ and best/ must succeed, and last/ must exist whenever an earlier
#    checkpoint (last.1) does.
#    Finally `--resume` runs to the end, and its weights must be bit-identical to a run never
#    killed (same seed, one thread).
#
# Usage: tests/cli/resume_kill_test.sh PATH/TO/moe [KILLS [EPOCHS]]   (defaults: 3 kills, 3 epochs)
#
# Each checkpoint costs a handful of fsyncs, which dominate the run time on a busy disk: the
# unit version keeps the run short, the slow one (30 kills, 12 epochs) lets kills land
# throughout.
set -uo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
cli_setup "${1:?usage: resume_kill_test.sh PATH/TO/moe [KILLS [EPOCHS]]}"
kills=${2:-3}
epochs=${3:-3}

check() {  # check DESCRIPTION COMMAND...: the command must succeed
  local what=$1
  shift
  checks=$((checks + 1))
  "$@" >"$work/check.out" 2>&1 || fail "$what: $(head -c 400 "$work/check.out")"
}

# 800 rows of two numbers and a colour (640 for training: 20 batches an epoch).
colour_table "$work/data.csv" 800 777 -1 0.5

# Dropout, a sigmoid gate with bias balancing and a noisy gate: every kind of state a resume
# must carry. One thread, so runs are comparable bit for bit.
tabular_config "$work/run.json" "$work/data.csv" '{"validation": 0.2}' \
  '{"width": 32, "trunk": {"dropout": 0.1}, "moe": [
    {"experts": 4, "k": 2, "expert": {"kind": "mlp", "hidden": 32},
     "gate": {"kind": "sigmoid_bias", "bias_update_rate": 0.01}},
    {"experts": 4, "k": 1, "expert": {"hidden": 32}, "gate": {"kind": "noisy_topk"}}]}' \
  '{"epochs": 4, "batch_size": 32, "lr": 0.003, "schedule": "constant", "seed": 9,
    "threads": 1, "early_stopping": {"metric": "accuracy"}}' \
  '"output": {"checkpoint": {"keep_last": 2}}'

same() {  # same A B FILE: FILE is byte-identical in run directories A and B
  checks=$((checks + 1))
  cmp -s "$1/$3" "$2/$3" || fail "$3 differs between $(basename "$1") and $(basename "$2")"
}

# --- 1. 2 + 2 epochs = 4 epochs ----------------------------------------------------------------
"$moe" train "$work/run.json" --out "$work/whole" -q >/dev/null || fail "uninterrupted run failed"
"$moe" train "$work/run.json" --out "$work/split" -q --set training.epochs=2 >/dev/null ||
  fail "2-epoch run failed"
"$moe" train --resume "$work/split" -q --set training.epochs=4 >/dev/null ||
  fail "resume to 4 epochs failed"
for f in last/model.safetensors last/train_state.safetensors best/model.safetensors; do
  same "$work/whole" "$work/split" "$f"
done

# A changed learning rate, --out with --resume, a missing run directory.
expect 1 'training\.lr differs' -- train --resume "$work/split" --set training.lr=0.5
expect 2 '' -- train --resume "$work/split" --out "$work/elsewhere"
expect 1 'no such run directory' -- train --resume "$work/nothing"

# --- 2. SIGKILL at random moments --------------------------------------------------------------
# A longer run with frequent checkpoints, so kills land in training, validation and saving.
"$moe" train "$work/run.json" --out "$work/reference" -q --set training.epochs="$epochs" >/dev/null ||
  fail "reference run failed"
run="$work/killed"
killed=0
for ((i = 1; i <= kills; i++)); do
  if [ -d "$run/last" ]; then
    "$moe" train --resume "$run" -q --set training.epochs="$epochs" --checkpoint-every 4 \
      >"$work/train.out" 2>&1 &
  else
    "$moe" train "$work/run.json" --out "$run" -q --set training.epochs="$epochs" \
      --checkpoint-every 4 >"$work/train.out" 2>&1 &
  fi
  pid=$!
  # 20 to 600 ms: from start-up (data, schema) through steps, validation and checkpoint writes.
  sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.3f", 0.02 + (r % 580) / 1000 }')"
  kill -KILL "$pid" 2>/dev/null && killed=$((killed + 1))
  wait "$pid" 2>/dev/null
  for d in last best; do
    if [ -d "$run/$d" ]; then
      check "kill $i: moe eval $d/" "$moe" eval "$run/$d" "$work/data.csv"
    fi
  done
  if [ -d "$run/last.1" ] && [ ! -d "$run/last" ]; then
    fail "kill $i: last.1 exists but last/ is missing"
  fi
done
if [ -d "$run/last" ]; then
  check "resume to the end after $kills kills" \
    "$moe" train --resume "$run" -q --set training.epochs="$epochs" --checkpoint-every 4
else  # every kill came before the first checkpoint
  check "a fresh run after $kills kills" \
    "$moe" train "$work/run.json" --out "$run" -q --set training.epochs="$epochs"
fi
same "$work/reference" "$run" last/model.safetensors
same "$work/reference" "$run" best/model.safetensors
same "$work/reference" "$run" last/train_state.safetensors

echo "resume_kill_test: $killed of $kills runs killed mid-flight"
echo "$((checks - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
