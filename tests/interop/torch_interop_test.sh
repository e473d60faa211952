#!/usr/bin/env bash
# tools/torch_load.py against the moe command: tiny models of several kinds are trained, then
# PyTorch rebuilds each checkpoint and must reproduce `moe predict` (outputs within 1e-5
# relative, the same experts, weights within 1e-4); a module PyTorch re-initialises is exported
# as a checkpoint that `moe predict` loads and agrees with; unsupported layers fail clearly; a
# language model's checkpoint gives, rebuilt in PyTorch, the mean loss `moe eval` gives (1e-4).
# Exits 77 (ctest: skipped) when /usr/bin/python3 cannot import torch.
#
# Usage: tests/interop/torch_interop_test.sh PATH/TO/moe PATH/TO/torch_load.py
set -uo pipefail

script=${2:?usage: torch_interop_test.sh PATH/TO/moe PATH/TO/torch_load.py}
python=/usr/bin/python3
if ! "$python" -c 'import torch' >/dev/null 2>&1; then
  echo "skipped: $python cannot import torch"
  exit 77
fi
# shellcheck source-path=SCRIPTDIR source=../cli/lib.sh
source "$(dirname "$0")/../cli/lib.sh"
cli_setup "${1:?usage: torch_interop_test.sh PATH/TO/moe PATH/TO/torch_load.py}"

# --- data: fixed LCGs keep every file the same on every run -------------------------------------
# Tabular: two numbers and a colour; a class label and a regression target from all three.
colour_table "$work/table.csv" 240 12345 1 0.6 y
# Text: short reviews from two word lists, with HTML, entities, apostrophes and repeats.
awk 'BEGIN {
  s = 777; print "text,label"
  split("great lovely tasty fresh <b>perfect</b> don'"'"'t-miss fine", good, " ")
  split("awful stale bland &amp; broken &quot;never&quot; bad", bad, " ")
  split("the coffee tea box was it is and very", filler, " ")
  for (i = 0; i < 240; i++) {
    s = (s * 1103515245 + 12345) % 2147483648; pos = s % 2
    line = ""
    for (j = 0; j < 7; j++) {
      s = (s * 1103515245 + 12345) % 2147483648; r = int(s / 2147483648 * 8) + 1
      s = (s * 1103515245 + 12345) % 2147483648; f = int(s / 2147483648 * 9) + 1
      line = line (pos ? good[r] : bad[r]) " " filler[f] " "
    }
    printf "\"%s\",%s\n", line, (pos ? "pos" : "neg")
  }
}' >"$work/text.csv"

# Images: 120 IDX images of 4x4 pixels in 3 classes (the class sets one row of pixels bright).
"$python" - "$work" <<'PY'
import struct, sys
work, n, state = sys.argv[1], 120, 99
pixels, labels = bytearray(), bytearray()
for i in range(n):
    c = i % 3
    for p in range(16):
        state = (state * 1103515245 + 12345) % 2147483648
        pixels.append((200 if p // 4 == c else 0) + state % 50)
    labels.append(c)
with open(f"{work}/images.idx", "wb") as f:
    f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, n, 4, 4) + pixels)
with open(f"{work}/labels.idx", "wb") as f:
    f.write(struct.pack(">BBBBI", 0, 0, 8, 1, n) + labels)
PY

# --- one model per kind -------------------------------------------------------------------------
# config NAME DATA_JSON MODEL_JSON: writes $work/NAME.json (2 epochs; tiny widths).
config() {
  config_file "$work/$1.json" "$2" "$3" '{"epochs": 2, "batch_size": 32, "lr": 0.01, "seed": 3}' \
    "\"output\": {\"dir\": \"$work/$1\"}"
}
table_class='{"train": "'$work'/table.csv", "label": "label", "ignore_columns": ["y"],
              "split": {"validation": 0.2, "seed": 1}}'
table_reg='{"train": "'$work'/table.csv", "task": "regression", "label": ["y"],
            "ignore_columns": ["label"], "split": {"validation": 0.2, "seed": 1}}'
