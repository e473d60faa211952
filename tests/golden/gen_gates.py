"""Golden fixtures for the gates (tests/moe/gate_golden.cpp reads them).

A gate alone is tested through L = sum_s r_s * weight_s (r from the fixture, so backward gets
dweights = r) plus weighted balancing losses; each fixture holds the float32 inputs, router
weights and noise, the expert ids and weights of the forward (ids stored as float32), the loss
values, and dL/dx and dL/dW from autograd in float64. Values are drawn well apart so that no
selection is a near tie. Dims: T tokens, D model width, E experts, K experts per token.
"""
import math
import os

import torch
import torch.nn.functional as F

import safetensors_io

NOISE_EPSILON = 1e-2  # the noisy top-k gate's floor on the noise scale
CV_EPSILON = 1e-10


def f32(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).float()


def leaf(t):
    return t.double().requires_grad_(True)


def out(t):
    return t.detach().float()


def cv_squared(v):
    mean = v.mean()
    var = ((v - mean) ** 2).mean()  # population variance, as Shazeer et al.
    return var / (mean * mean + CV_EPSILON)


def scatter_rows(ids, values, n_experts):
    """[T, K] ids and values -> dense [T, E] with zeros elsewhere."""
    dense = torch.zeros(ids.shape[0], n_experts, dtype=values.dtype)
    return dense.scatter(1, ids, values)


def topk_softmax(out_dir):
    torch.manual_seed(10)
    t, d, e, k = 7, 6, 5, 2
    x, w, r = f32(t, d), f32(e, d, scale=0.8), f32(t, k)
    tensors = {"x": x, "w": w, "r": r}
    for name in ("plain", "renorm", "after"):
        xd, wd = leaf(x), leaf(w)
        logits = xd @ wd.T
        if name == "after":
            top, ids = logits.topk(k, dim=1)
            weights = torch.softmax(top, dim=1)
        else:
            p = torch.softmax(logits, dim=1)
            weights, ids = p.topk(k, dim=1)
            if name == "renorm":
                weights = weights / weights.sum(dim=1, keepdim=True)
        (weights * r.double()).sum().backward()
        tensors.update({f"{name}_ids": ids.float(), f"{name}_weights": out(weights),
                        f"{name}_dx": out(xd.grad), f"{name}_dw": out(wd.grad)})
    safetensors_io.write(os.path.join(out_dir, "gate_topk.safetensors"), tensors)


def noisy_topk(out_dir):
    torch.manual_seed(11)
    t, d, e, k = 8, 6, 5, 2
    x, w, w_noise = f32(t, d), f32(e, d, scale=0.8), f32(e, d, scale=0.3)
    noise, r = f32(t, e), f32(t, k)
    importance_coef, load_coef = 0.5, 0.7
    xd, wd, wnd = leaf(x), leaf(w), leaf(w_noise)
    clean = xd @ wd.T
    std = F.softplus(xd @ wnd.T) + NOISE_EPSILON
    h = clean + noise.double() * std
    top, top_ids = h.topk(k + 1, dim=1)
    ids = top_ids[:, :k]
    weights = torch.softmax(top[:, :k], dim=1)
    # Load: P(expert e stays in the top k under fresh noise), thresholds from the noisy values.
    is_in = torch.zeros(t, e, dtype=torch.bool).scatter(1, ids, True)
    normal = torch.distributions.Normal(0.0, 1.0)
    prob_in = normal.cdf((clean - top[:, k:k + 1]) / std)
    prob_out = normal.cdf((clean - top[:, k - 1:k]) / std)
    load = torch.where(is_in, prob_in, prob_out).sum(dim=0)
    importance = scatter_rows(ids, weights, e).sum(dim=0)
    load_loss, importance_loss = cv_squared(load), cv_squared(importance)
    loss = (weights * r.double()).sum() + importance_coef * importance_loss + load_coef * load_loss
    loss.backward()
    safetensors_io.write(os.path.join(out_dir, "gate_noisy.safetensors"), {
        "x": x, "w": w, "w_noise": w_noise, "noise": noise, "r": r,
        "ids": ids.float(), "weights": out(weights),
        "load_loss": out(load_loss.reshape(1)), "importance_loss": out(importance_loss.reshape(1)),
        "dx": out(xd.grad), "dw": out(wd.grad), "dw_noise": out(wnd.grad),
    }, {"importance_coef": importance_coef, "load_coef": load_coef})


