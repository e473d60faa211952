#!/usr/bin/env bash
# The moe command end to end: usage errors exit 2, failures exit 1 with one line on stderr that
# names the culprit, and a tiny tabular model goes through train -> eval -> predict -> inspect.
#
# Usage: tests/cli/cli_test.sh PATH/TO/moe
set -uo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
cli_setup "${1:?usage: cli_test.sh PATH/TO/moe}"

# --- usage -------------------------------------------------------------------------------------
expect 0 '^moe [0-9]+\.[0-9]+\.[0-9]+$' -- --version
expect 0 'train.*' -- --help
expect 0 'CONFIG' -- train --help
expect 0 'CHECKPOINT' -- eval --help
expect 0 'CHECKPOINT' -- predict --help
expect 2 '' --
expect 2 'frobnicate' -- frobnicate
expect 2 'bogus' -- train --bogus x.json
expect 2 'CONFIG' -- train
expect 2 '' -- eval only_one_arg
expect 2 '' -- predict ck data --batch-size 0

# --- configs that fail -------------------------------------------------------------------------
expect 1 "$work/missing.json" -- train "$work/missing.json"
echo '{"data": {"train": "t.csv"}, "modle": {}}' >"$work/unknown.json"
expect 1 'modle' -- train "$work/unknown.json"
echo '{"data": {"train": "t.csv"}' >"$work/broken.json"
expect 1 'broken.json' -- train "$work/broken.json"
echo '{"data": {"train": "t.csv"}}' >"$work/ok.json"
expect 1 'model.widht' -- train "$work/ok.json" --set model.widht=3
expect 1 't.csv' -- train "$work/ok.json" --out "$work/never"

# --- a tiny tabular model, end to end ----------------------------------------------------------
# 400 rows: two numbers, a colour, and a label that depends on all three.
colour_table "$work/data.csv" 400 12345 1 0.6
head -n 101 "$work/data.csv" >"$work/test.csv"
cut -d, -f1-3 "$work/test.csv" >"$work/nolabel.csv"
tabular_config "$work/tiny.json" "$work/data.csv" '{"validation": 0.2, "test": 0.1, "seed": 1}' \
  '{"width": 16, "moe": {"experts": 4, "k": 2, "expert": {"kind": "mlp", "hidden": 16}}}' \
  '{"epochs": 8, "batch_size": 32, "lr": 0.01, "seed": 2, "early_stopping": {"metric": "accuracy"}}' \
  "\"output\": {\"dir\": \"$work/ignored\"}"
run="$work/run"
expect 0 'test \(best model\)' -- train "$work/tiny.json" --out "$run" --set training.epochs=6
for f in config.json metrics.jsonl summary.json best/model.json best/model.safetensors \
         last/model.json last/model.safetensors; do
  [ -s "$run/$f" ] || fail "train: $run/$f missing"
done
[ ! -e "$work/ignored" ] || fail "train: --out did not replace output.dir"
[ "$(wc -l <"$run/metrics.jsonl")" -eq 6 ] || fail "metrics.jsonl: expected 6 lines (--set)"
grep -q '"epochs": 6' "$run/config.json" || fail "config.json does not hold the override"

expect 0 'accuracy +0\.[89]' -- eval "$run/best" "$work/test.csv"
expect 0 '"accuracy": 0\.[89]' -- eval "$run/best" "$work/test.csv" --json
expect 0 '"confusion"' -- eval "$run/best" "$work/test.csv" --json
expect 1 'label' -- eval "$run/best" "$work/nolabel.csv"
expect 1 "$work/nothing" -- eval "$work/nothing" "$work/test.csv"
expect 1 "$work/absent.csv" -- eval "$run/best" "$work/absent.csv"

expect 0 '100 predictions' -- predict "$run/best" "$work/nolabel.csv" --out "$work/pred.csv"
header=$(head -n 1 "$work/pred.csv")
[ "$header" = "row,prediction,p.no,p.yes,blocks.0.moe.experts,blocks.0.moe.weights" ] ||
  fail "predict header: $header"
[ "$(wc -l <"$work/pred.csv")" -eq 101 ] || fail "predict: expected 101 lines"
# Each row: its index, a known class, two probabilities summing to 1, two experts, two weights.
awk -F, 'NR > 1 {
  if ($1 != NR - 2 || ($2 != "no" && $2 != "yes")) { print "bad row " NR ": " $0; exit 1 }
  if ((($3 + $4) - 1) ^ 2 > 1e-8) { print "probabilities of row " NR; exit 1 }
  if (split($5, e, " ") != 2 || split($6, w, " ") != 2) { print "routing of row " NR; exit 1 }
  if (e[1] == e[2] || e[1] < 0 || e[1] > 3 || e[2] < 0 || e[2] > 3) { print "experts " NR; exit 1 }
}' "$work/pred.csv" || fail "predict: malformed rows"
# The same to stdout; labels in the input are ignored.
expect 0 '^row,prediction,p\.no,p\.yes' -- predict "$run/best" "$work/test.csv"
[ "$(wc -l <"$work/out")" -eq 101 ] || fail "predict to stdout: expected 101 lines"
# A failed write leaves an existing file alone.
cp "$work/pred.csv" "$work/pred.bak"
expect 1 "$work/no_dir" -- predict "$run/best" "$work/test.csv" --out "$work/no_dir/p.csv"
cmp -s "$work/pred.csv" "$work/pred.bak" || fail "predict: an earlier output was changed"