text='{"format": "text", "train": "'$work'/text.csv", "split": {"validation": 0.2, "seed": 1},
       "text": {"min_count": 1, "bigram_buckets": 16, "stop_words": true}}'

# Classification: a trunk block, then top-k MoE with MLP experts and a shared expert.
config class_topk "$table_class" '{"width": 8, "trunk": {"hidden": [8]},
  "moe": {"experts": 4, "k": 2, "expert": {"kind": "mlp", "hidden": 8, "activation": "gelu"},
          "shared": 1, "shared_expert": {"kind": "mlp", "hidden": 4, "activation": "relu"}}}'
# Regression: LayerNorm, two MoE layers, the sigmoid gate with its balancing bias (SwiGLU
# experts) and noisy top-k (deep MLP experts).
config reg_sigmoid "$table_reg" '{"width": 8, "trunk": {"norm": "layer"}, "moe": [
  {"experts": 4, "k": 2, "gate": {"kind": "sigmoid_bias", "bias_update_rate": 0.01},
   "expert": {"kind": "swiglu", "hidden": 6}},
  {"experts": 3, "k": 1, "gate": {"kind": "noisy_topk"},
   "expert": {"kind": "mlp", "hidden": 5, "depth": 2, "activation": "silu"}}]}'
# Text: TF-IDF bags with bigrams, top-k then softmax, linear experts, no final norm.
config text_topk "$text" '{"width": 8, "trunk": {"final_norm": false},
  "moe": {"experts": 4, "k": 2, "gate": {"kind": "topk_softmax", "softmax_after_topk": true},
          "expert": {"kind": "linear"}}}'
# Text with vocabulary bigrams ("a b" entries) and SwiGLU experts.
text_vocab='{"format": "text", "train": "'$work'/text.csv", "split": {"validation": 0.2, "seed": 1},
             "text": {"min_count": 1, "bigrams": true}}'
config text_bigrams "$text_vocab" '{"width": 8,
  "moe": {"experts": 4, "k": 2, "expert": {"kind": "swiglu", "hidden": 4}}}'
# Images: top-k softmax renormalised off, SwiGLU experts.
config image_topk '{"format": "idx", "idx": {"train_images": "'$work'/images.idx",
  "train_labels": "'$work'/labels.idx", "n_classes": 3}, "split": {"validation": 0.2}}' \
  '{"width": 8, "moe": {"experts": 3, "k": 2, "gate": {"renormalize": false},
    "expert": {"kind": "swiglu", "hidden": 4}}}'
# More gates: dense softmax, hash, Sinkhorn and hard Gumbel, heterogeneous experts, no norms.
config gates "$table_class" '{"width": 8, "trunk": {"norm": "none"}, "moe": [
  {"experts": 3, "gate": {"kind": "dense_softmax"}, "expert_list": [
     {"kind": "mlp", "hidden": 4}, {"kind": "swiglu", "hidden": 3}, {"kind": "linear"}]},
  {"experts": 4, "gate": {"kind": "hash"}, "expert": {"kind": "mlp", "hidden": 4}},
  {"experts": 4, "k": 2, "gate": {"kind": "sinkhorn"}, "expert": {"kind": "mlp", "hidden": 4}},
  {"experts": 3, "gate": {"kind": "gumbel_softmax", "hard": true},
   "expert": {"kind": "mlp", "hidden": 4}}]}'
# The dense model of equal active size (model.dense).
config dense "$table_class" '{"width": 8, "dense": true,
  "moe": {"experts": 4, "k": 2, "expert": {"kind": "swiglu", "hidden": 5}}}'
# Unsupported by the script: expert choice.
config expert_choice "$table_class" '{"width": 8,
  "moe": {"experts": 4, "gate": {"kind": "expert_choice"}, "expert": {"kind": "mlp", "hidden": 4}}}'

