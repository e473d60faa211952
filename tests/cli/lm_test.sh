#!/usr/bin/env bash
# The language model through the moe command: a tiny corpus model is trained, evaluated
# (perplexity, bits per byte) and sampled from (the same seed gives the same text, greedy is
# deterministic); 1 epoch resumed to 2 gives the bytes of 2 epochs at once; and every kind of bad
# input — corpus text, config, generate options, prompt, a damaged tokenizer.model, a checkpoint
# of the wrong kind — is one clear line on stderr and exit 1 (2 for bad usage), never a crash.
#
# Usage: tests/cli/lm_test.sh PATH/TO/moe
set -uo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
cli_setup "${1:?usage: lm_test.sh PATH/TO/moe}"

# --- data: sentences from small word lists (lib.sh) ----------------------------------------------
sentences "$work/train.txt" 120 11
sentences "$work/valid.txt" 30 23

# lm_config FILE [TRAIN] [VALIDATION]: the tiny model (vocabulary 300, width 16, 2 layers).
lm_config() {
  config_file "$1" \
    "{\"format\": \"corpus\", \"train\": \"${2:-$work/train.txt}\",
      \"validation\": \"${3:-$work/valid.txt}\", \"corpus\": {\"vocab_size\": 300}}" \
    '{"width": 16, "lm": {"layers": 2, "heads": 2, "kv_heads": 1, "context": 16},
      "moe": {"experts": 4, "k": 2, "expert": {"kind": "swiglu", "hidden": 16}}}' \
    '{"epochs": 2, "batch_size": 4, "lr": 0.01, "seed": 5, "threads": 1, "schedule": "constant"}'
}
lm_config "$work/lm.json"
run="$work/run"
ck="$run/best"

# --- train, eval, generate ---------------------------------------------------------------------
expect 0 'trained 2 epochs \(.*\) in [0-9.]+ s, [0-9]+ tokens/s' -- train "$work/lm.json" --out "$run"
[ -s "$ck/tokenizer.model" ] || fail "train: no best/tokenizer.model"
# Speed in tokens (a row is a window of 16), and no token count shown as a metric on the epoch line.
checks=$((checks + 1))
grep -qE '^epoch 2/2  loss .* val loss [0-9.]+ perplexity .* [0-9]+ tokens/s' "$work/out" ||
  fail "train: no epoch line with tokens/s: $(head -c 800 "$work/out")"
grep -q 'rows/s' "$work/out" && fail "train: a language model's speed in rows/s: $(cat "$work/out")"
grep -qE ' tokens [0-9]' "$work/out" && fail "train: the token count shown as a metric: $(cat "$work/out")"
if command -v jq >/dev/null; then
  checks=$((checks + 1))
  jq -se 'length == 2 and all(.[]; .tokens_per_second > 0 and
      (.tokens_per_second - 16 * .rows_per_second | fabs) < 1e-6 * .tokens_per_second)' \
    "$run/metrics.jsonl" >/dev/null || fail "metrics.jsonl: no tokens_per_second = 16 rows_per_second"
  jq -e '.tokens_per_second > 0 and (.tokens_per_second - 16 * .rows_per_second | fabs) <
      1e-6 * .tokens_per_second' "$run/summary.json" >/dev/null ||
    fail "summary.json: no tokens_per_second = 16 rows_per_second"
fi
expect 0 'perplexity' -- eval "$ck" "$work/valid.txt"
expect 0 '' -- eval "$ck" "$work/valid.txt" --json
if command -v jq >/dev/null; then
  checks=$((checks + 1))
  jq -e '(.perplexity > 1) and (.bits_per_byte > 0) and (.tokens > 0)' "$work/out" >/dev/null ||
    fail "eval --json lacks perplexity, bits_per_byte or tokens: $(head -c 300 "$work/out")"
  # bytes: those of the text the windows cover, so no more than the file's, and bits per byte
  # is the loss summed over the tokens per bit and byte of them.
  checks=$((checks + 1))
  jq -e --argjson size "$(wc -c <"$work/valid.txt")" '(.bytes > 0) and (.bytes <= $size) and
      ((.bits_per_byte - .loss * .tokens / (.bytes * (2 | log))) | fabs) < 1e-9' \
    "$work/out" >/dev/null || fail "eval --json: bytes is not the windows' bytes: $(cat "$work/out")"