expect 0 '^ +[0-3] +[0-9.]+% +[0-9.]+ ' -- inspect "$run/best" "$work/test.csv"
expect 0 '"layers"' -- inspect "$run/best" "$work/test.csv" --json

# --- bad input: each case exits 1 with one message naming the file and the place -------------
bad="$work/bad"
mkdir -p "$bad"
header=$(head -n 1 "$work/data.csv")
# A data file whose row 50 (line 51) is replaced by $1.
with_row() {
  { echo "$header"; sed -n 2,50p "$work/data.csv"; echo "$1"; sed -n 52,200p "$work/data.csv"; }
}
printf 'x1,x2,colour,label\n0.1,0.2,red,yes\n0.3,blue,no\n' >"$bad/fields.csv"
with_row 'abc,0.2,red,yes' >"$bad/text.csv"
with_row 'nan,0.2,red,yes' >"$bad/nan.csv"
with_row '0.1,inf,red,yes' >"$bad/inf.csv"
: >"$bad/empty.csv"
cut -d, -f1-3 "$work/data.csv" >"$bad/nolabel.csv"
{ echo "$header"; sed -n 2,30p "$work/data.csv"; echo '0.1,0.2,red,maybe'; } >"$bad/unseen.csv"
# name | expected message (an extended regex)
while IFS='|' read -r name message; do
  sed "s|$work/data.csv|$bad/$name.csv|" "$work/tiny.json" >"$bad/$name.json"
  expect 1 "$message" -- train "$bad/$name.json" --out "$bad/run_$name"
done <<TABLE
fields|fields\.csv line 3: 3 fields, header has 4
text|text\.csv line 51, column 'x1': 'abc' is not a number
nan|nan\.csv line 51, column 'x1': 'nan' is not a finite number
inf|inf\.csv line 51, column 'x2': 'inf' is not a finite number
empty|empty\.csv: empty file
nolabel|nolabel\.csv: no label column 'label'
missing|missing\.csv: cannot open
TABLE
# Models too large for the machine: refused before anything is allocated, the message naming the
# key to blame and the memory training needs (each case asks for 100 GiB or more).
while IFS='|' read -r sets message; do
  read -r -a keys <<<"$sets"
  args=()
  for k in "${keys[@]}"; do args+=(--set "$k"); done
  expect 1 "$message" -- train "$work/tiny.json" --out "$bad/run_big" "${args[@]}"
done <<'TABLE'
model.width=1048576 model.moe.experts=65536|model\.width is 1048576: training this model needs at least [0-9.]+ TiB of memory
model.width=4096 model.moe.expert.hidden=1048576|model\.moe\.expert\.hidden is 1048576: .* GiB of memory
model.width=1024 model.moe.experts=1048576|model\.moe\.experts is 1048576: .* more than this (machine|process)
model.width=4096 model.trunk.hidden=[1048576]|model\.trunk\.hidden\.0 is 1048576: .* gradients and optimizer state
TABLE
[ ! -e "$bad/run_big" ] || fail "a refused model left a run directory"
expect 1 "unseen\.csv line 31, column 'label': class 'maybe' does not occur in the training data" \
  -- eval "$run/best" "$bad/unseen.csv"
# A checkpoint whose weights do not match model.json is refused, and nothing is rewritten.
cp -r "$run/best" "$bad/ck"
printf 'x' >>"$bad/ck/model.safetensors"
expect 1 "$bad/ck" -- eval "$bad/ck" "$work/test.csv"

# Images: a tiny IDX model (20 images of 2x2 pixels, two classes), then a file with a bad magic
# number and one cut short.
idx="$work/idx"
mkdir -p "$idx"
{ printf '\x00\x00\x08\x03\x00\x00\x00\x14\x00\x00\x00\x02\x00\x00\x00\x02'
  for i in $(seq 1 10); do printf '\x10\xf0\x10\xf0\xf0\x10\xf0\x10'; done; } >"$idx/images"
{ printf '\x00\x00\x08\x01\x00\x00\x00\x14'
  for i in $(seq 1 10); do printf '\x00\x01'; done; } >"$idx/labels"
cat >"$idx/idx.json" <<JSON
{"data": {"format": "idx", "idx": {"train_images": "$idx/images", "train_labels": "$idx/labels",
          "n_classes": 2}, "split": {"validation": 0.2}},
 "model": {"width": 8, "moe": {"experts": 2, "k": 1, "expert": {"kind": "mlp", "hidden": 8}}},
 "training": {"epochs": 2, "batch_size": 8}}
JSON
expect 0 'trained 2 epochs' -- train "$idx/idx.json" --out "$idx/run" --quiet
expect 0 'accuracy' -- eval "$idx/run/best" "$idx/images" --labels "$idx/labels"
expect 1 'labels' -- eval "$idx/run/best" "$idx/images"
expect 0 '^row,prediction,p\.0,p\.1,blocks\.0\.moe\.experts' -- predict "$idx/run/best" "$idx/images"
printf '\x12\x34\x08\x03\x00\x00\x00\x01' >"$idx/magic"
expect 1 'magic: bad magic number' -- eval "$idx/run/best" "$idx/magic" --labels "$idx/labels"
head -c 40 "$idx/images" >"$idx/short"
expect 1 'short: truncated' -- eval "$idx/run/best" "$idx/short" --labels "$idx/labels"

cli_finish "CLI"
