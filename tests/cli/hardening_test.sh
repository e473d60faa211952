#!/usr/bin/env bash
# The moe command where output and run directories meet the file system: a failed write on
# standard output or to --out is exit 1 with the reason (never exit 0 with the output lost);
# --out refuses a device, a FIFO or a directory and writes through a symbolic link; a failed
# write leaves no temporary; one `moe train` per run directory, and a finished run is not
# replaced unless --overwrite says so; resume refuses edited training text; messages for a
# checkpoint that is a file, an unreadable directory, --batch-size 0 and too many experts.
#
# Usage: tests/cli/hardening_test.sh PATH/TO/moe
set -uo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
cli_setup "${1:?usage: hardening_test.sh PATH/TO/moe}"
# A train left running in the background by a check is stopped on any exit.
background=""
cleanup() {
  if [ -n "$background" ]; then kill "$background" 2>/dev/null && wait "$background" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

# --- data: reviews whose words 'zulu' and 'yankee' occur in one row each --------------------
# Swapping those two words between their rows keeps every word's document frequency, so the
# vocabulary and the schema fitted on the text stay the same while the rows change.
{
  printf 'text\tlabel\n'
  printf 'zulu good fine tasty\tpos\n'
  printf 'yankee bad stale awful\tneg\n'
  awk 'BEGIN {
    s = 7
    split("good fine tasty great fresh", pos, " "); split("bad stale awful poor bland", neg, " ")
    for (i = 0; i < 240; i++) {
      s = (s * 1103515245 + 12345) % 2147483648; p = int(s / 2147483648 * 5) + 1
      s = (s * 1103515245 + 12345) % 2147483648; q = int(s / 2147483648 * 5) + 1
      if (i % 2) printf "%s %s coffee\tpos\n", pos[p], pos[q]
      else printf "%s %s coffee\tneg\n", neg[p], neg[q]
    }
  }'
} >"$work/reviews.tsv"
sed -e '2s/zulu/yankee/' -e '3s/yankee/zulu/' "$work/reviews.tsv" >"$work/edited.tsv"

config() {  # config FILE TRAIN_TSV MOE_JSON [VALIDATION]
  cat >"$1" <<EOF
{"data": {"format": "text", "train": "$2", "label": "label", "split": {"validation": ${4:-0.2}, "seed": 1},
          "text": {"column": "text", "min_count": 1}},
 "model": {"width": 8, "moe": $3},
 "training": {"epochs": 2, "batch_size": 32, "lr": 0.01, "seed": 3, "schedule": "constant"}}
EOF
}
config "$work/run.json" "$work/reviews.tsv" '{"experts": 4, "k": 2, "expert": {"hidden": 8}}'
run="$work/run"
expect 0 'trained 2 epochs' -- train "$work/run.json" --out "$run" --quiet
[ -f "$run/best/model.json" ] || fail "train: no best/ checkpoint"

# --- standard output on a full device: exit 1 with the reason ---------------------------------
if [ -w /dev/full ]; then
  full='standard output: write failed: No space left on device'
  with_stdout /dev/full 1 "$full" -- eval "$run/best" "$work/reviews.tsv"
  with_stdout /dev/full 1 "$full" -- eval "$run/best" "$work/reviews.tsv" --json
  with_stdout /dev/full 1 "$full" -- predict "$run/best" "$work/reviews.tsv"
  with_stdout /dev/full 1 "$full" -- inspect "$run/best" "$work/reviews.tsv"
  with_stdout /dev/full 1 "$full" -- inspect "$run/best" "$work/reviews.tsv" --json
fi

# --- --out: regular files only, through symbolic links ---------------------------------------
expect 1 '/dev/null: a character device, not a regular file' -- \
  predict "$run/best" "$work/reviews.tsv" --out /dev/null
[ -c /dev/null ] || fail "/dev/null is no longer a character device"
mkfifo "$work/fifo"
expect 1 'fifo: a FIFO, not a regular file' -- inspect "$run/best" "$work/reviews.tsv" --out "$work/fifo"
[ -p "$work/fifo" ] || fail "--out replaced the FIFO"
expect 1 'a FIFO' -- inspect "$run/best" "$work/reviews.tsv" --trace "$work/fifo"
expect 1 'a FIFO' -- report "$run" --out "$work/fifo"
expect 1 'a directory, not a regular file' -- predict "$run/best" "$work/reviews.tsv" --out "$work"
echo old >"$work/target.csv"
ln -s "$work/target.csv" "$work/link.csv"
expect 0 'predictions written' -- predict "$run/best" "$work/reviews.tsv" --out "$work/link.csv"
[ -L "$work/link.csv" ] || fail "--out replaced the symbolic link instead of writing through it"
head -n 1 "$work/target.csv" | grep -q '^row,prediction' || fail "the link's target was not written"
ln -s "$work/nowhere.csv" "$work/dangling.csv"
expect 1 'a symbolic link to a file that does not exist' -- \
  predict "$run/best" "$work/reviews.tsv" --out "$work/dangling.csv"

