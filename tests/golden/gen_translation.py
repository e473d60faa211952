"""Golden fixtures for the encoder-decoder MoE translation model.

The PyTorch twin of moe's translation model (model/translation_model.h), in float64 from the
float32 parameters, as gen_lm.py is for the language model (whose pieces it imports: RMSNorm,
RoPE, SwiGLU, the MoE layer and its losses, AdamW; and gen_attention.py's packed_reference):
parameters, inputs, logits, loss, every gradient, and the parameters after three AdamW steps.

The model, for B sentence pairs packed without padding: src_tokens [Ts] (each source sentence,
eos included, one after another, sentence b in rows src_starts[b] .. src_starts[b+1]), tgt_in [Tt]
(each target sentence as bos + its tokens) and tgt_out [Tt] (its tokens + eos, the labels), target
sentence b in rows tgt_starts[b] .. tgt_starts[b+1]:

    encoder:
    x = embed.w[src_tokens]                                               [Ts, D]
    each block l = 0 .. Le−1:
        a = RMSNorm(x; encoder.l.attn_norm.gain)
        q = a·wqᵀ [Ts, H·Dh], k = a·wkᵀ, v = a·wvᵀ [Ts, G·Dh] (encoder.l.attn.*), RoPE on q and k
            with p = the token's position in its own sentence (0 at every sentence's start)
        o_h = softmax(q_h k_gᵀ / √Dh) v_g with g = h // (H/G), keys of the query's sentence only
        x = x + concat_h(o_h)·woᵀ
        f = RMSNorm(x; encoder.l.ffn_norm.gain)
        x = x + FFN(f): dense SwiGLU w2(silu(w1 f) ⊙ w3 f) (encoder.l.ffn.*), or the MoE layer
            (encoder.l.moe.*): p = softmax(f·router.wᵀ) over E, keep the K largest (ties: lower
            index), y = Σ_k weight_k · expert_k(f), experts SwiGLU; weight_k = p_k / Σ_kept p
            (renormalised, K > 1) or p_k (K = 1)
    m = RMSNorm(x; encoder_norm.gain)                                     [Ts, D], the memory

    decoder:
    y = embed.w[tgt_in]                                                   [Tt, D]
    each block l = 0 .. Ld−1:
        self-attention as the encoder's (decoder.l.attn_norm.gain, decoder.l.attn.*), but causal
            within each target sentence, RoPE position p = position in the target sentence
        c = RMSNorm(y; decoder.l.cross_norm.gain)
        q = c·cross.wqᵀ [Tt, H·Dh]; k = m·cross.wkᵀ, v = m·cross.wvᵀ [Ts, G·Dh], no RoPE
        o_h = softmax(q_h k_gᵀ / √Dh) v_g, target sentence b's queries over source sentence b's keys
        y = y + concat_h(o_h)·cross.woᵀ
        FFN sub-block as the encoder's (decoder.l.ffn_norm.gain, decoder.l.ffn.* or .moe.*)
    logits = RMSNorm(y; final_norm.gain) · Wᵀ, W = embed.w (tied) or head.w   [Tt, V]
    loss   = mean over the Tt target tokens of CE(logits_t, tgt_out_t)
             + Σ_MoE layers, encoder's then decoder's, (α·switch + w·z)

    RMSNorm, RoPE (interleaved pairs, theta^(−2i/Dh)), the Switch and z losses and AdamW are
    gen_lm.py's, each MoE layer's losses over its own rows (Ts for the encoder's, Tt for the
    decoder's). AdamW decays the 2-D parameters only; p, m and v are rounded to float32 after each
    step, and the next step's loss and gradients come from those float32 values.

Parameters, in this order: embed.w; each encoder block's attn_norm.gain, attn.wq, .wk, .wv, .wo,
ffn_norm.gain, then ffn.w1, .w2, .w3 or moe.router.w, moe.experts.<e>.w1, .w2, .w3; encoder_norm.gain;
each decoder block's attn_norm.gain, attn.*, cross_norm.gain, cross.wq, .wk, .wv, .wo,
ffn_norm.gain, ffn.* or moe.*; final_norm.gain; head.w (untied only). Shapes [out, in]: wq, cross.wq
[H·Dh, D], wk, wv [G·Dh, D], wo [D, H·Dh], router.w [E, D], w1, w3 [F, D], w2 [D, F].

Tensors in each fixture (float32 unless said):
    <name>                      every parameter
    src_tokens [Ts], tgt_in [Tt], tgt_out [Tt]   int32
    logits                      [Tt, V]
    loss, task_loss, aux_loss   [1]: total, mean cross-entropy, Σ α·switch + w·z
    grad.<name>                 d loss / d parameter (the total loss, aux included)
    loss.step<k>                [1] the total loss before AdamW step k = 0, 1, 2
    step3.<name>                every parameter after the third step

Metadata (strings) and the fixtures' values:

    key                 symbol  translation_moe_tied   translation_mixed_untied
    vocab               V       53                     41
    d_model             D       32                     24
    encoder_layers      Le      2                      1
    decoder_layers      Ld      2                      2
    n_heads             H       4                      3
    n_kv_heads          G       2                      3
    encoder_moe_blocks          "1"                    "0"      (the others: dense SwiGLU)
    decoder_moe_blocks          "0,1"                  "1"
    n_experts           E       4                      3
    k                   K       2                      1
    hidden              F       16                     12       (expert hidden width)
    ffn_hidden          F_d     24                     20       (dense FFN hidden width)
    tied                        "1"                    "0"
    src_starts                  "0,5,7,14"             "0,3,11"
    tgt_starts                  "0,4,10,11"            "0,5,7"
    switch_coef         α       0.01                   0.01
    z_coef              w       0.001                  0.0
    norm_eps            eps     1e-05                  1e-05
    rope_theta          theta   10000.0                10000.0
    gate                        topk_softmax
    renormalize                 "1"                    "0"      (K = 1 weighs by p itself)
    bos, eos                    1, 2
    lr, beta1, beta2, adam_eps, weight_decay, adam_steps: 0.01, 0.9, 0.95, 1e-08, 0.1, 3
    seed                        18                     25       (the draw that was kept)
    min_topk_margin             0.00252                0.0187513 (smallest top-k gap of the run)

translation_moe_tied covers top-2 renormalised routing, a dense encoder block and the z loss;
translation_mixed_untied top-1 weighed by the gate probability (so the task loss reaches its
routers), full MHA, an untied head and a target sentence of bos alone.

Parameters are drawn from the seed as gen_lm.py draws them (matrices N(0, 1/in), gains
1 + N(0, 0.1²)), then the tokens: each sentence's words uniform over 3 .. V−1 (0, 1 = bos and
2 = eos appear only where they belong), the source sentence ending in eos, tgt_in = bos + words,
tgt_out = words + eos. A draw is kept when every top-k gap of the run exceeds MIN_MARGIN (as
gen_lm.py) and every nonzero Adam denominator √v̂ of the three steps exceeds MIN_GRADIENT,
otherwise the seed moves on. gen_lm.py asks every nonzero |gradient| of every step to exceed
MIN_GRADIENT; translation_moe_tied (41,632 parameters, 11 to 14 tokens per side) met that in
none of its first 400 draws, some entry always passing within 1e-7 of zero by chance. √v̂ equals
|g| at the first step and keeps the earlier gradients later, so it bounds what matters: the
update's sensitivity to the rounding of g. The seeds in FIXTURES were picked among 400 (tied) and
60 (mixed) tried for a wide gap, a large √v̂ and a small float32 drift (seed 18: √v̂ ≥ 2.1e-7,
though one |g| is 7e-10 at a later step; seed 25: √v̂ ≥ 1.4e-6). Before writing, autograd's
task-loss gradient is checked against finite differences (1e-6 relative) on an entry of an
encoder parameter, of a cross-attention parameter and of one more, the AdamW step against
torch.optim.AdamW, and the whole run is replayed in float32 to print how close a float32
implementation lands (about 3e-6 relative on gradients, 5e-7 on logits, 2.4e-6 and 8e-7
absolute on step3).
"""
import math
import os

