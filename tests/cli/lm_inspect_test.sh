#!/usr/bin/env bash
# moe inspect on a language model end to end: a tiny MoE LM is trained on a few kilobytes of
# English (which leaves inspect.json with its per-token routing), then inspected as text and
# JSON: per-expert load, characteristic tokens, load by position, the switch rate; moe report
# draws the run; a routing trace of tokens is refused with a message.
#
# Usage: tests/cli/lm_inspect_test.sh PATH/TO/moe
set -uo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
cli_setup "${1:?usage: lm_inspect_test.sh PATH/TO/moe}"

# About 12 KB of sentences, the same on every run.
for i in $(seq 1 60); do
  echo "The cat sat on the mat and looked at the dog number $i in the garden."
  echo "A bird sang in the tree while the sun rose over the quiet hills."
  echo "She walked to the market to buy bread, milk and seven green apples."
done >"$work/train.txt"
head -n 30 "$work/train.txt" >"$work/valid.txt"
cat >"$work/lm.json" <<JSON
{
  "data": {"format": "corpus", "train": "$work/train.txt", "validation": "$work/valid.txt",
           "corpus": {"vocab_size": 300}},
  "model": {"width": 16, "lm": {"layers": 1, "heads": 2, "context": 16},
            "moe": {"experts": 4, "k": 2, "expert": {"kind": "swiglu", "hidden": 16}}},
  "training": {"epochs": 1, "batch_size": 4, "seed": 1}
}
JSON
r="$work/run"
expect 0 '' -- train "$work/lm.json" --out "$r" --quiet
[ -s "$r/inspect.json" ] || fail "train: no inspect.json for a language model"
jq -e '. as $doc | .format == "moe.inspect" and .data.task == "language_model" and .data.input == "tokens"
  and .data.context == 16 and .data.tokens == .data.rows * 16
  and (.layers[0] | .name == "blocks.0.moe" and .experts == 4 and .k == 2
       and .rows == 16 * $doc.data.rows
       and ((.load | add) - 1 | fabs) < 1e-9
       and (.tokens | length) == 4
       and (.positions.starts | length) == 8 and (.positions.tokens | add) == .rows
       and all(.positions.load[]; (add - 1 | fabs) < 1e-9)
       and .switch_rate >= 0 and .switch_rate <= 1 and has("switch_rate_independent"))' \
  "$r/inspect.json" >/dev/null ||
  fail "train: inspect.json: $(head -c 600 "$r/inspect.json")"

expect 0 '' -- inspect "$r/best" "$work/valid.txt"
grep -qE 'windows of 16 tokens \([0-9]+ tokens\), language model' "$work/out" ||
  fail "inspect text: no header: $(head -c 400 "$work/out")"
grep -qE 'blocks\.0\.moe +topk_softmax, 4 experts, k 2, [0-9]+ tokens' "$work/out" ||
  fail "inspect text: no layer line: $(head -c 400 "$work/out")"
grep -q 'load by position in the window' "$work/out" || fail "inspect text: no position table"
grep -qE 'next token on another first expert: [0-9.]+% of [0-9]+ neighbouring pairs' \
  "$work/out" || fail "inspect text: no switch rate"
# --min-count 1 lists tokens for every expert that received any: a SentencePiece piece or a byte.
expect 0 '' -- inspect "$r/best" "$work/valid.txt" --min-count 1 --top 3
grep -qE '^ {10}.+ \([0-9.]+×\)' "$work/out" ||
  fail "inspect text: no characteristic tokens: $(head -c 800 "$work/out")"

expect 0 '' -- inspect "$r/best" "$work/valid.txt" --format json --out "$work/i.json"
jq -e '.data.task == "language_model" and (.metrics | has("perplexity"))
  and (.layers[0].tokens | length) == 4' "$work/i.json" >/dev/null ||
  fail "inspect --format json: $(head -c 400 "$work/i.json")"

expect 1 'trace' -- inspect "$r/best" "$work/valid.txt" --trace "$work/t.csv"

expect 0 '' -- report "$r" --out "$work/report.html"
grep -q 'blocks.0.moe' "$work/report.html" || fail "report: no routing layer for the LM run"
grep -q 'Load by position' "$work/report.html" || fail "report: no position chart"

cli_finish lm_inspect
