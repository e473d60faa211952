#!/usr/bin/python3
"""moe checkpoints in PyTorch: rebuild a moe model as a torch.nn.Module, and write one back.

Run with /usr/bin/python3 (Debian's python3-torch 1.13). Nothing in the build or the default
tests needs it.

  torch_load.py predict CHECKPOINT DATA [--out FILE] [--compare MOE_CSV]
      Reads CHECKPOINT/model.json and model.safetensors, rebuilds the model in PyTorch, encodes
      DATA (a CSV/TSV file, or IDX images) with the checkpoint's own schema and writes the same
      CSV `moe predict` writes: row, prediction and p.<class> (classification) or the targets
      (regression), then each MoE layer's experts and combine weights. With --compare it checks
      its outputs against a `moe predict` CSV of the same data instead (exit 1 on a mismatch).
  torch_load.py export CHECKPOINT OUT_DIR [--reinit SEED]
      Rebuilds the module from CHECKPOINT and writes it as a new moe checkpoint in OUT_DIR (the
      same config, data schema and gate states; the weights from the module's state_dict). With
      --reinit the module's parameters are first drawn afresh by PyTorch (torch.manual_seed(SEED),
      PyTorch's own initialisers), so OUT_DIR holds a model PyTorch made, which `moe eval` and
      `moe predict` load.

Preprocessing is reimplemented (tools/torch_load_data.py) from the schema in model.json, so DATA
is the raw file moe itself reads: tabular standardisation and one-hot categories, text
normalisation, TF-IDF with the saved idf, hashed bigrams and stop words, images scaled by 1/255.

Supported: dense, text and image inputs; trunk (dense FFN) blocks; RMS/Layer/no norm; dense
models (model.dense); MoE blocks with linear, MLP and SwiGLU experts (heterogeneous lists and
shared experts too) under the gates dense_softmax, topk_softmax, noisy_topk, sigmoid_bias (with
its saved bias), sinkhorn, gumbel_softmax and hash, all as moe evaluates them (no noise).
Unsupported, rejected with a message: expert_choice gates and capacity_factor > 0 (their routing
depends on which rows share a batch) and hierarchical layers (hierarchy.groups > 0).

A language model's checkpoint (data.format "corpus") is rebuilt as LanguageModel, with its dims
from model.json (config.model.width, .lm and .moe) and its weights from model.safetensors:

  torch_load.py lm-eval CHECKPOINT TEXT [--compare MOE_EVAL_JSON]
      Tokenises TEXT with CHECKPOINT/tokenizer.model (python3-sentencepiece, the library moe
      links) as moe does — <s>, then each line with its newline — cuts the stream into windows
      of context + 1 tokens and prints the mean next-token loss, the token count and the
      perplexity as JSON. With --compare it checks them against `moe eval --json` of the same
      file instead: the token count exactly, the loss within 1e-4 relative (exit 1 otherwise).

build_language_model(tensors, dims) builds the same module from named tensors and dims such as a
tests/golden/gen_lm.py fixture holds (LanguageModel: logits, and the loss with the balancing
losses), and reproduces those fixtures' logits, losses and gradients.

Compressed checkpoints (weights_format bf16 or int8) are decoded to float32 first, as moe's loader
decodes them. Arithmetic is float64 from the float32 weights, so differences from moe are moe's own
float32 rounding. --compare allows |torch − moe| ≤ 1e-5 · max(1, |moe|) on outputs (the CSV's six
significant digits limit what a comparison can see), identical expert lists, and combine
weights within 1e-4 (moe prints them with four decimals).
"""

import argparse
import csv
import json
import math
import os
import struct
import sys

try:
    import torch
    from torch import nn
except ImportError:  # the ctest wrapper checks this first and skips
    sys.exit("torch_load: error: PyTorch is not importable (Debian: apt install python3-torch)")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_load_data import Failure, encode, fnv1a64_hex  # noqa: E402  (after the torch check)

DTYPES = {"F32": (torch.float32, 4), "F64": (torch.float64, 8), "I64": (torch.int64, 8),
          "I32": (torch.int32, 4), "I8": (torch.int8, 1), "U8": (torch.uint8, 1),
          "BF16": (torch.bfloat16, 2)}
FORMAT = "moe-checkpoint"
FORMAT_VERSION = 1
COMPARE_RTOL = 1e-5
WEIGHT_ATOL = 1e-4


# ------------------------------------------------------------------------------------------------
# safetensors and the checkpoint directory

