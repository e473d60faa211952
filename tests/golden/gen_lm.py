"""Golden fixtures for the decoder-only MoE language model (Mixtral's architecture).

The PyTorch twin of moe's language model, written out in float64 from the float32 parameters (as
every generator here), for a C++ test that builds the same model from the metadata, loads the
parameters and compares. llm.c's test_gpt2 in spirit: parameters, inputs, logits, loss, every
gradient, and the parameters after three AdamW steps.

The model, for tokens [B, S] (rows t = b·S + s, T = B·S):

    x = embed.w[tokens]                                                   [T, D]
    each block l:
        a = RMSNorm(x; blocks.l.attn_norm.gain)
        q = a·wqᵀ [T, H·Dh], k = a·wkᵀ, v = a·wvᵀ [T, G·Dh], RoPE on q and k,
        o_h = softmax_causal(q_h k_gᵀ / √Dh) v_g with g = h // (H/G), per sequence
        x = x + concat_h(o_h)·woᵀ
        f = RMSNorm(x; blocks.l.ffn_norm.gain)
        x = x + FFN(f): dense SwiGLU w2(silu(w1 f) ⊙ w3 f) (blocks.l.ffn.*), or the MoE layer
            (blocks.l.moe.*): p = softmax(f·router.wᵀ) over E, keep the K largest (ties: lower
            index), weights p_k / Σ_kept p, y = Σ_k weight_k · expert_k(f), experts SwiGLU
    logits = RMSNorm(x; final_norm.gain) · Wᵀ, W = embed.w (tied) or head.w   [T, V]
    loss   = mean_t CE(logits_t, target_t) + Σ_MoE layers (α·switch + w·z)

    RMSNorm(x; g) = x · rsqrt(mean(x²) + eps) ⊙ g
    RoPE, interleaved pairs (2i, 2i+1), position p = s in its sequence:
        angle = p · theta^(−2i/Dh)
        x'[2i] = x[2i]·cos − x[2i+1]·sin,  x'[2i+1] = x[2i]·sin + x[2i+1]·cos

Auxiliary losses of one MoE layer, as src/moe/balance.cpp computes them (and gen_gates.py):
    switch = E · Σ_e f_e · P_e,  f_e = (slots routed to e) / (T·K), counted over all T·K slots and
             carrying no gradient;  P_e = mean_t p_{t,e} (softmax over all E experts)
    z      = mean_t (logsumexp_e l_{t,e})², l the router logits

AdamW, as src/optim/optimizer.cpp (Adam::step) does it, step t = 1, 2, 3 with g = d loss / d p:
    m = β₁·m + (1 − β₁)·g;   v = β₂·v + (1 − β₂)·g²
    p = p·(1 − η·λ) − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
λ applies to the 2-D parameters (matrices, the embedding included), not to the norm gains. The
update runs in float64 and p, m and v are rounded to float32 after each step, as the C++ side
stores them; the loss and gradients of the next step come from those float32 values.

Tensors in each fixture (float32 unless said):
    <name>            every parameter, PyTorch [out, in] layouts
    tokens, targets   [B, S] int32 (targets are the next tokens)
    logits            [B·S, V]
    loss, task_loss, aux_loss   [1]: total, mean cross-entropy, Σ α·switch + w·z
    grad.<name>       d loss / d parameter (the total loss, aux included)
    loss.step<k>      [1] the total loss before AdamW step k = 0, 1, 2
    step3.<name>      every parameter after the third step

Metadata (strings) and the fixtures' values:

    key           symbol  lm_moe_tied   lm_mixed_untied
    vocab         V       61            50
    d_model       D       32            24
    n_layers      L       2             2
    n_heads       H       4             3
    n_kv_heads    G       2             3
    context       S       9             7
    batch         B       2             3
    moe_blocks            "0,1"         "1"       (the other blocks are dense SwiGLU)
    n_experts     E       4             3
    top_k         K       2             1
    expert_hidden F       16            20
    dense_hidden  F_d     0             40
    tied_head             true          false
    switch_coef   α       0.01          0.01
    z_coef        w       0.001         0.0
    norm_eps      eps     1e-05         1e-05
    rope_theta    theta   10000.0       10000.0
    gate                  topk_softmax (renormalised)
    lr, beta1, beta2, adam_eps, weight_decay, adam_steps: 0.01, 0.9, 0.95, 1e-08, 0.1, 3
    seed                  116           228       (the draw that was kept)
    min_topk_margin       0.00201275    0.0227106 (smallest top-k probability gap of the run)

lm_mixed_untied routes top-1 of 3: the renormalised weight is exactly 1, so no task gradient
reaches its router (only the Switch loss's), as in the C++ model; lm_moe_tied covers the top-2
renormalised gradient.

Parameters are drawn from the fixture's seed: matrices N(0, 1/in) (the embedding and the router
too: with N(0, 1) the router logits have a spread of √D, the softmax saturates and in thousands
of draws some token always had its K-th and (K+1)-th probabilities within 1e-4), gains
1 + N(0, 0.1²); then the tokens. A draw is kept only when, in every forward of the run (before
and after each step), every token's K-th and (K+1)-th router probabilities differ by more than
MIN_MARGIN, so float32 picks the same experts, and every nonzero gradient entry of every step
exceeds MIN_GRADIENT in size, since Adam's first update η·g/(|g| + ε) swings with the rounding
of g when |g| nears ε; otherwise the seed moves on. The seeds in FIXTURES were picked among
sixty tried for a wide gap and a small float32 drift after three steps (one passing seed drifts
7e-5 on a parameter whose gradient is 1e-7). Before writing, autograd's task-loss gradient is
checked against finite differences (1e-6 relative), the AdamW step against torch.optim.AdamW,
and the whole run is replayed in float32 to print how close a float32 implementation lands
(about 1e-6 relative on logits and gradients, 1e-6 absolute on step3).
"""
import math
import os

import torch
import torch.nn.functional as F

import safetensors_io

F64 = torch.float64
NORM_EPS = 1e-5
ROPE_THETA = 10000.0
MIN_MARGIN = 1e-3  # smallest allowed gap between the K-th and (K+1)-th router probability
MIN_GRADIENT = 1e-7  # smallest allowed nonzero |gradient| entry (100 Adam eps)
ADAMW = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1}
N_STEPS = 3
FD_STEP = 5e-4
FD_RTOL = 1e-6
FD_MIN_GRADIENT = 1e-4

FIXTURES = [
    {"name": "lm_moe_tied", "vocab": 61, "d_model": 32, "n_layers": 2, "n_heads": 4,
     "n_kv_heads": 2, "context": 9, "batch": 2, "moe_blocks": (0, 1), "n_experts": 4, "top_k": 2,
     "expert_hidden": 16, "dense_hidden": 0, "tied_head": True, "switch_coef": 0.01,
     "z_coef": 0.001, "seed": 116},
    {"name": "lm_mixed_untied", "vocab": 50, "d_model": 24, "n_layers": 2, "n_heads": 3,
     "n_kv_heads": 3, "context": 7, "batch": 3, "moe_blocks": (1,), "n_experts": 3, "top_k": 1,
     "expert_hidden": 20, "dense_hidden": 40, "tied_head": False, "switch_coef": 0.01,
     "z_coef": 0.0, "seed": 228},
]


def f32(t):
    """Rounds to float32 and returns it as float64 (the exact value the C++ side holds)."""
    return t.float().double()


def param_shapes(c):
    """Every parameter's name and [out, in] shape, in the model's order."""
    d, dh = c["d_model"], c["d_model"] // c["n_heads"]
    shapes = {"embed.w": (c["vocab"], d)}
    for layer in range(c["n_layers"]):
        b = f"blocks.{layer}"
        shapes[b + ".attn_norm.gain"] = (d,)
        shapes[b + ".attn.wq"] = (c["n_heads"] * dh, d)
        shapes[b + ".attn.wk"] = (c["n_kv_heads"] * dh, d)
        shapes[b + ".attn.wv"] = (c["n_kv_heads"] * dh, d)
        shapes[b + ".attn.wo"] = (d, c["n_heads"] * dh)
        shapes[b + ".ffn_norm.gain"] = (d,)
        if layer in c["moe_blocks"]:
            shapes[b + ".moe.router.w"] = (c["n_experts"], d)
            experts = [f"{b}.moe.experts.{e}" for e in range(c["n_experts"])]
            hidden = c["expert_hidden"]
        else:
            experts, hidden = [b + ".ffn"], c["dense_hidden"]
        for prefix in experts:
            shapes[prefix + ".w1"] = (hidden, d)
            shapes[prefix + ".w2"] = (d, hidden)
            shapes[prefix + ".w3"] = (hidden, d)
    shapes["final_norm.gain"] = (d,)
    if not c["tied_head"]:
        shapes["head.w"] = (c["vocab"], d)
    return shapes


def init_params(c, gen):
    """float32 values rounded into float64, by name."""
    params = {}
    for name, shape in param_shapes(c).items():
        z = torch.randn(*shape, generator=gen, dtype=F64)
        if len(shape) == 1:
            value = 1.0 + 0.1 * z
        else:
            value = z / math.sqrt(shape[1])
        params[name] = f32(value)
    return params


def rms_norm(x, gain):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + NORM_EPS) * gain


def rope(x):
    """x [B, n, S, Dh]: rotates the pairs (2i, 2i+1) by s · theta^(−2i/Dh)."""
    s_n, dh = x.shape[2], x.shape[3]
    inv_freq = ROPE_THETA ** (-torch.arange(0, dh, 2, dtype=F64) / dh)  # [Dh/2]
    angle = torch.outer(torch.arange(s_n, dtype=F64), inv_freq).to(x.dtype)  # [S, Dh/2]
    cos, sin = angle.cos(), angle.sin()
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((x_even * cos - x_odd * sin, x_even * sin + x_odd * cos), -1).flatten(-2)


