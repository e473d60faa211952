#!/usr/bin/env bash
# moe inspect end to end: a tiny tabular MoE model is trained (which leaves inspect.json and
# per-layer gate entropy in metrics.jsonl), then inspected as text and JSON, with --out and a
# --trace in CSV and JSON lines, and as HTML; bad flags fail with a message.
#
# Usage: tests/cli/inspect_test.sh PATH/TO/moe
set -uo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
cli_setup "${1:?usage: inspect_test.sh PATH/TO/moe}"

# 300 rows in three clusters; the label is the cluster. A fixed LCG keeps the file the same.
awk 'BEGIN {
  s = 4242; print "x1,x2,label"
  for (i = 0; i < 300; i++) {
    s = (s * 1103515245 + 12345) % 2147483648; u = s / 2147483648 - 0.5
    s = (s * 1103515245 + 12345) % 2147483648; v = s / 2147483648 - 0.5
    c = i % 3
    printf "%.4f,%.4f,%s\n", (c == 0 ? 3 : (c == 1 ? -3 : 0)) + u, (c == 2 ? 3 : -1) + v, "c" c
  }
}' >"$work/data.csv"
head -n 61 "$work/data.csv" >"$work/test.csv"
tabular_config "$work/tiny.json" "$work/data.csv" '{"validation": 0.2, "seed": 1}' \
  '{"width": 8, "moe": {"experts": 3, "k": 1, "expert": {"kind": "mlp", "hidden": 8}}}' \
  '{"epochs": 3, "batch_size": 32, "lr": 0.01, "seed": 2}'
r="$work/run"
expect 0 '' -- train "$work/tiny.json" --out "$r" --quiet
[ -s "$r/inspect.json" ] || fail "train: no inspect.json"
jq -e '.format == "moe.inspect" and .version == 1
  and .data.rows == 60 and .data.classes == ["c0", "c1", "c2"]
  and (.layers[0] | .name == "blocks.0.moe" and .experts == 3 and .k == 1
       and ((.load | add) - 1 | fabs) < 1e-9 and (.coactivation | length) == 3
       and (.class_expert.counts | length) == 3 and has("features"))' \
  "$r/inspect.json" >/dev/null || fail "train: inspect.json: $(head -c 300 "$r/inspect.json")"
# One line per epoch, each with the layer's gate entropy in range.
[ "$(jq '.gate_entropy["blocks.0.moe"]
  | .mean >= 0 and .mean <= .max + 1e-9 and .of_mean >= 0 and .of_mean <= .max + 1e-9' \
  "$r/metrics.jsonl" | sort -u)" = true ] || fail "metrics.jsonl: gate entropy missing or out of range"

expect 0 '' -- inspect "$r/best" "$work/test.csv"
grep -qE 'blocks\.0\.moe +topk_softmax, 3 experts, k 1, 60 rows' "$work/out" ||
  fail "inspect text: no layer line: $(head -c 400 "$work/out")"
grep -qE 'mutual information' "$work/out" || fail "inspect text: no mutual information"
# Lists of experts are bracketed, so one expert is not read as a count: "dead [2]", or "none".
grep -qE 'dead (none|\[[0-9]+( [0-9]+)*\])  silent (none|\[[0-9]+( [0-9]+)*\])  collapsed' \
  "$work/out" || fail "inspect text: dead/silent not written as lists: $(head -c 400 "$work/out")"

for flag in "--format json" "--json"; do
  # shellcheck disable=SC2086
  expect 0 '' -- inspect "$r/best" "$work/test.csv" $flag
  jq -e '.data.rows == 60' "$work/out" >/dev/null || fail "inspect $flag: not the JSON document"
done

expect 0 '' -- inspect "$r/best" "$work/test.csv" --format json --out "$work/i.json" \
  --trace "$work/trace.csv"
[ ! -s "$work/out" ] || fail "inspect --out: stdout not empty"
jq -e . "$work/i.json" >/dev/null ||
  fail "inspect --out: bad JSON"
[ "$(wc -l <"$work/trace.csv")" -eq 61 ] || fail "trace.csv: expected a header and 60 rows"
head -n 1 "$work/trace.csv" | grep -q '^row,source_row,blocks.0.moe.experts,blocks.0.moe.weights$' ||
  fail "trace.csv header: $(head -n 1 "$work/trace.csv")"
expect 0 '' -- inspect "$r/best" "$work/test.csv" --trace "$work/trace.jsonl"
[ "$(wc -l <"$work/trace.jsonl")" -eq 60 ] || fail "trace.jsonl: expected 60 lines"
# Every line: row numbers in order from 0, one expert and one weight under k = 1.
[ "$(jq -c 'select(.layers["blocks.0.moe"] | (.experts | length) == 1 and (.weights | length) == 1)
  | .row' "$work/trace.jsonl" | tr '\n' ' ')" = "$(seq -s ' ' 0 59) " ] ||
  fail "trace.jsonl: bad lines"

expect 0 '' -- inspect "$r/best" "$work/test.csv" --format html --out "$work/i.html"
grep -q '^<!DOCTYPE html>' "$work/i.html" || fail "--format html: not an HTML document"
grep -q '<svg' "$work/i.html" || fail "--format html: no chart"
expect 2 '' -- inspect "$r/best" "$work/test.csv" --format yaml
# A trace into a missing directory: the message names the file.
expect 1 't\.csv' -- inspect "$r/best" "$work/test.csv" --trace "$work/no/such/dir/t.csv"

cli_finish "inspect CLI"