def switch_and_z(out_dir):
    torch.manual_seed(12)
    t, d, e, k = 9, 6, 4, 2
    x, w = f32(t, d), f32(e, d, scale=0.8)
    switch_coef, z_coef = 0.3, 0.05
    xd, wd = leaf(x), leaf(w)
    logits = xd @ wd.T
    p = torch.softmax(logits, dim=1)
    ids = logits.topk(k, dim=1).indices
    f = torch.bincount(ids.flatten(), minlength=e).double() / (t * k)  # no gradient
    switch = e * (f * p.mean(dim=0)).sum()
    z = (torch.logsumexp(logits, dim=1) ** 2).mean()
    (switch_coef * switch + z_coef * z).backward()
    safetensors_io.write(os.path.join(out_dir, "gate_switch_z.safetensors"), {
        "x": x, "w": w, "switch_loss": out(switch.reshape(1)), "z_loss": out(z.reshape(1)),
        "dx": out(xd.grad), "dw": out(wd.grad),
    }, {"switch_coef": switch_coef, "z_coef": z_coef, "k": k})


def expert_choice(out_dir):
    torch.manual_seed(13)
    t, d, e = 10, 6, 4
    capacity = math.ceil(t * 1.0 / e)  # factor 1
    x, w, r = f32(t, d), f32(e, d, scale=0.8), f32(t, e)
    xd, wd = leaf(x), leaf(w)
    p = torch.softmax(xd @ wd.T, dim=1)
    token_ids = p.topk(capacity, dim=0).indices  # [C, E]: each expert's tokens
    mask = torch.zeros(t, e, dtype=torch.bool).scatter(0, token_ids, True)
    weights = torch.where(mask, p, torch.zeros_like(p))
    (weights * r.double()).sum().backward()
    safetensors_io.write(os.path.join(out_dir, "gate_expert_choice.safetensors"), {
        "x": x, "w": w, "r": r, "mask": mask.float(), "weights": out(weights),
        "dx": out(xd.grad), "dw": out(wd.grad),
    })


def sigmoid_bias(out_dir):
    torch.manual_seed(14)
    t, d, e, k = 8, 6, 6, 2
    x, w, r = f32(t, d), f32(e, d, scale=0.8), f32(t, k)
    bias = f32(e, scale=0.5)  # big enough to change some choices
    tensors = {"x": x, "w": w, "bias": bias, "r": r}
    for name, normalise in (("norm", True), ("raw", False)):
        xd, wd = leaf(x), leaf(w)
        s = torch.sigmoid(xd @ wd.T)
        ids = (s.detach() + bias.double()).topk(k, dim=1).indices
        weights = s.gather(1, ids)
        if normalise:
            weights = weights / weights.sum(dim=1, keepdim=True)
        (weights * r.double()).sum().backward()
        tensors.update({f"{name}_ids": ids.float(), f"{name}_weights": out(weights),
                        f"{name}_dx": out(xd.grad), f"{name}_dw": out(wd.grad)})
        if normalise:  # the selection is the same in both variants
            unbiased = s.detach().topk(k, dim=1).indices
            tensors["changed_by_bias"] = (unbiased != ids).any(dim=1).float()
    safetensors_io.write(os.path.join(out_dir, "gate_sigmoid.safetensors"), tensors)


