// Gates: from token representations to a RoutingPlan, and back.
//
// Dims: T tokens · D model width · E experts · K experts per token · S slots · C capacity.
//
// A gate owns its router parameters (declared into a ParamStore), its persistent state (the
// auxiliary-loss-free biases, the Gumbel temperature: checkpointed, not trained by gradient) and
// a cache of what its backward needs. forward() fills a RoutingPlan and the auxiliary losses;
// backward() takes dL/dweight for every slot (from combine's backward) plus the auxiliary losses'
// coefficients, and accumulates dL/dx and the router's parameter gradients.
//
// Router logits are l = x·Wᵀ [T, E], plus a bias b [E] when GateConfig::router_bias is set.
// Every gate except hash routing has them. Formulas,
// papers and advice on choosing a gate: docs/moe.md.
//
// Slots per token and their order (a token's slots are listed as its gate ranks them):
//   dense softmax       E slots, expert order, weight softmax(l)
//   Gumbel soft         E slots, expert order, weight softmax((l + g)/τ) (training); eval: argmax
//   Gumbel hard         1 slot, weight 1 (gradient of the soft weight: straight-through)
//   top-k softmax       K slots, best first
//   noisy top-k         K slots, best first (noise only in training)
//   sigmoid + bias      K slots, best first by σ(l) + bias
//   expert choice       0..E slots, expert order (each expert picks its top-C tokens)
//   hash                1 slot, weight 1
//   Sinkhorn            K slots, best first by the balanced assignment (training) or l (eval)
//
// Which balancing losses each gate supports (validate_gate_config rejects the rest):
//   switch, importance, z-loss: every gate with a router (all but hash). The Switch loss's P is
//       the mean router probability: softmax(l), or for the sigmoid gate σ(l) normalised over
//       the E experts (DeepSeek-V3's sequence-wise balance loss uses the same normalisation).
//       Importance sums the kept slots' weights per expert, so its gradient flows through each
//       gate's own weights (for Gumbel hard and evaluation argmax, through the straight-through
//       soft weight).
//   load: noisy top-k only; it needs the normal-CDF estimate of P(expert chosen) that only a
//       gate with learned Gaussian noise has. In evaluation (no noise) it reports the CV² of the
//       slot counts, without gradient.
//   hash routing has no router and supports no balancing loss.
//
// Capacity (every gate but expert choice, which has its own): when capacity_factor > 0, each
// expert keeps at most C = max(min_capacity, ceil(capacity_factor · T · K / E)) slots, K the
// slots per token this forward gave (above). Over capacity, an expert drops its lowest-weight
// slots first (equal weights: the later token's slot is dropped first). Dropped slots stay in the
// plan marked in plan.dropped; they contribute nothing, and backward ignores dweights given for
// them.
//
// Ties: every top-k selection prefers the lower expert index (expert choice: the lower token
// index) among equal values. With the same inputs, seed and thread count a plan is bit-identical.
// Gumbel and Gaussian noise come from GateInput.rng (or GateInput.noise); evaluation draws none.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "moe/core/arena.h"
#include "moe/core/enum_names.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/core/status.h"
#include "moe/core/tensor.h"
#include "moe/moe/routing_plan.h"

namespace moe {

enum class GateKind {
  kDenseSoftmax,   // every expert, g = softmax(x·Wᵀ) (Jacobs et al. 1991)
  kGumbelSoftmax,  // softmax((logits + Gumbel noise)/τ), soft or straight-through hard
  kTopKSoftmax,    // softmax then top-k (optionally renormalised), or top-k then softmax
  kNoisyTopK,      // Shazeer et al. 2017: logits + N(0,1)·softplus(x·W_noiseᵀ), top-k, softmax
  kSigmoidBias,    // DeepSeek-V3: sigmoid scores, top-k on score + bias, aux-loss-free balancing
  kExpertChoice,   // Zhou et al. 2022: each expert takes its top-C tokens
  kHash,           // Roller et al. 2021: expert = hash(token id or row id), no parameters
  kSinkhorn,       // balanced assignment (Clark et al. 2022) in training, greedy top-k in eval
};

inline constexpr EnumName<GateKind> kGateKindNames[] = {
    {"dense_softmax", GateKind::kDenseSoftmax},
    {"gumbel_softmax", GateKind::kGumbelSoftmax},
    {"topk_softmax", GateKind::kTopKSoftmax},
    {"noisy_topk", GateKind::kNoisyTopK},
    {"sigmoid_bias", GateKind::kSigmoidBias},
    {"expert_choice", GateKind::kExpertChoice},
    {"hash", GateKind::kHash},
    {"sinkhorn", GateKind::kSinkhorn}};

const char* gate_kind_name(GateKind k);                     // "topk_softmax", ...
bool parse_gate_kind(const std::string& s, GateKind* out);  // false if unknown

struct GateConfig {
  GateKind kind = GateKind::kTopKSoftmax;
  int64_t d_model = 0;    // D
  int64_t n_experts = 0;  // E
  int64_t k = 2;          // K (ignored by dense softmax and expert choice)
  // A learned router bias b [E] (l = x·Wᵀ + b), initialised to 0. Expert surgery needs it: it
  // is how a split pair's logits are lowered by ln 2 and a new expert starts with no traffic.
  bool router_bias = false;

  // Top-k softmax, Sinkhorn and sigmoid gates: the weights of the K chosen sum to 1 (for the
  // sigmoid gate, DeepSeek-V3's normalisation of the chosen scores).
  bool renormalize = true;
  bool softmax_after_topk = false;  // top-k on logits, then softmax over the K chosen

