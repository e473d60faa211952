"""Golden fixtures for the losses and the optimizers.

Losses (loss_*.safetensors): value and input gradient of torch.nn.functional.cross_entropy (class
weights, label smoothing, both together, ignored rows), mse_loss and huber_loss, all with
reduction="mean". Every case
is stored under a "<case>." prefix; options go in the metadata.

Optimizers (optim_*.safetensors): a small linear regression y = x·Wᵀ + b with MSE loss. At each
step the gradient is computed by autograd at PyTorch's current parameters, rounded to float32 and
stored; the C++ test feeds exactly these gradients, so both sides see the same inputs and only
the update rule is compared. W decays, b does not (its own param group with weight_decay 0, the
C++ side's ParamInfo.decay = false). Stored per step s: grad_w [S, O, I], grad_b [S, O], lr [S],
and the parameters after the step, w [S, O, I], b [S, O]; the final optimizer state too.

Everything runs in float64 from float32 inputs and is stored as float32.
"""
import math
import os

import torch
import torch.nn.functional as F

from safetensors_io import write

F64 = torch.float64


def f32(t):
    """Rounds to float32 and returns it as float64 (the exact value the C++ side reads)."""
    return t.to(torch.float32).to(F64)


def _cross_entropy(out_dir, gen):
    tensors, meta = {}, {}
    T, C = 7, 5
    weights = f32(torch.rand(C, generator=gen, dtype=F64) * 1.5 + 0.25)
    cases = [
        # name, logit scale, use weights, label smoothing, ignored rows
        ("plain", 2.0, False, 0.0, []),
        ("weighted", 2.0, True, 0.0, []),
        ("smooth", 2.0, False, 0.1, []),
        ("weighted_smooth", 2.0, True, 0.2, []),
        ("weighted_smooth_ignore", 2.0, True, 0.15, [1, 4]),
        ("ignore", 2.0, False, 0.0, [0, 6]),
        ("large_logits", 40.0, True, 0.1, [2]),
    ]
    for name, logit_scale, use_w, eps, ignored in cases:
        z = f32(torch.randn(T, C, generator=gen, dtype=F64) * logit_scale).requires_grad_()
        y = torch.randint(0, C, (T,), generator=gen)
        y[ignored] = -100
        loss = F.cross_entropy(z, y, weight=weights if use_w else None, label_smoothing=eps,
                               ignore_index=-100)
        (dz,) = torch.autograd.grad(loss, [z])
        tensors[f"{name}.logits"] = z.detach().float()
        tensors[f"{name}.targets"] = y.to(torch.int32)
        if use_w:
            tensors[f"{name}.weights"] = weights.float()
        tensors[f"{name}.loss"] = loss.detach().reshape(1).float()
        tensors[f"{name}.dlogits"] = dz.float()
        meta[f"{name}.label_smoothing"] = repr(eps)
    write(os.path.join(out_dir, "loss_cross_entropy.safetensors"), tensors, meta)


def _skip_bce_draws(gen):
    """Draws what the binary cross-entropy cases drew before moe dropped that loss, so the
    fixtures generated after this point keep their committed values."""
    for shape, use_pw in (((9,), False), ((9,), True), ((6, 4), False), ((6, 4), True),
                          ((5, 3), True)):
        torch.randn(*shape, generator=gen, dtype=F64)
        torch.rand(*shape, generator=gen, dtype=F64)
        if use_pw:
            torch.rand(1 if len(shape) == 1 else shape[1], generator=gen, dtype=F64)


def _regression(out_dir, gen):
    tensors, meta = {}, {}
    x = f32(torch.randn(6, 5, generator=gen, dtype=F64) * 1.5).requires_grad_()
    y = f32(torch.randn(6, 5, generator=gen, dtype=F64))
    tensors["pred"] = x.detach().float()
    tensors["target"] = y.float()
    loss = F.mse_loss(x, y)
    (dx,) = torch.autograd.grad(loss, [x])
    tensors["mse.loss"] = loss.detach().reshape(1).float()
    tensors["mse.dpred"] = dx.float()
    # δ = 1 and a δ that puts some residuals on each side of the kink.
    for name, delta in (("huber_1", 1.0), ("huber_0p5", 0.5), ("huber_3", 3.0)):
        loss = F.huber_loss(x, y, delta=delta)
        (dx,) = torch.autograd.grad(loss, [x])
        tensors[f"{name}.loss"] = loss.detach().reshape(1).float()
        tensors[f"{name}.dpred"] = dx.float()
        meta[f"{name}.delta"] = repr(delta)
    write(os.path.join(out_dir, "loss_regression.safetensors"), tensors, meta)


