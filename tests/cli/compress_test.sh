#!/usr/bin/env bash
# moe compress end to end: int8 and bf16 weights and experts pruned by REAP and by load, on a
# classifier and a language model; every command loads what compress writes (eval, predict,
# inspect, generate), inspect lists the removed experts, the JSON output carries the measurements,
# and bad requests are one clear line and exit 1 (2 for bad usage) that write nothing.
# Usage: compress_test.sh PATH/TO/moe
set -uo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
cli_setup "${1:?usage: compress_test.sh PATH/TO/moe}"

colour_table "$work/data.csv" 300 777 1 0.6
model='{"width": 16, "moe": {"experts": 6, "k": 2, "expert": {"kind": "swiglu", "hidden": 16}}}'
training='{"epochs": 3, "batch_size": 32, "lr": 0.01, "seed": 2, "threads": 1, "schedule": "constant"}'
tabular_config "$work/cls.json" "$work/data.csv" '{"validation": 0.2, "seed": 1}' "$model" "$training"
ck="$work/run/best"
expect 0 'output:' -- train "$work/cls.json" --out "$work/run" --quiet

# --- weights in fewer bits ---------------------------------------------------------------------
expect 1 'nothing to compress' -- compress "$ck" "$work/data.csv" --out "$work/none"
expect 0 'after +int8 +6 +[0-9.]+ MB' -- compress "$ck" "$work/data.csv" --out "$work/int8" --quantize int8
grep -qE '^ +weights +experts +size on disk +rows/s b=1 +rows/s b=256 +accuracy$' "$work/out" ||
  fail "compress: no table header: $(cat "$work/out")"
grep -q '"weights_format": "int8"' "$work/int8/model.json" || fail "int8: model.json lacks weights_format"
f32_bytes=$(wc -c <"$ck/model.safetensors")
int8_bytes=$(wc -c <"$work/int8/model.safetensors")
checks=$((checks + 1))
# Width 16: the file's header and the F32 vectors are a good part of it, so 2×, not 3.5×.
[ $((int8_bytes * 2)) -lt "$f32_bytes" ] || fail "int8: $int8_bytes bytes, f32 $f32_bytes: not 2× smaller"
expect 0 'accuracy' -- eval "$work/int8" "$work/data.csv"
expect 0 '' -- predict "$work/int8" "$work/data.csv"
expect 0 'blocks.0.moe' -- inspect "$work/int8" "$work/data.csv"
# Expert surgery on a compressed checkpoint keeps its weight format.
expect 0 'removed expert 0' -- experts "$work/int8" remove --expert 0 --out "$work/int8_removed"
grep -q '"weights_format": "int8"' "$work/int8_removed/model.json" ||
  fail "experts remove on an int8 checkpoint wrote another format"
with_stdout "$work/bf16.json" 0 '' -- compress "$ck" "$work/data.csv" --out "$work/bf16" --quantize bf16 --json
jq -e '.after.weights_format == "bf16" and .before.weights_format == "f32" and .after.experts == 6
       and (.after.bytes * 1.8 < .before.bytes) and .metric == "accuracy" and (.pruned | length) == 0' \
  "$work/bf16.json" >/dev/null || fail "bf16 --json: $(cat "$work/bf16.json")"
# A compressed checkpoint compresses again (its format shows as the one before).
expect 0 'before +bf16 +6' -- compress "$work/bf16" "$work/data.csv" --out "$work/bf16_int8" --quantize int8

# --- pruning -----------------------------------------------------------------------------------
expect 0 'blocks.0.moe: 6 → 3 experts; removed [0-9]+ \(load [0-9.e-]+, load [0-9.]+\)' -- \
  compress "$ck" "$work/data.csv" --out "$work/p3" --prune-to 3 --prune-by load
grep -q 'the evaluation rows themselves' "$work/out" || fail "prune: no note that DATA calibrated"
expect 0 'after +f32 +3' -- compress "$ck" "$work/data.csv" --out "$work/p3b" --prune-to 3 \
  --calibration "$work/data.csv" --quantize f32
