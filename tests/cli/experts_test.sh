#!/usr/bin/env bash
# moe experts end to end: split, add, remove and freeze on a checkpoint and on a run directory;
# a split under dense softmax leaves the evaluation as it was; a changed run resumes; the language
# model's layers change one at a time; bad requests are clear errors that write nothing.
# Usage: experts_test.sh PATH/TO/moe
set -uo pipefail
. "$(dirname "$0")/lib.sh"
cli_setup "$1"

colour_table "$work/data.csv" 300 777 1 0.6
model='{"width": 16, "moe": {"experts": 4, "gate": {"kind": "dense_softmax"},
         "expert": {"kind": "mlp", "hidden": 16}}}'
training='{"epochs": 2, "batch_size": 32, "lr": 0.01, "seed": 2, "threads": 1, "schedule": "constant"}'
tabular_config "$work/cls.json" "$work/data.csv" '{"validation": 0.2, "seed": 1}' "$model" "$training"
run="$work/run"
expect 0 'output:' -- train "$work/cls.json" --out "$run" --quiet

# eval_loss DIR: the checkpoint's loss on the data, from moe eval --json.
eval_loss() {
  "$moe" eval "$1" "$work/data.csv" --json | grep -o '"loss": [0-9.e+-]*' | head -1 | grep -o '[0-9.e+-]*$'
}
same_loss() {
  checks=$((checks + 1))
  awk -v a="$1" -v b="$2" 'BEGIN {exit !(a != "" && b != "" && (a - b) ^ 2 < 1e-10)}' ||
    fail "$3: loss $2, expected $1"
}

# --- a checkpoint directory: split keeps the function under dense softmax ---------------------------
expect 0 'split expert 1 into 1 and 4: both copies. router bias lowered by ln 2' \
  -- experts "$run/best" split --expert 1 --out "$work/split"
grep -q '^blocks.0.moe: 4 experts, now 5$' "$work/out" || fail "split does not say the expert count"
grep -q 'gate.router_bias turned on' "$work/out" || fail "split does not say it turned the router bias on"
base=$(eval_loss "$run/best")
same_loss "$base" "$(eval_loss "$work/split")" "split"
grep -q '"router_bias": true' "$work/split/model.json" || fail "model.json lacks router_bias"
tr -d ' \n' <"$work/split/model.json" | grep -qF \
  '"experts_history":[{"epoch":2,"expert":1,"experts_after":5,"experts_before":4,"layer":"blocks.0.moe","op":"split"}]' ||
  fail "model.json's info lacks the split in experts_history"
expect 0 'added expert 5 \(a copy of expert 0\), its logit 20 below its source' \
  -- experts "$work/split" add --expert 0 --out "$work/added"
same_loss "$base" "$(eval_loss "$work/added")" "add"
expect 0 'removed expert 1; experts 2 to 5 are now 1 to 4' \
  -- experts "$work/added" remove --expert 1 --out "$work/removed"
expect 0 'blocks.0.moe: 6 experts, now 5' -- experts "$work/added" remove --expert 1 --out "$work/removed2"
# inspect lists the changes, oldest first.
expect 0 'expert changes \(moe experts, adaptive training\):' -- inspect "$work/removed" "$work/data.csv"
grep -A3 'expert changes' "$work/out" | tr '\n' '|' | grep -qF \
  '  after epoch 2: blocks.0.moe split expert 1 into 1 and 4 (4 → 5 experts)|  after epoch 2: blocks.0.moe added expert 5 (a copy of 0) (5 → 6 experts)|  after epoch 2: blocks.0.moe removed expert 1 (6 → 5 experts)|' ||
  fail "inspect does not list the three changes: $(head -5 "$work/out")"

# --- a run directory: the changed run resumes from its last/ ---------------------------------------
expect 0 'wrote .*run2 \(continue it: moe train --resume .*run2\)' \
  -- experts "$run" split --expert 2 --noise 0.05 --out "$work/run2"
[ -f "$work/run2/last/train_state.json" ] || fail "the changed run has no training state"
[ -f "$work/run2/metrics.jsonl" ] || fail "the changed run lost metrics.jsonl"
expect 0 'trained 3 epochs' -- train --resume "$work/run2" --set training.epochs=3
expect 0 'training.frozen gains "blocks.0.moe.experts.0.\*"' \
  -- experts "$work/run2" freeze --expert 0 --out "$work/run3"
grep -q '"blocks.0.moe.experts.0.\*"' "$work/run3/config.json" || fail "config.json lacks the frozen pattern"
expect 0 'trained 4 epochs' -- train --resume "$work/run3" --set training.epochs=4

# --- bad requests: one message each, nothing written -----------------------------------------------
expect 1 'merge: not an operation \(add, split, remove, freeze\)' -- experts "$run" merge --out "$work/x"
expect 1 'blocks.0.moe: split: --expert 9: the layer has 4 experts \(0 to 3\)' \
  -- experts "$run/best" split --expert 9 --out "$work/x"
expect 1 'blocks.0.moe: remove: --expert -1' -- experts "$run/best" remove --out "$work/x"
expect 1 'already exists; choose a new --out' -- experts "$run/best" split --expert 0 --out "$work/split"
expect 1 '--noise: only split perturbs its copies' -- experts "$run/best" add --noise 1 --out "$work/x"
expect 1 'neither a checkpoint directory' -- experts "$work" split --expert 0 --out "$work/x"
expect 1 'the model has no MoE layer \(model.dense' -- experts "$(
  "$moe" train "$work/cls.json" --out "$work/dense" --quiet --set model.dense=true >/dev/null
  echo "$work/dense/best")" split --expert 0 --out "$work/x"
[ ! -e "$work/x" ] && [ ! -e "$work/x.staging" ] || fail "a refused request left $work/x behind"

# --- the language model: one layer at a time ------------------------------------------------------
sentences "$work/text.txt" 120 11
sentences "$work/valid.txt" 30 23
config_file "$work/lm.json" \
  "{\"format\": \"corpus\", \"train\": \"$work/text.txt\", \"validation\": \"$work/valid.txt\",
    \"corpus\": {\"vocab_size\": 300}}" \
  '{"width": 16, "lm": {"layers": 2, "heads": 2, "context": 16},
    "moe": {"experts": 4, "k": 1, "gate": {"kind": "topk_softmax", "renormalize": true},
            "expert": {"kind": "swiglu", "hidden": 16}}}' \
  '{"epochs": 1, "batch_size": 4, "lr": 0.01, "seed": 5, "threads": 1}'
expect 0 'output:' -- train "$work/lm.json" --out "$work/lm" --quiet
expect 1 'the model has 2 MoE layers \(0 to 1\): choose one with --layer' \
  -- experts "$work/lm/best" split --expert 0 --out "$work/x"
expect 0 'split expert 3 into 3 and 4: the copies keep its logit; with k = 1 each token keeps its choice' \
  -- experts "$work/lm/best" split --layer 1 --expert 3 --out "$work/lm_split"
lm_loss() { "$moe" eval "$1" "$work/text.txt" --json | grep -o '"loss": [0-9.e+-]*' | head -1 | grep -o '[0-9.e+-]*$'; }
same_loss "$(lm_loss "$work/lm/best")" "$(lm_loss "$work/lm_split")" "the language model's split"
expect 0 '' -- generate "$work/lm_split" --prompt "the lady" --max-tokens 5 --seed 1
# Adaptive training on the language model: an expert over 1.01 × the mean splits, one per layer
# and epoch, decided after an epoch and made before the next: a one-epoch run leaves it pending,
# and the resumed run makes it (the shared model.moe becomes one object per block).
adapt='--set model.moe.adapt.enabled=true --set model.moe.adapt.split_above=1.01
  --set model.moe.adapt.remove_below=0 --set model.moe.adapt.epochs=1 --set training.schedule=constant'
# shellcheck disable=SC2086
expect 0 'trained 1 epochs' -- train "$work/lm.json" --out "$work/lm_adapt" $adapt --set training.epochs=1
grep -q '"expert_changes"' "$work/lm_adapt/metrics.jsonl" && fail "a one-epoch run changed its experts"
grep -q '"pending": \[ *{' <(tr -d '\n' <"$work/lm_adapt/last/train_state.json" | sed 's/  */ /g') ||
  fail "train_state.json holds no pending change"
# shellcheck disable=SC2086
expect 0 'after epoch 1: blocks.0.moe split expert [0-3] \(4 → 5 experts\)' \
  -- train --resume "$work/lm_adapt" $adapt --set training.epochs=2
grep -q '"expert_changes"' "$work/lm_adapt/metrics.jsonl" || fail "metrics.jsonl lacks expert_changes"
expect 0 'after epoch 1: blocks.0.moe split expert' -- inspect "$work/lm_adapt/last" "$work/valid.txt"

cli_finish experts_test
