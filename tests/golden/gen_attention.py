"""Golden fixtures for rotary position embedding and causal grouped-query attention
(tests/ops/attention_ops.cpp reads them).

Every fixture holds the float32 inputs, a random upstream gradient dy, and the output and input
gradients, computed by autograd in float64 from the float32 values. RoPE rotates interleaved pairs
(2i, 2i+1) by pos * theta^(-2i/Dh) (Meta's LLaMA layout, as torch_lm_baseline.py's apply_rope);
attention is softmax(q k^T / sqrt(Dh) + mask) v with each kv head repeated for its H/G query heads.
Dims: B sequences, S positions, H query heads, G kv heads, Dh head width; rows are b*S + s.
"""
import math
import os

import torch

import safetensors_io

THETA = 10000.0


def f32(*shape, scale=1.0):
    """A float32 normal sample (the stored value), scaled."""
    return (torch.randn(*shape) * scale).float()


def leaf(t):
    """The float64 autograd leaf for a stored float32 tensor."""
    return t.double().requires_grad_(True)


def out(t):
    return t.detach().float()


def rope_reference(x, b, s, h, dh, pos0):
    """x [B*S, H*Dh] rotated; pairs (2i, 2i+1) interleaved, positions pos0 .. pos0+S-1."""
    inv = THETA ** (-torch.arange(0, dh, 2, dtype=torch.float64) / dh)  # [Dh/2]
    ang = torch.outer(torch.arange(pos0, pos0 + s, dtype=torch.float64), inv)  # [S, Dh/2]
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
    xv = x.view(b, s, h, dh)
    x1, x2 = xv[..., 0::2], xv[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).reshape(b * s, h * dh)