def read_safetensors(path):
    """{name: tensor} in file order, and the __metadata__ map."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise Failure(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise Failure(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        if e["dtype"] not in DTYPES:
            raise Failure(f"{path}: tensor {name}: dtype {e['dtype']} is not supported")
        dtype, size = DTYPES[e["dtype"]]
        begin, end = e["data_offsets"]
        count = math.prod(e["shape"])
        if end - begin != count * size or end > len(data):
            raise Failure(f"{path}: tensor {name}: data_offsets {begin}, {end} do not fit")
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if count else \
            torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(e["shape"])
    return tensors, meta


def encode_safetensors(named, metadata):
    """The bytes of a safetensors file: F32 tensors in the given order, data 8-byte aligned."""
    header = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for name, t in named:
        b = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write_atomic(path, data):
    """Temporary file in the same directory, fsync, rename, fsync of the directory."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(directory):
    json_path = os.path.join(directory, "model.json")
    weights_path = os.path.join(directory, "model.safetensors")
    for p in (json_path, weights_path):
        if not os.path.isfile(p):
            raise Failure(f"{p}: missing")
    with open(json_path, encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise Failure(f"{json_path}: not a {FORMAT} version {FORMAT_VERSION} file")
    tensors, _ = read_safetensors(weights_path)
    return meta, decode_weights(meta, tensors, weights_path)


Q8_BLOCK = 32
Q8_SCALES_SUFFIX = ".q8_scales"


def decode_weights(meta, tensors, path):
    """The float32 weights of a checkpoint whose model.json says weights_format (absent: f32):
    bf16 matrices widened; int8 matrices times their scales, one per block of 32 along the last
    dimension (docs/formats.md), multiplied in float32 as moe does."""
    fmt = meta.get("weights_format", "f32")
    if fmt not in ("f32", "bf16", "int8"):
        raise Failure(f"{path}: weights_format {fmt!r} is not f32, bf16 or int8")
    out = {}
    for name, t in tensors.items():
        if name.endswith(Q8_SCALES_SUFFIX):
            continue
        if t.dtype == torch.bfloat16:
            t = t.to(torch.float32)
        elif t.dtype == torch.int8:
            scales = tensors.get(name + Q8_SCALES_SUFFIX)
            if scales is None:
                raise Failure(f"{path}: tensor {name} is I8 without {name}{Q8_SCALES_SUFFIX}")
            cols = t.shape[-1]
            q = t.reshape(-1, cols).to(torch.float32)
            blocks = -(-cols // Q8_BLOCK)
            if tuple(scales.shape) != (q.shape[0], blocks):
                raise Failure(f"{path}: tensor {name}{Q8_SCALES_SUFFIX} has shape "
                              f"{list(scales.shape)}, expected {[q.shape[0], blocks]}")
            per_column = scales.repeat_interleave(Q8_BLOCK, dim=1)[:, :cols]
            t = (q * per_column).reshape(t.shape)
        out[name] = t
    return out


# ------------------------------------------------------------------------------------------------
# the model (model/row_model.h, moe/experts.h, moe/gate.h)

ACTIVATIONS = {
    "relu": torch.relu,
    "gelu": lambda x: nn.functional.gelu(x),
    "gelu_tanh": lambda x: nn.functional.gelu(x, approximate="tanh"),
    "silu": nn.functional.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}


def linear_params(module, names, out_features, in_features, bias):
    """Declares w<i> [out, in] (and b<i> [out]), PyTorch's nn.Linear layout and initialiser."""
    w_name, b_name = names
    layer = nn.Linear(in_features, out_features, bias=bias, dtype=torch.float64)
    setattr(module, w_name, layer.weight)
    if bias:
        setattr(module, b_name, layer.bias)


class Expert(nn.Module):
    """Linear, MLP of `depth` hidden layers, or SwiGLU; parameters w1, b1, … as moe names them."""

    def __init__(self, d, cfg):
        super().__init__()
        self.kind, self.act = cfg["kind"], ACTIVATIONS[cfg["activation"]]
        self.bias = cfg["bias"] and self.kind != "swiglu"
        if self.kind == "linear":
            self.n_layers = 1
            linear_params(self, ("w1", "b1"), d, d, self.bias)
        elif self.kind == "mlp":
            f, depth = cfg["hidden"], cfg["depth"]
            self.n_layers = depth + 1
            widths = [d] + [f] * depth + [d]
            for i in range(self.n_layers):
                linear_params(self, (f"w{i + 1}", f"b{i + 1}"), widths[i + 1], widths[i],
                              self.bias)
        elif self.kind == "swiglu":
            f = cfg["hidden"]
            linear_params(self, ("w1", None), f, d, False)
            linear_params(self, ("w2", None), d, f, False)
            linear_params(self, ("w3", None), f, d, False)
        else:
            raise Failure(f"expert kind '{self.kind}' is not supported")

    def layer(self, i, x):
        b = getattr(self, f"b{i}") if self.bias else None
        return nn.functional.linear(x, getattr(self, f"w{i}"), b)

    def forward(self, x):
        if self.kind == "swiglu":
            return nn.functional.linear(
                nn.functional.silu(nn.functional.linear(x, self.w1)) *
                nn.functional.linear(x, self.w3), self.w2)
        for i in range(1, self.n_layers):
            x = self.act(self.layer(i, x))
        return self.layer(self.n_layers, x)


def stable_topk(keys, k):
    """Indices of the k largest per row, best first, the lower index first among equals."""
    order = torch.sort(-keys, dim=-1, stable=True).indices
    return order[:, :k]


def mix64(z):
    """SplitMix64's finaliser (moe/gate_hash.cpp)."""
    m = 0xFFFFFFFFFFFFFFFF
    z = (z + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


class Router(nn.Module):
    """The gate of a flat MoE layer in evaluation: expert ids [T, S] and weights [T, S]."""

    def __init__(self, d, n_experts, block, bias):
        super().__init__()
        gate = block["gate"]
        self.kind, self.k, self.n = gate["kind"], block["k"], n_experts
        self.renormalize, self.after = gate["renormalize"], gate["softmax_after_topk"]
        if self.kind != "hash":  # gate.router_bias: logits x·Wᵀ + b
            linear_params(self, ("w", "b"), n_experts, d, gate.get("router_bias", False))
        if self.kind == "noisy_topk":
            linear_params(self, ("w_noise", None), n_experts, d, False)
        # the sigmoid gate's selection bias: gate state, not a parameter
        self.register_buffer("select_bias", torch.tensor(bias or [0.0] * n_experts,
                                                         dtype=torch.float64), persistent=False)

    def logits(self, x):
        return nn.functional.linear(x, self.w, getattr(self, "b", None))

    def forward(self, x, rows):
        t = x.shape[0]
        if self.kind == "hash":
            ids = torch.tensor([[mix64(r) % self.n] for r in rows], dtype=torch.int64)
            return ids, torch.ones(t, 1, dtype=x.dtype)
        logits = self.logits(x)  # [T, E]
        if self.kind == "dense_softmax":
            return torch.arange(self.n).expand(t, self.n), torch.softmax(logits, -1)
        if self.kind == "gumbel_softmax":  # evaluation: argmax l, weight 1
            return stable_topk(logits, 1), torch.ones(t, 1, dtype=x.dtype)
        if self.kind == "sigmoid_bias":
            s = torch.sigmoid(logits)
            ids = stable_topk(s + self.select_bias, self.k)
            w = torch.gather(s, 1, ids)
            return ids, w / w.sum(-1, keepdim=True) if self.renormalize else w
        ids = stable_topk(logits, self.k)
        chosen = torch.gather(logits, 1, ids)
        if self.kind == "noisy_topk" or (self.kind == "topk_softmax" and self.after):
            return ids, torch.softmax(chosen, -1)
        p = torch.gather(torch.softmax(logits, -1), 1, ids)  # topk_softmax, sinkhorn
        return ids, p / p.sum(-1, keepdim=True) if self.renormalize else p


class MoeLayer(nn.Module):
    def __init__(self, d, block, bias):
        super().__init__()
        if block["hierarchy"]["groups"] > 0:
            raise Failure("hierarchical MoE layers (hierarchy.groups > 0) are not supported")
        if block["gate"]["kind"] == "expert_choice":
            raise Failure("the expert_choice gate is not supported: its routing depends on "
                          "which rows share a batch")
        if block["capacity_factor"] > 0:
            raise Failure("capacity_factor > 0 is not supported: which slots are dropped "
                          "depends on which rows share a batch")
        n = block["experts"]
        experts = block["expert_list"] or [block["expert"]] * n
        self.router = Router(d, n, block, bias)
        self.experts = nn.ModuleList(Expert(d, e) for e in experts)
        self.shared = nn.ModuleList(Expert(d, block["shared_expert"])
                                    for _ in range(block["shared"]))

    def forward(self, x, rows):
        ids, w = self.router(x, rows)  # [T, S]
        y = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            token, slot = torch.nonzero(ids == e, as_tuple=True)
            if len(token):
                y.index_add_(0, token, w[token, slot].unsqueeze(1) * expert(x[token]))
        for s in self.shared:
            y = y + s(x)
        return y, (ids, w)


class Norm(nn.Module):
    """RMSNorm y = x / √(mean x² + eps) ⊙ gain, or LayerNorm (layers/norm.h)."""

    def __init__(self, d, kind, eps):
        super().__init__()
        self.kind, self.eps = kind, eps
        self.gain = nn.Parameter(torch.ones(d, dtype=torch.float64))
        if kind == "layer":
            self.bias = nn.Parameter(torch.zeros(d, dtype=torch.float64))

    def forward(self, x):
        if self.kind == "rms":
            return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.gain
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) * torch.rsqrt(var + self.eps) * self.gain + self.bias


def slots_per_token(block):
    """Routed slots per token (moe_slots_per_token in train/config.h)."""
    gate, n = block["gate"], block["experts"]
    if gate["kind"] == "dense_softmax" or (gate["kind"] == "gumbel_softmax" and not gate["hard"]):
        return n
    if gate["kind"] in ("hash", "gumbel_softmax"):
        return 1
    if gate["kind"] == "expert_choice":
        return block["capacity_factor"] or 1.0
    return block["k"]


def dense_equivalent(block):
    """The FFN replacing an MoE block when model.dense is set (train/config.h)."""
    routed = block["expert_list"] or [block["expert"]] * block["experts"]
    mean_hidden = sum(e["hidden"] for e in routed) / len(routed)
    cfg = dict(routed[0])
    # llround: halves away from zero
    cfg["hidden"] = math.floor(max(1.0, slots_per_token(block)) * mean_hidden + 0.5) + \
        block["shared"] * block["shared_expert"]["hidden"]
    return cfg


class Block(nn.Module):
    def __init__(self, d, norm, eps, ffn=None, moe=None):
        super().__init__()
        if norm != "none":
            self.norm = Norm(d, norm, eps)
        if ffn is not None:
            self.ffn = Expert(d, ffn)
        else:
            self.moe = moe

    def forward(self, h, rows):
        x = self.norm(h) if hasattr(self, "norm") else h
        if hasattr(self, "ffn"):
            return h + self.ffn(x), None
        y, routing = self.moe(x, rows)
        return h + y, routing


class MoeModel(nn.Module):
    """moe's RowModel (model/row_model.h) in evaluation; state_dict names are the checkpoint's."""

    def __init__(self, meta):
        super().__init__()
        config, schema = meta["config"], meta["data"]
        m = config["model"]
        d, trunk = m["width"], m["trunk"]
        labels = schema["labels"]
        self.task = labels["task"]
        n_out = len(labels["class_names"]) if self.task == "classification" \
            else len(labels["columns"])
        self.sparse = schema["format"] == "text"
        self.bag = m["bag"]
        if self.sparse:
            n_in = len(schema["text"]["words"]) + schema["text"]["bigram_buckets"]
            self.input = nn.Module()
            self.input.w = nn.Parameter(torch.randn(n_in, d, dtype=torch.float64) / math.sqrt(d))
            self.input.b = nn.Parameter(torch.zeros(d, dtype=torch.float64))
        else:
            n_in = schema["features"]["n_features"] if "features" in schema \
                else schema["image_size"]
            self.input = nn.Module()
            linear_params(self.input, ("w", "b"), d, n_in, True)
        norm, eps = trunk["norm"], trunk["norm_eps"]
        blocks = []
        for hidden in trunk["hidden"]:
            blocks.append(Block(d, norm, eps, ffn={"kind": "mlp", "hidden": hidden, "depth": 1,
                                                   "activation": trunk["activation"],
                                                   "bias": True}))
        moe_blocks = m["moe"] if isinstance(m["moe"], list) else [m["moe"]]
        gates = {g["name"]: g["bias"] for g in meta.get("gates", [])}
        self.moe_names = []
        for b in moe_blocks:
            name = f"blocks.{len(blocks)}.moe"
            if m["dense"]:
                blocks.append(Block(d, norm, eps, ffn=dense_equivalent(b)))
            else:
                blocks.append(Block(d, norm, eps, moe=MoeLayer(d, b, gates.get(name + ".router"))))
                self.moe_names.append(name)
        self.blocks = nn.ModuleList(blocks)
        if norm != "none" and trunk["final_norm"]:
            self.final_norm = Norm(d, norm, eps)
        self.head = nn.Module()
        linear_params(self.head, ("w", "b"), n_out, d, True)
        labels_std = labels.get("target_std") or [1.0] * n_out
        labels_mean = labels.get("target_mean") or [0.0] * n_out
        self.standardized = labels.get("standardized", False)
        self.register_buffer("target_std", torch.tensor(labels_std, dtype=torch.float64),
                             persistent=False)
        self.register_buffer("target_mean", torch.tensor(labels_mean, dtype=torch.float64),
                             persistent=False)

    def embed(self, data):
        if not self.sparse:
            return nn.functional.linear(data["dense"], self.input.w, self.input.b)
        ids, offsets, weights = [], [], []
        for bag in data["bags"]:
            offsets.append(len(ids))
            for i, w in bag:
                ids.append(i)
                # weighted_sum: the TF-IDF weight; sum: 1; mean: 1 / |bag|
                weights.append(w if self.bag == "weighted_sum" else
                               1.0 if self.bag == "sum" else 1.0 / len(bag))
        h = nn.functional.embedding_bag(torch.tensor(ids, dtype=torch.int64), self.input.w,
                                        torch.tensor(offsets, dtype=torch.int64), mode="sum",
                                        per_sample_weights=torch.tensor(weights,
                                                                        dtype=torch.float64))
        return h + self.input.b

    def forward(self, data):
        """Outputs [N, C] (probabilities, or targets in their own units) and the routing."""
        rows = list(range(data["n_rows"]))
        h = self.embed(data)
        routing = []
        for block in self.blocks:
            h, r = block(h, rows)
            if r is not None:
                routing.append(r)
        if hasattr(self, "final_norm"):
            h = self.final_norm(h)
        logits = nn.functional.linear(h, self.head.w, self.head.b)
        if self.task == "classification":
            return torch.softmax(logits, -1), routing
        if self.standardized:
            return logits * self.target_std + self.target_mean, routing
        return logits, routing


def build_model(meta, tensors):
    model = MoeModel(meta)
    own = model.state_dict()
    missing = [n for n in own if n not in tensors]
    extra = [n for n in tensors if n not in own]
    if missing or extra:
        raise Failure(f"the checkpoint's tensors do not match its config: missing {missing[:5]}, "
                      f"unexpected {extra[:5]}")
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(own[name].shape):
            raise Failure(f"tensor {name}: shape {list(t.shape)}, the config gives "
                          f"{list(own[name].shape)}")
    model.load_state_dict({n: t.to(torch.float64) for n, t in tensors.items()}, strict=False)
    return model.eval()


# ------------------------------------------------------------------------------------------------
# the decoder-only language model (Mixtral's architecture)
#
# The same model as tests/golden/gen_lm.py (whose docstring gives every formula), as a module
# whose state_dict names are the ones there: embed.w, blocks.<l>.{attn_norm,ffn_norm}.gain,
# blocks.<l>.attn.{wq,wk,wv,wo}, blocks.<l>.ffn.{w1,w2,w3} or blocks.<l>.moe.router.w and
# blocks.<l>.moe.experts.<e>.{w1,w2,w3}, final_norm.gain, head.w (untied only). The attention,
# RoPE and balancing losses are written out again here rather than imported: the generator is
# a golden-fixture script outside tools/, and neither tree imports the other.
# build_language_model takes the tensors and the dims directly (a gen_lm fixture's metadata will
# do); language_model_of_checkpoint reads them from a checkpoint, whose resolved model.moe block
# may then use any gate that routes each token on its own and any expert kind.

LM_INT_DIMS = ("vocab", "d_model", "n_layers", "n_heads", "n_kv_heads", "n_experts", "top_k",
               "expert_hidden", "dense_hidden")
LM_FLOAT_DIMS = {"switch_coef": 0.0, "z_coef": 0.0, "norm_eps": 1e-5, "rope_theta": 10000.0}


def lm_dims(dims):
    """Typed dims from strings or numbers (a gen_lm fixture's metadata, say)."""
    def flag(v):
        return v if isinstance(v, bool) else str(v).lower() in ("true", "1")

    out = {k: int(dims[k]) for k in LM_INT_DIMS if k in dims}
    out.update({k: float(dims.get(k, v)) for k, v in LM_FLOAT_DIMS.items()})
    blocks = dims.get("moe_blocks", ())
    if isinstance(blocks, str):
        blocks = [b for b in blocks.split(",") if b.strip()]
    out["moe_blocks"] = tuple(int(b) for b in blocks)
    out["tied_head"] = flag(dims.get("tied_head", True))
    for k in ("vocab", "d_model", "n_layers", "n_heads", "n_kv_heads"):
        if k not in out:
            raise Failure(f"language model: dim '{k}' is missing")
    if out["d_model"] % out["n_heads"] or out["n_heads"] % out["n_kv_heads"]:
        raise Failure(f"language model: d_model {out['d_model']}, n_heads {out['n_heads']} and "
                      f"n_kv_heads {out['n_kv_heads']} do not divide")
    return out


def rope(x, theta):
    """x [B, n, S, Dh]: pairs (2i, 2i+1) at position s rotated by s · theta^(−2i/Dh)."""
    s_n, dh = x.shape[2], x.shape[3]
    inv_freq = theta ** (-torch.arange(0, dh, 2, dtype=torch.float64) / dh)
    angle = torch.outer(torch.arange(s_n, dtype=torch.float64), inv_freq).to(x.dtype)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((x_even * angle.cos() - x_odd * angle.sin(),
                        x_even * angle.sin() + x_odd * angle.cos()), -1).flatten(-2)


class Attention(nn.Module):
    """Causal grouped-query attention with RoPE, no biases; query head h reads kv head
    h // (H/G)."""

    def __init__(self, d, n_heads, n_kv_heads, theta):
        super().__init__()
        self.h, self.g, self.dh, self.theta = n_heads, n_kv_heads, d // n_heads, theta
        linear_params(self, ("wq", None), n_heads * self.dh, d, False)
        linear_params(self, ("wk", None), n_kv_heads * self.dh, d, False)
        linear_params(self, ("wv", None), n_kv_heads * self.dh, d, False)
        linear_params(self, ("wo", None), d, n_heads * self.dh, False)

    def forward(self, x):  # [B, S, D]
        b_n, s_n, _ = x.shape
        lin = nn.functional.linear
        q = lin(x, self.wq).view(b_n, s_n, self.h, self.dh).transpose(1, 2)  # [B, H, S, Dh]
        k = lin(x, self.wk).view(b_n, s_n, self.g, self.dh).transpose(1, 2)  # [B, G, S, Dh]
        v = lin(x, self.wv).view(b_n, s_n, self.g, self.dh).transpose(1, 2)
        q, k = rope(q, self.theta), rope(k, self.theta)
        k = k.repeat_interleave(self.h // self.g, dim=1)
        v = v.repeat_interleave(self.h // self.g, dim=1)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.dh)  # [B, H, S, S]
        future = torch.triu(torch.ones(s_n, s_n, dtype=torch.bool), 1)
        att = scores.masked_fill(future, float("-inf")).softmax(-1)
        return lin((att @ v).transpose(1, 2).reshape(b_n, s_n, self.h * self.dh), self.wo)


def balance_losses(router_logits, ids, n_experts):
    """The Switch loss E · Σ_e f_e · P_e (f_e the fraction of all T·K slots routed to e, without
    gradient; P_e the mean softmax probability) and the z-loss mean_t logsumexp(l_t)², as
    src/moe/balance.cpp."""
    f = torch.bincount(ids.flatten(), minlength=n_experts).to(router_logits.dtype) / ids.numel()
    switch = n_experts * (f * router_logits.softmax(-1).mean(0)).sum()
    z = (torch.logsumexp(router_logits, -1) ** 2).mean()
    return switch, z


class LmBlock(nn.Module):
    """One block; `block` is a checkpoint's resolved model.moe object (None: gen_lm's top-k
    softmax over SwiGLU experts) and `bias` its router's saved selection bias."""

    def __init__(self, dims, is_moe, block=None, bias=None):
        super().__init__()
        d, eps = dims["d_model"], dims["norm_eps"]
        self.attn_norm = Norm(d, "rms", eps)
        self.attn = Attention(d, dims["n_heads"], dims["n_kv_heads"], dims["rope_theta"])
        self.ffn_norm = Norm(d, "rms", eps)
        swiglu = {"kind": "swiglu", "activation": "silu", "bias": False}
        if block is None:
            gate = {"kind": "topk_softmax", "renormalize": True, "softmax_after_topk": False}
            block = {"hierarchy": {"groups": 0}, "gate": gate, "k": dims["top_k"],
                     "capacity_factor": 0, "experts": dims["n_experts"], "expert_list": [],
                     "expert": dict(swiglu, hidden=dims["expert_hidden"]), "shared": 0}
            dense = dict(swiglu, hidden=dims["dense_hidden"])
        else:
            dense = dict(dense_equivalent(block), hidden=dims["dense_hidden"])
        if is_moe:
            self.moe = MoeLayer(d, block, bias)
        else:
            self.ffn = Expert(d, dense)

    def forward(self, x):
        """x [B, S, D] -> x, and (router logits [T, E], ids [T, K]) of an MoE block."""
        x = x + self.attn(self.attn_norm(x))
        h = self.ffn_norm(x).reshape(-1, x.shape[-1])  # [T, D]
        if hasattr(self, "ffn"):
            return x + self.ffn(h).view_as(x), None
        y, (ids, _) = self.moe(h, None)
        return x + y.view_as(x), (self.moe.router.logits(h), ids)


class LanguageModel(nn.Module):
    """The decoder-only MoE language model; forward(tokens [B, S]) gives logits [B·S, V] and
    loss(tokens, targets) the mean cross-entropy plus Σ_MoE layers (α·switch + w·z)."""

    def __init__(self, dims, block=None, biases=None):
        """`block`: the resolved model.moe object every MoE block shares, or a list of one per
        MoE block (what `moe experts` writes)."""
        super().__init__()
        self.dims = dims
        per_block = block if isinstance(block, list) and len(block) > 1 else None
        if isinstance(block, list) and per_block is None:
            block = block[0]
        self.embed = nn.Module()
        self.embed.w = nn.Parameter(torch.randn(dims["vocab"], dims["d_model"],
                                                dtype=torch.float64) / math.sqrt(dims["d_model"]))
        biases = biases or {}
        def block_of(layer):
            if per_block is None:
                return block
            return per_block[dims["moe_blocks"].index(layer)] if layer in dims["moe_blocks"] \
                else per_block[0]
        self.blocks = nn.ModuleList(
            LmBlock(dims, layer in dims["moe_blocks"], block_of(layer),
                    biases.get(f"blocks.{layer}.moe.router"))
            for layer in range(dims["n_layers"]))
        self.final_norm = Norm(dims["d_model"], "rms", dims["norm_eps"])
        if not dims["tied_head"]:
            self.head = nn.Module()
            linear_params(self.head, ("w", None), dims["vocab"], dims["d_model"], False)

    def run(self, tokens):
        """Logits [B·S, V] and each MoE block's (router logits, ids)."""
        x = self.embed.w[tokens.long()]  # [B, S, D]
        routing = []
        for block in self.blocks:
            x, r = block(x)
            if r is not None:
                routing.append(r)
        head = self.embed.w if self.dims["tied_head"] else self.head.w
        h = self.final_norm(x).reshape(-1, x.shape[-1])
        return nn.functional.linear(h, head), routing

    def forward(self, tokens):
        return self.run(tokens)[0]

    def loss(self, tokens, targets):
        """Total, task and auxiliary loss."""
        logits, routing = self.run(tokens)
        task = nn.functional.cross_entropy(logits, targets.reshape(-1).long())
        aux = torch.zeros((), dtype=logits.dtype)
        for router_logits, ids in routing:
            switch, z = balance_losses(router_logits, ids, router_logits.shape[1])
            aux = aux + self.dims["switch_coef"] * switch + self.dims["z_coef"] * z
        return task + aux, task, aux


def build_language_model(tensors, dims, block=None, biases=None):
    """The LanguageModel of these dims (lm_dims keys) holding these named tensors, in float64;
    `block` and `biases` as LanguageModel takes them (a checkpoint's)."""
    model = LanguageModel(lm_dims(dims), block, biases)
    own = model.state_dict()
    missing = [n for n in own if n not in tensors]
    if missing:
        raise Failure(f"language model: tensors missing: {missing[:5]}")
    for name in own:
        if tuple(tensors[name].shape) != tuple(own[name].shape):
            raise Failure(f"language model: tensor {name}: shape {list(tensors[name].shape)}, "
                          f"the dims give {list(own[name].shape)}")
    model.load_state_dict({n: tensors[n].to(torch.float64) for n in own})
    return model


def language_model_of_checkpoint(meta, tensors):
    """The LanguageModel of a checkpoint of data.format "corpus": the dims from config.model
    (width, lm, moe: model/lm_model.cpp builds the same), the weights from its tensors."""
    if meta["data"]["format"] != "corpus":
        raise Failure(f"not a language model (data.format is {meta['data']['format']})")
    m = meta["config"]["model"]
    lm, blocks = m["lm"], m["moe"] if isinstance(m["moe"], list) else [m["moe"]]
    block = blocks[0]
    for b in blocks:
        if b["gate"]["kind"] == "hash":
            raise Failure("the hash gate is not supported for a language model")
        if b.get("precision", "fp32") != "fp32":
            raise Failure(f"model.moe.precision {b['precision']} is not supported (fp32 only)")
    layers = range(lm["layers"])
    moe_blocks = [] if m["dense"] or lm["moe_layers"] == "none" else \
        [b for b in layers if lm["moe_layers"] == "all" or b % 2 == 1]
    vocab = meta["data"]["tokenizer"]["vocab_size"]
    dims = {"vocab": vocab, "d_model": m["width"], "n_layers": lm["layers"],
            "n_heads": lm["heads"], "n_kv_heads": lm["kv_heads"] or lm["heads"],
            "n_experts": block["experts"], "top_k": block["k"],
            "dense_hidden": lm["ffn_hidden"] or dense_equivalent(block)["hidden"],
            "moe_blocks": moe_blocks, "tied_head": lm["tie_embeddings"],
            "norm_eps": lm["norm_eps"], "rope_theta": lm["rope_theta"]}
    biases = {g["name"]: g["bias"] for g in meta.get("gates", [])}
    model = build_language_model(tensors, dims, blocks, biases)
    extra = [n for n in tensors if n not in model.state_dict()]
    if extra:
        raise Failure(f"the checkpoint's tensors do not match its config: unexpected {extra[:5]}")
    return model.eval()


def corpus_tokens(checkpoint, path):
    """The token stream moe makes of a text file (data/corpus.cpp): a byte order mark dropped,
    then <s> and each line with its newline, encoded by the checkpoint's tokenizer.model."""
    try:
        import sentencepiece  # Debian: python3-sentencepiece
    except ImportError:
        raise Failure("python3-sentencepiece is needed to tokenise text") from None
    sp = sentencepiece.SentencePieceProcessor()
    sp.LoadFromSerializedProto(open(os.path.join(checkpoint, "tokenizer.model"), "rb").read())
    with open(path, "rb") as f:
        text = f.read()
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    ids = [sp.bos_id()]
    lines = text.decode("utf-8").split("\n")  # at "\n" only, as moe does (not str.splitlines)
    for i, line in enumerate(lines):
        piece = line + "\n" if i + 1 < len(lines) else line
        if piece:
            ids.extend(sp.EncodeAsIds(piece))
    return ids


def cmd_lm_eval(args):
    meta, tensors = load_checkpoint(args.checkpoint)
    model = language_model_of_checkpoint(meta, tensors)
    context = meta["config"]["model"]["lm"]["context"]
    ids = corpus_tokens(args.checkpoint, args.text)
    n_windows = (len(ids) - 1) // context
    if n_windows < 1:
        raise Failure(f"{args.text}: {len(ids)} tokens are fewer than one window of "
                      f"{context + 1}")
    stream = torch.tensor(ids[:n_windows * context + 1], dtype=torch.int64)
    inputs = stream[:-1].view(n_windows, context)
    targets = stream[1:].view(n_windows, context)
    with torch.no_grad():
        loss = nn.functional.cross_entropy(model(inputs), targets.reshape(-1)).item()
    ours = {"loss": loss, "perplexity": math.exp(loss), "tokens": n_windows * context}
    if not args.compare:
        print(json.dumps(ours, indent=2))
        return 0
    with open(args.compare, encoding="utf-8") as f:
        theirs = json.load(f)
    problems = []
    if theirs.get("tokens") != ours["tokens"]:
        problems.append(f"tokens: moe {theirs.get('tokens')}, torch {ours['tokens']}")
    if abs(theirs["loss"] - loss) > 1e-4 * abs(theirs["loss"]):
        problems.append(f"loss: moe {theirs['loss']!r}, torch {loss!r}")
    for p in problems:
        print("mismatch: " + p, file=sys.stderr)
    if not problems:
        rel = abs(theirs["loss"] - loss) / max(abs(theirs["loss"]), 1e-300)
        print(f"loss {loss:.8f} over {ours['tokens']} tokens; moe {theirs['loss']:.8f} "
              f"(relative difference {rel:.2g})")
    return 1 if problems else 0


# ------------------------------------------------------------------------------------------------
# commands

def predictions_csv(meta, outputs, routing, names):
    labels = meta["data"]["labels"]
    classify = labels["task"] == "classification"
    out_names = labels["class_names"] if classify else labels["columns"]
    lines = ["row" + (",prediction" if classify else "") +
             "".join("," + csv_field(("p." if classify else "") + c) for c in out_names) +
             "".join(f",{n}.experts,{n}.weights" for n in names)]
    for i in range(outputs.shape[0]):
        fields = [str(i)]
        if classify:
            fields.append(csv_field(out_names[int(torch.argmax(outputs[i]))]))
        fields += [f"{float(v):.6g}" for v in outputs[i]]
        for ids, w in routing:
            keep = w[i] == w[i]  # every slot (no capacity: nothing dropped)
            fields.append(" ".join(str(int(e)) for e in ids[i][keep]))
            fields.append(" ".join(f"{float(v):.4f}" for v in w[i][keep]))
        lines.append(",".join(fields))
    return "\n".join(lines) + "\n"


def csv_field(s):
    if any(c in s for c in ',"\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


def compare(meta, outputs, routing, names, moe_csv):
    """Mismatches between this script's predictions and a `moe predict` CSV (messages)."""
    labels = meta["data"]["labels"]
    classify = labels["task"] == "classification"
    n_out = outputs.shape[1]
    with open(moe_csv, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    problems = []
    if len(body) != outputs.shape[0]:
        return [f"{moe_csv}: {len(body)} rows, torch has {outputs.shape[0]}"]
    first = 2 if classify else 1
    worst = 0.0
    for i, r in enumerate(body):
        for j in range(n_out):
            moe_v, torch_v = float(r[first + j]), float(outputs[i, j])
            err = abs(torch_v - moe_v) / max(1.0, abs(moe_v))
            worst = max(worst, err)
            if err > COMPARE_RTOL:
                problems.append(f"row {i} output {header[first + j]}: moe {moe_v}, "
                                f"torch {torch_v:.9g}")
        for layer, (name, (ids, w)) in enumerate(zip(names, routing)):
            col = first + n_out + 2 * layer
            moe_ids = [int(e) for e in r[col].split()]
            moe_w = [float(v) for v in r[col + 1].split()]
            if moe_ids != [int(e) for e in ids[i]]:
                problems.append(f"row {i} {name}: moe sent it to {moe_ids}, torch to "
                                f"{[int(e) for e in ids[i]]}")
            elif any(abs(a - float(b)) > WEIGHT_ATOL for a, b in zip(moe_w, w[i])):
                problems.append(f"row {i} {name}: weights {moe_w} vs {w[i].tolist()}")
    print(f"compared {len(body)} rows x {n_out} outputs and {len(names)} MoE layers: "
          f"max relative output difference {worst:.3g}, {len(problems)} mismatches")
    return problems


def cmd_predict(args):
    meta, tensors = load_checkpoint(args.checkpoint)
    model = build_model(meta, tensors)
    data = encode(meta["data"], args.data)
    with torch.no_grad():
        outputs, routing = model(data)
    if args.compare:
        problems = compare(meta, outputs, routing, model.moe_names, args.compare)
        for p in problems[:20]:
            print("mismatch: " + p, file=sys.stderr)
        return 1 if problems else 0
    text = predictions_csv(meta, outputs, routing, model.moe_names)
    if args.out:
        write_atomic(args.out, text.encode("utf-8"))
    else:
        sys.stdout.write(text)
    return 0


def reinit(model, seed):
    """Fresh parameters from PyTorch: nn.Linear's default for every matrix, N(0, 1/D) for the
    text embedding, norms at gain 1 and bias 0."""
    torch.manual_seed(seed)
    for module in model.modules():
        for name, p in list(module.named_parameters(recurse=False)):
            with torch.no_grad():
                if isinstance(module, Norm):
                    p.fill_(1.0 if name == "gain" else 0.0)
                elif module is model.input and model.sparse and name == "w":
                    p.normal_(0.0, 1.0 / math.sqrt(p.shape[1]))
                elif p.dim() == 2:
                    nn.init.kaiming_uniform_(p, a=math.sqrt(5))  # nn.Linear.reset_parameters
                else:
                    fan_in = getattr(module, "w" + name[1:], None)
                    fan_in = fan_in.shape[1] if fan_in is not None else p.shape[0]
                    bound = 1.0 / math.sqrt(fan_in)
                    p.uniform_(-bound, bound)


def cmd_export(args):
    meta, tensors = load_checkpoint(args.checkpoint)
    model = build_model(meta, tensors)
    if args.reinit is not None:
        reinit(model, args.reinit)
    params = dict(model.named_parameters())
    named = [(n, params[n]) for n in tensors]  # moe's store order
    weights = encode_safetensors(named, {"format": FORMAT,
                                         "format_version": str(FORMAT_VERSION)})
    os.makedirs(args.out_dir, exist_ok=True)
    write_atomic(os.path.join(args.out_dir, "model.safetensors"), weights)
    out = dict(meta)
    out["weights"] = {"file": "model.safetensors", "bytes": len(weights),
                      "fnv1a64": fnv1a64_hex(weights)}
    info = dict(meta.get("info", {}))
    info["exported_by"] = "tools/torch_load.py" + \
        (f" --reinit {args.reinit}" if args.reinit is not None else "")
    out["info"] = info
    write_atomic(os.path.join(args.out_dir, "model.json"),
                 (json.dumps(out, indent=1) + "\n").encode("utf-8"))
    print(f"{len(named)} tensors written to {args.out_dir}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="predict a data file like `moe predict`")
    p.add_argument("checkpoint")
    p.add_argument("data")
    p.add_argument("--out", help="write the CSV here instead of stdout")
    p.add_argument("--compare", metavar="MOE_CSV", help="check against `moe predict`'s CSV")
    p.set_defaults(run=cmd_predict)
    e = sub.add_parser("export", help="write the rebuilt (or re-initialised) module as a "
                                      "moe checkpoint")
    e.add_argument("checkpoint")
    e.add_argument("out_dir")
    e.add_argument("--reinit", type=int, metavar="SEED",
                   help="draw fresh parameters with PyTorch's initialisers first")
    e.set_defaults(run=cmd_export)
    lm = sub.add_parser("lm-eval", help="the mean next-token loss of a language model's "
                                        "checkpoint on a text file, as `moe eval --json`")
    lm.add_argument("checkpoint")
    lm.add_argument("text")
    lm.add_argument("--compare", metavar="MOE_EVAL_JSON",
                    help="check against `moe eval --json`'s output")
    lm.set_defaults(run=cmd_lm_eval)
    args = parser.parse_args()
    try:
        return args.run(args)
    except (Failure, OSError, KeyError, ValueError, json.JSONDecodeError) as err:
        print(f"torch_load: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
