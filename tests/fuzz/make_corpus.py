#!/usr/bin/python3
"""Writes the fuzz seed corpus, tests/fuzz/corpus/<target>/ (input formats: harness.h).

  make_corpus.py [CHECKPOINT_DIR ...]

safetensors/, config/ and train_state/ are handcrafted here: valid inputs and one of each kind
of corruption the readers must reject, and the regression inputs of fixed bugs (regress_*). checkpoint/ holds one seed per checkpoint directory given (model.json,
a NUL, model.safetensors, then a language model's tokenizer.model), named after the directory's
parent (lm_<name> for a language model's), plus a few damaged ones made from the first, and the
regression inputs of fixed bugs (regress_*, named for the bug). valid_int8_tabular and
valid_bf16_tabular are a tiny tabular model of tests/cli/lib.sh's colour_table written by
`moe compress --quantize int8` and `bf16`: their seeds lead into the I8 and BF16 decoding.
"""

import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def safetensors(header, data=b"", pad=True):
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def f32(*values):
    return struct.pack(f"<{len(values)}f", *values)


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def deep(depth=100000):
    """Arrays nested `depth` deep: what a message used to print recursively."""
    return "[" * depth + "]" * depth


def safetensors_seeds():
    two = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "I64", "shape": [1, 1], "data_offsets": [8, 16]}}
    write("safetensors", "valid_two", safetensors(two, f32(1, 2) + struct.pack("<q", 7)))
    write("safetensors", "valid_metadata", safetensors(
        {"__metadata__": {"format": "moe-checkpoint"},
         "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, f32(1, 2, 3, 4)))
    write("safetensors", "valid_empty", safetensors({}))
    write("safetensors", "valid_dtypes", safetensors(
        {"h": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
         "d": {"dtype": "F64", "shape": [1], "data_offsets": [4, 12]},
         "u": {"dtype": "U8", "shape": [3], "data_offsets": [12, 15]},
         "i": {"dtype": "I8", "shape": [1], "data_offsets": [15, 16]},
         "n": {"dtype": "I32", "shape": [0, 5], "data_offsets": [16, 16]}}, bytes(16)))
    write("safetensors", "bad_header_too_long", struct.pack("<Q", 1 << 40) + b"{}")
    write("safetensors", "bad_truncated_header", safetensors(two)[:20])
    write("safetensors", "bad_truncated_data", safetensors(two, f32(1, 2)))
    write("safetensors", "bad_offset_out_of_bounds", safetensors(
        {"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, f32(1, 2)))
    write("safetensors", "bad_overlap", safetensors(
        {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
         "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, f32(1, 2)))
    write("safetensors", "bad_gap", safetensors(
        {"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, f32(1, 2)))
    write("safetensors", "bad_dtype", safetensors(
        {"a": {"dtype": "F17", "shape": [1], "data_offsets": [0, 4]}}, f32(1)))
    write("safetensors", "bad_overflow", safetensors(
        {"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 0]}}))
    write("safetensors", "bad_negative_dim", safetensors(
        {"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, f32(1)))
    write("safetensors", "bad_json", struct.pack("<Q", 9) + b'{"a": [1,')
    # Regression inputs: nlohmann stopped reading at a NUL, so garbage after one was accepted;
    # a value nested 100,000 deep parsed, then overflowed the stack when a message printed it.
    one = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    text = json.dumps(one, separators=(",", ":")).encode() + b"\0garbage"
    write("safetensors", "regress_nul_then_garbage", struct.pack("<Q", len(text)) + text + f32(1, 2))
    text = ('{"a":{"dtype":"F32","shape":' + deep() + ',"data_offsets":[0,8]}}').encode()
    write("safetensors", "regress_deep_shape", struct.pack("<Q", len(text)) + text + f32(1, 2))
    text = ('{"__metadata__":{"m":' + deep() + '}}').encode()
    write("safetensors", "regress_deep_metadata", struct.pack("<Q", len(text)) + text)
    write("safetensors", "bad_duplicate", struct.pack("<Q", 110) + (
        b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
        b'"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}') + f32(1, 2))


def config_seeds():
    tiny = {"data": {"train": "t.csv", "label": "label"},
            "model": {"width": 8, "moe": {"experts": 4, "k": 2,
                                          "expert": {"kind": "mlp", "hidden": 8}}}}
    write("config", "valid_tiny", json.dumps(tiny))
    write("config", "valid_tiny_overrides",
          json.dumps(tiny) + "\0model.moe.k=1\0training.epochs=3\0model.moe.gate.kind=hash")
    write("config", "valid_full", json.dumps({
        "data": {"format": "text", "train": "r.tsv", "text": {"bigram_buckets": 64,
                                                              "stop_words": True}},
        "model": {"width": 16, "bag": "mean", "trunk": {"hidden": [8, 8], "norm": "layer"},
                  "moe": [{"experts": 4, "k": 2, "gate": {"kind": "sigmoid_bias"},
                           "shared": 1, "shared_expert": {"kind": "swiglu", "hidden": 4}},
                          {"experts": 4, "gate": {"kind": "expert_choice"},
                           "capacity_factor": 1.5,
                           "hierarchy": {"groups": 2, "k": 1}}]},
        "training": {"optimizer": "adamw", "schedule": "step", "early_stopping":
                     {"patience": 2, "metric": "f1"}},
        "output": {"dir": "runs/x", "checkpoint": {"every": 10, "keep_last": 2}}}))
    write("config", "valid_warm_start_frozen", json.dumps(dict(tiny, training={
        "init": "runs/a/best", "init_exclude": ["head.*"],
        "frozen": ["input.*", "blocks.0.moe.experts.[01].*"], "trainable": ["*"]})))
    write("config", "valid_corpus_tokenizer_model", json.dumps({
        "data": {"format": "corpus", "train": "t.txt",
                 "corpus": {"tokenizer_model": "runs/a/best/tokenizer.model"}},
        "model": {"width": 8, "lm": {"layers": 1, "heads": 2, "context": 8}}}))
    for name in ("finefoods", "fashion_mnist", "ames", "lm_austen"):
        path = os.path.join(HERE, "..", "..", "examples", name + ".json")
        if os.path.exists(path):
            with open(path, "rb") as f:
                write("config", "example_" + name, f.read())
    write("config", "bad_unknown_key", '{"data": {"train": "t.csv"}, "modle": {}}')
    write("config", "bad_type", '{"data": {"train": "t.csv"}, "model": {"moe": {"k": "two"}}}')
    write("config", "bad_duplicate_key", '{"data": {"train": "t.csv", "train": "u.csv"}}')
    write("config", "bad_syntax", '{"data": {"train": "t.csv"}')
    write("config", "bad_override", json.dumps(tiny) + "\0model.moe.kk=1")
    write("config", "bad_range", json.dumps(
        {"data": {"train": "t.csv"}, "model": {"width": 0, "moe": {"experts": 1e30}}}))
    # Regression inputs: values nested 100,000 deep overflowed the stack when the error message
    # printed them (50,000 deep was refused properly); each key the probe found, and an override.
    for name, doc in (("label", '{"data": {"train": "t.csv", "label": %s}}'),
                      ("moe", '{"data": {"train": "t.csv"}, "model": {"moe": %s}}'),
                      ("trunk_hidden", '{"data": {"train": "t.csv"}, "model": {"trunk": '
                                       '{"hidden": %s}}}'),
                      ("expert_list", '{"data": {"train": "t.csv"}, "model": {"moe": '
                                      '{"expert_list": %s}}}')):
        write("config", "regress_deep_" + name, doc % deep())
    write("config", "regress_deep_override", json.dumps(tiny) + "\0data.label=" + deep())
    write("config", "regress_huge_numbers", json.dumps(
        {"data": {"train": "t.csv"}, "model": {"width": 1e308, "moe": {"experts": -1e308}},
         "training": {"lr": 1.7976931348623157e308}}))


def checkpoint_seeds(dirs):
    first = None
    for d in dirs:
        with open(os.path.join(d, "model.json"), "rb") as f:
            meta = f.read()
        with open(os.path.join(d, "model.safetensors"), "rb") as f:
            weights = f.read()
        seed = meta + b"\0" + weights
        name = os.path.basename(os.path.dirname(os.path.abspath(d)))
        if os.path.exists(os.path.join(d, "tokenizer.model")):
            # A language model: its tokenizer.model follows the weights (the harness takes the
            # last data.tokenizer.bytes bytes for it), so the loader reads the config (model.lm),
            # the corpus schema and the tokenizer, and the model evaluates.
            with open(os.path.join(d, "tokenizer.model"), "rb") as f:
                write("checkpoint", "lm_" + name, seed + f.read())
            continue
        write("checkpoint", "valid_" + name, seed)
        first = first or (meta, weights)
    if first is None:
        return
    meta, weights = first
    j = json.loads(meta)
    write("checkpoint", "bad_weights_truncated", meta + b"\0" + weights[:-4])
    j2 = dict(j, gates=[{"name": "blocks.9.moe.router", "step": 0, "bias": []}])
    write("checkpoint", "bad_gate_name", json.dumps(j2).encode() + b"\0" + weights)
    j3 = json.loads(meta)
    j3["config"]["model"]["width"] = 9
    write("checkpoint", "bad_width", json.dumps(j3).encode() + b"\0" + weights)
    write("checkpoint", "bad_no_weights", meta)
    # Regression inputs: configs asking for far more weights than the file holds were allocated
    # before the tensors were checked (terabytes for width 2^20: the shared expert is [D, D]; a
    # vector of two billion expert configs for "experts": 2000000000).
    for name, key, value in (("regress_oversized_width", "width", 1 << 20),
                             ("regress_two_billion_experts", "experts", 2000000000)):
        big = json.loads(meta)
        model = big["config"]["model"]
        (model["moe"] if key == "experts" else model)[key] = value
        write("checkpoint", name, json.dumps(big).encode() + b"\0" + weights)
    # model.json whose config value is nested 100,000 deep (a stack overflow when a message
    # printed it), and one with a key twice (the last one used to win silently).
    text = json.dumps(j).replace('"label": "label"', '"label": ' + deep(), 1)
    write("checkpoint", "regress_deep_config_value", text.encode() + b"\0" + weights)
    write("checkpoint", "regress_duplicate_key",
          b'{"format_version": 1, ' + meta.lstrip()[1:] + b"\0" + weights)


def train_state_seeds():
    """train_state.json for the harness's base model (its tensors and model hashes are
    rewritten by the harness): a valid mid-epoch state, then the loose values a probe found
    accepted and the JSON a reader must refuse."""
    state = {"format": "moe-train-state", "format_version": 1, "moe_version": "0.1.0",
             "model_weights_fnv1a64": "0000000000000000",
             "tensors": {"file": "train_state.safetensors", "bytes": 0,
                         "fnv1a64": "0000000000000000"},
             "position": {"epochs_done": 1, "batches_done": 2, "batches_per_epoch": 5,
                          "step": 7},
             "seed": 3, "optimizer": {"kind": "adamw", "step": 7},
             "schedule": {"kind": "cosine", "total_steps": 50},
             "best": {"metric": "accuracy (validation)", "epoch": 1, "value": 0.75,
                      "since_best": 0, "stopped_early": False, "gates": []},
             "epoch_sums": {"loss_sum": 1.25, "rows": 12},
             "timing": {"train_seconds": 0.5, "train_rows": 72}}
    write("train_state", "valid_mid_epoch", json.dumps(state))

    def changed(section, key, value):
        s = json.loads(json.dumps(state))
        s[section][key] = value
        return json.dumps(s)
    write("train_state", "regress_total_steps_not_the_config", changed("schedule", "total_steps", 7))
    write("train_state", "regress_since_best_1e9", changed("best", "since_best", 1000000000))
    write("train_state", "regress_negative_rows", changed("epoch_sums", "rows", -12))
    write("train_state", "regress_duplicate_key", '{"seed": 4, ' + json.dumps(state)[1:])
    write("train_state", "regress_deep_epoch_sums",
          json.dumps(state).replace('{"loss_sum": 1.25, "rows": 12}', deep(), 1))
    write("train_state", "bad_syntax", json.dumps(state)[:-20])


if __name__ == "__main__":
    safetensors_seeds()
    config_seeds()
    train_state_seeds()
    checkpoint_seeds(sys.argv[1:])