for name in class_topk reg_sigmoid text_topk text_bigrams image_topk gates dense expert_choice; do
  data="$work/table.csv"
  [ "$name" = text_topk ] || [ "$name" = text_bigrams ] && data="$work/text.csv"
  [ "$name" = image_topk ] && data="$work/images.idx"
  if ! "$moe" train "$work/$name.json" >"$work/train.log" 2>&1; then
    fail "$name: moe train: $(tail -n 3 "$work/train.log")"
    continue
  fi
  ck="$work/$name/last"
  "$moe" predict "$ck" "$data" --out "$work/$name.moe.csv" >/dev/null || fail "$name: moe predict"
  if [ "$name" = expert_choice ]; then
    "$python" "$script" predict "$ck" "$data" >/dev/null 2>"$work/err"
    [ $? -eq 1 ] && grep -q 'expert_choice gate is not supported' "$work/err" ||
      fail "expert_choice: expected a clear refusal, got: $(cat "$work/err")"
    continue
  fi
  # moe -> torch: the rebuilt module predicts what moe predicts.
  "$python" "$script" predict "$ck" "$data" --compare "$work/$name.moe.csv" ||
    fail "$name: torch does not reproduce moe predict"
  # torch -> moe: a module with PyTorch's own fresh parameters, exported and loaded by moe.
  "$python" "$script" export "$ck" "$work/$name.torch" --reinit 7 >/dev/null ||
    fail "$name: export"
  "$moe" predict "$work/$name.torch" "$data" --out "$work/$name.torch.csv" >/dev/null ||
    fail "$name: moe predict cannot use the exported checkpoint"
  cmp -s "$work/$name.moe.csv" "$work/$name.torch.csv" &&
    fail "$name: the re-initialised export predicts exactly what the trained model does"
  "$python" "$script" predict "$work/$name.torch" "$data" --compare "$work/$name.torch.csv" ||
    fail "$name: moe and torch disagree on the exported model"
done

# --- expert surgery: PyTorch rebuilds the changed checkpoints (router bias, more experts) --------
# A split under dense softmax lowers both copies' router bias by ln 2; add places the new
# expert's 20 below its source's; both change the expert count of one layer of four.
if "$moe" experts "$work/gates/last" split --layer 0 --expert 1 --noise 0.1 \
    --out "$work/gates_split" >/dev/null &&
  "$moe" experts "$work/gates_split" add --layer 2 --expert 3 --out "$work/gates_add" >/dev/null; then
  for name in gates_split gates_add; do
    "$moe" predict "$work/$name" "$work/table.csv" --out "$work/$name.moe.csv" >/dev/null ||
      fail "$name: moe predict"
    "$python" "$script" predict "$work/$name" "$work/table.csv" --compare "$work/$name.moe.csv" ||
      fail "$name: torch does not reproduce moe predict after moe experts"
  done
else
  fail "moe experts on the gates model failed"
fi

# --- compressed checkpoints: PyTorch decodes bf16 and block-int8 weights as moe does ------------
# After moe compress (int8, once with pruning to 3 experts of 4; bf16 on the model of every gate
# and expert kind), the weights PyTorch decodes from the I8 blocks and their scales, or from
# BF16, give moe predict's outputs.
compress_case() {  # NAME SOURCE ARGS...
  local name=$1 source=$2
  shift 2
  if ! "$moe" compress "$work/$source/last" "$work/table.csv" "$@" --out "$work/$name" \
    >/dev/null; then
    fail "$name: moe compress $*"
    return
  fi
  "$moe" predict "$work/$name" "$work/table.csv" --out "$work/$name.moe.csv" >/dev/null ||
    fail "$name: moe predict"
  "$python" "$script" predict "$work/$name" "$work/table.csv" --compare "$work/$name.moe.csv" ||
    fail "$name: torch does not reproduce moe predict on a compressed checkpoint"
}
compress_case class_int8 class_topk --quantize int8 --prune-to 3
compress_case reg_int8 reg_sigmoid --quantize int8
compress_case gates_bf16 gates --quantize bf16

