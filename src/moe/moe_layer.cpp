#include "moe/moe/moe_layer.h"

#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <span>

#include "moe/dist/communicator.h"
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

// kAuto splits threads across experts when there are at least this many segments per thread and
// no segment is more than a thread's fair share of the work, so the fixed assignment can balance
// them. One thread per GEMM then runs whole GEMMs without a barrier; a GEMM threaded inside pays
// one per call and, at a few hundred rows, runs below its large-M speed (bench/bench_moe.cpp
// --threading across|inside measures both; docs/benchmarks.md, "MoE layer").
constexpr int64_t kSegmentsPerThread = 2;
// ...and when the experts' forward holds at least this many FLOPs per thread (rows ·
// flops_per_row summed over segments; 6 · 2²² is 2²² of a SwiGLU expert's rows · F · D, about
// 0.1 ms of one core): below it a parallel region's barrier costs more than it saves, and far
// more when another process holds a core and the waiting thread spins for it (a small layer then
// ran hundreds of times slower).
constexpr int64_t kAcrossExpertsMinFlopsPerThread = int64_t{6} << 22;

double now() {
  return omp_get_wtime();
}

template <typename T>
T* alloc_or_null(Arena& arena, int64_t n) {
  return n > 0 ? arena.alloc_array<T>(n) : nullptr;
}

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
  set_precision(config_.precision);
  gate_inputs_.resize(gates_.size());
  memory_offsets_.resize(experts_.size());
  expert_order_.resize(experts_.size());
  expert_worker_.resize(experts_.size());
  group_plans_.resize(static_cast<size_t>(g));
  group_dweights_.resize(static_cast<size_t>(g));
}

void MoeLayer::set_precision(Precision p) {
  config_.precision = p;
  for (Expert& e : experts_) e.set_precision(p);
  for (Expert& e : shared_) e.set_precision(p);
}

int64_t MoeLayer::bf16_weight_bytes() const {
  int64_t bytes = 0;
  for (const Expert& e : experts_) bytes += e.bf16_weight_bytes();
  for (const Expert& e : shared_) bytes += e.bf16_weight_bytes();
  return bytes;
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
    gate_inputs_[i].aux_grad_scale = aux_grad_scale_;
  }
  double t0 = now();
  if (n_groups() > 0)
    route_hierarchical(arena);
  else
    route_flat(arena);
  double t1 = now();
  times_.route = t1 - t0;

  const int64_t n_kept = plan_.n_kept();
  Tensor xs = arena.alloc(Shape{n_kept, d});  // [S_kept, D]
  ys_ = arena.alloc(Shape{n_kept, d});        // [S_kept, D]
  dispatch_forward(plan_, x, xs);
  // Evaluation runs every expert here (the weights are whole on every rank).
  ep_active_ = ep_ != nullptr && training && n_groups() == 0;
  times_.exchange = 0.0;
  run_offsets_ = plan_.expert_offsets.data();
  if (ep_active_) {
    plan_exchange();
    ep_xs_ = arena.alloc(Shape{ep_offsets_.back(), d});  // [R, D]
    ep_ys_ = arena.alloc(Shape{ep_offsets_.back(), d});  // [R, D]
    exchange(xs, ep_xs_, /*out=*/true, arena);
  }
  t0 = now();
  times_.dispatch = t0 - t1;
  if (ep_active_) {
    experts_forward(ep_xs_, ep_ys_, arena);
    exchange(ys_, ep_ys_, /*out=*/false, arena);
  } else {
    experts_forward(xs, ys_, arena);
  }
  t1 = now();
  times_.experts = t1 - t0;
  combine_forward(plan_, ys_, y);
  t0 = now();
  times_.combine = t0 - t1;
  if (!shared_.empty()) {
    Tensor shared_out = arena.alloc(Shape{t, d});  // [T, D]
    for (Expert& s : shared_) {
      s.forward(x, shared_out, arena);
      add(y, shared_out, y);
    }
  }
  times_.shared = now() - t0;
}

bool MoeLayer::across_experts() const {
  if (threading_ != ExpertThreading::kAuto) return threading_ == ExpertThreading::kAcrossExperts;
  const int threads = omp_get_max_threads();
  if (threads < 2 || omp_in_parallel() || n_ordered_ < kSegmentsPerThread * threads) return false;
  int64_t total = 0, largest = 0;
  for (int64_t i = 0; i < n_ordered_; ++i) {
    const auto e = static_cast<size_t>(expert_order_[static_cast<size_t>(i)]);
    const int64_t work = segment_flops(e);
    total += work;
    largest = std::max(largest, work);
  }
  return largest * threads <= total && total >= kAcrossExpertsMinFlopsPerThread * threads;
}

int64_t MoeLayer::segment_flops(size_t e) const {
  return (run_offsets_[e + 1] - run_offsets_[e]) * experts_[e].flops_per_row();
}

int MoeLayer::expert_owner(int64_t e, int64_t n_experts, int ranks) {
  // The q with E·q/N ≤ e < E·(q+1)/N.
  int q = static_cast<int>(e * ranks / n_experts);
  while (q + 1 < ranks && n_experts * (q + 1) / ranks <= e) ++q;
  while (q > 0 && n_experts * q / ranks > e) --q;
  return q;
}

void MoeLayer::plan_exchange() {
  const double t0 = now();
  const int n = ep_->size(), me = ep_->rank();
  const int64_t e_n = n_experts(), d = config_.d_model;
  // Every rank's rows per expert, summed so that every rank knows them all.
  ep_scratch_.assign(static_cast<size_t>(n * e_n), 0.0);
  for (int64_t e = 0; e < e_n; ++e)
    ep_scratch_[static_cast<size_t>(me * e_n + e)] = static_cast<double>(plan_.expert_rows(e));
  const Status st = ep_->all_reduce_sum(std::span<double>(ep_scratch_));
  MOE_CHECK(st.is_ok(), "expert parallel: the rows per expert: {}", st.message());
  ep_counts_.resize(ep_scratch_.size());
  for (size_t i = 0; i < ep_scratch_.size(); ++i)
    ep_counts_[i] = static_cast<int64_t>(ep_scratch_[i]);
  const auto count = [&](int q, int64_t e) { return ep_counts_[static_cast<size_t>(q * e_n + e)]; };
  const int64_t mine_lo = e_n * me / n, mine_hi = e_n * (me + 1) / n;
  ep_send_.assign(static_cast<size_t>(n), 0);
  ep_recv_.assign(static_cast<size_t>(n), 0);
  for (int64_t e = 0; e < e_n; ++e)
    ep_send_[static_cast<size_t>(expert_owner(e, e_n, n))] += count(me, e) * d;
  for (int q = 0; q < n; ++q)
    for (int64_t e = mine_lo; e < mine_hi; ++e) ep_recv_[static_cast<size_t>(q)] += count(q, e) * d;
  // This rank's experts' rows sorted by expert (each expert's: rank 0's, then rank 1's, ...).
  ep_offsets_.assign(static_cast<size_t>(e_n + 1), 0);
  for (int64_t e = 0; e < e_n; ++e) {
    int64_t rows = 0;
    if (e >= mine_lo && e < mine_hi)
      for (int q = 0; q < n; ++q) rows += count(q, e);
    ep_offsets_[static_cast<size_t>(e + 1)] = ep_offsets_[static_cast<size_t>(e)] + rows;
  }
  // Received in sender order, each sender's rows by expert: where each goes.
  ep_perm_.resize(static_cast<size_t>(ep_offsets_.back()));
  std::vector<int64_t> at(ep_offsets_.begin(), ep_offsets_.end() - 1);
  size_t i = 0;
  for (int q = 0; q < n; ++q)
    for (int64_t e = mine_lo; e < mine_hi; ++e)
      for (int64_t r = 0; r < count(q, e); ++r) ep_perm_[i++] = at[static_cast<size_t>(e)]++;
  run_offsets_ = ep_offsets_.data();
  times_.exchange += now() - t0;
}