  float tau_start = 1.0f;  // Gumbel: τ(step) = max(tau_min, tau_start · exp(−tau_decay · step))
  float tau_min = 0.5f;
  float tau_decay = 0.0f;
  bool hard = false;  // Gumbel straight-through: one-hot forward, soft gradient

  float bias_update_rate = 1e-3f;  // sigmoid gate: bias_i += rate · sign(mean load − load_i)

  // Capacity per expert C = max(min_capacity, ceil(capacity_factor · T · K / E)); 0 = dropless.
  // Expert choice always uses C (with its own default factor of 1 when 0 is given).
  float capacity_factor = 0.0f;
  int64_t min_capacity = 1;

  int sinkhorn_iterations = 8;

  // Balancing loss coefficients (0 = off). Each loss is reported separately in AuxLosses.
  float switch_loss = 0.0f;      // Fedus et al. 2021: α · E · Σ_i f_i · P_i
  float importance_loss = 0.0f;  // Shazeer et al. 2017: w · CV²(Σ_t g_t)
  float load_loss = 0.0f;        // Shazeer et al. 2017: w · CV²(smooth load estimate)
  float z_loss = 0.0f;           // Zoph et al. 2022: w · mean_t (logsumexp_t)²
};

// Unweighted values of each auxiliary loss (multiply by its coefficient for the total).
struct AuxLosses {
  double switch_loss = 0.0;
  double importance_loss = 0.0;
  double load_loss = 0.0;
  double z_loss = 0.0;
  double weighted_total(const GateConfig& c) const {
    return c.switch_loss * switch_loss + c.importance_loss * importance_loss +
           c.load_loss * load_loss + c.z_loss * z_loss;
  }
};

struct GateInput {
  Tensor x;                            // [T, D]
  const int64_t* token_ids = nullptr;  // [T] for hash routing; row ids (first_row + t) when null
  int64_t first_row = 0;
  bool training = false;
  Rng rng;  // noise source for this forward (Gumbel, noisy top-k); forked per step by the caller
            // (the gate draws from a copy: the caller's offset does not move)
  Tensor noise;  // [T, E] when set, used instead of drawing from rng (tests against fixtures):
                 // Gumbel noise for the Gumbel gate, N(0, 1) draws for noisy top-k
  // Multiplies the auxiliary losses' gradients in backward (a data-parallel rank's share of the
  // batch's loss; 1 otherwise).
  float aux_grad_scale = 1.0f;
};

// Checks a config that came from a user (flags, a config file): sizes, ranges, and that each
// balancing loss with a non-zero coefficient is supported by the gate (see the table above).
Status validate_gate_config(const GateConfig& c);

// Slots each token gets from a top-k style gate (E for dense and Gumbel soft, 1 for Gumbel hard
// and hash, K otherwise); expert choice gives a variable number and reports 0.
int64_t gate_slots_per_token(const GateConfig& c);

// Expert capacity C for T tokens (see above; expert choice: max(min_capacity,
// ceil(T · factor / E)) capped at T, factor 1 when capacity_factor is 0); 0 means dropless.
int64_t gate_capacity(const GateConfig& c, int64_t n_tokens);

// Sums per-expert counts over the ranks of a data-parallel job, in place (empty: one process).
using LoadSum = std::function<void(std::span<double>)>;

class Gate {
 public:
  // The config must pass validate_gate_config (checked: a bad config here is a programmer error).
  explicit Gate(GateConfig config);
  ~Gate();
  Gate(Gate&&) noexcept;
  Gate& operator=(Gate&&) noexcept;

  const GateConfig& config() const;

  // Declares "<prefix>.w" [E, D] (with router_bias "<prefix>.b" [E], not decayed; for noisy
  // top-k "<prefix>.w_noise" [E, D]).
  void declare(ParamStore& store, const std::string& prefix);
  void bind(const ParamStore& store);  // after store.finalize(): takes views of values and grads
  void init(Rng& rng);                 // router init (PyTorch Linear default)

  // Fills plan (sorted by expert, see sort_slots_by_expert) and aux (every supported loss is
  // computed, whatever its coefficient); caches what backward needs in memory from `arena`,
  // which must stay alive and unreset until backward returns. in.x is [T, D].
  void forward(const GateInput& in, Arena& arena, RoutingPlan* plan, AuxLosses* aux);
  // dweights [S]: dL/d(plan.weights), for the plan the last forward produced (entries of dropped
  // slots are ignored). Accumulates dL/dx into dx [T, D] (+=; may be empty to skip it) and the
  // router's parameter gradients (+=), including the weighted auxiliary losses' gradients.
  // Scratch comes from `arena` and is released before returning.
  void backward(const GateInput& in, const RoutingPlan& plan, const float* dweights, Tensor dx,
                Arena& arena);
  // Once per optimizer step: the aux-loss-free bias update from the last plan's load, and the
  // Gumbel temperature schedule. In a data-parallel job `sum_loads` sums the per-expert loads
  // over the ranks first (so every rank moves the bias alike, by the whole batch's load).
  void after_step(const RoutingPlan& plan, const LoadSum& sum_loads = {});

  // The last forward's router probabilities over all E experts [T, E], what inspection needs
  // for gate entropy beyond the kept slots: softmax(l) for every gate with a router (Gumbel and
  // noisy top-k: of the noise-free logits, temperature 1), σ(l) for the sigmoid gate (not
  // normalised: scale a row to sum 1 to compare it with the others); empty for hash routing,
  // which has no router. A view into the forward's arena, valid until the arena is reset.
  Tensor router_probs() const;

  // Persistent state, saved in checkpoints.
  Tensor bias() const;  // [E] sigmoid gate's selection bias (empty for other kinds)
  float temperature() const;
  int64_t step() const;
  void set_state(int64_t step);  // restores the temperature schedule position

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe
