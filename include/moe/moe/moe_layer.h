// MoeLayer: y = Σ_k g_k(x) · E_k(x) + Σ_i S_i(x), the gate, dispatch, experts and combine tied
// together, with shared experts S_i beside the routed ones and an optional two-level hierarchy.
//
// Dims: T tokens · D model width · E routed experts · G groups (hierarchical) · S slots ·
// S_kept kept slots.
//
// Forward:  gate(x) -> plan;  xs = dispatch(x) [S_kept, D];  ys[segment e] = E_e(xs[segment e]);
//           y = combine(ys) + Σ_i S_i(x).
// Backward: combine's adjoint gives dys and dweights [S];  dxs = expert backward per segment;
//           dx = dispatch's adjoint(dxs) + the gate's dL/dx from dweights (and its auxiliary
//           losses) + Σ_i the shared experts' dx.
//
// Hierarchical (hierarchy.n_groups = G > 0): hierarchy.top routes tokens to G groups, and each
// group has its own gate (config.gate, over E / G experts) that sees only the rows sent to its
// group (see hierarchical.h); the two plans make one combined plan over all E experts, with
// weights multiplied along the path, and the gradient of each combined weight flows back to both
// gates.
//
// Parameter names, PyTorch layouts ([out, in]):
//   <prefix>.router.w                  the gate (flat) or the top gate (hierarchical)
//   <prefix>.groups.<g>.router.w       group g's gate (hierarchical)
//   <prefix>.experts.<e>.w1, .b1, …    routed expert e (experts.h), e = g · E_g + j in a hierarchy
//   <prefix>.shared.<i>.w1, …          shared expert i
//
// Memory: everything a step needs comes from the caller's Arena (forward's cache must stay
// alive until backward returns); the plans' vectors keep their capacity across steps. Working
// memory is O(S_kept · (D + F)): the dispatched rows and expert outputs [S_kept, D] and one
// packed buffer per type for the experts' caches (fp32 and, in bf16, bf16) and one for their
// backward's scratch, in which expert e owns rows_e times its footprint (experts.h: for SwiGLU
// h1, h3, a and da, F_e floats each); never [T, E, C] or [T, E, D].
//
// Threads: every kind of expert runs on caller-given slices of the packed buffers, so experts
// can run concurrently. With small segments (many experts, few rows each) the threads split
// across experts (a fixed assignment, largest segment first to the least-loaded thread, by
// FLOPs), each expert's GEMMs on one thread; with large segments the experts run one after
// another and oneDNN threads each GEMM. Every expert writes only its own rows and gradients, so
// the choice does not change a bit of the result.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/core/status.h"
#include "moe/core/tensor.h"
#include "moe/moe/experts.h"
#include "moe/moe/gate.h"
#include "moe/moe/hierarchical.h"
#include "moe/moe/routing_plan.h"

namespace moe {

class Communicator;  // moe/dist/communicator.h

struct HierarchyConfig {
  int64_t n_groups = 0;  // G; 0 = a flat layer
  GateConfig top;        // the gate over groups: n_experts = G, d_model = D
};

struct MoeConfig {
  int64_t d_model = 0;                // D
  GateConfig gate;                    // flat: over E experts; hierarchical: inside each group
  std::vector<ExpertConfig> experts;  // E routed experts, each with its own kind and width
  std::vector<ExpertConfig> shared;   // always-on experts, added to the routed output
  HierarchyConfig hierarchy;
  // Compute precision of the experts' GEMMs (routed and shared, every kind; experts.h): bf16
  // adds the experts' bf16 weight copies (bf16_weight_bytes()) and, per step, their rounded
  // operands (for SwiGLU S_kept · (D + F) · 2 bytes in forward and as much again in backward).
  // The router stays fp32.
  Precision precision = Precision::kF32;
  // Its experts go on the ranks given by set_expert_parallel (a flat layer only).
  bool expert_parallel = false;
};

// n copies of one expert configuration (a homogeneous layer).
std::vector<ExpertConfig> repeat_experts(const ExpertConfig& c, int64_t n);

// User-facing check: sizes agree (gate widths and expert counts, E divisible by G), every gate
// and expert configuration is valid. The message names the offending field.
Status validate_moe_config(const MoeConfig& c);

// How the routed experts share the threads; kAuto picks by segment size (moe_layer.cpp).
enum class ExpertThreading { kAuto, kAcrossExperts, kInsideGemm };

// Wall time of each stage of the last forward and backward, in seconds (benchmarks read it).
struct MoeStageTimes {
  double route = 0.0;     // forward: gate (router GEMM, softmax, top-k, sort, aux losses)
  double dispatch = 0.0;  // forward: gather rows into expert order
  double experts = 0.0;   // forward: routed experts
  double combine = 0.0;   // forward: weighted sum back to tokens
  double shared = 0.0;    // forward: shared experts
  double combine_bwd = 0.0, experts_bwd = 0.0, dispatch_bwd = 0.0, route_bwd = 0.0,
         shared_bwd = 0.0;
  // Expert parallel: the counts' sum and the rows' and gradients' exchanges of the last forward
  // and backward (inside dispatch, experts and experts_bwd above).
  double exchange = 0.0;
};

class MoeLayer {
 public:
  // The config must pass validate_moe_config (checked).
  explicit MoeLayer(MoeConfig config);