def schedule_lr(kind, base_lr, step, warmup=0, total=0, min_lr=0.0, step_size=1, gamma=0.1):
    """The schedules of include/moe/optim/schedule.h, written out independently."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    after = step - warmup
    if kind == "constant":
        return base_lr
    if kind == "cosine":
        progress = min(1.0, after / max(1, total - warmup))
        return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if kind == "step":
        return base_lr * gamma ** (after // step_size)
    raise ValueError(kind)


def _optim_run(out_dir, gen, name, make_opt, lrs, meta, state_keys, tiny_column=1.0):
    """Runs len(lrs) steps of a linear regression problem and writes optim_<name>.

    The last input column is scaled by tiny_column: set to Adam's eps, the gradients of W's last
    column are of the order of eps, where ε outside the square root (|g| + ε, not √(g² + ε)) and
    the bias corrections change the update by a large factor, so the fixture pins them down.
    """
    n_in, n_out, n_rows = 4, 3, 8
    x = torch.randn(n_rows, n_in, generator=gen, dtype=F64)
    x[:, -1] *= tiny_column
    x = f32(x)
    y = f32(torch.randn(n_rows, n_out, generator=gen, dtype=F64) * 2.0)
    # Parameters of magnitude about 1 keep the float32 storage rounding of the C++ side near
    # 6e-8 per step.
    w = f32(torch.rand(n_out, n_in, generator=gen, dtype=F64) * 1.6 - 0.8).requires_grad_()
    b = f32(torch.rand(n_out, generator=gen, dtype=F64) * 1.6 - 0.8).requires_grad_()
    tensors = {"w0": w.detach().float(), "b0": b.detach().float()}
    opt = make_opt([{"params": [w]}, {"params": [b], "weight_decay": 0.0}])
    grads_w, grads_b, ws, bs = [], [], [], []
    for lr in lrs:
        for group in opt.param_groups:
            group["lr"] = lr
        loss = ((x @ w.T + b - y) ** 2).mean()
        gw, gb = torch.autograd.grad(loss, [w, b])
        w.grad, b.grad = f32(gw), f32(gb)
        opt.step()
        grads_w.append(w.grad.clone())
        grads_b.append(b.grad.clone())
        ws.append(w.detach().clone())
        bs.append(b.detach().clone())
    tensors["grad_w"] = torch.stack(grads_w).float()
    tensors["grad_b"] = torch.stack(grads_b).float()
    tensors["lr"] = torch.tensor(lrs, dtype=F64).float()
    tensors["w"] = torch.stack(ws).float()
    tensors["b"] = torch.stack(bs).float()
    for ours, theirs in state_keys:
        tensors[f"{ours}.w"] = opt.state[w][theirs].float()
        tensors[f"{ours}.b"] = opt.state[b][theirs].float()
    meta = dict(meta, steps=len(lrs))
    write(os.path.join(out_dir, f"optim_{name}.safetensors"), tensors, meta)


def _optimizers(out_dir, gen):
    # 5 AdamW steps under warm-up + cosine decay.
    sched = dict(kind="cosine", base_lr=0.1, warmup=2, total=5, min_lr=0.01)
    lrs = [schedule_lr(step=s, **sched) for s in range(5)]
    meta = dict(lr=0.1, warmup=2, total=5, min_lr=0.01, weight_decay=0.1, beta1=0.9,
                beta2=0.999, eps=1e-8)
    _optim_run(out_dir, gen, "adamw_cosine",
               lambda g: torch.optim.AdamW(g, lr=0.1, betas=(0.9, 0.999), eps=1e-8,
                                           weight_decay=0.1),
               lrs, meta, [("adam.m", "exp_avg"), ("adam.v", "exp_avg_sq")],
               tiny_column=meta["eps"])

    # A 20-step AdamW trajectory: warm-up, cosine to a floor, other betas and eps.
    sched = dict(kind="cosine", base_lr=0.05, warmup=3, total=20, min_lr=0.005)
    lrs = [schedule_lr(step=s, **sched) for s in range(20)]
    meta = dict(lr=0.05, warmup=3, total=20, min_lr=0.005, weight_decay=0.05, beta1=0.8,
                beta2=0.99, eps=1e-6)
    _optim_run(out_dir, gen, "adamw_trajectory",
               lambda g: torch.optim.AdamW(g, lr=0.05, betas=(0.8, 0.99), eps=1e-6,
                                           weight_decay=0.05),
               lrs, meta, [("adam.m", "exp_avg"), ("adam.v", "exp_avg_sq")],
               tiny_column=meta["eps"])

    # 5 Adam steps with L2 decay added to the gradient, step-decay schedule.
    sched = dict(kind="step", base_lr=0.02, step_size=2, gamma=0.5)
    lrs = [schedule_lr(step=s, **sched) for s in range(5)]
    meta = dict(lr=0.02, step_size=2, gamma=0.5, weight_decay=0.05, beta1=0.9, beta2=0.999,
                eps=1e-8)
    _optim_run(out_dir, gen, "adam_step",
               lambda g: torch.optim.Adam(g, lr=0.02, betas=(0.9, 0.999), eps=1e-8,
                                          weight_decay=0.05),
               lrs, meta, [("adam.m", "exp_avg"), ("adam.v", "exp_avg_sq")],
               tiny_column=meta["eps"])

    # 5 SGD steps with Nesterov momentum and L2 decay, constant lr after a warm-up.
    sched = dict(kind="constant", base_lr=0.05, warmup=2)
    lrs = [schedule_lr(step=s, **sched) for s in range(5)]
    meta = dict(lr=0.05, warmup=2, weight_decay=0.01, momentum=0.9)
    _optim_run(out_dir, gen, "sgd_nesterov",
               lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.9, nesterov=True,
                                         weight_decay=0.01),
               lrs, meta, [("sgd.momentum", "momentum_buffer")])


def generate(out_dir):
    gen = torch.Generator().manual_seed(20240611)
    _cross_entropy(out_dir, gen)
    _skip_bce_draws(gen)
    _regression(out_dir, gen)
    _optimizers(out_dir, gen)
