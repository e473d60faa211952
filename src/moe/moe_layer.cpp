#include "moe/moe/moe_layer.h"

#include <fmt/format.h>

#include "moe/kernels/ops.h"
#include "moe/moe/dispatch.h"

namespace moe {

namespace {

void add_aux(AuxLosses* total, const AuxLosses& a) {
  total->switch_loss += a.switch_loss;
  total->importance_loss += a.importance_loss;
  total->load_loss += a.load_loss;
  total->z_loss += a.z_loss;
}

// Rng streams of init(): the routers first, then routed experts, then shared experts.
constexpr uint64_t kExpertStreamBase = 1 << 20;
constexpr uint64_t kSharedStreamBase = 2 << 20;

}  // namespace

std::vector<ExpertConfig> repeat_experts(const ExpertConfig& c, int64_t n) {
  return std::vector<ExpertConfig>(static_cast<size_t>(n), c);
}

Status validate_moe_config(const MoeConfig& c) {
  if (c.d_model <= 0) return Status::error("moe: d_model must be positive, got {}", c.d_model);
  const auto n_experts = static_cast<int64_t>(c.experts.size());
  if (n_experts == 0) return Status::error("moe: at least one routed expert is needed");
  for (size_t e = 0; e < c.experts.size(); ++e)
    MOE_TRY(validate_expert_config(c.experts[e]).with_context(fmt::format("moe: experts[{}]", e)));
  for (size_t i = 0; i < c.shared.size(); ++i)
    MOE_TRY(validate_expert_config(c.shared[i]).with_context(fmt::format("moe: shared[{}]", i)));
  const int64_t g = c.hierarchy.n_groups;
  if (g < 0)
    return Status::error("moe: hierarchy.n_groups must be 0 (flat) or positive, got {}", g);
  const int64_t per_gate = g > 0 ? n_experts / g : n_experts;
  if (g > 0) {
    if (n_experts % g != 0)
      return Status::error("moe: {} experts do not split into {} equal groups", n_experts, g);
    if (c.hierarchy.top.n_experts != g || c.hierarchy.top.d_model != c.d_model)
      return Status::error(
          "moe: hierarchy.top gate must have n_experts = {} groups and d_model = {}, got {} "
          "and {}",
          g, c.d_model, c.hierarchy.top.n_experts, c.hierarchy.top.d_model);
    MOE_TRY(validate_gate_config(c.hierarchy.top).with_context("moe: hierarchy.top"));
  }
  if (c.gate.n_experts != per_gate || c.gate.d_model != c.d_model)
    return Status::error("moe: gate must have n_experts = {} and d_model = {}, got {} and {}",
                         per_gate, c.d_model, c.gate.n_experts, c.gate.d_model);
  return validate_gate_config(c.gate).with_context("moe: gate");
}

MoeLayer::MoeLayer(MoeConfig config) : config_(std::move(config)) {
  const Status s = validate_moe_config(config_);
  MOE_CHECK(s.is_ok(), "{}", s.message());
  const int64_t g = config_.hierarchy.n_groups;
  gates_.emplace_back(g > 0 ? config_.hierarchy.top : config_.gate);
  for (int64_t i = 0; i < g; ++i) gates_.emplace_back(config_.gate);
  for (const ExpertConfig& e : config_.experts) experts_.emplace_back(config_.d_model, e);
  for (const ExpertConfig& e : config_.shared) shared_.emplace_back(config_.d_model, e);
  gate_inputs_.resize(gates_.size());
  group_plans_.resize(static_cast<size_t>(g));
  group_dweights_.resize(static_cast<size_t>(g));
}

void MoeLayer::declare(ParamStore& store, const std::string& prefix) {
  gates_[0].declare(store, prefix + ".router");
  for (int64_t g = 0; g < n_groups(); ++g)
    group_gate(g).declare(store, fmt::format("{}.groups.{}.router", prefix, g));
  for (size_t e = 0; e < experts_.size(); ++e)
    experts_[e].declare(store, fmt::format("{}.experts.{}", prefix, e));
  for (size_t i = 0; i < shared_.size(); ++i)
    shared_[i].declare(store, fmt::format("{}.shared.{}", prefix, i));
}

void MoeLayer::bind(const ParamStore& store) {
  for (Gate& g : gates_) g.bind(store);
  for (Expert& e : experts_) e.bind(store);
  for (Expert& e : shared_) e.bind(store);
}

void MoeLayer::init(Rng& rng) {
  // Each part draws from its own stream, so adding an expert does not change the others' init.
  for (size_t i = 0; i < gates_.size(); ++i) {
    Rng r = rng.fork(i);
    gates_[i].init(r);
  }
  for (size_t e = 0; e < experts_.size(); ++e) {
    Rng r = rng.fork(kExpertStreamBase + e);
    experts_[e].init(r);
  }
  for (size_t i = 0; i < shared_.size(); ++i) {
    Rng r = rng.fork(kSharedStreamBase + i);
    shared_[i].init(r);
  }
}

void MoeLayer::forward(Tensor x, Tensor y, bool training, const Rng& rng, Arena& arena,
                       const int64_t* token_ids) {
  const int64_t d = config_.d_model, t = x.rows();
  MOE_CHECK(x.cols() == d && y.rows() == t && y.cols() == d, "moe forward: x {} y {} for D={}",
            x.shape().str(), y.shape().str(), d);
  x_ = x;
  token_ids_ = token_ids;
  for (size_t i = 0; i < gates_.size(); ++i) {
    gate_inputs_[i].training = training;
    gate_inputs_[i].rng = n_groups() > 0 ? rng.fork(i) : rng;
  }
  if (n_groups() > 0)
    route_hierarchical(arena);
  else
    route_flat(arena);

  const int64_t n_kept = plan_.n_kept();
  Tensor xs = arena.alloc(Shape{n_kept, d});  // [S_kept, D]
  ys_ = arena.alloc(Shape{n_kept, d});        // [S_kept, D]
  dispatch_forward(plan_, x, xs);
  for (size_t e = 0; e < experts_.size(); ++e) {
    const int64_t begin = plan_.expert_offsets[e], end = plan_.expert_offsets[e + 1];
    experts_[e].forward(xs.slice(begin, end), ys_.slice(begin, end), arena);
  }
  combine_forward(plan_, ys_, y);
  if (!shared_.empty()) {
    Tensor shared_out = arena.alloc(Shape{t, d});  // [T, D]
    for (Expert& s : shared_) {
      s.forward(x, shared_out, arena);
      add(y, shared_out, y);
    }
  }
}

void MoeLayer::route_flat(Arena& arena) {
  GateInput& in = gate_inputs_[0];
  in.x = x_;
  in.token_ids = token_ids_;
  in.first_row = 0;
  aux_ = {};
  gates_[0].forward(in, arena, &plan_, &aux_);
  aux_loss_ = aux_.weighted_total(config_.gate);
}

void MoeLayer::route_hierarchical(Arena& arena) {
  const int64_t d = config_.d_model, per_group = config_.gate.n_experts;
  GateInput& top_in = gate_inputs_[0];
  top_in.x = x_;
  top_in.token_ids = token_ids_;
  top_in.first_row = 0;
  aux_ = {};
  gates_[0].forward(top_in, arena, &top_plan_, &aux_);
  aux_loss_ = aux_.weighted_total(config_.hierarchy.top);

  // Each group's gate sees the rows the top gate sent to it, with their tokens' ids.
  const int64_t n_top_kept = top_plan_.n_kept();
  xs_top_ = arena.alloc(Shape{n_top_kept, d});  // [S0_kept, D]
  dispatch_forward(top_plan_, x_, xs_top_);
  group_ids_ = arena.alloc(Shape{n_top_kept}, DType::kI64);  // [S0_kept]
  int64_t* ids = group_ids_.data<int64_t>();
  for (int64_t p = 0; p < n_top_kept; ++p) {
    const int64_t tok =
        top_plan_.slot_token[static_cast<size_t>(top_plan_.perm[static_cast<size_t>(p)])];
    ids[p] = token_ids_ != nullptr ? token_ids_[tok] : tok;
  }
  for (int64_t g = 0; g < n_groups(); ++g) {
    RoutingPlan& plan = group_plans_[static_cast<size_t>(g)];
    const int64_t begin = top_plan_.expert_offsets[static_cast<size_t>(g)];
    const int64_t end = top_plan_.expert_offsets[static_cast<size_t>(g + 1)];
    if (begin == end) {  // no token reached this group: its gate does not run
      plan.reset_uniform(0, per_group, 0);
      sort_slots_by_expert(&plan);
      continue;
    }
    GateInput& in = gate_inputs_[static_cast<size_t>(1 + g)];
    in.x = xs_top_.slice(begin, end);
    in.token_ids = ids + begin;
    in.first_row = 0;
    AuxLosses group_aux;
    group_gate(g).forward(in, arena, &plan, &group_aux);
    add_aux(&aux_, group_aux);
    aux_loss_ += group_aux.weighted_total(config_.gate);
  }
  combine_hierarchical_plans(top_plan_, group_plans_, &plan_, &hierarchy_slots_);
}

void MoeLayer::backward(Tensor dy, Tensor dx, Arena& arena) {
  const int64_t d = config_.d_model, t = x_.rows();
  MOE_CHECK(dy.shape() == x_.shape() && dx.shape() == x_.shape(),
            "moe backward: dy {} dx {} after a forward of x {}", dy.shape().str(), dx.shape().str(),
            x_.shape().str());
  const size_t mark = arena.mark();
  const int64_t n_kept = plan_.n_kept();
  Tensor dys = arena.alloc(Shape{n_kept, d});                   // [S_kept, D]
  float* dweights = arena.alloc_array<float>(plan_.n_slots());  // [S]
  combine_backward(plan_, ys_, dy, dys, dweights);
  Tensor dxs = arena.alloc(Shape{n_kept, d});  // [S_kept, D]
  for (size_t e = 0; e < experts_.size(); ++e) {
    const int64_t begin = plan_.expert_offsets[e], end = plan_.expert_offsets[e + 1];
    experts_[e].backward(dys.slice(begin, end), dxs.slice(begin, end), arena);
  }
  dispatch_backward(plan_, dxs, dx);
  if (n_groups() > 0)
    gate_backward_hierarchical(dweights, dx, arena);
  else
    gates_[0].backward(gate_inputs_[0], plan_, dweights, dx, arena);
  if (!shared_.empty()) {
    Tensor shared_dx = arena.alloc(Shape{t, d});  // [T, D]
    for (Expert& s : shared_) {
      s.backward(dy, shared_dx, arena);
      add(dx, shared_dx, dx);
    }
  }
  arena.release(mark);
}

void MoeLayer::gate_backward_hierarchical(const float* dweights, Tensor dx, Arena& arena) {
  const int64_t d = config_.d_model;
  float* dtop = arena.alloc_array<float>(top_plan_.n_slots());  // [S0]
  for (int64_t g = 0; g < n_groups(); ++g)
    group_dweights_[static_cast<size_t>(g)] =
        arena.alloc_array<float>(group_plans_[static_cast<size_t>(g)].n_slots());  // [S_g]
  split_hierarchical_dweights(top_plan_, group_plans_, hierarchy_slots_, dweights, dtop,
                              group_dweights_);
  // The group gates' dL/dx lands on the rows they saw; dispatch's adjoint takes it to tokens.
  Tensor dxs_top = arena.zeros(Shape{top_plan_.n_kept(), d});  // [S0_kept, D]
  for (int64_t g = 0; g < n_groups(); ++g) {
    const int64_t begin = top_plan_.expert_offsets[static_cast<size_t>(g)];
    const int64_t end = top_plan_.expert_offsets[static_cast<size_t>(g + 1)];
    if (begin == end) continue;
    group_gate(g).backward(
        gate_inputs_[static_cast<size_t>(1 + g)], group_plans_[static_cast<size_t>(g)],
        group_dweights_[static_cast<size_t>(g)], dxs_top.slice(begin, end), arena);
  }
  Tensor dx_groups = arena.alloc(Shape{x_.rows(), d});  // [T, D]
  dispatch_backward(top_plan_, dxs_top, dx_groups);
  add(dx, dx_groups, dx);
  gates_[0].backward(gate_inputs_[0], top_plan_, dtop, dx, arena);
}

void MoeLayer::after_step() {
  if (n_groups() == 0) {
    gates_[0].after_step(plan_);
    return;
  }
  gates_[0].after_step(top_plan_);
  for (int64_t g = 0; g < n_groups(); ++g)
    group_gate(g).after_step(group_plans_[static_cast<size_t>(g)]);
}

}  // namespace moe
