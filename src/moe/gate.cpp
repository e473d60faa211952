// Gate: the router shared by every gate kind (logits, probabilities, capacity, balancing losses,
// the router's adjoint) and the dispatch to each kind's forward and backward.
//
// Dims: T tokens · D model width · E experts · K experts per token · S slots · C capacity.
#include "moe/moe/gate.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "gate_internal.h"
#include "moe/kernels/gemm.h"
#include "moe/kernels/ops.h"
#include "moe/moe/balance.h"

namespace moe {

using gate_detail::GateGrads;
using gate_detail::GateState;

struct Gate::Impl : GateState {};

namespace {

bool has_router(GateKind k) {
  return k != GateKind::kHash;
}

RouterProbs probs_kind(GateKind k) {
  return k == GateKind::kSigmoidBias ? RouterProbs::kNormalizedSigmoid : RouterProbs::kSoftmax;
}

// The router probabilities the Switch loss averages: σ(l) for the sigmoid gate (normalised
// inside the loss), softmax(l) otherwise.
Tensor switch_probs(const GateState& g) {
  return g.cfg.kind == GateKind::kSigmoidBias ? g.cache.scores : g.cache.probs;
}

// Drops, per expert over capacity, the lowest-weight slots (equal weights: the later slot, which
// is the later token's). Slots of each expert are gathered in slot order by a counting sort, then
// ranked by (weight desc, slot asc), a strict total order, so the result is deterministic.
void apply_capacity(int64_t capacity, RoutingPlan* plan, Arena& arena) {
  RoutingPlan& p = *plan;
  const int64_t e_n = p.n_experts, s_n = p.n_slots();
  const size_t mark = arena.mark();
  int64_t* offsets = arena.alloc_array<int64_t>(e_n + 1);  // [E+1]
  for (int64_t e = 0; e <= e_n; ++e) offsets[e] = 0;
  for (int64_t s = 0; s < s_n; ++s) ++offsets[p.expert_ids[sz(s)] + 1];
  bool over = false;
  for (int64_t e = 0; e < e_n; ++e) over = over || offsets[e + 1] > capacity;
  if (!over) {
    arena.release(mark);
    return;
  }
  for (int64_t e = 0; e < e_n; ++e) offsets[e + 1] += offsets[e];
  int64_t* cursor = arena.alloc_array<int64_t>(e_n);     // [E]
  int32_t* by_expert = arena.alloc_array<int32_t>(s_n);  // [S]
  for (int64_t e = 0; e < e_n; ++e) cursor[e] = offsets[e];
  for (int64_t s = 0; s < s_n; ++s)
    by_expert[cursor[p.expert_ids[sz(s)]]++] = static_cast<int32_t>(s);
  const float* w = p.weights.data();
  for (int64_t e = 0; e < e_n; ++e) {
    int32_t* first = by_expert + offsets[e];
    int32_t* last = by_expert + offsets[e + 1];
    if (last - first <= capacity) continue;
    std::sort(first, last,
              [w](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); });
    for (int32_t* it = first + capacity; it < last; ++it) p.dropped[sz(*it)] = 1;
  }
  arena.release(mark);
}

// ceil(factor · n / E), with the product taken to float precision: the factor is a float, and
// 0.3f is slightly above 0.3, which must not lift an exact ceil(0.3 · 10 / 3) = 1 to 2.
int64_t ceil_capacity(float factor, int64_t n, int64_t n_experts) {
  const double v =
      static_cast<double>(factor) * static_cast<double>(n) / static_cast<double>(n_experts);
  return static_cast<int64_t>(std::ceil(v * (1.0 - 1e-7)));
}

// C = max(min_capacity, ceil(capacity_factor · S / E)) for S = T · K slots; 0 when dropless.
int64_t capacity_for_slots(const GateConfig& c, int64_t n_slots) {
  if (c.capacity_factor <= 0.0f) return 0;
  return std::max(c.min_capacity, ceil_capacity(c.capacity_factor, n_slots, c.n_experts));
}

}  // namespace

const char* gate_kind_name(GateKind k) {
  return enum_name(kGateKindNames, k);
}

bool parse_gate_kind(const std::string& s, GateKind* out) {
  return parse_enum_name(kGateKindNames, s, out);
}

Status validate_gate_config(const GateConfig& c) {
  const char* name = gate_kind_name(c.kind);
  if (c.n_experts < 1 || c.n_experts > INT32_MAX)  // expert ids are int32
    return Status::error("gate {}: n_experts must be in [1, 2^31), got {}", name, c.n_experts);
  if (has_router(c.kind) && c.d_model < 1)
    return Status::error("gate {}: d_model must be ≥ 1, got {}", name, c.d_model);
  const bool uses_k = c.kind == GateKind::kTopKSoftmax || c.kind == GateKind::kNoisyTopK ||
                      c.kind == GateKind::kSigmoidBias || c.kind == GateKind::kSinkhorn;
  if (uses_k && (c.k < 1 || c.k > c.n_experts))
    return Status::error("gate {}: k must be in [1, {}] (the expert count), got {}", name,
                         c.n_experts, c.k);
  if (!(c.capacity_factor >= 0.0f) || !std::isfinite(c.capacity_factor))
    return Status::error("gate {}: capacity_factor must be ≥ 0, got {}", name, c.capacity_factor);
  if (c.min_capacity < 0)
    return Status::error("gate {}: min_capacity must be ≥ 0, got {}", name, c.min_capacity);
  if (c.kind == GateKind::kGumbelSoftmax &&
      (!(c.tau_start > 0.0f) || !(c.tau_min > 0.0f) || !(c.tau_decay >= 0.0f)))
    return Status::error("gate {}: need tau_start > 0, tau_min > 0, tau_decay ≥ 0 (got {}, {}, {})",
                         name, c.tau_start, c.tau_min, c.tau_decay);
  if (c.kind == GateKind::kSinkhorn && c.sinkhorn_iterations < 1)
    return Status::error("gate {}: sinkhorn_iterations must be ≥ 1, got {}", name,
                         c.sinkhorn_iterations);
  if (!std::isfinite(c.bias_update_rate) || c.bias_update_rate < 0.0f)
    return Status::error("gate {}: bias_update_rate must be ≥ 0, got {}", name, c.bias_update_rate);
  const float coefs[] = {c.switch_loss, c.importance_loss, c.load_loss, c.z_loss};
  for (float v : coefs)
    if (!std::isfinite(v) || v < 0.0f)
      return Status::error("gate {}: balancing loss coefficients must be finite and ≥ 0", name);
  if (!has_router(c.kind) &&
      (c.switch_loss > 0 || c.importance_loss > 0 || c.load_loss > 0 || c.z_loss > 0))
    return Status::error("gate hash: hash routing has no router, so no balancing loss applies");
  if (c.load_loss > 0 && c.kind != GateKind::kNoisyTopK)
    return Status::error(
        "gate {}: the load loss needs noisy top-k's smooth load estimate; use "
        "the importance or Switch loss instead",
        name);
  return Status::ok();
}

int64_t gate_slots_per_token(const GateConfig& c) {
  switch (c.kind) {
    case GateKind::kDenseSoftmax:
      return c.n_experts;
    case GateKind::kGumbelSoftmax:
      return c.hard ? 1 : c.n_experts;
    case GateKind::kHash:
      return 1;
    case GateKind::kExpertChoice:
      return 0;
    default:
      return c.k;
  }
}

int64_t gate_capacity(const GateConfig& c, int64_t n_tokens) {
  if (c.kind == GateKind::kExpertChoice) {
    const float factor = c.capacity_factor > 0.0f ? c.capacity_factor : 1.0f;
    return std::min(n_tokens,
                    std::max(c.min_capacity, ceil_capacity(factor, n_tokens, c.n_experts)));
  }
  return capacity_for_slots(c, n_tokens * gate_slots_per_token(c));
}

Gate::Gate(GateConfig config) : impl_(std::make_unique<Impl>()) {
  const Status st = validate_gate_config(config);
  MOE_CHECK(st.is_ok(), "{}", st.message());
  impl_->cfg = config;
  if (config.kind == GateKind::kSigmoidBias) {
    impl_->bias = TensorBuffer(Shape{config.n_experts});
    impl_->biased_scores.resize(sz(config.n_experts));
    impl_->expert_load.resize(sz(config.n_experts));
  }
}
Gate::~Gate() = default;
Gate::Gate(Gate&&) noexcept = default;
Gate& Gate::operator=(Gate&&) noexcept = default;

const GateConfig& Gate::config() const {
  return impl_->cfg;
}

void Gate::declare(ParamStore& store, const std::string& prefix) {
  const GateConfig& c = impl_->cfg;
  if (!has_router(c.kind)) return;
  impl_->w_id = store.add(prefix + ".w", Shape{c.n_experts, c.d_model});
  if (c.router_bias) impl_->b_id = store.add(prefix + ".b", Shape{c.n_experts}, /*decay=*/false);
  if (c.kind == GateKind::kNoisyTopK)
    impl_->w_noise_id = store.add(prefix + ".w_noise", Shape{c.n_experts, c.d_model});
}