  const MoeConfig& config() const { return config_; }
  int64_t n_experts() const { return static_cast<int64_t>(experts_.size()); }
  int64_t n_groups() const { return config_.hierarchy.n_groups; }

  void declare(ParamStore& store, const std::string& prefix);
  void bind(const ParamStore& store);  // after store.finalize()
  void init(Rng& rng);                 // each gate and expert from its own stream of rng

  // x [T, D] -> y [T, D] (=). rng is the noise source of this step (the caller forks it per
  // step); token_ids [T] feed hash routing (row ids when null). x and the arena's memory must
  // stay alive and unchanged until backward returns.
  void forward(Tensor x, Tensor y, bool training, const Rng& rng, Arena& arena,
               const int64_t* token_ids = nullptr);
  // dy [T, D] -> dx [T, D] (=; must not alias dy); accumulates every parameter gradient (+=), the
  // routers' through the combine weights and the weighted auxiliary losses.
  void backward(Tensor dy, Tensor dx, Arena& arena);
  // Once per optimizer step: each gate's after_step (bias balancing, temperature schedule);
  // `sum_loads` as Gate::after_step.
  void after_step(const LoadSum& sum_loads = {});

  // The last forward's routing over all E experts (per-expert load: plan().expert_rows(e)).
  const RoutingPlan& plan() const { return plan_; }
  // The top gate's plan over groups (hierarchical), else the same as plan().
  const RoutingPlan& top_plan() const { return n_groups() > 0 ? top_plan_ : plan_; }
  // The last forward's input x [T, D] and its experts' outputs ys [S_kept, D] (the kept slots in
  // plan()'s expert order, before the combine weights).
  Tensor last_input() const { return x_; }
  Tensor expert_outputs() const { return ys_; }
  // Unweighted auxiliary losses of the last forward, summed over every gate.
  const AuxLosses& aux() const { return aux_; }
  // Σ over gates of coefficient · loss: the layer's term in the training loss, whose gradient
  // backward applies.
  double aux_loss() const { return aux_loss_; }

  void set_expert_threading(ExpertThreading t) { threading_ = t; }
  // Data parallel: multiplies the auxiliary losses' gradients (this rank's share of the batch's
  // loss; GateInput::aux_grad_scale).
  void set_aux_grad_scale(float scale) { aux_grad_scale_ = scale; }
  // Expert parallelism over the ranks of `comm` (null: off). Rank q owns experts
  // [E·q/N, E·(q+1)/N) (expert_owner). In a training forward each rank routes its own rows, sends
  // the rows of each expert to its owner (the counts first, then the rows: all-to-all-v),
  // computes its own experts on the rows every rank sent, and returns the outputs, which it
  // combines as usual; backward returns the gradients the same way in reverse. The weights stay
  // whole on every rank (an expert's gradient is its owner's, summed with the others' zeros by
  // the data-parallel all-reduce), so evaluation runs locally and checkpoints do not depend on
  // the ranks. A flat layer only (a hierarchy is refused by the trainer).
  // Only a layer configured for it (MoeConfig::expert_parallel) takes `comm`.
  void set_expert_parallel(Communicator* comm) {
    ep_ = config_.expert_parallel && n_groups() == 0 ? comm : nullptr;
  }
  static int expert_owner(int64_t e, int64_t n_experts, int ranks);
  // Switches the experts' compute precision (config().precision) between steps; bf16 weight
  // copies, once allocated, are kept (benchmarks alternate precisions on one layer).
  void set_precision(Precision p);
  int64_t bf16_weight_bytes() const;  // the experts' bf16 weight copies
  const MoeStageTimes& stage_times() const { return times_; }