expect 0 'removed expert' -- inspect "$work/p3" "$work/data.csv"
grep -c 'moe compress: load score' "$work/out" | grep -qx 3 || fail "inspect: not three removals: $(cat "$work/out")"
with_stdout "$work/half.json" 0 '' -- compress "$ck" "$work/data.csv" --out "$work/half" \
  --prune-fraction 0.5 --quantize int8 --json
jq -e '.after.experts == 3 and .prune_by == "reap" and (.pruned[0].removed | length) == 3
       and (.pruned[0].score | length) == 6' "$work/half.json" >/dev/null ||
  fail "--prune-fraction 0.5 --json: $(cat "$work/half.json")"
expect 0 'accuracy' -- eval "$work/half" "$work/data.csv"

# --- a language model: int8, pruned, and generate loads it -------------------------------------
sentences "$work/train.txt" 120 11
sentences "$work/valid.txt" 30 23
config_file "$work/lm.json" \
  "{\"format\": \"corpus\", \"train\": \"$work/train.txt\", \"validation\": \"$work/valid.txt\",
    \"corpus\": {\"vocab_size\": 300}}" \
  '{"width": 16, "lm": {"layers": 2, "heads": 2, "kv_heads": 1, "context": 16},
    "moe": {"experts": 4, "k": 2, "expert": {"kind": "swiglu", "hidden": 16}}}' \
  '{"epochs": 1, "batch_size": 4, "lr": 0.01, "seed": 5, "threads": 1, "schedule": "constant"}'
expect 0 'output:' -- train "$work/lm.json" --out "$work/lm" --quiet
expect 0 'blocks.1.moe: 4 → 3 experts' -- compress "$work/lm/best" "$work/valid.txt" \
  --out "$work/lm_small" --prune-to 3 --quantize int8 --calibration "$work/train.txt"
grep -qE 'perplexity$' "$work/out" || fail "LM compress: no perplexity column: $(cat "$work/out")"
grep -qE '^after +int8 +3 ' "$work/out" || fail "LM compress: no int8 row of 3 experts: $(cat "$work/out")"
expect 0 '' -- generate "$work/lm_small" --prompt "the" --max-tokens 5 --seed 1

# --- bad requests: one line, exit 1 or 2, nothing written --------------------------------------
expect 1 'int8: already exists; choose a new --out' -- compress "$ck" "$work/data.csv" --out "$work/int8" --quantize int8
expect 1 'gate|k' -- compress "$ck" "$work/data.csv" --out "$work/bad1" --prune-to 1
[ ! -e "$work/bad1" ] && [ ! -e "$work/bad1.staging" ] || fail "a refused prune left $work/bad1"
expect 2 'excludes' -- compress "$ck" "$work/data.csv" --out "$work/bad2" --prune-to 2 --prune-fraction 0.5
expect 2 'int4' -- compress "$ck" "$work/data.csv" --out "$work/bad3" --quantize int4
expect 2 '' -- compress "$ck" "$work/data.csv" --out "$work/bad4" --prune-fraction 1.5
expect 2 '' -- compress "$ck" "$work/data.csv" --out "$work/bad5" --prune-by random
expect 2 '--out' -- compress "$ck" "$work/data.csv"
expect 1 'no such checkpoint directory' -- compress "$work/nothing" "$work/data.csv" --out "$work/bad6" --quantize int8
expect 1 'bogus' -- compress "$ck" "$work/data.csv" --out "$work/bad7" --metric bogus --quantize int8
expect 1 'missing.csv' -- compress "$ck" "$work/data.csv" --out "$work/bad8" --prune-to 3 \
  --calibration "$work/missing.csv"
[ ! -e "$work/bad7" ] && [ ! -e "$work/bad8" ] || fail "a refused compress left its --out"
dense_model='{"width": 16, "moe": {"experts": 4}, "dense": true}'
tabular_config "$work/dense.json" "$work/data.csv" '{"validation": 0.2, "seed": 1}' "$dense_model" "$training"
expect 0 'output:' -- train "$work/dense.json" --out "$work/dense" --quiet
expect 1 'a dense model has no experts to prune' -- compress "$work/dense/best" "$work/data.csv" \
  --out "$work/bad9" --prune-to 2
expect 0 'after +int8' -- compress "$work/dense/best" "$work/data.csv" --out "$work/dense_int8" --quantize int8

cli_finish "compress_test"
