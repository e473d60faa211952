"""Golden fixtures for the MoE layer (tests/moe/moe_layer_golden.cpp reads them).

Each fixture holds the float32 input x, a random upstream gradient dy, every parameter under the
name the C++ ParamStore gives it ("moe.router.w", "moe.experts.3.w2", ...), the output y, the
input gradient dx and every parameter gradient as "grad.<name>", computed by autograd in float64
from the float32 values. The routing of the top-k fixtures is stored too (expert ids as float32,
best first) and checked to be far from a tie, so float32 and float64 choose the same experts.

Dims: T tokens, D model width, F expert hidden width, E experts, K experts per token, G groups.
"""
import os

import torch
import torch.nn.functional as F

import safetensors_io

MIN_GAP = 1e-3  # smallest allowed probability gap between the K-th and (K+1)-th expert


def f32(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).float()


def out(t):
    return t.detach().float()


def linear_init(out_f, in_f):
    bound = in_f ** -0.5
    return ((torch.rand(out_f, in_f) * 2 - 1) * bound).float()


def bias_init(out_f, in_f):
    bound = in_f ** -0.5
    return ((torch.rand(out_f) * 2 - 1) * bound).float()


class Params:
    """float32 values by ParamStore name, and their float64 autograd leaves."""

    def __init__(self):
        self.values, self.leaves = {}, {}

    def add(self, name, value):
        self.values[name] = value
        self.leaves[name] = value.double().requires_grad_(True)
        return self.leaves[name]

    def __getitem__(self, name):
        return self.leaves[name]


def add_expert(p, prefix, kind, d, hidden=0, depth=1):
    """Declares an expert's parameters as experts.cpp does: w1, b1, ... in [out, in] layout."""
    if kind == "linear":
        p.add(prefix + ".w1", linear_init(d, d))
        p.add(prefix + ".b1", bias_init(d, d))
    elif kind == "mlp":
        dims = [d] + [hidden] * depth + [d]
        for i in range(len(dims) - 1):
            p.add(f"{prefix}.w{i + 1}", linear_init(dims[i + 1], dims[i]))
            p.add(f"{prefix}.b{i + 1}", bias_init(dims[i + 1], dims[i]))
    elif kind == "swiglu":
        p.add(prefix + ".w1", linear_init(hidden, d))
        p.add(prefix + ".w2", linear_init(d, hidden))
        p.add(prefix + ".w3", linear_init(hidden, d))


def run_expert(p, prefix, kind, x, depth=1, act=F.gelu):
    if kind == "linear":
        return F.linear(x, p[prefix + ".w1"], p[prefix + ".b1"])
    if kind == "mlp":
        h = x
        for i in range(1, depth + 1):
            h = act(F.linear(h, p[f"{prefix}.w{i}"], p[f"{prefix}.b{i}"]))
        return F.linear(h, p[f"{prefix}.w{depth + 1}"], p[f"{prefix}.b{depth + 1}"])
    return F.linear(F.silu(F.linear(x, p[prefix + ".w1"])) * F.linear(x, p[prefix + ".w3"]),
                    p[prefix + ".w2"])


def topk_route(logits, k):
    """Softmax then top-k, renormalised: [T, K] ids (best first) and weights."""
    probs = torch.softmax(logits, dim=-1)
    top, ids = probs.topk(k + 1 if k < probs.shape[1] else k, dim=-1)
    if k < probs.shape[1]:
        gap = (top[:, k - 1] - top[:, k]).min().item()
        assert gap > MIN_GAP, f"near tie in the top-{k} choice: gap {gap}"
        top, ids = top[:, :k], ids[:, :k]
    return ids, top / top.sum(dim=-1, keepdim=True)


def finish(path, x, dy, p, y, xd, extra=None, meta=None):
    y.backward(dy.double())
    tensors = {"x": x, "dy": dy}
    tensors.update(p.values)
    tensors["y"] = out(y)
    tensors["dx"] = out(xd.grad)
    for name, leaf in p.leaves.items():
        tensors["grad." + name] = out(leaf.grad)
    tensors.update(extra or {})
    safetensors_io.write(path, tensors, meta)