def gumbel(out_dir):
    torch.manual_seed(15)
    t, d, e = 7, 6, 5
    tau = 0.7
    x, w = f32(t, d), f32(e, d, scale=0.8)
    u = torch.rand(t, e).clamp(1e-6, 1 - 1e-6)
    g = (-torch.log(-torch.log(u))).float()
    r_soft, r_hard = f32(t, e), f32(t)
    tensors = {"x": x, "w": w, "g": g, "r_soft": r_soft, "r_hard": r_hard}
    xd, wd = leaf(x), leaf(w)
    y = torch.softmax((xd @ wd.T + g.double()) / tau, dim=1)
    (y * r_soft.double()).sum().backward()
    tensors.update({"soft_weights": out(y), "soft_dx": out(xd.grad), "soft_dw": out(wd.grad)})
    xd, wd = leaf(x), leaf(w)
    y = torch.softmax((xd @ wd.T + g.double()) / tau, dim=1)
    ids = y.argmax(dim=1, keepdim=True)
    y_hard = torch.zeros_like(y).scatter(1, ids, 1.0) - y.detach() + y  # straight-through
    (y_hard.gather(1, ids).squeeze(1) * r_hard.double()).sum().backward()
    tensors.update({"hard_ids": ids.squeeze(1).float(), "hard_dx": out(xd.grad),
                    "hard_dw": out(wd.grad)})
    safetensors_io.write(os.path.join(out_dir, "gate_gumbel.safetensors"), tensors, {"tau": tau})


def router_bias(out_dir):
    """Router logits x @ w.T + b: top-k renormalised with the Switch and z-losses, and the
    sigmoid gate (its selection bias beside the learned router bias)."""
    torch.manual_seed(16)
    t, d, e, k = 8, 6, 5, 2
    x, w, b, r = f32(t, d), f32(e, d, scale=0.8), f32(e, scale=1.5), f32(t, k)
    switch_coef, z_coef = 0.3, 0.05
    tensors = {"x": x, "w": w, "b": b, "r": r}
    xd, wd, bd = leaf(x), leaf(w), leaf(b)
    logits = xd @ wd.T + bd
    p = torch.softmax(logits, dim=1)
    weights, ids = p.topk(k, dim=1)
    weights = weights / weights.sum(dim=1, keepdim=True)
    f = torch.bincount(ids.flatten(), minlength=e).double() / (t * k)  # no gradient
    switch = e * (f * p.mean(dim=0)).sum()
    z = (torch.logsumexp(logits, dim=1) ** 2).mean()
    ((weights * r.double()).sum() + switch_coef * switch + z_coef * z).backward()
    unbiased = (xd.detach() @ wd.detach().T).topk(k, dim=1).indices
    tensors.update({"topk_ids": ids.float(), "topk_weights": out(weights),
                    "topk_dx": out(xd.grad), "topk_dw": out(wd.grad), "topk_db": out(bd.grad),
                    "changed_by_b": (unbiased != ids).any(dim=1).float()})
    selection = f32(e, scale=0.3)
    xd, wd, bd = leaf(x), leaf(w), leaf(b)
    s = torch.sigmoid(xd @ wd.T + bd)
    ids = (s.detach() + selection.double()).topk(k, dim=1).indices
    weights = s.gather(1, ids)
    weights = weights / weights.sum(dim=1, keepdim=True)
    (weights * r.double()).sum().backward()
    tensors.update({"selection": selection, "sigmoid_ids": ids.float(),
                    "sigmoid_weights": out(weights), "sigmoid_dx": out(xd.grad),
                    "sigmoid_dw": out(wd.grad), "sigmoid_db": out(bd.grad)})
    safetensors_io.write(os.path.join(out_dir, "gate_router_bias.safetensors"), tensors,
                         {"switch_coef": switch_coef, "z_coef": z_coef, "k": k})


def generate(out_dir):
    router_bias(out_dir)
    topk_softmax(out_dir)
    noisy_topk(out_dir)
    switch_and_z(out_dir)
    expert_choice(out_dir)
    sigmoid_bias(out_dir)
    gumbel(out_dir)
