#include "moe/moe/experts.h"

#include "expert_kind.h"
#include "moe/kernels/bf16.h"

namespace moe {

Status validate_expert_config(const ExpertConfig& c) {
  if (c.kind != ExpertKind::kLinear && c.hidden <= 0)
    return Status::error("{} expert: hidden width must be positive, got {}",
                         expert_kind_name(c.kind), c.hidden);
  if (c.kind == ExpertKind::kMlp && c.depth < 1)
    return Status::error("mlp expert: depth (hidden layers) must be at least 1, got {}", c.depth);
  return Status::ok();
}

void Bf16Weights::allocate(const std::vector<Shape>& shapes) {
  if (allocated()) return;
  int64_t total = 0;
  for (const Shape& s : shapes) total += s.numel();
  buffer_ = TensorBuffer(Shape{total}, DType::kBF16);  // [Σ numel]
  auto* p = static_cast<bf16*>(buffer_.view().raw());
  views_.clear();
  for (const Shape& s : shapes) {
    views_.emplace_back(p, s, DType::kBF16);
    p += s.numel();
  }
}

void Bf16Weights::round(const std::vector<Tensor>& masters) {
  MOE_CHECK(allocated() && masters.size() == views_.size(),
            "bf16 weights: {} masters for {} copies", masters.size(), views_.size());
  for (size_t i = 0; i < masters.size(); ++i) {
    MOE_CHECK(masters[i].shape() == views_[i].shape(), "bf16 weights: master {} for a copy {}",
              masters[i].shape().str(), views_[i].shape().str());
    convert_to_bf16(masters[i], views_[i]);
  }
}

int64_t Bf16Weights::bytes() const {
  return allocated() ? static_cast<int64_t>(buffer_.view().nbytes()) : 0;
}

namespace {

std::unique_ptr<ExpertKindImpl> make_kind(int64_t d_model, const ExpertConfig& c) {
  switch (c.kind) {
    case ExpertKind::kLinear:
      return make_linear_expert(d_model, c);
    case ExpertKind::kMlp:
      return make_mlp_expert(d_model, c);
    case ExpertKind::kSwiglu:
      return make_swiglu_expert(d_model, c);
  }
  return nullptr;
}

// n rows of a footprint's fp32 and bf16 values from the arena (nothing for a size of 0).
ExpertMemory take(Arena& arena, int64_t n, int64_t f32_per_row, int64_t bf16_per_row) {
  ExpertMemory m;
  if (f32_per_row > 0) m.f32 = arena.alloc_array<float>(n * f32_per_row);
  if (bf16_per_row > 0) m.b16 = arena.alloc_array<bf16>(n * bf16_per_row);
  return m;
}

}  // namespace

Expert::Expert(int64_t d_model, ExpertConfig config) : d_model_(d_model), config_(config) {
  MOE_CHECK(d_model > 0, "expert with model width {}", d_model);
  const Status s = validate_expert_config(config);
  MOE_CHECK(s.is_ok(), "{}", s.message());
  impl_ = make_kind(d_model_, config_);
}

Expert::~Expert() = default;
Expert::Expert(Expert&&) noexcept = default;
Expert& Expert::operator=(Expert&&) noexcept = default;

int64_t Expert::n_params() const {
  return impl_->n_params();
}

int64_t Expert::flops_per_row() const {
  return impl_->flops_per_row();
}

ExpertFootprint Expert::footprint() const {
  return impl_->footprint(precision_);
}

void Expert::set_precision(Precision p) {
  precision_ = p;
  impl_->set_precision(p);
}

int64_t Expert::bf16_weight_bytes() const {
  return impl_->bf16_weight_bytes();
}

void Expert::declare(ParamStore& store, const std::string& prefix) {
  impl_->declare(store, prefix);
}

void Expert::bind(const ParamStore& store) {
  impl_->bind(store);
}

void Expert::init(Rng& rng) {
  impl_->init(rng);
}

void Expert::forward(Tensor x, Tensor y, Arena& arena) {
  const ExpertFootprint fp = footprint();
  forward_into(x, y, take(arena, x.rows(), fp.cache, fp.cache_bf16));
}

void Expert::backward(Tensor dy, Tensor dx, Arena& arena) {
  const ExpertFootprint fp = footprint();
  const size_t mark = arena.mark();
  backward_into(dy, dx, take(arena, x_.rows(), fp.scratch, fp.scratch_bf16));
  arena.release(mark);
}

void Expert::forward_into(Tensor x, Tensor y, ExpertMemory cache) {
  MOE_CHECK(x.cols() == d_model_ && y.cols() == d_model_ && x.rows() == y.rows(),
            "expert ({}) forward: x {} y {} for D={}", expert_kind_name(config_.kind),
            x.shape().str(), y.shape().str(), d_model_);
  x_ = x;
  cache_ = cache;
  if (x.rows() == 0) return;  // an expert that received no rows costs nothing
  impl_->forward({x, cache}, y);
}

void Expert::backward_into(Tensor dy, Tensor dx, ExpertMemory scratch) {
  MOE_CHECK(
      dy.rows() == x_.rows() && dy.cols() == d_model_ && (dx.empty() || dx.shape() == x_.shape()),
      "expert ({}) backward: dy {} dx {} after a forward of x {}", expert_kind_name(config_.kind),
      dy.shape().str(), dx.shape().str(), x_.shape().str());
  // No rows: the gradients stay as they are (settle_grads zeroes a deferred one left clear).
  if (x_.rows() == 0) return;
  impl_->backward({x_, cache_}, dy, dx, scratch);
}

}  // namespace moe