void MoeLayer::exchange(Tensor kept, Tensor local, bool out, Arena& arena) {
  const double t0 = now();
  const int64_t d = config_.d_model, rows = ep_offsets_.back();
  const size_t mark = arena.mark();
  Tensor wire = arena.alloc(Shape{rows, d});  // [R, D] in sender order
  const auto kept_span = std::span<float>(kept.f32(), static_cast<size_t>(kept.numel()));
  const auto wire_span = std::span<float>(wire.f32(), static_cast<size_t>(wire.numel()));
  float* w = wire.f32();
  float* l = local.f32();
  const auto row_bytes = static_cast<size_t>(d) * sizeof(float);
  if (out) {
    const Status st = ep_->all_to_all_v_agreed(kept_span, ep_send_, wire_span, ep_recv_);
    MOE_CHECK(st.is_ok(), "expert parallel: the rows out to their experts: {}", st.message());
    for (size_t i = 0; i < ep_perm_.size(); ++i)
      std::memcpy(l + ep_perm_[i] * d, w + static_cast<int64_t>(i) * d, row_bytes);
  } else {
    for (size_t i = 0; i < ep_perm_.size(); ++i)
      std::memcpy(w + static_cast<int64_t>(i) * d, l + ep_perm_[i] * d, row_bytes);
    const Status st = ep_->all_to_all_v_agreed(wire_span, ep_recv_, kept_span, ep_send_);
    MOE_CHECK(st.is_ok(), "expert parallel: the experts' rows back: {}", st.message());
  }
  arena.release(mark);
  times_.exchange += now() - t0;
}

void MoeLayer::experts_forward(Tensor xs, Tensor ys, Arena& arena) {
  // Every expert's cache is a slice of one packed buffer per type (fp32, bf16), its backward's
  // scratch likewise: expert e owns rows_e · its footprint at the offsets laid out here.
  ExpertFootprint total;
  n_ordered_ = 0;
  for (size_t e = 0; e < experts_.size(); ++e) {
    const int64_t rows = run_offsets_[e + 1] - run_offsets_[e];
    const ExpertFootprint fp = experts_[e].footprint();
    ExpertFootprint& at = memory_offsets_[e];
    at = total;
    total.cache += rows * fp.cache;
    total.cache_bf16 += rows * fp.cache_bf16;
    total.scratch += rows * fp.scratch;
    total.scratch_bf16 += rows * fp.scratch_bf16;
    if (rows > 0) {
      expert_order_[static_cast<size_t>(n_ordered_++)] = static_cast<int32_t>(e);
    } else {  // no rows: the expert only records its empty input
      const int64_t begin = run_offsets_[e];
      experts_[e].forward_into(xs.slice(begin, begin), ys.slice(begin, begin), {});
    }
  }
  memory_total_ = total;
  // Largest segment first (the order the threads' assignment below is made in).
  const int64_t* offsets = run_offsets_;
  std::sort(expert_order_.begin(), expert_order_.begin() + n_ordered_,
            [offsets](int32_t a, int32_t b) {
              const int64_t ra = offsets[a + 1] - offsets[a], rb = offsets[b + 1] - offsets[b];
              return ra > rb || (ra == rb && a < b);
            });
  float* cache = alloc_or_null<float>(arena, total.cache);       // [Σ rows_e · cache_e]
  bf16* cache16 = alloc_or_null<bf16>(arena, total.cache_bf16);  // [Σ rows_e · cache_bf16_e]
  assign_segments();
  run_segments([&](size_t e) {
    const int64_t begin = run_offsets_[e], end = run_offsets_[e + 1];
    const ExpertFootprint& at = memory_offsets_[e];
    experts_[e].forward_into(xs.slice(begin, end), ys.slice(begin, end),
                             {cache + at.cache, cache16 + at.cache_bf16});
  });
}