import torch
import torch.nn.functional as F

import gen_lm
import safetensors_io
from gen_attention import packed_reference
from gen_lm import (ADAMW, F64, FD_MIN_GRADIENT, FD_RTOL, FD_STEP, MIN_GRADIENT, MIN_MARGIN,
                    N_STEPS, NORM_EPS, ROPE_THETA, adamw_step, check_adamw_against_torch, f32,
                    moe_ffn, print_replay, rms_norm, rope, smallest_gradient, swiglu)

BOS, EOS = 1, 2

# Key names as gen_lm.py's config where its functions read them (n_experts, top_k, switch_coef,
# z_coef, expert_hidden, dense_hidden, tied_head); renormalize is this module's own.
FIXTURES = [
    {"name": "translation_moe_tied", "vocab": 53, "d_model": 32, "encoder_layers": 2,
     "decoder_layers": 2, "n_heads": 4, "n_kv_heads": 2, "encoder_moe_blocks": (1,),
     "decoder_moe_blocks": (0, 1), "n_experts": 4, "top_k": 2, "renormalize": True,
     "expert_hidden": 16, "dense_hidden": 24, "tied_head": True, "switch_coef": 0.01,
     "z_coef": 0.001, "src_lens": [5, 2, 7], "tgt_lens": [4, 6, 1], "seed": 18},
    {"name": "translation_mixed_untied", "vocab": 41, "d_model": 24, "encoder_layers": 1,
     "decoder_layers": 2, "n_heads": 3, "n_kv_heads": 3, "encoder_moe_blocks": (0,),
     "decoder_moe_blocks": (1,), "n_experts": 3, "top_k": 1, "renormalize": False,
     "expert_hidden": 12, "dense_hidden": 20, "tied_head": False, "switch_coef": 0.01,
     "z_coef": 0.0, "src_lens": [3, 8], "tgt_lens": [5, 2], "seed": 25},
]


def param_shapes(c):
    """Every parameter's name and [out, in] shape, in the model's order; the blocks are
    gen_lm.param_shapes's, renamed, with the decoder's cross-attention added."""
    d = c["d_model"]
    shapes = {"embed.w": (c["vocab"], d)}
    for side in ("encoder", "decoder"):
        stack = dict(c, n_layers=c[side + "_layers"], moe_blocks=c[side + "_moe_blocks"])
        for name, shape in gen_lm.param_shapes(stack).items():
            if not name.startswith("blocks."):
                continue
            name = side + name[len("blocks"):]
            if side == "decoder" and name.endswith(".ffn_norm.gain"):
                block = name[:-len(".ffn_norm.gain")]
                shapes[block + ".cross_norm.gain"] = (d,)
                for w in ("wq", "wk", "wv", "wo"):
                    shapes[f"{block}.cross.{w}"] = shapes[f"{block}.attn.{w}"]
            shapes[name] = shape
        shapes[side + "_norm.gain" if side == "encoder" else "final_norm.gain"] = (d,)
    if not c["tied_head"]:
        shapes["head.w"] = (c["vocab"], d)
    return shapes


def init_params(c, gen):
    """float32 values rounded into float64, by name, drawn as gen_lm.init_params draws them."""
    params = {}
    for name, shape in param_shapes(c).items():
        z = torch.randn(*shape, generator=gen, dtype=F64)
        params[name] = f32(1.0 + 0.1 * z if len(shape) == 1 else z / shape[1] ** 0.5)
    return params


def starts(lens):
    return ",".join(str(sum(lens[:i])) for i in range(len(lens) + 1))


def rope_packed(x, lens, n, dh):
    """x [T, n·Dh] of sentences one after another: gen_lm.rope on each, positions from 0."""
    out = []
    for piece in x.split(lens):
        s = piece.view(1, len(piece), n, dh).transpose(1, 2)  # [1, n, S, Dh]
        out.append(rope(s).transpose(1, 2).reshape(len(piece), n * dh))
    return torch.cat(out)


