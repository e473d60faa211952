"""Golden fixtures for the layers: Linear, EmbeddingBag, LayerNorm, RMSNorm and dropout
(tests/layers/layers_golden.cpp reads them), and for the activation kernels
(tests/ops/layer_ops.cpp).

Every fixture holds the float32 inputs and parameters, a random upstream gradient dy, and the
forward output, input gradient and every parameter gradient, computed by autograd in float64
from the float32 values. Dims: T rows, D/I/O features, V vocabulary, N ids, B bags.
"""
import os

import torch
import torch.nn.functional as F

import safetensors_io

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}

LAYER_NORM_EPS = 1e-5
RMS_NORM_EPS = 1e-6
DROPOUT_P = 0.3


def f32(*shape, scale=1.0):
    """A float32 normal sample (the stored value), scaled."""
    return (torch.randn(*shape) * scale).float()


def leaf(t):
    """The float64 autograd leaf for a stored float32 tensor."""
    return t.double().requires_grad_(True)


def backward(y, dy):
    y.backward(dy.double())


def out(t):
    return t.detach().float()


def linear(out_dir):
    torch.manual_seed(1)
    t, i, o = 4, 6, 5
    x, w, b, dy = f32(t, i), f32(o, i, scale=0.4), f32(o, scale=0.4), f32(t, o)
    tensors = {"x": x, "w": w, "b": b, "dy": dy}
    for suffix, with_bias in (("", True), ("_nobias", False)):
        xd, wd, bd = leaf(x), leaf(w), leaf(b)
        y = F.linear(xd, wd, bd if with_bias else None)
        backward(y, dy)
        tensors.update({f"y{suffix}": out(y), f"dx{suffix}": out(xd.grad),
                        f"dw{suffix}": out(wd.grad)})
        if with_bias:
            tensors["db"] = out(bd.grad)
    safetensors_io.write(os.path.join(out_dir, "layers_linear.safetensors"), tensors)


def activations(out_dir):
    torch.manual_seed(2)
    x = f32(5, 7, scale=2.0)
    x[0, 0] = 0.0  # every activation's value and slope at the origin, ReLU's kink included
    dy = f32(5, 7)
    tensors = {"x": x, "dy": dy}
    for name, fn in ACTIVATIONS.items():
        xd = leaf(x)
        y = fn(xd)
        backward(y, dy)
        tensors[f"y_{name}"] = out(y)
        tensors[f"dx_{name}"] = out(xd.grad)
    safetensors_io.write(os.path.join(out_dir, "kernels_activation.safetensors"), tensors)


def embedding_bag(out_dir):
    torch.manual_seed(5)
    v, d = 10, 6
    w = f32(v, d)
    # Bags of lengths 3, 0 (empty), 1, 4, 0 (empty, last); ids repeat within and across bags.
    ids = torch.tensor([2, 5, 2, 7, 1, 5, 9, 2], dtype=torch.int64)
    offsets = torch.tensor([0, 3, 3, 4, 8, 8], dtype=torch.int64)  # [B+1]
    weights = torch.rand(len(ids)).float() * 2.0 - 0.5  # TF-IDF-like, one negative is fine
    dy = f32(len(offsets) - 1, d)
    tensors = {"w": w, "ids": ids.int(), "offsets": offsets, "weights": weights, "dy": dy}
    for mode in ("sum", "mean", "weighted_sum"):
        wd = leaf(w)
        psw = leaf(weights) if mode == "weighted_sum" else None
        y = F.embedding_bag(ids, wd, offsets, mode="sum" if psw is not None else mode,
                            per_sample_weights=psw, include_last_offset=True)
        backward(y, dy)
        tensors[f"y_{mode}"] = out(y)
        tensors[f"dw_{mode}"] = out(wd.grad)
        if psw is not None:
            tensors[f"dweights_{mode}"] = out(psw.grad)
    safetensors_io.write(os.path.join(out_dir, "layers_embedding_bag.safetensors"), tensors)


def norms(out_dir):
    torch.manual_seed(6)
    t, d = 4, 10
    x = f32(t, d, scale=1.5) + torch.tensor([[0.0], [3.0], [-2.0], [0.5]])  # rows off centre
    gain, bias, dy = 1.0 + f32(d, scale=0.2), f32(d, scale=0.2), f32(t, d)
    tensors = {"x": x, "gain": gain, "bias": bias, "dy": dy}
    for suffix, with_bias in (("", True), ("_nobias", False)):
        xd, gd, bd = leaf(x), leaf(gain), leaf(bias)
        y = F.layer_norm(xd, (d,), gd, bd if with_bias else None, LAYER_NORM_EPS)
        backward(y, dy)
        tensors.update({f"ln_y{suffix}": out(y), f"ln_dx{suffix}": out(xd.grad),
                        f"ln_dgain{suffix}": out(gd.grad)})
        if with_bias:
            tensors["ln_dbias"] = out(bd.grad)
    xd, gd = leaf(x), leaf(gain)
    y = xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + RMS_NORM_EPS) * gd
    backward(y, dy)
    tensors.update({"rms_y": out(y), "rms_dx": out(xd.grad), "rms_dgain": out(gd.grad)})
    safetensors_io.write(os.path.join(out_dir, "layers_norm.safetensors"), tensors,
                         {"layer_norm_eps": LAYER_NORM_EPS, "rms_norm_eps": RMS_NORM_EPS})


def dropout(out_dir):
    torch.manual_seed(7)
    t, d = 6, 8
    x, dy = f32(t, d), f32(t, d)
    mask = (torch.rand(t, d) >= DROPOUT_P).to(torch.uint8)
    xd = leaf(x)
    y = xd * mask.double() / (1.0 - DROPOUT_P)
    backward(y, dy)
    safetensors_io.write(os.path.join(out_dir, "layers_dropout.safetensors"), {
        "x": x, "mask": mask, "dy": dy, "y": out(y), "dx": out(xd.grad)}, {"p": DROPOUT_P})


def generate(out_dir):
    linear(out_dir)
    activations(out_dir)
    embedding_bag(out_dir)
    norms(out_dir)
    dropout(out_dir)
