// Balancing losses of an MoE router, as plain functions of a RoutingPlan and router tensors.
//
// Dims: T tokens · E experts · S slots.
//
// Each loss has a value function (unweighted, in double) and a backward that accumulates the
// gradient of coef · loss. The gate (gate.h) calls them; they are public so that statistics and
// tests can compute the same quantities from any plan. Formulas and papers: docs/moe.md.
#pragma once

#include <cstdint>

#include "moe/core/arena.h"
#include "moe/core/tensor.h"
#include "moe/moe/routing_plan.h"

namespace moe {

// How the router probabilities P of the Switch loss come from the cached probs [T, E]:
// kSoftmax: probs is softmax(l) itself; kNormalizedSigmoid: probs is σ(l) and P normalises it
// over the E experts, q = σ(l) / Σ_e σ(l_e) (DeepSeek-V3's balance loss).
enum class RouterProbs { kSoftmax, kNormalizedSigmoid };

// CV²(v) = Var(v) / (Mean(v)² + 1e-10), population variance (Shazeer et al. 2017). 0 for n ≤ 1.
double cv_squared(const double* v, int64_t n);
// dv_i += scale · ∂CV²/∂v_i.
void cv_squared_backward(const double* v, int64_t n, double scale, double* dv);

// Fraction of slots routed to each expert, f_e = count_e / S over every slot (dropped ones
// included: f measures the router's decision, before capacity). f [E]; zeros when S = 0.
void slot_fractions(const RoutingPlan& plan, double* f);

// Switch Transformer (Fedus et al. 2021): E · Σ_e f_e · P_e with P_e = mean_t q_{t,e}; f carries
// no gradient. probs [T, E].
double switch_loss(const RoutingPlan& plan, Tensor probs, RouterProbs kind, Arena& arena);
// dlogits [T, E] += coef · ∂loss/∂l.
void switch_loss_backward(const RoutingPlan& plan, Tensor probs, RouterProbs kind, float coef,
                          Tensor dlogits, Arena& arena);

// Importance (Shazeer et al. 2017): CV² of I_e = Σ (weights of the kept slots routed to e).
double importance_loss(const RoutingPlan& plan, Arena& arena);
// dweights [S] += coef · ∂loss/∂weight_s on kept slots (dropped slots get nothing).
void importance_loss_backward(const RoutingPlan& plan, float coef, float* dweights, Arena& arena);

// Router z-loss (Zoph et al. 2022): mean_t (logsumexp_e l_{t,e})². lse [T] is logsumexp per
// token, as the gate caches it.
double z_loss(Tensor lse);
// dlogits [T, E] += coef · 2 · lse_t · softmax(l_t) / T; probs [T, E] is softmax(l).
void z_loss_backward(Tensor probs, Tensor lse, float coef, Tensor dlogits);

// Expert loads as slot counts (all slots), for the aux-loss-free bias update and the load loss
// without noise. load [E].
void slot_counts(const RoutingPlan& plan, double* load);

}  // namespace moe
