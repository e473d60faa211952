#!/usr/bin/env bash
# moe report end to end: usage, a tiny run (trained here in a few seconds) to a report, --out,
# `moe train --report`, missing and malformed run files, and class names carrying markup.
#
# Usage: tests/report/report_cli_test.sh PATH/TO/moe   (run from tests/, as ctest does)
set -uo pipefail

# shellcheck source-path=SCRIPTDIR source=../cli/lib.sh
source "$(dirname "$0")/../cli/lib.sh"
cli_setup "${1:?usage: report_cli_test.sh PATH/TO/moe}"
sample=$(cd "$(dirname "$0")" && pwd)/data/sample_run

# svgs FILE: how many <svg elements the report holds.
svgs() { grep -o '<svg ' "$1" | wc -l; }

# --- usage -------------------------------------------------------------------------------------
expect 0 'RUN_DIR' -- report --help
expect 0 'report' -- --help
expect 2 '' -- report
expect 2 'bogus' -- report "$sample" --bogus

# --- the hand-written sample (every chart) -----------------------------------------------------
expect 0 "^report: $work/sample.html\$" -- report "$sample" --out "$work/sample.html"
[ "$(svgs "$work/sample.html")" -eq 8 ] || fail "sample report: expected 8 charts"
grep -q 'Routing is imbalanced' "$work/sample.html" || fail "sample report: no verdict"

# --- a tiny run --------------------------------------------------------------------------------
# 300 rows: two numbers and a label named with markup, so the class names test escaping end to
# end. A fixed LCG keeps the file the same on every run.
awk 'BEGIN {
  s = 777; print "x1,x2,label"
  for (i = 0; i < 300; i++) {
    s = (s * 1103515245 + 12345) % 2147483648; x1 = s / 2147483648 * 2 - 1
    s = (s * 1103515245 + 12345) % 2147483648; x2 = s / 2147483648 * 2 - 1
    printf "%.4f,%.4f,%s\n", x1, x2, (x1 + x2 > 0 ? "<b>up</b>" : "a&b \"down\"")
  }
}' >"$work/data.csv"
tabular_config "$work/tiny.json" "$work/data.csv" '{"validation": 0.25, "seed": 1}' \
  '{"width": 8, "moe": {"experts": 4, "k": 2, "expert": {"kind": "mlp", "hidden": 8}}}' \
  '{"epochs": 3, "batch_size": 32, "lr": 0.01, "seed": 2}'
run="$work/run"
expect 0 "report: $run/report.html" -- train "$work/tiny.json" --out "$run" --quiet --report
report="$run/report.html"
[ -s "$report" ] || fail "train --report: $report missing"
# Training curves (loss, metrics, auxiliary loss, load over training) at least; the routing
# charts too when moe train wrote inspect.json.
min=4
[ -e "$run/inspect.json" ] && min=7
[ "$(svgs "$report")" -ge "$min" ] || fail "tiny report: $(svgs "$report") charts, expected >= $min"
if [ ! -e "$run/inspect.json" ]; then
  grep -q 'No inspect.json in this run directory' "$report" || fail "tiny report: no note"
fi
grep -q '<b>up</b>' "$report" && fail "tiny report: a class name became markup"
grep -q '&lt;b&gt;up&lt;/b&gt;' "$report" || fail "tiny report: the class name is missing"
grep -qi '<script' "$report" && fail "tiny report: holds a script"

rm "$report"
expect 0 "report: $report" -- report "$run"
[ -s "$report" ] || fail "report: default output $report missing"

# --- missing and malformed files ---------------------------------------------------------------
expect 1 "$work/absent: not a directory" -- report "$work/absent"
mkdir "$work/empty"
expect 1 'not a run directory' -- report "$work/empty"
cp -r "$run" "$work/bad"
echo '{"epoch": 1, "train_loss": "low"}' >>"$work/bad/metrics.jsonl"
expect 1 "$work/bad/metrics.jsonl line 4: field 'train_loss'" -- report "$work/bad"
cp "$run/metrics.jsonl" "$work/bad/metrics.jsonl"
echo '{"format": "moe.inspect", "version": 1, "layers": [' >"$work/bad/inspect.json"
expect 1 "$work/bad/inspect.json line 2 column 1: invalid JSON" -- report "$work/bad"
[ -e "$work/bad/report.html" ] && cmp -s "$work/bad/report.html" "$run/report.html" ||
  fail "a failed report changed the earlier one"
expect 1 "$work/no_dir/r.html" -- report "$run" --out "$work/no_dir/r.html"

cli_finish "report CLI"
