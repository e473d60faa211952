#!/usr/bin/env bash
# The sentiment demo, `make demo-sentiment` (`make demo` runs the language model: scripts/demo.sh):
# review sentiment on Amazon Fine Foods (4,000 training and 1,000 test reviews, `great` vs
# `other`), learned by an MoE text classifier and by a dense model with the same active
# parameters per row, both trained by the same `moe train` command and config.
#
#   1. scripts/fetch_finefoods.sh caches data/cache/finefoods_{train,test}.tsv (once)
#   2. moe train examples/finefoods.json                          -> runs/demo_sentiment/moe
#      moe train examples/finefoods.json --set model.dense=true   -> runs/demo_sentiment/dense
#   3. moe eval on the test file for both, printed side by side
#   4. moe inspect: the words most characteristic of the reviews each expert receives
#
# Usage: scripts/demo_sentiment.sh [BUILD_DIR]   (default build/release; the moe binary is
# BUILD_DIR/tools/moe/moe)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-build/release}"
case "$build" in /*) ;; *) build="$repo/$build" ;; esac
moe="$build/tools/moe/moe"
config="$repo/examples/finefoods.json"
train_tsv="$repo/data/cache/finefoods_train.tsv"
test_tsv="$repo/data/cache/finefoods_test.tsv"
out="$repo/runs/demo_sentiment"
cd "$repo"

if [ ! -x "$moe" ]; then
  echo "demo: $moe not found; run \`make build\` first" >&2
  exit 1
fi
scripts/fetch_finefoods.sh

# Training prints the data, the model, one line per epoch and then full validation and test
# reports; the demo shows the lines up to the best epoch and prints the test results side by side
# below (the full reports are in each run's summary.json).
train() {
  local status=0
  "$moe" train "$@" >"$out/train.log" || status=$?
  grep -E '^(data|model|epoch|early stop|trained|best epoch)' "$out/train.log" || true
  return "$status"
}
mkdir -p "$out"
start=$(date +%s)
echo
echo "== MoE text classifier: moe train examples/$(basename "$config") =="
# --overwrite: each `make demo` replaces the previous demo's runs (moe train refuses a directory
# that holds a run unless told).
train "$config" --out "$out/moe" --overwrite
echo
echo "== Dense model with the same active parameters: ... --set model.dense=true =="
train "$config" --set model.dense=true --out "$out/dense" --overwrite

# One top-level number from `moe eval --json` (the scalars sit at two spaces of indent, before
# the per-class objects).
metric() {
  grep -E "^  \"$2\": " "$1" | head -n 1 | sed -E 's/.*: ([-0-9.eE+]+|null),?$/\1/'
}
summary_field() {
  grep -E "^  \"$2\": " "$1" | head -n 1 | sed -E 's/.*: ([-0-9.eE+]+),?$/\1/'
}
for model in moe dense; do
  "$moe" eval "$out/$model/best" "$test_tsv" --json >"$out/$model/test_metrics.json"
done

echo
echo "== Test set: $(metric "$out/moe/test_metrics.json" rows) reviews =="
printf '%-26s %12s %12s\n' "" "MoE" "dense"
row() {
  printf '%-26s %12s %12s\n' "$1" "$2" "$3"
}
row "parameters" "$(summary_field "$out/moe/summary.json" params)" \
  "$(summary_field "$out/dense/summary.json" params)"
row "active parameters per row" "$(summary_field "$out/moe/summary.json" active_params)" \
  "$(summary_field "$out/dense/summary.json" active_params)"
for m in accuracy f1 roc_auc; do
  label=$m
  [ "$m" = f1 ] && label="f1 (macro)"
  [ "$m" = roc_auc ] && label="ROC AUC"
  row "$label" "$(printf '%.4f' "$(metric "$out/moe/test_metrics.json" "$m")")" \
    "$(printf '%.4f' "$(metric "$out/dense/test_metrics.json" "$m")")"
done
row "training seconds" "$(printf '%.1f' "$(summary_field "$out/moe/summary.json" seconds)")" \
  "$(printf '%.1f' "$(summary_field "$out/dense/summary.json" seconds)")"
# Rows per second over the training steps only (validation and checkpoints excluded).
row "training rows/s" "$(printf '%.0f' "$(summary_field "$out/moe/summary.json" rows_per_second)")" \
  "$(printf '%.0f' "$(summary_field "$out/dense/summary.json" rows_per_second)")"

echo
echo "== What each expert reads: words whose share of an expert's training reviews most"
echo "   exceeds their share of all reviews (in at least 20 of its reviews) =="
"$moe" inspect "$out/moe/best" "$train_tsv" --top 12 --min-count 20

echo
echo "demo finished in $(($(date +%s) - start)) s; runs in $out (metrics.jsonl, best/, last/)"
echo "try: $moe predict $out/moe/best $test_tsv --out predictions.csv"

echo
echo "== The MoE run's report: routing verdict, training curves and routing charts in one HTML"
echo "   file (open it in a browser) =="
"$moe" report "$out/moe"