def attention_reference(q, k, v, b, s, h, g, dh, causal):
    """q [B*S, H*Dh], k, v [B*S, G*Dh] -> o [B*S, H*Dh]."""
    qh = q.view(b, s, h, dh).transpose(1, 2)  # [B, H, S, Dh]
    kh = k.view(b, s, g, dh).transpose(1, 2).repeat_interleave(h // g, dim=1)
    vh = v.view(b, s, g, dh).transpose(1, 2).repeat_interleave(h // g, dim=1)
    scores = qh @ kh.transpose(-2, -1) / math.sqrt(dh)  # [B, H, S, S]
    if causal:
        mask = torch.ones(s, s, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(mask, float("-inf"))
    o = scores.softmax(-1) @ vh  # [B, H, S, Dh]
    return o.transpose(1, 2).reshape(b * s, h * dh)


def rope(out_dir):
    torch.manual_seed(21)
    b, s, h, dh, pos0 = 2, 5, 3, 8, 4
    x, dy = f32(b * s, h * dh), f32(b * s, h * dh)
    xd = leaf(x)
    y = rope_reference(xd, b, s, h, dh, pos0)
    y.backward(dy.double())
    safetensors_io.write(os.path.join(out_dir, "attention_rope.safetensors"),
                         {"x": x, "dy": dy, "y": out(y), "dx": out(xd.grad)},
                         {"batch": b, "seq": s, "n_heads": h, "head_dim": dh, "pos0": pos0,
                          "theta": THETA})


def attention(out_dir, name, seed, b, s, h, g, dh):
    torch.manual_seed(seed)
    q, k, v = f32(b * s, h * dh), f32(b * s, g * dh), f32(b * s, g * dh)
    dy = f32(b * s, h * dh)
    tensors = {"q": q, "k": k, "v": v, "dy": dy}
    for suffix, causal in (("_causal", True), ("_full", False)):
        qd, kd, vd = leaf(q), leaf(k), leaf(v)
        y = attention_reference(qd, kd, vd, b, s, h, g, dh, causal)
        y.backward(dy.double())
        tensors.update({f"y{suffix}": out(y), f"dq{suffix}": out(qd.grad),
                        f"dk{suffix}": out(kd.grad), f"dv{suffix}": out(vd.grad)})
    safetensors_io.write(os.path.join(out_dir, f"attention_{name}.safetensors"), tensors,
                         {"batch": b, "seq": s, "n_heads": h, "n_kv_heads": g, "head_dim": dh})


def packed_reference(q, k, v, q_lens, k_lens, h, g, dh, causal):
    """Packed sequences: q [Tq, H*Dh], k, v [Tk, G*Dh] -> o [Tq, H*Dh]. One [Tq, Tk] score
    matrix per head, a query seeing the keys of its own sequence only (and with causal, those at
    or before its position in it), so the per-sequence slicing of the C++ kernels is checked
    against a mask rather than against the same slicing."""
    q_seq = torch.repeat_interleave(torch.arange(len(q_lens)), torch.tensor(q_lens))
    k_seq = torch.repeat_interleave(torch.arange(len(k_lens)), torch.tensor(k_lens))
    q_pos = torch.cat([torch.arange(n) for n in q_lens])
    k_pos = torch.cat([torch.arange(n) for n in k_lens])
    visible = q_seq[:, None] == k_seq[None, :]
    if causal:
        visible &= k_pos[None, :] <= q_pos[:, None]
    tq, tk = q.shape[0], k.shape[0]
    qh = q.view(tq, h, dh).transpose(0, 1)  # [H, Tq, Dh]
    kh = k.view(tk, g, dh).transpose(0, 1).repeat_interleave(h // g, dim=0)
    vh = v.view(tk, g, dh).transpose(0, 1).repeat_interleave(h // g, dim=0)
    scores = (qh @ kh.transpose(-2, -1) / math.sqrt(dh)).masked_fill(~visible, float("-inf"))
    return (scores.softmax(-1) @ vh).transpose(0, 1).reshape(tq, h * dh)


def packed(out_dir, name, seed, q_lens, k_lens, h, g, dh, causal):
    torch.manual_seed(seed)
    tq, tk = sum(q_lens), sum(k_lens)
    q, k, v = f32(tq, h * dh), f32(tk, g * dh), f32(tk, g * dh)
    dy = f32(tq, h * dh)
    qd, kd, vd = leaf(q), leaf(k), leaf(v)
    y = packed_reference(qd, kd, vd, q_lens, k_lens, h, g, dh, causal)
    y.backward(dy.double())
    # A sequence without queries gets no gradient; autograd leaves its rows at zero as well.
    starts = lambda lens: ",".join(str(sum(lens[:i])) for i in range(len(lens) + 1))
    safetensors_io.write(os.path.join(out_dir, f"attention_{name}.safetensors"),
                         {"q": q, "k": k, "v": v, "dy": dy, "y": out(y), "dq": out(qd.grad),
                          "dk": out(kd.grad), "dv": out(vd.grad)},
                         {"q_starts": starts(q_lens), "k_starts": starts(k_lens), "n_heads": h,
                          "n_kv_heads": g, "head_dim": dh, "causal": int(causal)})


def generate(out_dir):
    rope(out_dir)
    # Cross-attention: decoder queries against encoder keys of other lengths, one sentence without
    # queries; then causal self-attention over sentences of different lengths.
    packed(out_dir, "packed_cross", 25, q_lens=[3, 0, 5, 1], k_lens=[4, 2, 1, 6], h=4, g=2, dh=4,
           causal=False)
    packed(out_dir, "packed_causal", 26, q_lens=[3, 1, 6], k_lens=[3, 1, 6], h=2, g=2, dh=8,
           causal=True)
    attention(out_dir, "gqa", 22, b=2, s=5, h=4, g=2, dh=4)
    attention(out_dir, "mha", 23, b=1, s=6, h=2, g=2, dh=8)
    # Past one block of 64 queries, so the fixture also covers the blocked path's seams.
    attention(out_dir, "blocks", 24, b=1, s=66, h=2, g=1, dh=8)