void MoeLayer::assign_segments() {
  n_workers_ = across_experts() ? omp_get_max_threads() : 1;
  if (n_workers_ == 1) return;
  // Longest processing time first: each segment, largest first, goes to the least-loaded
  // thread. The assignment is a function of the plan alone, so a thread sees the same segment
  // shapes from step to step while routing holds still (its cached GEMM primitives then cover
  // them), and no work queue is shared at run time.
  worker_load_.assign(static_cast<size_t>(n_workers_), 0);
  for (int64_t i = 0; i < n_ordered_; ++i) {
    const auto e = static_cast<size_t>(expert_order_[static_cast<size_t>(i)]);
    const auto least = static_cast<size_t>(
        std::min_element(worker_load_.begin(), worker_load_.end()) - worker_load_.begin());
    worker_load_[least] += segment_flops(e);
    expert_worker_[e] = static_cast<int32_t>(least);
  }
}

template <typename F>
void MoeLayer::run_segments(F&& run_expert) {
  // No parallel region at all on one worker: even an inactive one costs libgomp an allocation.
  if (n_workers_ == 1) {
    for (int64_t i = 0; i < n_ordered_; ++i)
      run_expert(static_cast<size_t>(expert_order_[static_cast<size_t>(i)]));
    return;
  }
#pragma omp parallel num_threads(n_workers_)
  {
    const int worker = omp_get_thread_num(), team = omp_get_num_threads();
    for (int64_t i = 0; i < n_ordered_; ++i) {
      const auto e = static_cast<size_t>(expert_order_[static_cast<size_t>(i)]);
      if (expert_worker_[e] % team == worker) run_expert(e);
    }
  }
}

void MoeLayer::experts_backward(Tensor dys, Tensor dxs, Arena& arena) {
  float* scratch = alloc_or_null<float>(arena, memory_total_.scratch);  // [Σ rows_e · scratch_e]
  bf16* scratch16 = alloc_or_null<bf16>(arena, memory_total_.scratch_bf16);  // likewise, bf16
  run_segments([&](size_t e) {  // the forward's assignment of segments to threads
    const int64_t begin = run_offsets_[e], end = run_offsets_[e + 1];
    const ExpertFootprint& at = memory_offsets_[e];
    experts_[e].backward_into(dys.slice(begin, end), dxs.slice(begin, end),
                              {scratch + at.scratch, scratch16 + at.scratch_bf16});
  });
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
  double t0 = now();
  Tensor dys = arena.alloc(Shape{n_kept, d});                   // [S_kept, D]
  float* dweights = arena.alloc_array<float>(plan_.n_slots());  // [S]
  combine_backward(plan_, ys_, dy, dys, dweights);
  double t1 = now();
  times_.combine_bwd = t1 - t0;
  Tensor dxs = arena.alloc(Shape{n_kept, d});  // [S_kept, D]
  if (ep_active_) {  // the gradients to the experts' owners and back, as the rows went
    Tensor dys_local = arena.alloc(ep_xs_.shape());  // [R, D]
    Tensor dxs_local = arena.alloc(ep_xs_.shape());  // [R, D]
    exchange(dys, dys_local, /*out=*/true, arena);
    experts_backward(dys_local, dxs_local, arena);
    exchange(dxs, dxs_local, /*out=*/false, arena);
  } else {
    experts_backward(dys, dxs, arena);
  }
  t0 = now();
  times_.experts_bwd = t0 - t1;
  dispatch_backward(plan_, dxs, dx);
  t1 = now();
  times_.dispatch_bwd = t1 - t0;
  if (n_groups() > 0)
    gate_backward_hierarchical(dweights, dx, arena);
  else
    gates_[0].backward(gate_inputs_[0], plan_, dweights, dx, arena);
  t0 = now();
  times_.route_bwd = t0 - t1;
  if (!shared_.empty()) {
    Tensor shared_dx = arena.alloc(Shape{t, d});  // [T, D]
    for (Expert& s : shared_) {
      s.backward(dy, shared_dx, arena);
      add(dx, shared_dx, dx);
    }
  }
  times_.shared_bwd = now() - t0;
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

void MoeLayer::after_step(const LoadSum& sum_loads) {
  if (n_groups() == 0) {
    gates_[0].after_step(plan_, sum_loads);
    return;
  }
  gates_[0].after_step(top_plan_, sum_loads);
  for (int64_t g = 0; g < n_groups(); ++g)
    group_gate(g).after_step(group_plans_[static_cast<size_t>(g)], sum_loads);
}

}  // namespace moe