def attention(p, prefix, x, c):
    """x [B, S, D] -> [B, S, D]: causal grouped-query attention with RoPE."""
    b_n, s_n, _ = x.shape
    h_n, g_n = c["n_heads"], c["n_kv_heads"]
    dh = c["d_model"] // h_n
    q = F.linear(x, p[prefix + ".wq"]).view(b_n, s_n, h_n, dh).transpose(1, 2)  # [B, H, S, Dh]
    k = F.linear(x, p[prefix + ".wk"]).view(b_n, s_n, g_n, dh).transpose(1, 2)  # [B, G, S, Dh]
    v = F.linear(x, p[prefix + ".wv"]).view(b_n, s_n, g_n, dh).transpose(1, 2)  # [B, G, S, Dh]
    q, k = rope(q), rope(k)
    # Query head h reads kv head h // (H/G).
    k = k.repeat_interleave(h_n // g_n, dim=1)  # [B, H, S, Dh]
    v = v.repeat_interleave(h_n // g_n, dim=1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(dh)  # [B, H, S, S]
    future = torch.triu(torch.ones(s_n, s_n, dtype=torch.bool), 1)
    att = scores.masked_fill(future, float("-inf")).softmax(-1)
    o = (att @ v).transpose(1, 2).reshape(b_n, s_n, h_n * dh)
    return F.linear(o, p[prefix + ".wo"])


def swiglu(p, prefix, x):
    return F.linear(F.silu(F.linear(x, p[prefix + ".w1"])) * F.linear(x, p[prefix + ".w3"]),
                    p[prefix + ".w2"])


def moe_ffn(p, prefix, x, c):
    """x [T, D] -> (y [T, D], α·switch + w·z, smallest top-k probability gap, ids [T, K])."""
    t_n, e_n, k = x.shape[0], c["n_experts"], c["top_k"]
    logits = F.linear(x, p[prefix + ".router.w"])  # [T, E]
    probs = logits.softmax(-1)
    # Select on the logits, as the C++ gate does; the margin is checked on the probabilities.
    ids = logits.topk(k, dim=-1).indices  # [T, K], best first
    margin = math.inf
    if k < e_n:
        top = probs.detach().topk(k + 1, dim=-1).values
        margin = (top[:, k - 1] - top[:, k]).min().item()
    kept = probs.gather(1, ids)
    weights = kept / kept.sum(-1, keepdim=True)  # [T, K]
    y = torch.zeros_like(x)
    for e in range(e_n):
        weight = (weights * (ids == e)).sum(-1, keepdim=True)  # [T, 1], 0 where not routed
        y = y + weight * swiglu(p, f"{prefix}.experts.{e}", x)
    f = torch.bincount(ids.flatten(), minlength=e_n).to(x.dtype) / (t_n * k)  # no gradient
    switch = e_n * (f * probs.mean(0)).sum()
    z = (torch.logsumexp(logits, -1) ** 2).mean()
    return y, c["switch_coef"] * switch + c["z_coef"] * z, margin, ids


def forward(p, tokens, targets, c):
    """Logits [T, V], task loss, aux loss, the smallest top-k gap and each MoE layer's ids."""
    b_n, s_n = tokens.shape
    d = c["d_model"]
    x = p["embed.w"][tokens.long()]  # [B, S, D]
    aux = torch.zeros((), dtype=x.dtype)
    margin, routes = math.inf, []
    for layer in range(c["n_layers"]):
        b = f"blocks.{layer}"
        x = x + attention(p, b + ".attn", rms_norm(x, p[b + ".attn_norm.gain"]), c)
        h = rms_norm(x, p[b + ".ffn_norm.gain"]).reshape(b_n * s_n, d)
        if layer in c["moe_blocks"]:
            y, layer_aux, layer_margin, ids = moe_ffn(p, b + ".moe", h, c)
            routes.append(ids)
            aux = aux + layer_aux
            margin = min(margin, layer_margin)
        else:
            y = swiglu(p, b + ".ffn", h)
        x = x + y.view(b_n, s_n, d)
    head = p["embed.w"] if c["tied_head"] else p["head.w"]
    logits = F.linear(rms_norm(x, p["final_norm.gain"]).reshape(b_n * s_n, d), head)
    task = F.cross_entropy(logits, targets.reshape(-1).long())
    return logits, task, aux, margin, routes


def loss_and_grads(values, tokens, targets, c, dtype=F64):
    """Logits, task and aux loss, top-k gap, and d loss / d p (as float64) at these values."""
    leaves = {n: v.to(dtype, copy=True).requires_grad_(True) for n, v in values.items()}
    logits, task, aux, margin, _ = forward(leaves, tokens, targets, c)
    grads = torch.autograd.grad(task + aux, list(leaves.values()))
    return (logits.detach().double(), task.item(), aux.item(), margin,
            {n: g.double() for n, g in zip(values, grads)})


def adamw_step(values, grads, state, t):
    """One AdamW step in float64 (src/optim/optimizer.cpp, Adam::step); p, m, v kept in float32."""
    lr, beta1, beta2 = ADAMW["lr"], ADAMW["beta1"], ADAMW["beta2"]
    step_size = lr / (1.0 - beta1 ** t)
    inv_bc2_sqrt = 1.0 / math.sqrt(1.0 - beta2 ** t)
    for name, p in values.items():
        g = grads[name]
        m, v = state.setdefault(name, (torch.zeros_like(p), torch.zeros_like(p)))
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * g * g
        wd = ADAMW["weight_decay"] if p.dim() == 2 else 0.0
        p = p * (1.0 - lr * wd) - step_size * m / (v.sqrt() * inv_bc2_sqrt + ADAMW["eps"])
        values[name] = f32(p)
        state[name] = (f32(m), f32(v))


def check_adamw_against_torch(values, grads):
    """adamw_step without the float32 rounding is torch.optim.AdamW (decay on 2-D only)."""
    ours = {n: v.clone() for n, v in values.items()}
    state = {}
    theirs = {n: v.clone().requires_grad_(True) for n, v in values.items()}
    opt = torch.optim.AdamW(
        [{"params": [p for p in theirs.values() if p.dim() == 2]},
         {"params": [p for p in theirs.values() if p.dim() != 2], "weight_decay": 0.0}],
        lr=ADAMW["lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"],
        weight_decay=ADAMW["weight_decay"])
    for t in (1, 2):
        for name, p in theirs.items():
            p.grad = grads[name] * t  # any gradients do; two steps exercise the moments
        opt.step()
        scaled = {n: g * t for n, g in grads.items()}
        adamw_step(ours, scaled, state, t)
    for name in values:
        diff = (ours[name] - theirs[name].detach()).abs().max().item()
        assert diff < 1e-6, f"AdamW differs from torch.optim.AdamW on {name}: {diff}"


def check_finite_differences(values, tokens, targets, c, gen):
    """The task loss's autograd gradient against finite differences on three entries.

    Three parameters drawn at random, in each an entry drawn at random among those with
    |gradient| ≥ FD_MIN_GRADIENT (below it float64 rounding of the loss, about 1e-12 after the
    division by h, would exceed the relative tolerance). The five-point stencil
    (8(L(h) − L(−h)) − (L(2h) − L(−2h))) / 12h has error O(h⁴); the routing is checked to be the
    same at every shifted point."""
    leaves = {n: v.clone().requires_grad_(True) for n, v in values.items()}
    _, task, _, _, routes = forward(leaves, tokens, targets, c)
    grads = dict(zip(values, torch.autograd.grad(task, list(leaves.values()))))
    names = [n for n in values if (grads[n].abs() >= FD_MIN_GRADIENT).any()]
    picks = torch.randperm(len(names), generator=gen)[:3].tolist()
    for name in (names[i] for i in picks):
        candidates = (grads[name].reshape(-1).abs() >= FD_MIN_GRADIENT).nonzero().flatten()
        i = int(candidates[torch.randint(candidates.numel(), (1,), generator=gen)])
        loss = {}
        for shift in (-2, -1, 1, 2):
            shifted = dict(values)
            shifted[name] = values[name].clone()
            shifted[name].view(-1)[i] += shift * FD_STEP
            with torch.no_grad():
                _, task, _, _, shifted_routes = forward(shifted, tokens, targets, c)
            assert all(torch.equal(a, b) for a, b in zip(routes, shifted_routes)), \
                f"{c['name']}: shifting {name}[{i}] changes the routing"
            loss[shift] = task.item()
        fd = (8 * (loss[1] - loss[-1]) - (loss[2] - loss[-2])) / (12 * FD_STEP)
        ag = grads[name].reshape(-1)[i].item()
        assert abs(fd - ag) <= FD_RTOL * abs(ag), \
            f"{c['name']}: {name}[{i}] autograd {ag} vs finite difference {fd}"
        print(f"  {name}[{i}]: autograd {ag:.12e}, finite difference {fd:.12e}")


def trajectory(values, tokens, targets, c, dtype=F64):
    """Forward and backward before each of the N_STEPS AdamW steps, and the values after them.

    dtype is the arithmetic of forward and backward; the update is always float64 rounded to
    float32, so dtype=float32 replays what the C++ side does."""
    values, state, steps = dict(values), {}, []
    for step in range(N_STEPS):
        steps.append(loss_and_grads(values, tokens, targets, c, dtype))
        adamw_step(values, steps[-1][4], state, step + 1)
    margin = min(s[3] for s in steps)
    with torch.no_grad():
        margin = min(margin, forward(values, tokens, targets, c)[3])
    return steps, values, margin


def smallest_gradient(steps):
    """The smallest nonzero |g| of every step: Adam's first update lr·g/(|g| + ε) swings with
    float32 rounding when |g| nears ε, so a draw keeps it well above."""
    return min(g.abs()[g != 0].min().item() for s in steps for g in s[4].values()
               if (g != 0).any())


def draw(c, seed):
    gen = torch.Generator().manual_seed(seed)
    values = init_params(c, gen)
    ids = torch.randint(c["vocab"], (c["batch"], c["context"] + 1), generator=gen)
    return values, ids[:, :-1].to(torch.int32), ids[:, 1:].to(torch.int32), gen


def write_fixture(out_dir, c):
    seed = c["seed"]
    while True:
        values, tokens, targets, gen = draw(c, seed)
        steps, final, margin = trajectory(values, tokens, targets, c)
        g_min = smallest_gradient(steps)
        if margin > MIN_MARGIN and g_min > MIN_GRADIENT:
            break
        print(f"  seed {seed}: top-k gap {margin:.2e}, smallest |g| {g_min:.2e}, drawing again")
        seed += 1
    check_finite_differences(values, tokens, targets, c, gen)
    check_adamw_against_torch(values, steps[0][4])
    logits, task, aux, _, grads = steps[0]
    tensors = {n: v.float() for n, v in values.items()}
    tensors["tokens"], tensors["targets"] = tokens, targets
    tensors["logits"] = logits.float()
    tensors["loss"] = torch.tensor([task + aux]).float()
    tensors["task_loss"] = torch.tensor([task]).float()
    tensors["aux_loss"] = torch.tensor([aux]).float()
    tensors.update((f"grad.{n}", g.float()) for n, g in grads.items())
    for k, s in enumerate(steps):
        tensors[f"loss.step{k}"] = torch.tensor([s[1] + s[2]]).float()
    tensors.update((f"step{N_STEPS}.{n}", v.float()) for n, v in final.items())
    meta = {k: c[k] for k in ("vocab", "d_model", "n_layers", "n_heads", "n_kv_heads", "context",
                              "batch", "n_experts", "top_k", "expert_hidden", "dense_hidden",
                              "switch_coef", "z_coef")}
    meta.update({"moe_blocks": ",".join(str(b) for b in c["moe_blocks"]),
                 "tied_head": "true" if c["tied_head"] else "false",
                 "norm_eps": NORM_EPS, "rope_theta": ROPE_THETA,
                 "gate": "topk_softmax", "renormalize": "true",
                 "lr": ADAMW["lr"], "beta1": ADAMW["beta1"], "beta2": ADAMW["beta2"],
                 "adam_eps": ADAMW["eps"], "weight_decay": ADAMW["weight_decay"],
                 "adam_steps": N_STEPS, "seed": seed, "min_topk_margin": f"{margin:.6g}"})
    path = os.path.join(out_dir, c["name"] + ".safetensors")
    safetensors_io.write(path, tensors, meta)
    print(f"  {c['name']}: seed {seed}, loss {task + aux:.6f}, smallest top-{c['top_k']} gap "
          f"{margin:.4g}, smallest |g| {g_min:.2e}, {os.path.getsize(path)} bytes")
    report_float32_replay(values, tokens, targets, c, tensors)


def report_float32_replay(values, tokens, targets, c, tensors):
    """Runs the same steps in float32 and prints how far it lands from the fixture: a guide to
    the tolerances a float32 implementation can meet."""
    steps, final, _ = trajectory(values, tokens, targets, c, torch.float32)
    print_replay(steps, final, tensors)


def print_replay(steps, final, tensors):
    """How far a float32 trajectory (steps, final parameters) lands from the fixture's tensors."""
    logits, task, aux, _, grads = steps[0]

    def rel(a, b):  # max |a − b| relative to max |b|
        b = b.double()
        return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()

    grad_rel = max(rel(g, tensors["grad." + n]) for n, g in grads.items())
    drift = max((v - tensors[f"step{N_STEPS}." + n].double()).abs().max().item()
                for n, v in final.items())
    print(f"    float32 replay: logits {rel(logits, tensors['logits']):.1e} rel, "
          f"loss {abs(task + aux - tensors['loss'].item()):.1e}, "
          f"gradients {grad_rel:.1e} rel, step{N_STEPS} {drift:.1e}")


def generate(out_dir):
    torch.set_num_threads(1)
    for c in FIXTURES:
        write_fixture(out_dir, c)
