// SGD, Adam and AdamW (formulas in include/moe/optim/optimizer.h).
//
// Dims: N = the ParamStore's arena length.
// One parallel region per step; inside it each parameter's range is split among the threads
// (`omp for nowait`: ranges are disjoint, so no barrier is needed between them). Padding between
// parameters is never touched.
#include "moe/optim/optimizer.h"

#include <cmath>

namespace moe {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // elements below which threading costs more

}  // namespace

const char* optimizer_kind_name(OptimizerKind k) {
  return enum_name(kOptimizerKindNames, k);
}

bool parse_optimizer_kind(const std::string& name, OptimizerKind* out) {
  return parse_enum_name(kOptimizerKindNames, name, out);
}

Status OptimizerConfig::validate() const {
  const char* name = optimizer_kind_name(kind);
  if (!(weight_decay >= 0.0) || !std::isfinite(weight_decay))
    return Status::error("{}: weight_decay must be a finite number >= 0, got {}", name,
                         weight_decay);
  if (kind == OptimizerKind::kSgd) {
    if (!(momentum >= 0.0) || !std::isfinite(momentum))
      return Status::error("sgd: momentum must be a finite number >= 0, got {}", momentum);
    if (nesterov && momentum == 0.0) return Status::error("sgd: nesterov needs a momentum > 0");
    return Status::ok();
  }
  if (!(beta1 >= 0.0 && beta1 < 1.0))
    return Status::error("{}: beta1 must lie in [0, 1), got {}", name, beta1);
  if (!(beta2 >= 0.0 && beta2 < 1.0))
    return Status::error("{}: beta2 must lie in [0, 1), got {}", name, beta2);
  if (!(eps > 0.0) || !std::isfinite(eps))
    return Status::error("{}: eps must be a finite number > 0, got {}", name, eps);
  return Status::ok();
}

Tensor param_slice(Tensor arena, const ParamInfo& info) {
  MOE_CHECK(info.offset + info.shape.numel() <= arena.numel(),
            "param_slice: '{}' at {} + {} outside an arena of {}", info.name, info.offset,
            info.shape.numel(), arena.numel());
  return Tensor(arena.f32() + info.offset, info.shape);
}

Optimizer::Optimizer(ParamStore& store, const OptimizerConfig& config)
    : store_(&store), config_(config) {
  MOE_CHECK(store.finalized(), "optimizer: ParamStore not finalized");
  const Status valid = config.validate();
  MOE_CHECK(valid.is_ok(), "optimizer: {}", valid.message());
  // The store's layout without the frozen parameters: the same 64-byte alignment, so with none
  // frozen a parameter's state sits at the parameter's own offset.
  constexpr int64_t kAlignFloats = 16;
  for (const ParamInfo& info : store.params()) {
    state_offset_.push_back(info.frozen ? -1 : state_size_);
    if (!info.frozen)
      state_size_ += (info.shape.numel() + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
  }
}

Tensor Optimizer::state_slice(Tensor arena, ParamId id) const {
  const ParamInfo& info = store_->info(id);
  const int64_t at = state_offset_[static_cast<size_t>(id)];
  MOE_CHECK(at >= 0, "state_slice: '{}' is frozen and has no optimizer state", info.name);
  MOE_CHECK(at + info.shape.numel() <= arena.numel(),
            "state_slice: '{}' at {} + {} outside a state arena of {}", info.name, at,
            info.shape.numel(), arena.numel());
  return Tensor(arena.f32() + at, info.shape);
}

void Optimizer::set_step_count(int64_t n) {
  MOE_CHECK(n >= 0, "set_step_count: negative step {}", n);
  step_count_ = n;
}

Sgd::Sgd(ParamStore& store, const OptimizerConfig& config) : Optimizer(store, config) {
  MOE_CHECK(config.kind == OptimizerKind::kSgd, "Sgd built with kind {}",
            optimizer_kind_name(config.kind));
  if (config.momentum != 0.0) momentum_ = TensorBuffer(Shape{state_size_});
}

void Sgd::step(double lr) {
  ++step_count_;
  const std::vector<ParamInfo>& params = store_->params();
  if (params.empty()) return;
  float* p = store_->values().f32();                                      // [N]
  const float* g = store_->grads().f32();                                 // [N]
  float* b_arena = momentum_.view().empty() ? nullptr : momentum_.f32();  // [M]
  const double mu = config_.momentum;
  const bool nesterov = config_.nesterov;
  const bool parallel = store_->n_trainable_elements() >= kParallelMin;
#pragma omp parallel if (parallel)
  for (size_t id = 0; id < params.size(); ++id) {
    const ParamInfo& info = params[id];
    if (info.frozen) continue;
    const double wd = info.decay ? config_.weight_decay : 0.0;
    const int64_t n = info.shape.numel();
    float* pp = p + info.offset;
    const float* gp = g + info.offset;
    if (b_arena == nullptr) {
#pragma omp for simd schedule(static) nowait
      for (int64_t i = 0; i < n; ++i) {
        const double d = static_cast<double>(gp[i]) + wd * pp[i];
        pp[i] = static_cast<float>(pp[i] - lr * d);
      }
    } else {
      float* b = b_arena + state_offset_[id];  // the state arena lays parameters out apart
#pragma omp for simd schedule(static) nowait
      for (int64_t i = 0; i < n; ++i) {
        const double d = static_cast<double>(gp[i]) + wd * pp[i];
        const double buf = mu * b[i] + d;
        const double dir = nesterov ? d + mu * buf : buf;
        b[i] = static_cast<float>(buf);
        pp[i] = static_cast<float>(pp[i] - lr * dir);
      }
    }
  }
}

std::vector<NamedTensor> Sgd::state() const {
  if (momentum_.view().empty()) return {};
  return {{"sgd.momentum", momentum_.view()}};
}

Adam::Adam(ParamStore& store, const OptimizerConfig& config)
    : Optimizer(store, config), m_(Shape{state_size_}), v_(Shape{state_size_}) {
  MOE_CHECK(config.kind == OptimizerKind::kAdam || config.kind == OptimizerKind::kAdamW,
            "Adam built with kind {}", optimizer_kind_name(config.kind));
}

void Adam::step(double lr) {
  ++step_count_;
  const std::vector<ParamInfo>& params = store_->params();
  if (params.empty()) return;
  const double beta1 = config_.beta1, beta2 = config_.beta2, eps = config_.eps;
  const auto t = static_cast<double>(step_count_);
  const double step_size = lr / (1.0 - std::pow(beta1, t));               // η / (1 − β₁ᵗ)
  const double inv_bc2_sqrt = 1.0 / std::sqrt(1.0 - std::pow(beta2, t));  // 1 / √(1 − β₂ᵗ)
  const bool decoupled = config_.kind == OptimizerKind::kAdamW;
  float* p = store_->values().f32();       // [N]
  const float* g = store_->grads().f32();  // [N]
  const bool parallel = store_->n_trainable_elements() >= kParallelMin;
#pragma omp parallel if (parallel)
  for (size_t id = 0; id < params.size(); ++id) {
    const ParamInfo& info = params[id];
    if (info.frozen) continue;
    float* pp = p + info.offset;
    const float* gp = g + info.offset;
    float* m = m_.f32() + state_offset_[id];  // the state arenas lay parameters out apart
    float* v = v_.f32() + state_offset_[id];
    const double wd = info.decay ? config_.weight_decay : 0.0;
    // Adam adds λ·p to the gradient; AdamW shrinks p by (1 − η·λ) instead. One branch-free loop
    // serves both: the unused term is an exact no-op (+ 0·p, · 1).
    const double l2 = decoupled ? 0.0 : wd;
    const double shrink = decoupled ? 1.0 - lr * wd : 1.0;
    const int64_t n = info.shape.numel();
#pragma omp for simd schedule(static) nowait
    for (int64_t i = 0; i < n; ++i) {
      const double pi = pp[i];
      const double gi = gp[i] + l2 * pi;
      const double mi = beta1 * m[i] + (1.0 - beta1) * gi;
      const double vi = beta2 * v[i] + (1.0 - beta2) * gi * gi;
      const double denom = std::sqrt(vi) * inv_bc2_sqrt + eps;
      m[i] = static_cast<float>(mi);
      v[i] = static_cast<float>(vi);
      pp[i] = static_cast<float>(pi * shrink - step_size * mi / denom);
    }
  }
}

std::vector<NamedTensor> Adam::state() const {
  return {{"adam.m", m_.view()}, {"adam.v", v_.view()}};
}

std::unique_ptr<Optimizer> make_optimizer(ParamStore& store, const OptimizerConfig& config) {
  if (config.kind == OptimizerKind::kSgd) return std::make_unique<Sgd>(store, config);
  return std::make_unique<Adam>(store, config);
}

}  // namespace moe