fi

gen() {  # gen FILE ARGS...: moe generate on the checkpoint, stdout to FILE
  local file=$1
  shift
  with_stdout "$file" 0 '' -- generate "$ck" --prompt 'The captain' --max-tokens 24 --quiet "$@"
}
gen "$work/g1" --seed 7
gen "$work/g2" --seed 7
gen "$work/g3" --seed 8
gen "$work/greedy1" --temperature 0 --seed 1
gen "$work/greedy2" --temperature 0 --seed 2
checks=$((checks + 1))
cmp -s "$work/g1" "$work/g2" || fail "generate: the same seed gave different text"
grep -q '^The captain' "$work/g1" || fail "generate: the text does not start with the prompt"
cmp -s "$work/g1" "$work/g3" && echo "note: seeds 7 and 8 gave the same text"
cmp -s "$work/greedy1" "$work/greedy2" || fail "generate: greedy (--temperature 0) depends on the seed"
expect 0 'decode 5 tokens' -- generate "$ck" --max-tokens 5
# Past the context (16): generation goes on from the last half of the window.
expect 0 '' -- generate "$ck" --prompt 'The' --max-tokens 100 --quiet --seed 3

# --- resume: 1 epoch, then --resume to 2, is the 2-epoch run byte for byte ---------------------
expect 0 '' -- train "$work/lm.json" --out "$work/split" --quiet --set training.epochs=1
expect 0 'trained 2 epochs' -- train --resume "$work/split" --quiet --set training.epochs=2
for f in last/model.safetensors last/train_state.safetensors best/model.safetensors \
  best/tokenizer.model; do
  checks=$((checks + 1))
  cmp -s "$run/$f" "$work/split/$f" || fail "resume: $f differs from the 2-epoch run's"
done
# Resume refuses a corpus edited since: the tokenizer would differ.
lm_config "$work/edit.json" "$work/edit.txt"
cp "$work/train.txt" "$work/edit.txt"
expect 0 '' -- train "$work/edit.json" --out "$work/edited" --quiet --set training.epochs=1
sed -i '1s/^/Again /' "$work/edit.txt"
expect 1 'differs' -- train --resume "$work/edited" --quiet --set training.epochs=2

# --- keys that do nothing for a language model: warned, and training goes on ------------------
expect 0 'training.class_weights: has no effect: a language model' -- train "$work/lm.json" \
  --out "$work/weights" --quiet --set training.epochs=1 --set training.class_weights='"balanced"'
expect 0 'data.split.seed: has no effect: .*max_sentences lines, and that is 0' -- \
  train "$work/lm.json" --out "$work/seed" --quiet --set training.epochs=1 --set data.split.seed=4
expect 1 'data.corpus.max_sentences: expected 0 \(every line\) or an integer in \[101, ' -- \
  train "$work/lm.json" --out "$work/x" --set data.corpus.max_sentences=50

# --- the wrong command for an LM checkpoint, the wrong checkpoint for generate -----------------
expect 1 'language model' -- predict "$ck" "$work/valid.txt"
colour_table "$work/table.csv" 120 5 1 0.5
tabular_config "$work/table.json" "$work/table.csv" '{"validation": 0.2}' \
  '{"width": 8, "moe": {"experts": 2, "k": 1, "expert": {"hidden": 4}}}' \
  '{"epochs": 1, "batch_size": 32, "threads": 1}'
expect 0 '' -- train "$work/table.json" --out "$work/table" --quiet
expect 1 'not a language model \(data.format is csv\)' -- generate "$work/table/best" --prompt hi
expect 0 'note: .*table.csv is read as plain text: .* is a language model.s checkpoint' -- \
  eval "$ck" "$work/table.csv"
