// ParamStore: every parameter of a model in one contiguous arena, its gradient in a second arena
// of the same layout. The optimizer is then one loop, a checkpoint one table of offsets, and a
// data-parallel all-reduce one call.
//
// Use: add() every parameter (name, shape), finalize() once, then value(id) and grad(id) give
// views. Names follow the checkpoint scheme ("layers.0.moe.router.w").
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "moe/core/tensor.h"

namespace moe {

using ParamId = int32_t;

struct ParamInfo {
  std::string name;
  Shape shape;
  int64_t offset = 0;  // in floats from the start of the arena, 64-byte aligned
  bool decay = true;   // weight decay applies (biases and norm gains usually opt out)
};

class ParamStore {
 public:
  ParamId add(const std::string& name, Shape shape, bool decay = true);
  void finalize();  // allocates both arenas, zero-filled
  bool finalized() const { return !values_.view().empty() || total_ == 0; }

  Tensor value(ParamId id) const;
  Tensor grad(ParamId id) const;
  Tensor values() const { return values_.view(); }  // [N], includes alignment padding (zeros)
  Tensor grads() const { return grads_.view(); }
  void zero_grads();

  int32_t size() const { return static_cast<int32_t>(params_.size()); }
  const ParamInfo& info(ParamId id) const { return params_[static_cast<size_t>(id)]; }
  const std::vector<ParamInfo>& params() const { return params_; }
  ParamId find(const std::string& name) const;  // -1 if absent
  int64_t n_elements() const;                   // Σ numel, without padding

 private:
  std::vector<ParamInfo> params_;
  std::unordered_map<std::string, ParamId> by_name_;
  int64_t total_ = 0;
  TensorBuffer values_;
  TensorBuffer grads_;
};

}  // namespace moe
