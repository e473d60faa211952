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

void ParamStore::finalize() {
  MOE_CHECK(values_.view().empty(), "ParamStore::finalize called twice");
  values_ = TensorBuffer(Shape{total_});
  grads_ = TensorBuffer(Shape{total_});
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

void ParamStore::zero_grads() {
  if (total_ > 0) std::memset(grads_.f32(), 0, static_cast<size_t>(total_) * sizeof(float));
}

ParamId ParamStore::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? -1 : it->second;
}

int64_t ParamStore::n_elements() const {
  int64_t n = 0;
  for (const auto& p : params_) n += p.shape.numel();
  return n;
}

}  // namespace moe
