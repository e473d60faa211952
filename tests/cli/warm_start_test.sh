#!/usr/bin/env bash
# moe train --init (training.init) end to end: a warm start from the same task loads every
# parameter and starts where the checkpoint ended; a new label set or new columns reinitialise
# only the head or the input stage; a changed inner width, a missing or foreign checkpoint and
# --init beside --resume are clear errors; a warm-started run resumes without its checkpoint.
# Usage: warm_start_test.sh PATH/TO/moe
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cli_setup "$1"

colour_table "$work/data.csv" 400 12345 1 0.6
# The same rows, with y as the label (regression) and with a fourth column.
awk -F, -v OFS=, 'NR == 1 {print "x1,x2,colour,label"; next} {print $1, $2, $3, $5}' \
  <(colour_table /dev/stdout 400 12345 1 0.6 y) >"$work/reg.csv"
awk -F, -v OFS=, 'NR == 1 {print "x1,x2,x3,colour,label"; next} {print $1, $2, $1 * $2, $3, $4}' \
  "$work/data.csv" >"$work/wide.csv"
model='{"width": 16, "moe": {"experts": 4, "k": 2, "gate": {"kind": "sigmoid_bias"},
         "expert": {"kind": "mlp", "hidden": 16}}}'
training='{"epochs": 6, "batch_size": 32, "lr": 0.01, "seed": 2}'
split='{"validation": 0.2, "seed": 1}'
tabular_config "$work/cls.json" "$work/data.csv" "$split" "$model" "$training"
tabular_config "$work/wide.json" "$work/wide.csv" "$split" "$model" "$training"
config_file "$work/reg.json" \
  "{\"train\": \"$work/reg.csv\", \"task\": \"regression\", \"label\": \"label\", \"split\": $split}" \
  "$model" "$training"

base="$work/base"
expect 0 'output:' -- train "$work/cls.json" --out "$base" --quiet
[ -f "$base/best/model.json" ] || fail "the base run wrote no best/ checkpoint"

# --- the same task: everything loaded, and the first epoch starts from the trained model --------
expect 0 'warm start from .*base/best: ([0-9]+) of \1 parameter tensors loaded.*0 reinitialised, 0 of the checkpoint.s ignored' \
  -- train "$work/cls.json" --out "$work/same" --init "$base/best" --set training.epochs=1 \
  --set training.lr=1e-9
grep -q "\"init\": \"$base/best\"" "$work/same/config.json" ||
  fail "config.json does not record training.init"
# One epoch at lr 1e-9 leaves the trained model as it was: its validation loss is the base's.
best_value() { grep -o '"best_value": [0-9.e+-]*' "$1/summary.json" | grep -o '[0-9.e+-]*$'; }
base_loss=$(best_value "$base")
same_loss=$(best_value "$work/same")
checks=$((checks + 1))
awk -v a="$base_loss" -v b="$same_loss" 'BEGIN {exit !(a != "" && b != "" && (a - b) ^ 2 < 1e-8)}' ||
  fail "the warm-started model's validation loss $same_loss is not the checkpoint's $base_loss"

# --- another task on the same columns: the head is new --------------------------------------------
expect 0 'reinitialised, the outputs differ \(regression targets\): head.w, head.b$' \
  -- train "$work/reg.json" --out "$work/reg" --init "$base/best" --set training.epochs=1

# --- another column: the input stage is new, the rest loaded --------------------------------------
expect 0 'reinitialised, the inputs differ \(feature columns or categories\): input.w, input.b' \
  -- train "$work/wide.json" --out "$work/wide" --init "$base/best" --set training.epochs=1

# --- an extra dense block is new; the checkpoint's experts no longer used are ignored -----------
expect 0 'reinitialised, new in this model: .*blocks.1' \
  -- train "$work/cls.json" --out "$work/deeper" --init "$base/best" --set training.epochs=1 \
  --set 'model.trunk.hidden=[16]'
grep -qF "the model differs from the checkpoint's in model.trunk.hidden ([], now [16])" "$work/out" ||
  fail "the warm start does not name the changed model key: $(cat "$work/out")"

# --- training.init_exclude keeps chosen parameters fresh; a pattern must match something --------
expect 0 'reinitialised, excluded by training.init_exclude: head.w, head.b$' \
  -- train "$work/cls.json" --out "$work/excl" --init "$base/best" --set training.epochs=1 \
  --set 'training.init_exclude=["head.*"]'
expect 1 'training.init_exclude: "heads.\*" matches no parameter of this model' \
  -- train "$work/cls.json" --out "$work/x" --init "$base/best" \
  --set 'training.init_exclude=["heads.*"]'
expect 0 'training.init_exclude: has no effect: only a warm start' \
  -- train "$work/cls.json" --out "$work/noinit" --set training.epochs=1 --quiet \
  --set 'training.init_exclude=["head.*"]'

# --- refused: a changed inner width, nothing to load, bad paths, --init with --resume -----------
expect 1 'training.init: .*base/best: cannot warm-start from this checkpoint: blocks.0.moe.experts.0.w1 is \[16, 16\] there but \[32, 16\]' \
  -- train "$work/cls.json" --out "$work/wider" --init "$base/best" --set model.moe.expert.hidden=32
expect 1 'training.init: .*nowhere: no such checkpoint directory' \
  -- train "$work/cls.json" --out "$work/x" --init "$work/nowhere"
grep -q '^data:' "$work/out" && fail "a missing --init checkpoint is found only after the data is read"
expect 1 'training.init: .*model.json: not a checkpoint directory' \
  -- train "$work/cls.json" --out "$work/x" --init "$base/best/model.json"