void Gate::bind(const ParamStore& store) {
  GateState& g = *impl_;
  if (g.w_id >= 0) {
    g.w = store.value(g.w_id);
    g.dw = store.grad(g.w_id);
  }
  if (g.b_id >= 0) {
    g.b = store.value(g.b_id);
    g.db = store.grad(g.b_id);
  }
  if (g.w_noise_id >= 0) {
    g.w_noise = store.value(g.w_noise_id);
    g.dw_noise = store.grad(g.w_noise_id);
  }
}

void Gate::init(Rng& rng) {
  GateState& g = *impl_;
  if (g.w.empty()) return;
  const float bound = 1.0f / std::sqrt(static_cast<float>(g.cfg.d_model));
  rng.fill_uniform(g.w, -bound, bound);
  if (!g.b.empty()) fill(g.b, 0.0f);  // drawn after w: a bias changes no other parameter's init
  // Shazeer et al. start the noise projection at zero: every expert gets the same noise scale
  // softplus(0) until the load loss teaches it otherwise.
  if (!g.w_noise.empty()) fill(g.w_noise, 0.0f);
}

void Gate::forward(const GateInput& in, Arena& arena, RoutingPlan* plan, AuxLosses* aux) {
  GateState& g = *impl_;
  const GateConfig& c = g.cfg;
  const int64_t t_n = in.x.rows(), e_n = c.n_experts;
  MOE_CHECK(in.x.rank() == 2 && (!has_router(c.kind) || in.x.cols() == c.d_model),
            "gate {}: x {} for d_model {}", gate_kind_name(c.kind), in.x.shape().str(), c.d_model);
  MOE_CHECK(!has_router(c.kind) || !g.w.empty(), "gate {}: forward before bind",
            gate_kind_name(c.kind));
  MOE_CHECK(in.noise.empty() || (in.noise.rows() == t_n && in.noise.cols() == e_n),
            "gate {}: noise {} for T={} E={}", gate_kind_name(c.kind), in.noise.shape().str(), t_n,
            e_n);
  g.cache = {};
  g.cache.n_tokens = t_n;
  g.cache.training = in.training;
  plan->n_tokens = t_n;
  plan->n_experts = e_n;

  if (has_router(c.kind) && t_n > 0) {
    g.cache.logits = arena.alloc(Shape{t_n, e_n});
    g.cache.probs = arena.alloc(Shape{t_n, e_n});
    g.cache.lse = arena.alloc(Shape{t_n});
    gemm(in.x, false, g.w, true, g.cache.logits);  // [T, D] · [E, D]ᵀ
    if (!g.b.empty()) add_bias_rows(g.cache.logits, g.b);
    softmax_rows(g.cache.logits, g.cache.probs);
    row_logsumexp(g.cache.logits, g.cache.lse);
    if (c.kind == GateKind::kSigmoidBias) {
      g.cache.scores = arena.alloc(Shape{t_n, e_n});
      activation_forward(Activation::kSigmoid, g.cache.logits, g.cache.scores);
    }
  }

  switch (c.kind) {
    case GateKind::kDenseSoftmax:
      gate_detail::dense_forward(g, plan);
      break;
    case GateKind::kTopKSoftmax:
      gate_detail::topk_forward(g, plan);
      break;
    case GateKind::kGumbelSoftmax:
      gate_detail::gumbel_forward(g, in, arena, plan);
      break;
    case GateKind::kNoisyTopK:
      gate_detail::noisy_forward(g, in, arena, plan);
      break;
    case GateKind::kSigmoidBias:
      gate_detail::sigmoid_forward(g, plan);
      break;
    case GateKind::kExpertChoice:
      gate_detail::expert_choice_forward(g, arena, plan);
      break;
    case GateKind::kHash:
      gate_detail::hash_forward(g, in, plan);
      break;
    case GateKind::kSinkhorn:
      gate_detail::sinkhorn_forward(g, arena, plan);
      break;
  }
  g.cache.n_slots = plan->n_slots();

  if (c.kind != GateKind::kExpertChoice) {
    // K is what this forward gave each token (Gumbel soft routes to one expert in evaluation).
    const int64_t capacity = capacity_for_slots(c, plan->n_slots());
    if (capacity > 0) apply_capacity(capacity, plan, arena);
  }
  sort_slots_by_expert(plan);

  *aux = {};
  if (has_router(c.kind) && t_n > 0) {
    aux->switch_loss = switch_loss(*plan, switch_probs(g), probs_kind(c.kind), arena);
    aux->importance_loss = importance_loss(*plan, arena);
    aux->z_loss = z_loss(g.cache.lse);
    if (c.kind == GateKind::kNoisyTopK)
      aux->load_loss = gate_detail::noisy_load_loss(g, *plan, arena);
  }
}