# --- a write that fails halfway (the file size limit, as a full disk) leaves no temporary ----
checks=$((checks + 1))
(
  trap '' XFSZ
  ulimit -f 1
  exec "$moe" predict "$run/best" "$work/reviews.tsv" --out "$work/big.csv"
) >"$work/out" 2>"$work/err"
check_result 1 'write failed: File too large' "predict --out under ulimit -f 1" $?
! ls "$work"/big.csv* >/dev/null 2>&1 || fail "a failed write left $(ls "$work"/big.csv*)"

# --- one run per directory; a finished run is not replaced silently ---------------------------
expect 1 'holds a run already \(last, best, summary.json\); resume it' -- \
  train "$work/run.json" --out "$run" --quiet
expect 0 'trained 1 epochs' -- train "$work/run.json" --out "$run" --quiet --overwrite \
  --set training.epochs=1
[ "$(wc -l <"$run/metrics.jsonl")" -eq 1 ] || fail "--overwrite kept the old metrics lines"
expect 2 '' -- train --resume "$run" --overwrite

"$moe" train "$work/run.json" --out "$work/busy" --quiet --set training.epochs=100000 \
  >/dev/null 2>&1 &
background=$!
for _ in $(seq 100); do
  [ -s "$work/busy/.lock" ] && break
  sleep 0.05
done
expect 1 "another moe train \\(pid $background\\) is writing this run directory" -- \
  train "$work/run.json" --out "$work/busy" --quiet
kill "$background" 2>/dev/null
wait "$background" 2>/dev/null
background=""

# --- resume with edited training text ---------------------------------------------------------
# No validation part: both edited rows are training rows, so the schema cannot tell.
cp "$work/reviews.tsv" "$work/split.tsv"
config "$work/split.json" "$work/split.tsv" '{"experts": 4, "k": 2, "expert": {"hidden": 8}}' 0
expect 0 '' -- train "$work/split.json" --out "$work/split" --quiet --set training.epochs=1
cp "$work/edited.tsv" "$work/split.tsv"
expect 1 'the training data differs from the data the run was trained on' -- \
  train --resume "$work/split" --quiet --set training.epochs=2
cp "$work/reviews.tsv" "$work/split.tsv"
expect 0 'trained 2 epochs' -- train --resume "$work/split" --quiet --set training.epochs=2

# --- messages ---------------------------------------------------------------------------------
expect 1 'run/best/model.json: not a checkpoint directory \(it is a file' -- \
  eval "$run/best/model.json" "$work/reviews.tsv"
expect 2 "must be an integer ≥ 1, got '0'" -- eval "$run/best" "$work/reviews.tsv" --batch-size 0
grep -qE '[0-9]{20}' "$work/err" && fail "--batch-size 0: a long number in: $(cat "$work/err")"
expect 2 "must be an integer ≥ 0, got '-1'" -- train "$work/run.json" --checkpoint-every -1
grep -qE '[0-9]{20}' "$work/err" && fail "--checkpoint-every -1: a long number in: $(cat "$work/err")"
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
  # As an unprivileged user (root reads any directory).
  cp -r "$run/best" "$work/locked"
  chmod 755 "$work"
  chmod 000 "$work/locked"
  checks=$((checks + 1))
  setpriv --reuid=65534 --regid=65534 --clear-groups "$moe" eval "$work/locked" \
    "$work/reviews.tsv" >"$work/out" 2>"$work/err"
  got=$?
  if [ "$got" -lt 126 ]; then  # 126, 127: nobody cannot run moe here; nothing to check
    check_result 1 'locked: cannot read the checkpoint directory: Permission denied' \
      "eval of an unreadable checkpoint" "$got"
  fi
  chmod 755 "$work/locked"
fi

# --- experts: refused by the budget with the key named, no bad_alloc --------------------------
expect 1 'model.moe.experts is 16000: the routing statistics of inspect.json' -- \
  train "$work/run.json" --out "$work/wide" --set model.moe.experts=16000
expect 1 'model.moe.experts is 1048576: ' -- \
  train "$work/run.json" --out "$work/wider" --set model.moe.experts=1048576 \
  --set model.width=1 --set model.moe.expert.hidden=1

echo "hardening_test: $checks checks, $failures failure(s)"
[ "$failures" -eq 0 ]
