#include "moe/core/params.h"

#include <cstring>

namespace moe {

ParamId ParamStore::add(const std::string& name, Shape shape, bool decay) {
  MOE_CHECK(values_.view().empty(), "ParamStore::add('{}') after finalize", name);
  MOE_CHECK(!by_name_.count(name), "parameter '{}' declared twice", name);
  const auto id = static_cast<ParamId>(params_.size());
  params_.push_back({name, shape, total_, decay});
  by_name_[name] = id;
  constexpr int64_t kAlignFloats = 16;  // 64 bytes
  total_ += (shape.numel() + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
  return id;
}

void ParamStore::defer_zero_grad(ParamId id) {
  MOE_CHECK(values_.view().empty(), "ParamStore::defer_zero_grad after finalize");
  MOE_CHECK(id >= 0 && id < size(), "parameter id {} of {}", id, size());
  params_[static_cast<size_t>(id)].defer_zero = true;
}

void ParamStore::finalize() {
  MOE_CHECK(values_.view().empty(), "ParamStore::finalize called twice");
  values_ = TensorBuffer(Shape{total_});
  grads_ = TensorBuffer(Shape{total_});
  grad_clear_.assign(params_.size(), 0);
}

Tensor ParamStore::value(ParamId id) const {
  MOE_CHECK(id >= 0 && id < size(), "parameter id {} of {}", id, size());
  const ParamInfo& p = params_[static_cast<size_t>(id)];
  return Tensor(values_.f32() + p.offset, p.shape);
}

Tensor ParamStore::grad(ParamId id) const {
  MOE_CHECK(id >= 0 && id < size(), "parameter id {} of {}", id, size());
  const ParamInfo& p = params_[static_cast<size_t>(id)];
  return Tensor(grads_.f32() + p.offset, p.shape);
}

Tensor ParamStore::grads() const {
  MOE_CHECK(!settling_, "ParamStore::grads() between clear_grads() and settle_grads()");
  return grads_.view();
}

void ParamStore::zero_grad(const ParamInfo& p) {
  std::memset(grads_.f32() + p.offset, 0, static_cast<size_t>(p.shape.numel()) * sizeof(float));
}

void ParamStore::zero_grads() {
  if (total_ > 0) std::memset(grads_.f32(), 0, static_cast<size_t>(total_) * sizeof(float));
  grad_clear_.assign(params_.size(), 0);
  settling_ = false;
}

void ParamStore::clear_grads() {
  MOE_CHECK(finalized(), "ParamStore::clear_grads before finalize");
  // Padding between parameters is never written, so it stays zero from finalize().
  for (size_t i = 0; i < params_.size(); ++i) {
    grad_clear_[i] = params_[i].defer_zero ? 1 : 0;
    if (!params_[i].defer_zero) zero_grad(params_[i]);
  }
  settling_ = true;
}

bool ParamStore::claim_grad(ParamId id) const {
  MOE_CHECK(id >= 0 && id < size(), "parameter id {} of {}", id, size());
  uint8_t& clear = grad_clear_[static_cast<size_t>(id)];
  if (clear == 0) return false;
  clear = 0;
  return true;
}

void ParamStore::settle_grads() {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (grad_clear_[i] == 0) continue;
    // A frozen parameter's gradient is read by nothing: a backward that skips it leaves it be.
    if (!params_[i].frozen) zero_grad(params_[i]);
    grad_clear_[i] = 0;
  }
  settling_ = false;
}

ParamId ParamStore::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? -1 : it->second;
}

void ParamStore::freeze(ParamId id) {
  MOE_CHECK(id >= 0 && id < size(), "parameter id {} of {}", id, size());
  params_[static_cast<size_t>(id)].frozen = true;
}

int64_t ParamStore::n_trainable_elements() const {
  int64_t n = 0;
  for (const auto& p : params_)
    if (!p.frozen) n += p.shape.numel();
  return n;
}

int64_t ParamStore::n_elements() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.shape.numel();
  return n;
}

}  // namespace moe