def top2_swiglu(out_dir):
    """Top-2 softmax MoE (renormalised, Mixtral's gate) with SwiGLU experts."""
    torch.manual_seed(11)
    t, d, f, e, k = 12, 8, 16, 4, 2
    x, dy = f32(t, d), f32(t, d)
    p = Params()
    p.add("moe.router.w", f32(e, d, scale=0.8))
    for i in range(e):
        add_expert(p, f"moe.experts.{i}", "swiglu", d, f)
    xd = x.double().requires_grad_(True)
    ids, w = topk_route(F.linear(xd, p["moe.router.w"]), k)
    y = torch.zeros(t, d, dtype=torch.float64)
    for i in range(e):
        # Σ over the slots routed to expert i of weight · E_i(x), as a masked dense product.
        weight = (w * (ids == i)).sum(dim=-1, keepdim=True)
        y = y + weight * run_expert(p, f"moe.experts.{i}", "swiglu", xd)
    finish(os.path.join(out_dir, "moe_top2_swiglu.safetensors"), x, dy, p, y, xd,
           {"expert_ids": ids.float()}, {"T": t, "D": d, "F": f, "E": e, "K": k})


def heterogeneous_shared(out_dir):
    """Top-2 over four experts of different kinds and widths, plus a shared SwiGLU expert."""
    torch.manual_seed(12)
    t, d, e, k = 10, 8, 4, 2
    experts = [("linear", 0, 1, None), ("mlp", 12, 2, F.gelu), ("mlp", 6, 1, F.silu),
               ("swiglu", 16, 1, None)]
    x, dy = f32(t, d), f32(t, d)
    p = Params()
    p.add("moe.router.w", f32(e, d, scale=0.8))
    for i, (kind, hidden, depth, _) in enumerate(experts):
        add_expert(p, f"moe.experts.{i}", kind, d, hidden, depth)
    add_expert(p, "moe.shared.0", "swiglu", d, 8)
    xd = x.double().requires_grad_(True)
    ids, w = topk_route(F.linear(xd, p["moe.router.w"]), k)
    y = run_expert(p, "moe.shared.0", "swiglu", xd)
    for i, (kind, _, depth, act) in enumerate(experts):
        weight = (w * (ids == i)).sum(dim=-1, keepdim=True)
        y = y + weight * run_expert(p, f"moe.experts.{i}", kind, xd, depth, act)
    finish(os.path.join(out_dir, "moe_heterogeneous_shared.safetensors"), x, dy, p, y, xd,
           {"expert_ids": ids.float()}, {"T": t, "D": d, "E": e, "K": k})


def hierarchical_dense(out_dir):
    """Jordan & Jacobs' 2x4 tree: softmax over 2 groups, softmax over 4 linear experts inside
    each, y = sum_g p_g sum_j q_gj (W_gj x + b_gj)."""
    torch.manual_seed(13)
    t, d, g, per = 12, 8, 2, 4
    x, dy = f32(t, d), f32(t, d)
    p = Params()
    p.add("moe.router.w", f32(g, d, scale=0.5))
    for i in range(g):
        p.add(f"moe.groups.{i}.router.w", f32(per, d, scale=0.5))
    for i in range(g * per):
        add_expert(p, f"moe.experts.{i}", "linear", d)
    xd = x.double().requires_grad_(True)
    top = torch.softmax(F.linear(xd, p["moe.router.w"]), dim=-1)
    y = torch.zeros(t, d, dtype=torch.float64)
    for i in range(g):
        inner = torch.softmax(F.linear(xd, p[f"moe.groups.{i}.router.w"]), dim=-1)
        for j in range(per):
            weight = (top[:, i] * inner[:, j]).unsqueeze(1)
            y = y + weight * run_expert(p, f"moe.experts.{i * per + j}", "linear", xd)
    finish(os.path.join(out_dir, "moe_hierarchical_dense.safetensors"), x, dy, p, y, xd,
           meta={"T": t, "D": d, "G": g, "E_g": per})


def generate(out_dir):
    top2_swiglu(out_dir)
    heterogeneous_shared(out_dir)
    hierarchical_dense(out_dir)
