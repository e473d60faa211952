// Internals shared by the gate family files (gate.cpp, gate_*.cpp): a gate's state, the cache its
// forward leaves for backward, the per-kind forward/backward functions and small row helpers.
// Not a public header.
//
// Dims: T tokens · D model width · E experts · K experts per token · S slots.
//
// Division of labour: Gate::forward computes the router logits l = x·Wᵀ (+ b), softmax and
// logsumexp (with the fast row ops; rows are independent, so results do not depend on the thread
// count), then calls the kind's forward, which fills the plan's token-major slots (token_offsets,
// expert_ids, weights; dropped all 0). Gate::forward then applies capacity, sorts the slots by
// expert and computes the balancing losses. Gate::backward masks dropped slots' dweights, adds
// the importance loss's dweights, calls the kind's backward (dweights -> dlogits, and for noisy
// top-k dnoise_logits), adds the Switch, z- and load losses' gradients, and finally applies the
// router's adjoint: dx += dl·W, dW += dlᵀ·x, db += Σ_t dl.
#pragma once

#include <cstdint>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/index.h"
#include "moe/core/params.h"
#include "moe/core/tensor.h"
#include "moe/moe/gate.h"
#include "moe/moe/routing_plan.h"

namespace moe::gate_detail {

// What forward leaves for backward: views into the caller's arena.
struct GateCache {
  int64_t n_tokens = 0;
  int64_t n_slots = 0;
  bool training = false;
  Tensor logits;           // [T, E] l = x·Wᵀ (+ b)
  Tensor probs;            // [T, E] softmax(l)
  Tensor lse;              // [T] logsumexp_e l
  Tensor scores;           // [T, E] sigmoid gate: σ(l)
  Tensor soft;             // [T, E] Gumbel: softmax((l + g)/τ) (eval: softmax(l/τ)); noisy: h;
                           // Sinkhorn (training): the balanced assignment
  Tensor noise;            // [T, E] Gumbel or N(0, 1) draws used (training only)
  Tensor noise_logits;     // [T, E] noisy top-k: x·W_noiseᵀ (training only)
  Tensor noise_std;        // [T, E] noisy top-k: softplus(x·W_noiseᵀ) + ε (training only)
  double* load = nullptr;  // [E] noisy top-k: the smooth load estimate Σ_t P(t, e) (training)
  float tau = 1.0f;        // Gumbel temperature of this forward
};

struct GateState {
  GateConfig cfg;
  ParamId w_id = -1;
  ParamId w_noise_id = -1;
  ParamId b_id = -1;
  Tensor w, dw;              // [E, D]
  Tensor b, db;              // [E] router_bias only
  Tensor w_noise, dw_noise;  // [E, D] noisy top-k only
  TensorBuffer bias;         // [E] sigmoid gate only
  // Per-gate scratch sized once at construction, for the steps that take no arena.
  std::vector<float> biased_scores;  // [E] sigmoid gate: one token's σ(l) + b
  std::vector<double> expert_load;   // [E] sigmoid gate: slots per expert for the bias update
  int64_t step = 0;
  GateCache cache;
};

// Gradients a kind's backward accumulates into (+=), zeroed by the caller.
struct GateGrads {
  Tensor dlogits;        // [T, E]
  Tensor dnoise_logits;  // [T, E] noisy top-k in training; empty otherwise
};

// Per-token loops run on OpenMP threads from this many [T, E] elements on. Each token's work is
// independent and writes only its own rows, so the result does not depend on the thread count;
// sums across tokens stay serial for the same reason.
inline constexpr int64_t kParallelWork = int64_t{1} << 15;

// The k best of v[0..n) into idx[0..k), best first; among equal values the lower index ranks
// first (NaN never beats a number, so the result is always k distinct indices).
void top_k_indices(const float* v, int64_t n, int64_t k, int32_t* idx);
// Softmax adjoint for one row: dl_i += p_i · (dp_i − Σ_j dp_j p_j).
void softmax_row_backward(const float* p, const float* dp, int64_t n, float* dl);
// Noise for this forward [T, E]: in.noise when set, else drawn from a copy of in.rng
// (Gumbel or N(0, 1)).
Tensor gate_noise(const GateInput& in, int64_t n_tokens, int64_t n_experts, bool gumbel,
                  Arena& arena);

// Top-k style weights over the K experts a token chose (slots [b, b+K) of the plan): softmax
// probabilities of the chosen (renormalised to sum 1 if asked); backward maps their dweights to
// dlogits through the full softmax (not renormalised) or the softmax over the chosen.
void topk_weights_forward(const float* probs_row, const int32_t* chosen, int64_t k, bool renorm,
                          float* weights);
void topk_weights_backward(const float* probs_row, const int32_t* chosen, const float* weights,
                           const float* dweights, int64_t k, int64_t n_experts, bool renorm,
                           float* dlogits_row);

// Per-kind forward (fills the plan's token-major slots) and backward (dweights [S] with dropped
// slots already zeroed -> grads). One family per file: gate_topk.cpp (dense softmax, top-k),
// gate_gumbel.cpp, gate_noisy.cpp, gate_sigmoid.cpp, gate_expert_choice.cpp, gate_hash.cpp,
// gate_sinkhorn.cpp.
void dense_forward(GateState& g, RoutingPlan* plan);
void dense_backward(const GateState& g, const RoutingPlan& plan, const float* dweights,
                    const GateGrads& d);
void topk_forward(GateState& g, RoutingPlan* plan);
void topk_backward(const GateState& g, const RoutingPlan& plan, const float* dweights,
                   const GateGrads& d);
// τ(step) = max(tau_min, tau_start · exp(−tau_decay · step)).
float gumbel_temperature(const GateConfig& c, int64_t step);
void gumbel_forward(GateState& g, const GateInput& in, Arena& arena, RoutingPlan* plan);
void gumbel_backward(const GateState& g, const RoutingPlan& plan, const float* dweights,
                     const GateGrads& d);
void noisy_forward(GateState& g, const GateInput& in, Arena& arena, RoutingPlan* plan);
void noisy_backward(const GateState& g, const RoutingPlan& plan, const float* dweights,
                    const GateGrads& d);
// Shazeer et al.'s load loss: value from the cached noisy logits, and its gradient.
// The value also caches the load [E] (in `arena`) for the backward.
double noisy_load_loss(GateState& g, const RoutingPlan& plan, Arena& arena);
void noisy_load_loss_backward(const GateState& g, float coef, const GateGrads& d, Arena& arena);
void sigmoid_forward(GateState& g, RoutingPlan* plan);
void sigmoid_backward(const GateState& g, const RoutingPlan& plan, const float* dweights,
                      const GateGrads& d);
void sigmoid_after_step(GateState& g, const RoutingPlan& plan, const LoadSum& sum_loads);
void expert_choice_forward(GateState& g, Arena& arena, RoutingPlan* plan);
void expert_choice_backward(const GateState& g, const RoutingPlan& plan, const float* dweights,
                            const GateGrads& d);
void hash_forward(const GateState& g, const GateInput& in, RoutingPlan* plan);
void sinkhorn_forward(GateState& g, Arena& arena, RoutingPlan* plan);
void sinkhorn_backward(const GateState& g, const RoutingPlan& plan, const float* dweights,
                       const GateGrads& d);

}  // namespace moe::gate_detail