void Gate::backward(const GateInput& in, const RoutingPlan& plan, const float* dweights, Tensor dx,
                    Arena& arena) {
  GateState& g = *impl_;
  const GateConfig& c = g.cfg;
  if (!has_router(c.kind)) return;  // hash routing: nothing depends on a parameter or on x
  const int64_t t_n = g.cache.n_tokens, e_n = c.n_experts, s_n = plan.n_slots();
  MOE_CHECK(plan.n_tokens == t_n && s_n == g.cache.n_slots && in.x.rows() == t_n,
            "gate {} backward: plan T={} S={} x {} do not match the last forward (T={} S={})",
            gate_kind_name(c.kind), plan.n_tokens, s_n, in.x.shape().str(), t_n, g.cache.n_slots);
  MOE_CHECK(dx.empty() || dx.shape() == in.x.shape(), "gate backward: dx {} for x {}",
            dx.shape().str(), in.x.shape().str());
  if (t_n == 0) return;
  MOE_CHECK(dweights != nullptr || s_n == 0, "gate backward: no dweights for {} slots", s_n);
  const size_t mark = arena.mark();

  // A dropped slot contributes nothing, whatever its caller-side gradient says.
  float* dw = arena.alloc_array<float>(std::max<int64_t>(s_n, 1));  // [S]
  for (int64_t s = 0; s < s_n; ++s) dw[s] = plan.dropped[sz(s)] ? 0.0f : dweights[s];
  const float scale = in.aux_grad_scale;
  importance_loss_backward(plan, scale * c.importance_loss, dw, arena);

  GateGrads d;
  d.dlogits = arena.zeros(Shape{t_n, e_n});
  if (c.kind == GateKind::kNoisyTopK && g.cache.training)
    d.dnoise_logits = arena.zeros(Shape{t_n, e_n});

  switch (c.kind) {
    case GateKind::kDenseSoftmax:
      gate_detail::dense_backward(g, plan, dw, d);
      break;
    case GateKind::kTopKSoftmax:
      gate_detail::topk_backward(g, plan, dw, d);
      break;
    case GateKind::kGumbelSoftmax:
      gate_detail::gumbel_backward(g, plan, dw, d);
      break;
    case GateKind::kNoisyTopK:
      gate_detail::noisy_backward(g, plan, dw, d);
      break;
    case GateKind::kSigmoidBias:
      gate_detail::sigmoid_backward(g, plan, dw, d);
      break;
    case GateKind::kExpertChoice:
      gate_detail::expert_choice_backward(g, plan, dw, d);
      break;
    case GateKind::kSinkhorn:
      gate_detail::sinkhorn_backward(g, plan, dw, d);
      break;
    case GateKind::kHash:
      break;
  }

  switch_loss_backward(plan, switch_probs(g), probs_kind(c.kind), scale * c.switch_loss, d.dlogits,
                       arena);
  z_loss_backward(g.cache.probs, g.cache.lse, scale * c.z_loss, d.dlogits);
  if (c.kind == GateKind::kNoisyTopK && c.load_loss != 0.0f)
    gate_detail::noisy_load_loss_backward(g, scale * c.load_loss, d, arena);

  // Router adjoint: l = x·Wᵀ gives dx += dl·W [T, E]·[E, D] and dW += dlᵀ·x [E, T]·[T, D].
  const GemmScale acc{1.0f, 1.0f};
  if (!dx.empty()) gemm(d.dlogits, false, g.w, false, dx, acc);
  gemm(d.dlogits, true, in.x, false, g.dw, acc);
  if (!g.db.empty()) sum_rows_accumulate(d.dlogits, g.db);
  if (!d.dnoise_logits.empty()) {
    if (!dx.empty()) gemm(d.dnoise_logits, false, g.w_noise, false, dx, acc);
    gemm(d.dnoise_logits, true, in.x, false, g.dw_noise, acc);
  }
  arena.release(mark);
}

void Gate::after_step(const RoutingPlan& plan, const LoadSum& sum_loads) {
  GateState& g = *impl_;
  if (g.cfg.kind == GateKind::kSigmoidBias) gate_detail::sigmoid_after_step(g, plan, sum_loads);
  ++g.step;
}

Tensor Gate::router_probs() const {
  return has_router(impl_->cfg.kind) ? switch_probs(*impl_) : Tensor();
}

Tensor Gate::bias() const {
  return impl_->bias.view();
}

float Gate::temperature() const {
  return gate_detail::gumbel_temperature(impl_->cfg, impl_->step);
}

int64_t Gate::step() const {
  return impl_->step;
}

void Gate::set_state(int64_t step) {
  MOE_CHECK(step >= 0, "gate step {}", step);
  impl_->step = step;
}

}  // namespace moe
