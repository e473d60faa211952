#!/usr/bin/env bash
# The translation model through the moe command: a tiny model is trained on sentence pairs,
# evaluated (token metrics, BLEU and chrF), inspected (encoder layers over source tokens, decoder
# layers over target tokens), and translates a file and standard input the same way; and bad input — a TSV line without a tab, an empty side, a pair over max_tokens, invalid
# UTF-8 to translate, a sentence too long, bad options, a checkpoint of the wrong kind — is one
# clear line on stderr and exit 1 (2 for bad usage), never a crash.
#
# Usage: tests/cli/translate_test.sh PATH/TO/moe
set -uo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
cli_setup "${1:?usage: translate_test.sh PATH/TO/moe}"

# --- data: English sentences (lib.sh) and a reversed-word "translation" of each ------------------
sentences "$work/en_train.txt" 150 11
sentences "$work/en_valid.txt" 20 23
to_pairs() { awk '{ out = $NF; for (i = NF - 1; i >= 1; i--) out = out " " $i; print $0 "\t" out }' "$1"; }
to_pairs "$work/en_train.txt" >"$work/train.tsv"
to_pairs "$work/en_valid.txt" >"$work/valid.tsv"

# tr_config FILE TRAIN [MAX_TOKENS] [DROP_LONG]: the tiny model (vocabulary 300, width 16).
tr_config() {
  config_file "$1" \
    "{\"format\": \"pairs\", \"train\": \"$2\", \"validation\": \"$work/valid.tsv\",
      \"corpus\": {\"vocab_size\": 300}, \"pairs\": {\"drop_long\": ${4:-false}}}" \
    "{\"width\": 16, \"translation\": {\"encoder_layers\": 1, \"decoder_layers\": 2, \"heads\": 2,
      \"max_tokens\": ${3:-96}, \"encoder_moe\": \"all\", \"decoder_moe\": \"every_other\"},
      \"moe\": {\"experts\": 4, \"k\": 2, \"expert\": {\"kind\": \"swiglu\", \"hidden\": 16}}}" \
    '{"epochs": 2, "batch_size": 8, "lr": 0.01, "seed": 5, "threads": 1}'
}
tr_config "$work/tr.json" "$work/train.tsv"
run="$work/run"
ck="$run/best"

# --- train, eval, translate --------------------------------------------------------------------
expect 0 'trained 2 epochs \(.*\) in [0-9.]+ s, [0-9]+ pairs/s' -- train "$work/tr.json" --out "$run"
[ -s "$ck/tokenizer.model" ] || fail "train: no best/tokenizer.model"
expect 0 'chrf +[0-9.]+  \(character 6-grams' -- eval "$ck" "$work/valid.tsv" --beam 2
expect 0 '' -- eval "$ck" "$work/valid.tsv" --json --beam 1
if command -v jq >/dev/null; then
  checks=$((checks + 1))
  jq -e '(.perplexity > 1) and (.bleu.score >= 0) and (.bleu.ref_len > 0) and
      (.chrf.score >= 0) and (.beam == 1)' \
    "$work/out" >/dev/null || fail "eval --json lacks bleu or chrf: $(head -c 400 "$work/out")"
fi
# The routing: encoder layers over source tokens, decoder layers over target tokens.
expect 0 'sentence pairs, translation model' -- inspect "$ck" "$work/valid.tsv"
[ -s "$run/inspect.json" ] || fail "train: no inspect.json"
expect 0 '' -- inspect "$ck" "$work/valid.tsv" --format json
if command -v jq >/dev/null; then
  checks=$((checks + 1))
  jq -e '(.data.task == "translation") and (.data.input == "pairs") and
      ([.layers[].name] == ["encoder.0.moe", "decoder.1.moe"]) and
      all(.layers[]; (.tokens | length) == 4)' "$work/out" >/dev/null ||
    fail "inspect --format json: no encoder and decoder layers with tokens: $(head -c 400 "$work/out")"
fi
head -5 "$work/en_valid.txt" >"$work/five.txt"
expect 0 'translated 5 sentences' -- translate "$ck" "$work/five.txt" --beam 3
checks=$((checks + 1))
[ "$(wc -l <"$work/out")" -eq 5 ] || fail "translate: not 5 lines out: $(cat "$work/out")"
cp "$work/out" "$work/from_file"
checks=$((checks + 1))
"$moe" translate "$ck" --beam 3 --quiet <"$work/five.txt" >"$work/from_stdin" 2>"$work/err" ||
  fail "translate from stdin failed: $(cat "$work/err")"
cmp -s "$work/from_file" "$work/from_stdin" || fail "translate: stdin and file differ"
[ -s "$work/err" ] && fail "translate --quiet wrote on stderr: $(cat "$work/err")"

# --- bad input -----------------------------------------------------------------------------------
printf 'one two\tuno dos\nno tab here\n' >"$work/notab.tsv"
tr_config "$work/notab.json" "$work/notab.tsv"
expect 1 'notab.tsv: line 2 has no tab' -- train "$work/notab.json" --out "$work/r1"
printf 'one two\tuno dos\n   \tvacio\n' >"$work/empty.tsv"
tr_config "$work/empty.json" "$work/empty.tsv"
expect 1 'empty.tsv: line 2 has an empty source' -- train "$work/empty.json" --out "$work/r2"
tr_config "$work/short.json" "$work/train.tsv" 4
expect 1 'train.tsv: line 1: the (source|target) has [0-9]+ tokens .*max_tokens 4' -- \
  train "$work/short.json" --out "$work/r3"
printf 'bad \xff byte\n' >"$work/bad_utf8.txt"
expect 1 'bad_utf8.txt: line 1: invalid UTF-8' -- translate "$ck" "$work/bad_utf8.txt"
awk 'BEGIN { for (i = 0; i < 200; i++) printf "captain "; print "" }' >"$work/long.txt"
expect 1 'long.txt: line 1: [0-9]+ tokens with eos, more than the model.s max_tokens 96' -- \
  translate "$ck" "$work/long.txt"
expect 1 'missing.txt' -- translate "$ck" "$work/missing.txt"
expect 2 '' -- translate "$ck" "$work/five.txt" --beam 0
expect 2 '' -- translate "$ck" "$work/five.txt" --length-penalty -1
expect 2 '' -- translate
# A language model's checkpoint is not a translator, and a translator has no rows to predict.
sentences "$work/lm.txt" 60 5
config_file "$work/lm.json" \
  "{\"format\": \"corpus\", \"train\": \"$work/lm.txt\", \"corpus\": {\"vocab_size\": 300}}" \
  '{"width": 16, "lm": {"layers": 1, "heads": 2, "context": 8},
    "moe": {"experts": 2, "k": 1, "expert": {"kind": "swiglu", "hidden": 8}}}' \
  '{"epochs": 1, "batch_size": 4, "seed": 1, "threads": 1}'
expect 0 '' -- train "$work/lm.json" --out "$work/lm_run"
expect 1 'not a translation model' -- translate "$work/lm_run/best" "$work/five.txt"
expect 1 'a translation model .* has no per-row predictions' -- predict "$ck" "$work/valid.tsv"

cli_finish "translate_test"