  Gate& gate() { return gates_[0]; }  // the flat gate, or the top gate
  Gate& group_gate(int64_t g) { return gates_[static_cast<size_t>(1 + g)]; }
  const Gate& gate() const { return gates_[0]; }
  const Gate& group_gate(int64_t g) const { return gates_[static_cast<size_t>(1 + g)]; }
  // Group g's plan of the last forward (hierarchical): its tokens are the rows top_plan() sent
  // to g, in token order (see hierarchical.h).
  const RoutingPlan& group_plan(int64_t g) const { return group_plans_[static_cast<size_t>(g)]; }
  Expert& expert(int64_t e) { return experts_[static_cast<size_t>(e)]; }
  Expert& shared_expert(int64_t i) { return shared_[static_cast<size_t>(i)]; }

 private:
  void route_flat(Arena& arena);
  void route_hierarchical(Arena& arena);
  void gate_backward_hierarchical(const float* dweights, Tensor dx, Arena& arena);
  // The experts on rows sorted by expert, expert e's at run_offsets_[e] .. [e + 1].
  void experts_forward(Tensor xs, Tensor ys, Arena& arena);
  void experts_backward(Tensor dys, Tensor dxs, Arena& arena);
  // Expert parallelism: the counts every rank routes to every expert, the exchange's layout.
  void plan_exchange();
  // Rows [S_kept, D] in plan order out to their owners, in expert order here (=`local`), and
  // back: `forward` false sends `local` back into `kept`.
  void exchange(Tensor kept, Tensor local, bool out, Arena& arena);
  bool across_experts() const;
  int64_t segment_flops(size_t e) const;  // expert e's forward FLOPs on this plan's rows
  void assign_segments();                 // expert_worker_ for this plan
  template <typename F>
  void run_segments(F&& run_expert);  // run_expert(e) for every ordered segment

  MoeConfig config_;
  std::vector<Gate> gates_;  // [0]: flat or top gate; [1 + g]: group g's gate
  std::vector<Expert> experts_;
  std::vector<Expert> shared_;

  // State of the last forward.
  std::vector<GateInput> gate_inputs_;  // one per gate
  RoutingPlan plan_;                    // over all E experts
  RoutingPlan top_plan_;                // hierarchical: over G groups
  std::vector<RoutingPlan> group_plans_;
  HierarchySlots hierarchy_slots_;
  std::vector<float*> group_dweights_;  // [G] pointers into backward's scratch, sized once
  Tensor x_;                            // [T, D]
  float aux_grad_scale_ = 1.0f;
  Communicator* ep_ = nullptr;            // expert parallelism's ranks (null: off)
  bool ep_active_ = false;                // the last forward's experts ran on their owners
  const int64_t* run_offsets_ = nullptr;  // plan_.expert_offsets, or ep_offsets_
  // Expert parallelism's layout of the last training forward.
  std::vector<int64_t> ep_counts_;   // [N·E] rows rank q routed to expert e, at q·E + e
  std::vector<int64_t> ep_send_;     // [N] values to each rank
  std::vector<int64_t> ep_recv_;     // [N] values from each rank
  std::vector<int64_t> ep_offsets_;  // [E+1] this rank's received rows, sorted by expert
  std::vector<int64_t> ep_perm_;     // [R] received row i (by sender, then expert) -> its row
  std::vector<double> ep_scratch_;   // [N·E] the counts' sum
  Tensor ep_xs_;                     // [R, D] received rows sorted by expert
  Tensor ep_ys_;                     // [R, D] their experts' outputs
  Tensor xs_top_;                    // [S0_kept, D] rows dispatched to the groups (hierarchical)
  Tensor ys_;                        // [S_kept, D] expert outputs, sorted by expert
  Tensor group_ids_;                 // [S0_kept] int64 token ids of xs_top_'s rows (hierarchical)
  const int64_t* token_ids_ = nullptr;
  // Where expert e's cache and scratch start in the packed buffers (values of each type), and
  // their totals: Σ_e rows_e · footprint_e.
  std::vector<ExpertFootprint> memory_offsets_;  // [E] sized once
  ExpertFootprint memory_total_;
  std::vector<int32_t> expert_order_;  // [E] experts with rows, largest segment first
  int64_t n_ordered_ = 0;
  int n_workers_ = 1;                   // threads the segments are split across (1: in order)
  std::vector<int32_t> expert_worker_;  // [E] thread of each segment
  std::vector<int64_t> worker_load_;    // [threads] FLOPs assigned, while assigning
  ExpertThreading threading_ = ExpertThreading::kAuto;
  MoeStageTimes times_;
  AuxLosses aux_;
  double aux_loss_ = 0.0;
};

}  // namespace moe