def attention(p, prefix, xq, xkv, q_lens, k_lens, c, causal, rotary):
    """Packed grouped-query attention: queries from xq [Tq, D], keys and values from xkv."""
    h_n, g_n = c["n_heads"], c["n_kv_heads"]
    dh = c["d_model"] // h_n
    q = F.linear(xq, p[prefix + ".wq"])  # [Tq, H·Dh]
    k = F.linear(xkv, p[prefix + ".wk"])  # [Tk, G·Dh]
    v = F.linear(xkv, p[prefix + ".wv"])
    if rotary:
        q, k = rope_packed(q, q_lens, h_n, dh), rope_packed(k, k_lens, g_n, dh)
    o = packed_reference(q, k, v, q_lens, k_lens, h_n, g_n, dh, causal)
    return F.linear(o, p[prefix + ".wo"])


def moe(p, prefix, x, c):
    """gen_lm.moe_ffn, whose weights are always p_k / Σ_kept p; without renormalize the output
    is scaled by Σ_kept p, which makes each weight p_k (for K = 1, p instead of 1)."""
    y, aux, margin, ids = moe_ffn(p, prefix, x, c)
    if not c["renormalize"]:
        probs = F.linear(x, p[prefix + ".router.w"]).softmax(-1)
        y = y * probs.gather(1, ids).sum(-1, keepdim=True)
    return y, aux, margin, ids


def ffn_block(p, block, x, is_moe, c, acc):
    """x + FFN(RMSNorm(x)); acc collects the aux loss, the smallest top-k gap and the routes."""
    f = rms_norm(x, p[block + ".ffn_norm.gain"])
    if not is_moe:
        return x + swiglu(p, block + ".ffn", f)
    y, aux, margin, ids = moe(p, block + ".moe", f, c)
    acc["aux"] = acc["aux"] + aux
    acc["margin"] = min(acc["margin"], margin)
    acc["routes"].append(ids)
    return x + y


def forward(p, batch, c):
    """Logits [Tt, V], task loss, aux loss, the smallest top-k gap and each MoE layer's ids."""
    src_lens, tgt_lens = c["src_lens"], c["tgt_lens"]
    x = p["embed.w"][batch["src_tokens"].long()]  # [Ts, D]
    acc = {"aux": torch.zeros((), dtype=x.dtype), "margin": float("inf"), "routes": []}
    for layer in range(c["encoder_layers"]):
        b = f"encoder.{layer}"
        a = rms_norm(x, p[b + ".attn_norm.gain"])
        x = x + attention(p, b + ".attn", a, a, src_lens, src_lens, c, False, True)
        x = ffn_block(p, b, x, layer in c["encoder_moe_blocks"], c, acc)
    memory = rms_norm(x, p["encoder_norm.gain"])  # [Ts, D]
    y = p["embed.w"][batch["tgt_in"].long()]  # [Tt, D]
    for layer in range(c["decoder_layers"]):
        b = f"decoder.{layer}"
        a = rms_norm(y, p[b + ".attn_norm.gain"])
        y = y + attention(p, b + ".attn", a, a, tgt_lens, tgt_lens, c, True, True)
        q = rms_norm(y, p[b + ".cross_norm.gain"])
        y = y + attention(p, b + ".cross", q, memory, tgt_lens, src_lens, c, False, False)
        y = ffn_block(p, b, y, layer in c["decoder_moe_blocks"], c, acc)
    head = p["embed.w"] if c["tied_head"] else p["head.w"]
    logits = F.linear(rms_norm(y, p["final_norm.gain"]), head)  # [Tt, V]
    task = F.cross_entropy(logits, batch["tgt_out"].long())
    return logits, task, acc["aux"], acc["margin"], acc["routes"]