# --- the language model ----------------------------------------------------------------------
# A tiny corpus model (top-k MoE in the odd block, a dense SwiGLU in the even one, an untied head)
# trained by moe; PyTorch rebuilds it from model.json and model.safetensors, tokenises the text
# with the checkpoint's tokenizer.model (python3-sentencepiece, the library moe itself links) and
# must find the mean next-token loss `moe eval --json` reports, over the same windows.
if "$python" -c 'import sentencepiece' >/dev/null 2>&1; then
  awk 'BEGIN {
    s = 4242
    split("the a her his one that", det, " ")
    split("captain lady sister letter house garden morning friend", noun, " ")
    split("saw found walked wrote kept loved", verb, " ")
    for (i = 0; i < 160; i++) {
      s = (s * 1103515245 + 12345) % 2147483648; d = int(s / 2147483648 * 6) + 1
      s = (s * 1103515245 + 12345) % 2147483648; a = int(s / 2147483648 * 8) + 1
      s = (s * 1103515245 + 12345) % 2147483648; v = int(s / 2147483648 * 6) + 1
      s = (s * 1103515245 + 12345) % 2147483648; b = int(s / 2147483648 * 8) + 1
      printf "%s %s %s %s %s%s\n", det[d], noun[a], verb[v], det[(d % 6) + 1], noun[b],
        (s % 4 ? "." : ", café au lait — «merci».")
    }
  }' >"$work/corpus.txt"
  head -n 40 "$work/corpus.txt" >"$work/corpus_eval.txt"
  config_file "$work/lm.json" \
    '{"format": "corpus", "train": "'$work'/corpus.txt", "corpus": {"vocab_size": 300},
      "split": {"validation": 0.2}}' \
    '{"width": 16, "lm": {"layers": 2, "heads": 2, "kv_heads": 1, "context": 16,
      "tie_embeddings": false, "moe_layers": "every_other", "rope_theta": 500},
      "moe": {"experts": 4, "k": 2, "expert": {"kind": "swiglu", "hidden": 16}}}' \
    '{"epochs": 2, "batch_size": 4, "lr": 0.01, "seed": 3, "threads": 1}' \
    "\"output\": {\"dir\": \"$work/lm\"}"
  if ! "$moe" train "$work/lm.json" >"$work/train.log" 2>&1; then
    fail "lm: moe train: $(tail -n 3 "$work/train.log")"
  else
    for f in corpus_eval.txt corpus.txt; do
      "$moe" eval "$work/lm/best" "$work/$f" --json >"$work/lm_eval.json" ||
        fail "lm: moe eval on $f"
      "$python" "$script" lm-eval "$work/lm/best" "$work/$f" --compare "$work/lm_eval.json" ||
        fail "lm: torch does not reproduce moe eval's loss on $f"
    done
    # After a split (the router bias on), PyTorch still finds moe eval's loss.
    "$moe" experts "$work/lm/best" split --expert 2 --noise 0.1 --out "$work/lm_split" >/dev/null ||
      fail "lm: moe experts split"
    "$moe" eval "$work/lm_split" "$work/corpus_eval.txt" --json >"$work/lm_eval.json" ||
      fail "lm: moe eval after the split"
    "$python" "$script" lm-eval "$work/lm_split" "$work/corpus_eval.txt" \
      --compare "$work/lm_eval.json" || fail "lm: torch does not reproduce moe eval after a split"
    # The int8 language model: PyTorch decodes its weights and finds moe eval's loss.
    "$moe" compress "$work/lm/best" "$work/corpus_eval.txt" --quantize int8 \
      --out "$work/lm_int8" >/dev/null || fail "lm: moe compress --quantize int8"
    "$moe" eval "$work/lm_int8" "$work/corpus_eval.txt" --json >"$work/lm_eval.json" ||
      fail "lm: moe eval of the int8 model"
    "$python" "$script" lm-eval "$work/lm_int8" "$work/corpus_eval.txt" \
      --compare "$work/lm_eval.json" || fail "lm: torch does not reproduce moe eval of int8 weights"
    # A row model's checkpoint is not a language model.
    "$python" "$script" lm-eval "$work/class_topk/last" "$work/corpus.txt" >/dev/null 2>"$work/err"
    [ $? -eq 1 ] && grep -q 'not a language model' "$work/err" ||
      fail "lm-eval of a classifier: expected a clear refusal, got: $(cat "$work/err")"
  fi
else
  echo "note: $python cannot import sentencepiece (python3-sentencepiece): the language model" \
    "is not compared"
fi

cli_finish "torch interop"