: >"$work/empty.txt"
expect 1 'empty.txt: empty file' -- eval "$ck" "$work/empty.txt"
printf 'The end.\n' >"$work/short.txt"
expect 1 'short.txt: [0-9]+ tokens are fewer than one window of context \+ 1 = 17' -- \
  eval "$ck" "$work/short.txt"

# --- bad corpus files --------------------------------------------------------------------------
expect 1 'empty.txt: empty file \(no text\)' -- train "$work/lm.json" --out "$work/x" \
  --set data.train="$work/empty.txt"
expect 1 'fewer than one window of context \+ 1 = 17 tokens' -- \
  train "$work/lm.json" --out "$work/x" --set data.validation="$work/short.txt"
{ head -n 20 "$work/train.txt"; printf 'caf\xC3 au lait\n'; } >"$work/bad_utf8.txt"
bad_at=$(($(head -n 20 "$work/train.txt" | wc -c) + 3))
expect 1 "bad_utf8.txt: invalid UTF-8 at byte $bad_at \\(line 21, column 4, byte 0xC3\\)" -- \
  train "$work/lm.json" --out "$work/x" --set data.train="$work/bad_utf8.txt"
{ head -n 3 "$work/train.txt"; printf 'a\0b\n'; } >"$work/nul.txt"
expect 1 'nul.txt: NUL byte at byte [0-9]+ \(line 4, column 2\): not a text file' -- \
  train "$work/lm.json" --out "$work/x" --set data.train="$work/nul.txt"
expect 1 'missing.txt' -- train "$work/lm.json" --out "$work/x" \
  --set data.train="$work/missing.txt"
expect 1 'missing.txt' -- eval "$ck" "$work/missing.txt"
expect 1 'data.corpus.vocab_size 5000 is more pieces than .*train.txt supports \(at most 545\)' -- \
  train "$work/lm.json" --out "$work/x" --set data.corpus.vocab_size=5000
expect 1 'data.corpus.vocab_size: expected an integer in \[260, [0-9]+\].*got 100' -- \
  train "$work/lm.json" --out "$work/x" --set data.corpus.vocab_size=100

# --- bad model configs -------------------------------------------------------------------------
expect 1 'model.lm.heads: 3 heads must divide model.width 16' -- \
  train "$work/lm.json" --out "$work/x" --set model.lm.heads=3
expect 1 'head width model.width / heads = 1 must be even' -- \
  train "$work/lm.json" --out "$work/x" --set model.lm.heads=16
expect 1 'model.lm.kv_heads: 3 key/value heads must divide the 2 heads' -- \
  train "$work/lm.json" --out "$work/x" --set model.lm.kv_heads=3
# Refused with the reason; a warning about a key the gate ignores (k) may come first.
causal='^moe: error: model.moe: a language model needs a causal gate.*comparing it with the others .*use topk_softmax, noisy_topk, sigmoid_bias, hash, dense_softmax or gumbel_softmax, with capacity_factor 0$'
for gate in model.moe.gate.kind=expert_choice model.moe.capacity_factor=1.25 \
  model.moe.gate.kind=sinkhorn; do
  checks=$((checks + 1))
  "$moe" train "$work/lm.json" --out "$work/x" --set "$gate" >"$work/out" 2>"$work/err"
  got=$?
  [ "$got" -eq 1 ] || fail "train --set $gate exited $got, expected 1"
  tail -n 1 "$work/err" | grep -qE "$causal" || fail "train --set $gate: $(cat "$work/err")"
done
checks=$((checks + 1))
[ -e "$work/x" ] && fail "a refused config left a run directory behind: $(ls "$work/x")"

# --- generate: bad options and prompts ---------------------------------------------------------
expect 2 'max-tokens' -- generate "$ck" --max-tokens 0
expect 2 'max-tokens' -- generate "$ck" --max-tokens -3
expect 2 'max-tokens' -- generate "$ck" --max-tokens 16777217
expect 2 'max-tokens' -- generate "$ck" --max-tokens 100000000000
# The most the command takes, 2^24 tokens, streams in constant memory and linear time (each
# token decoded a bounded number of times); a reader that stops reading stops it.
checks=$((checks + 1))
timeout 60 "$moe" generate "$ck" --max-tokens 16777216 --quiet 2>"$work/err" |
  head -c 4000 >"$work/head.txt"