def loss_and_grads(values, batch, c, dtype=F64):
    """gen_lm.loss_and_grads for this forward: logits, task, aux, top-k gap, d loss / d p."""
    leaves = {n: v.to(dtype, copy=True).requires_grad_(True) for n, v in values.items()}
    logits, task, aux, margin, _ = forward(leaves, batch, c)
    grads = torch.autograd.grad(task + aux, list(leaves.values()))
    return (logits.detach().double(), task.item(), aux.item(), margin,
            {n: g.double() for n, g in zip(values, grads)})


def smallest_denominator(state, t):
    """The smallest nonzero √v̂ = √(v / (1 − β₂ᵗ)) after step t: Adam's update m̂ / (√v̂ + ε)
    swings with the rounding of g when √v̂ nears ε. After the first step it is min |g|, gen_lm's
    condition; later steps' √v̂ keeps the earlier gradients, so an entry whose gradient only
    passes near zero then stays well conditioned."""
    smallest = math.inf
    for _, v in state.values():
        d = (v / (1.0 - ADAMW["beta2"] ** t)).sqrt()
        if (d != 0).any():
            smallest = min(smallest, d[d != 0].min().item())
    return smallest


def trajectory(values, batch, c, dtype=F64):
    """gen_lm.trajectory for this forward: N_STEPS AdamW steps (the update always float64
    rounded to float32), the steps' losses and gradients, the values after, the smallest gap and
    the smallest Adam denominator of the run."""
    values, state, steps, denominator = dict(values), {}, [], math.inf
    for step in range(N_STEPS):
        steps.append(loss_and_grads(values, batch, c, dtype))
        adamw_step(values, steps[-1][4], state, step + 1)
        denominator = min(denominator, smallest_denominator(state, step + 1))
    with torch.no_grad():
        margin = min([s[3] for s in steps] + [forward(values, batch, c)[3]])
    return steps, values, margin, denominator


def check_finite_differences(values, batch, c, gen):
    """gen_lm.check_finite_differences for this forward, on one entry (|g| ≥ FD_MIN_GRADIENT) of
    an encoder parameter, one of a cross-attention parameter and one of any other, drawn at
    random; the five-point stencil, the routing checked to be the same at every shifted point."""
    leaves = {n: v.clone().requires_grad_(True) for n, v in values.items()}
    _, task, _, _, routes = forward(leaves, batch, c)
    grads = dict(zip(values, torch.autograd.grad(task, list(leaves.values()))))
    names = [n for n in values if (grads[n].abs() >= FD_MIN_GRADIENT).any()]
    picked = []
    for group in ([n for n in names if n.startswith("encoder.")],
                  [n for n in names if ".cross." in n], names):
        group = [n for n in group if n not in picked]
        picked.append(group[int(torch.randint(len(group), (1,), generator=gen))])
    for name in picked:
        candidates = (grads[name].reshape(-1).abs() >= FD_MIN_GRADIENT).nonzero().flatten()
        i = int(candidates[torch.randint(candidates.numel(), (1,), generator=gen)])
        loss = {}
        for shift in (-2, -1, 1, 2):
            shifted = dict(values)
            shifted[name] = values[name].clone()
            shifted[name].view(-1)[i] += shift * FD_STEP
            with torch.no_grad():
                _, task, _, _, shifted_routes = forward(shifted, batch, c)
            assert all(torch.equal(a, b) for a, b in zip(routes, shifted_routes)), \
                f"{c['name']}: shifting {name}[{i}] changes the routing"
            loss[shift] = task.item()
        fd = (8 * (loss[1] - loss[-1]) - (loss[2] - loss[-2])) / (12 * FD_STEP)
        ag = grads[name].reshape(-1)[i].item()
        assert abs(fd - ag) <= FD_RTOL * abs(ag), \
            f"{c['name']}: {name}[{i}] autograd {ag} vs finite difference {fd}"
        print(f"  {name}[{i}]: autograd {ag:.12e}, finite difference {fd:.12e}")


