// What one kind of expert brings (moe/experts.h): its parameters, and its fused forward and
// backward on caller memory, in fp32 and in bf16. Expert checks shapes, keeps the last forward's
// input and cache, and calls these; a kind holds no per-step state of its own, only views of its
// parameters and its bf16 weight copies. A virtual call costs one indirect call per expert and
// step (never per row), nothing beside its GEMMs.
//
// Dims: N rows (N > 0 in every call: Expert skips empty segments) · D model width · F hidden
// width.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/core/tensor.h"
#include "moe/moe/experts.h"

namespace moe {

// A forward's input and the cache it wrote, which its backward reads.
struct ExpertStep {
  Tensor x;            // [N, D]
  ExpertMemory cache;  // N · footprint values
};

class ExpertKindImpl {
 public:
  virtual ~ExpertKindImpl() = default;

  virtual int64_t n_params() const = 0;
  virtual int64_t flops_per_row() const = 0;
  virtual ExpertFootprint footprint(Precision p) const = 0;

  virtual void declare(ParamStore& store, const std::string& prefix) = 0;
  virtual void bind(const ParamStore& store) = 0;
  virtual void init(Rng& rng) = 0;
  // Allocates the bf16 weight copies the first time bf16 is asked for.
  virtual void set_precision(Precision p) = 0;
  virtual int64_t bf16_weight_bytes() const = 0;

  // step.x [N, D] -> y [N, D] (=), writing step.cache.
  virtual void forward(const ExpertStep& step, Tensor y) = 0;
  // dy [N, D] -> dx [N, D] (=; skipped when empty); parameter gradients (+=).
  virtual void backward(const ExpertStep& step, Tensor dy, Tensor dx, ExpertMemory scratch) = 0;
};

std::unique_ptr<ExpertKindImpl> make_linear_expert(int64_t d_model, const ExpertConfig& c);
std::unique_ptr<ExpertKindImpl> make_mlp_expert(int64_t d_model, const ExpertConfig& c);
std::unique_ptr<ExpertKindImpl> make_swiglu_expert(int64_t d_model, const ExpertConfig& c);

// bf16 copies of an expert's weight matrices, in one buffer: allocated once (allocate), rounded
// from the fp32 masters at each forward that has rows (round), read by forward and backward.
class Bf16Weights {
 public:
  void allocate(const std::vector<Shape>& shapes);  // no-op once allocated
  void round(const std::vector<Tensor>& masters);   // copies[i] = bf16(masters[i])
  bool allocated() const { return !buffer_.view().empty(); }
  Tensor operator[](size_t i) const { return views_[i]; }
  int64_t bytes() const;

 private:
  TensorBuffer buffer_;
  std::vector<Tensor> views_;  // one per master, the same shape, bf16
};

// The rows [N, w] of a flat fp32 or bf16 region, and the region after them.
inline Tensor take_rows(float** p, int64_t n, int64_t w) {
  Tensor t(*p, Shape{n, w});
  *p += n * w;
  return t;
}
inline Tensor take_rows(bf16** p, int64_t n, int64_t w) {
  Tensor t(*p, Shape{n, w}, DType::kBF16);
  *p += n * w;
  return t;
}

}  // namespace moe