expect 1 'training.init: .*model.json' -- train "$work/cls.json" --out "$work/x" --init "$work"
expect 2 'excludes --init' -- train --resume "$base" --init "$base/best"

# --- a warm-started run resumes from its own last/, with its checkpoint gone -----------------------
cp -r "$base" "$work/base2"
expect 0 'output:' -- train "$work/cls.json" --out "$work/two" --init "$work/base2/best" \
  --set training.epochs=2 --set training.schedule=constant --quiet
rm -rf "$work/base2"
expect 0 'resuming from' -- train --resume "$work/two" --set training.epochs=3
# A resume under the original config file (training.init absent) is the same run.
expect 0 'resuming from' -- train --resume "$work/two" "$work/cls.json" --set training.epochs=4 \
  --set training.schedule=constant

# --- a language model on another text: with the checkpoint's tokenizer everything loads ---------
for i in $(seq 1 60); do
  echo "The cat sat on the mat and looked at the dog number $i in the garden."
  echo "A bird sang in the tree while the sun rose over the quiet hills."
done >"$work/a.txt"
for i in $(seq 1 60); do
  echo "She walked to the market to buy bread, milk and $i green apples."
done >"$work/b.txt"
# lm_config FILE TEXT CORPUS: a tiny MoE language model on TEXT, data.corpus as given.
lm_config() {
  cat >"$1" <<JSON
{
  "data": {"format": "corpus", "train": "$2", "corpus": $3},
  "model": {"width": 16, "lm": {"layers": 1, "heads": 2, "context": 16},
            "moe": {"experts": 4, "k": 2, "expert": {"kind": "swiglu", "hidden": 16}}},
  "training": {"epochs": 1, "batch_size": 4, "seed": 1}
}
JSON
}
lm_config "$work/lm_a.json" "$work/a.txt" '{"vocab_size": 300}'
lm_config "$work/lm_b.json" "$work/b.txt" '{"vocab_size": 300}'
lm_config "$work/lm_b_tok.json" "$work/b.txt" "{\"tokenizer_model\": \"$work/lm_a/best/tokenizer.model\"}"
lm_config "$work/lm_b_bad.json" "$work/b.txt" "{\"tokenizer_model\": \"$work/b.txt\"}"
expect 0 '' -- train "$work/lm_a.json" --out "$work/lm_a" --quiet
expect 0 'reinitialised, the outputs differ \(tokenizer\): embed.w' \
  -- train "$work/lm_b.json" --out "$work/lm_b1" --init "$work/lm_a/best"
expect 0 'the tokenizer of 300 pieces in .*tokenizer.model' \
  -- train "$work/lm_b_tok.json" --out "$work/lm_b2" --init "$work/lm_a/best"
grep -qE 'warm start from .*lm_a/best: ([0-9]+) of \1 parameter tensors loaded' "$work/out" ||
  fail "a warm start with the checkpoint's tokenizer did not load everything: $(cat "$work/out")"
cmp -s "$work/lm_a/best/tokenizer.model" "$work/lm_b2/best/tokenizer.model" ||
  fail "the warm-started language model did not keep the given tokenizer"
expect 0 'data.corpus.vocab_size: has no effect: data.corpus.tokenizer_model gives the tokenizer' \
  -- train "$work/lm_b.json" --out "$work/lm_b3" --quiet --set training.max_steps=1 \
  --set "data.corpus.tokenizer_model=$work/lm_a/best/tokenizer.model"
expect 1 'data.corpus.tokenizer_model: .*b.txt: not a SentencePiece model' \
  -- train "$work/lm_b_bad.json" --out "$work/lm_b4"

# --- sparse upcycling: a dense language model's FFNs become every expert of a top-2 MoE --------
cat >"$work/lm_dense.json" <<JSON
{
  "data": {"format": "corpus", "train": "$work/a.txt", "corpus": {"vocab_size": 300}},
  "model": {"width": 16, "lm": {"layers": 2, "heads": 2, "context": 16, "moe_layers": "none",
                                 "ffn_hidden": 16},
            "moe": {"experts": 4, "k": 2, "expert": {"kind": "swiglu", "hidden": 16}}},
  "training": {"epochs": 2, "batch_size": 4, "seed": 1}
}
JSON
expect 0 '' -- train "$work/lm_dense.json" --out "$work/lm_dense" --quiet
expect 0 'loaded, 24 of them upcycled .*0 of the checkpoint.s ignored' \
  -- train "$work/lm_dense.json" --out "$work/lm_up" --init "$work/lm_dense/best" \
  --set model.lm.moe_layers=all --set training.epochs=1 --set training.lr=1e-9 \
  --set "data.corpus.tokenizer_model=$work/lm_dense/best/tokenizer.model"
grep -q 'upcycled (sparse upcycling: every expert a copy of the dense FFN): 6 dense parameter tensors into 24 expert tensors (4 each)' "$work/out" ||
  fail "the upcycling line is missing: $(cat "$work/out")"
# Top-2 renormalised over identical experts is the dense FFN: the first epoch (at lr 1e-9)
# starts from the dense model's validation loss.
dense_loss=$(best_value "$work/lm_dense")
up_loss=$(best_value "$work/lm_up")
checks=$((checks + 1))
awk -v a="$dense_loss" -v b="$up_loss" 'BEGIN {exit !(a != "" && b != "" && (a - b) ^ 2 < 1e-8)}' ||
  fail "the upcycled model's validation loss $up_loss is not the dense model's $dense_loss"

cli_finish warm_start_test