def draw(c, seed):
    """The parameters, then each pair's words; bos and eos only where they belong."""
    gen = torch.Generator().manual_seed(seed)
    values = init_params(c, gen)
    src, tgt_in, tgt_out = [], [], []
    for n_src, n_tgt in zip(c["src_lens"], c["tgt_lens"]):
        src += torch.randint(EOS + 1, c["vocab"], (n_src - 1,), generator=gen).tolist() + [EOS]
        words = torch.randint(EOS + 1, c["vocab"], (n_tgt - 1,), generator=gen).tolist()
        tgt_in += [BOS] + words
        tgt_out += words + [EOS]
    batch = {name: torch.tensor(ids, dtype=torch.int32)
             for name, ids in (("src_tokens", src), ("tgt_in", tgt_in), ("tgt_out", tgt_out))}
    return values, batch, gen


def write_fixture(out_dir, c):
    seed = c["seed"]
    while True:
        values, batch, gen = draw(c, seed)
        steps, final, margin, denominator = trajectory(values, batch, c)
        if margin > MIN_MARGIN and denominator > MIN_GRADIENT:
            break
        print(f"  seed {seed}: top-k gap {margin:.2e}, smallest √v̂ {denominator:.2e}, "
              "drawing again")
        seed += 1
    check_finite_differences(values, batch, c, gen)
    check_adamw_against_torch(values, steps[0][4])
    logits, task, aux, _, grads = steps[0]
    tensors = {n: v.float() for n, v in values.items()}
    tensors.update(batch)
    tensors["logits"] = logits.float()
    tensors["loss"] = torch.tensor([task + aux]).float()
    tensors["task_loss"] = torch.tensor([task]).float()
    tensors["aux_loss"] = torch.tensor([aux]).float()
    tensors.update((f"grad.{n}", g.float()) for n, g in grads.items())
    for k, s in enumerate(steps):
        tensors[f"loss.step{k}"] = torch.tensor([s[1] + s[2]]).float()
    tensors.update((f"step{N_STEPS}.{n}", v.float()) for n, v in final.items())
    blocks = lambda ids: ",".join(str(b) for b in ids)
    meta = {k: c[k] for k in ("vocab", "d_model", "encoder_layers", "decoder_layers", "n_heads",
                              "n_kv_heads", "n_experts", "switch_coef", "z_coef")}
    meta.update({"encoder_moe_blocks": blocks(c["encoder_moe_blocks"]),
                 "decoder_moe_blocks": blocks(c["decoder_moe_blocks"]),
                 "k": c["top_k"], "hidden": c["expert_hidden"], "ffn_hidden": c["dense_hidden"],
                 "tied": int(c["tied_head"]), "src_starts": starts(c["src_lens"]),
                 "tgt_starts": starts(c["tgt_lens"]), "norm_eps": NORM_EPS,
                 "rope_theta": ROPE_THETA, "gate": "topk_softmax",
                 "renormalize": int(c["renormalize"]), "bos": BOS, "eos": EOS,
                 "lr": ADAMW["lr"], "beta1": ADAMW["beta1"], "beta2": ADAMW["beta2"],
                 "adam_eps": ADAMW["eps"], "weight_decay": ADAMW["weight_decay"],
                 "adam_steps": N_STEPS, "seed": seed, "min_topk_margin": f"{margin:.6g}"})
    path = os.path.join(out_dir, c["name"] + ".safetensors")
    safetensors_io.write(path, tensors, meta)
    print(f"  {c['name']}: seed {seed}, loss {task + aux:.6f} (task {task:.6f}, aux {aux:.6f}), "
          f"smallest top-{c['top_k']} gap {margin:.4g}, smallest √v̂ {denominator:.2e} "
          f"(|g| {smallest_gradient(steps):.2e}), "
          f"{os.path.getsize(path)} bytes")
    report_float32_replay(values, batch, c, tensors)


def report_float32_replay(values, batch, c, tensors):
    """gen_lm.report_float32_replay for this forward: the same steps in float32, and how far
    they land from the fixture."""
    steps, final, _, _ = trajectory(values, batch, c, torch.float32)
    print_replay(steps, final, tensors)


def generate(out_dir):
    torch.set_num_threads(1)
    for c in FIXTURES:
        write_fixture(out_dir, c)