got=${PIPESTATUS[0]}
[ "$got" -ne 124 ] || fail "generate --max-tokens 16777216 went on after its reader had stopped"
[ "$(wc -c <"$work/head.txt")" -eq 4000 ] || fail "generate --max-tokens 16777216: short output"
if [ -w /dev/full ]; then
  with_stdout /dev/full 1 'standard output: write failed: No space left on device' -- \
    generate "$ck" --max-tokens 16777216 --quiet
fi
expect 2 "top-p: must be a number in \\(0, 1\\], got '0'" -- generate "$ck" --top-p 0
expect 2 "top-p: must be a number in \\(0, 1\\], got '1.5'" -- generate "$ck" --top-p 1.5
expect 2 "top-p: must be a number in \\(0, 1\\], got 'nan'" -- generate "$ck" --top-p nan
expect 2 'temperature' -- generate "$ck" --temperature -1
expect 2 'top-k' -- generate "$ck" --top-k -1
expect 1 'valid.txt: the prompt is [0-9]+ tokens \(with <s>\), longer than the model.s context of 16' -- \
  generate "$ck" --prompt-file "$work/valid.txt"
printf 'The capt\xE2\x28ain\n' >"$work/bad_prompt.txt"
expect 1 'bad_prompt.txt: the prompt is not valid UTF-8 \(byte 8\)' -- \
  generate "$ck" --prompt-file "$work/bad_prompt.txt"
expect 1 'missing.txt' -- generate "$ck" --prompt-file "$work/missing.txt"
expect 1 'not both' -- generate "$ck" --prompt hi --prompt-file "$work/valid.txt"
expect 1 'no such checkpoint directory' -- generate "$work/nowhere" --prompt hi

# --- a damaged tokenizer.model -----------------------------------------------------------------
damaged() {  # damaged NAME: a copy of the checkpoint as $work/NAME
  rm -rf "${work:?}/$1"
  cp -r "$ck" "$work/$1"
}
damaged no_tok
rm "$work/no_tok/tokenizer.model"
expect 1 'no_tok/tokenizer.model' -- generate "$work/no_tok" --prompt hi
expect 1 'no_tok/tokenizer.model' -- eval "$work/no_tok" "$work/valid.txt"
damaged short_tok
head -c 100 "$ck/tokenizer.model" >"$work/short_tok/tokenizer.model"
expect 1 'short_tok/tokenizer.model: 100 bytes, but .*model.json says' -- \
  generate "$work/short_tok" --prompt hi
damaged garbage_tok
size=$(wc -c <"$ck/tokenizer.model")
head -c "$size" /dev/zero | tr '\0' 'x' >"$work/garbage_tok/tokenizer.model"
expect 1 'garbage_tok/tokenizer.model: content hash differs' -- generate "$work/garbage_tok" --prompt hi
# Garbage whose size and hash model.json was edited to record: SentencePiece must refuse it.
damaged forged_tok
head -c 64 /dev/urandom >"$work/forged_tok/tokenizer.model"
if command -v jq >/dev/null && command -v python3 >/dev/null; then
  hash=$(python3 -c 'import sys
h = 0xcbf29ce484222325
for b in open(sys.argv[1], "rb").read():
    h = ((h ^ b) * 0x100000001b3) % (1 << 64)
print(f"{h:016x}")' "$work/forged_tok/tokenizer.model")
  jq --arg h "$hash" '.data.tokenizer.bytes = 64 | .data.tokenizer.fnv1a64 = $h' \
    "$ck/model.json" >"$work/forged_tok/model.json"
  expect 1 'forged_tok/tokenizer.model: not a SentencePiece model' -- \
    generate "$work/forged_tok" --prompt hi
fi

cli_finish "lm_test"
