// ParamStore: every parameter of a model in one contiguous arena, its gradient in a second arena
// of the same layout. The optimizer is then one loop, a checkpoint one table of offsets, and a
// data-parallel all-reduce one call.
//
// Use: add() every parameter (name, shape), finalize() once, then value(id) and grad(id) give
// views. Names follow the checkpoint scheme ("layers.0.moe.router.w").
//
// Gradients accumulate (llm.c): every backward adds its contribution, and zero_grads() starts a
// step from zeros. A training step can skip most of that zeroing: clear_grads() writes zeros only
// to the gradients of ordinary parameters and marks those declared with defer_zero_grad() as
// clear, without touching their memory. The backward that writes such a gradient asks
// claim_grad(id) first; true (once per clear) means "the gradient is zero": it writes its
// contribution (GEMM β = 0) instead of adding it to zeros it would first have to read. Later
// contributions in the step accumulate as usual. settle_grads() then zeroes every gradient still
// clear (an expert that received no rows), so after it the arena holds exactly what zero_grads()
// plus the step's contributions would: nothing that reads gradients (clip, optimizer, all-reduce)
// sees the difference. At E=256 SwiGLU experts this spares writing and re-reading 3 GiB a step.
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
  int64_t offset = 0;       // in floats from the start of the arena, 64-byte aligned
  bool decay = true;        // weight decay applies (biases and norm gains usually opt out)
  bool defer_zero = false;  // its backward claims the gradient (claim_grad) each step
  bool frozen = false;      // training leaves it as it is (freeze())
};

class ParamStore {
 public:
  ParamId add(const std::string& name, Shape shape, bool decay = true);
  // Before finalize(): this parameter's backward calls claim_grad(id) before it writes the
  // gradient, so clear_grads() may leave its memory untouched.
  void defer_zero_grad(ParamId id);
  void finalize();  // allocates both arenas, zero-filled
  // After finalize(), before an optimizer is made over the store: training leaves this
  // parameter as it is. Optimizers give it no update and no state, the gradient norm leaves it
  // out, and a backward may skip computing its gradient (frozen(id)); its gradient in the arena
  // is then unspecified (settle_grads leaves a frozen gradient still clear as it is).
  void freeze(ParamId id);
  bool frozen(ParamId id) const { return params_[static_cast<size_t>(id)].frozen; }
  int64_t n_trainable_elements() const;  // Σ numel of the parameters not frozen
  bool finalized() const { return !values_.view().empty() || total_ == 0; }

  Tensor value(ParamId id) const;
  Tensor grad(ParamId id) const;
  Tensor values() const { return values_.view(); }  // [N], includes alignment padding (zeros)
  Tensor grads() const;                             // [N]; not between clear and settle

  void zero_grads();  // every gradient = 0
  // A training step's zero_grads(): ordinary gradients = 0, deferred ones only marked clear.
  void clear_grads();
  // True if id's gradient is clear since clear_grads() (its memory is stale: the caller must
  // write all of it, e.g. with β = 0), and marks it written; false afterwards, and after
  // zero_grads(). Different ids may be claimed from different threads at once. Const like
  // grad(): the gradient arena is writable through a const store, and this flag is part of it.
  bool claim_grad(ParamId id) const;
  // Zeroes the gradients still clear; call after the backward, before gradients are read.
  void settle_grads();

  int32_t size() const { return static_cast<int32_t>(params_.size()); }
  const ParamInfo& info(ParamId id) const { return params_[static_cast<size_t>(id)]; }
  const std::vector<ParamInfo>& params() const { return params_; }
  ParamId find(const std::string& name) const;  // -1 if absent
  int64_t n_elements() const;                   // Σ numel, without padding

 private:
  void zero_grad(const ParamInfo& p);

  std::vector<ParamInfo> params_;
  std::unordered_map<std::string, ParamId> by_name_;
  int64_t total_ = 0;
  bool settling_ = false;  // between clear_grads() and settle_grads()
  TensorBuffer values_;
  TensorBuffer grads_;
  mutable std::vector<uint8_t> grad_clear_;  // [params] 1 while a deferred gradient is clear
};

}  // namespace moe
