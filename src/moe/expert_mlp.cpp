// The MLP expert: h_0 = x, h_i = act(h_{i−1} · W_iᵀ + b_i) for i = 1..L, y = h_L · W_{L+1}ᵀ +
// b_{L+1}; W1 [F, D], W_2..W_L [F, F], W_{L+1} [D, F], named "<prefix>.w1", ".b1", …
// (moe/experts.h).
//
// Dims: N rows · D model width · F hidden width · L hidden layers (depth).
//
// Cache (per row): pre_i and post_i = act(pre_i) [F] of each hidden layer, i = 1..L, in that
// order; in bf16 also x and every post_i rounded [D + L·F]. Backward walks the layers down: dz is
// dL/d(pre-activation) of the current layer, and its input's gradient goes to one of two [F]
// scratch buffers that swap roles at each hidden layer. In bf16, dz is rounded before the
// products that use it (dy into scratch, each hidden dz_i into the place of post_i rounded, which
// the layer above has finished with); the bias gradients sum the fp32 dz.
#include <fmt/format.h>

#include "expert_kind.h"
#include "moe/kernels/bf16.h"
#include "moe/kernels/ops.h"
#include "moe/layers/linear.h"

namespace moe {

namespace {

class MlpExpert final : public ExpertKindImpl {
 public:
  MlpExpert(int64_t d_model, const ExpertConfig& c)
      : d_(d_model), f_(c.hidden), depth_(c.depth), act_(c.activation), bias_(c.bias) {}

  int64_t n_params() const override {
    const int64_t b = bias_ ? 1 : 0;
    return (f_ * d_ + b * f_) + (depth_ - 1) * (f_ * f_ + b * f_) + (d_ * f_ + b * d_);
  }
  int64_t flops_per_row() const override {
    return 2 * (f_ * d_ + (depth_ - 1) * f_ * f_ + d_ * f_);
  }

  ExpertFootprint footprint(Precision p) const override {
    ExpertFootprint fp{.cache = 2 * depth_ * f_, .scratch = 2 * f_};  // pre_i, post_i; dh
    if (p == Precision::kBF16) {
      fp.cache_bf16 = d_ + depth_ * f_;  // x, post_i rounded
      fp.scratch_bf16 = d_;              // dy rounded
    }
    return fp;
  }

  void declare(ParamStore& store, const std::string& prefix) override {
    weight_ids_.clear();
    bias_ids_.clear();
    for (const Shape& s : weight_shapes()) {
      const size_t i = weight_ids_.size() + 1;
      weight_ids_.push_back(store.add(fmt::format("{}.w{}", prefix, i), s));
      bias_ids_.push_back(bias_ ? store.add(fmt::format("{}.b{}", prefix, i), Shape{s[0]},
                                            /*decay=*/false)
                                : -1);
    }
  }

  void bind(const ParamStore& store) override {
    MOE_CHECK(!weight_ids_.empty(), "mlp expert: bind before declare");
    store_ = &store;
    layers_.clear();
    grads_.clear();
    weights_.clear();
    for (size_t i = 0; i < weight_ids_.size(); ++i) {
      const ParamId b = bias_ids_[i];
      layers_.push_back({store.value(weight_ids_[i]), b >= 0 ? store.value(b) : Tensor()});
      grads_.push_back({store.grad(weight_ids_[i]), b >= 0 ? store.grad(b) : Tensor()});
      weights_.push_back(layers_.back().w);
    }
  }

  void init(Rng& rng) override {
    MOE_CHECK(!layers_.empty(), "mlp expert: init before bind");
    for (const LinearParams& l : layers_) linear_init(l, rng);
  }

  void set_precision(Precision p) override {
    precision_ = p;
    if (p == Precision::kBF16) w16_.allocate(weight_shapes());
  }
  int64_t bf16_weight_bytes() const override { return w16_.bytes(); }

  void forward(const ExpertStep& step, Tensor y) override {
    const Cache& c = cache(step);
    if (precision_ == Precision::kBF16) {
      w16_.round(weights_);
      convert_to_bf16(step.x, c.x16);
    }
    Tensor h = step.x;  // [N, D], then [N, F]
    for (size_t i = 0; i < c.pre.size(); ++i) {
      layer_forward(i, h, i == 0 ? c.x16 : c.post16[i - 1], c.pre[i]);
      activation_forward(act_, c.pre[i], c.post[i]);
      if (precision_ == Precision::kBF16) convert_to_bf16(c.post[i], c.post16[i]);
      h = c.post[i];
    }
    layer_forward(layers_.size() - 1, h, c.post16.back(), y);
  }

  void backward(const ExpertStep& step, Tensor dy, Tensor dx, ExpertMemory scratch) override {
    const int64_t n = step.x.rows();
    const Cache& c = cache(step);
    float* s = scratch.f32;
    bf16* s16 = scratch.b16;
    Tensor buf_a = take_rows(&s, n, f_);  // [N, F]
    Tensor buf_b = take_rows(&s, n, f_);  // [N, F]
    Tensor dz = dy, dz16;
    if (precision_ == Precision::kBF16) {
      dz16 = take_rows(&s16, n, d_);  // [N, D]
      convert_to_bf16(dy, dz16);
    }
    for (size_t i = layers_.size(); i-- > 0;) {
      const Tensor input = i == 0 ? step.x : c.post[i - 1];
      const Tensor input16 = i == 0 ? c.x16 : c.post16[i - 1];
      Tensor dh = i == 0 ? dx : (dz.raw() == buf_a.raw() ? buf_b : buf_a);
      layer_backward(i, input, input16, dz, dz16, dh);
      if (i == 0) break;
      activation_backward(act_, c.pre[i - 1], dh, dh);  // dz of layer i − 1
      dz = dh;
      if (precision_ == Precision::kBF16) {
        dz16 = input16;  // post_{i−1} rounded is spent: it holds dz_{i−1} rounded from here
        convert_to_bf16(dz, dz16);
      }
    }
  }

 private:
  struct Cache {
    std::vector<Tensor> pre, post;  // [N, F] each, per hidden layer
    Tensor x16;                     // [N, D] bf16 (empty in fp32)
    std::vector<Tensor> post16;     // [N, F] bf16 each, per hidden layer (empty views in fp32)
  };

  std::vector<Shape> weight_shapes() const {
    std::vector<Shape> s{Shape{f_, d_}};
    for (int i = 1; i < depth_; ++i) s.push_back(Shape{f_, f_});
    s.push_back(Shape{d_, f_});
    return s;
  }

  // The views of a step's cache. The vectors keep their capacity, so a step allocates nothing
  // once the first has run (one expert runs on one thread at a time).
  const Cache& cache(const ExpertStep& step) {
    const int64_t n = step.x.rows();
    const auto depth = static_cast<size_t>(depth_);
    float* p = step.cache.f32;
    cache_.pre.resize(depth);
    cache_.post.resize(depth);
    for (size_t i = 0; i < depth; ++i) {
      cache_.pre[i] = take_rows(&p, n, f_);
      cache_.post[i] = take_rows(&p, n, f_);
    }
    cache_.x16 = Tensor();
    cache_.post16.assign(depth, Tensor());
    if (precision_ == Precision::kF32) return cache_;
    bf16* p16 = step.cache.b16;
    cache_.x16 = take_rows(&p16, n, d_);
    for (size_t i = 0; i < depth; ++i) cache_.post16[i] = take_rows(&p16, n, f_);
    return cache_;
  }

  // Layer i: out = in · W_iᵀ + b_i, in fp32 or on the rounded input in16.
  void layer_forward(size_t i, Tensor in, Tensor in16, Tensor out) {
    if (precision_ == Precision::kF32) return linear_forward(layers_[i], in, out);
    gemm_bf16(in16, false, w16_[i], true, out);  // [N, I] · [O, I]ᵀ, fp32 out
    if (!layers_[i].b.empty()) add_bias_rows(out, layers_[i].b);
  }

  // Layer i's backward: din = dz · W_i (skipped when empty), dW_i += dzᵀ · in, db_i += Σ dz.
  // A frozen parameter's gradient is left out (ParamStore::freeze): its product is skipped.
  void layer_backward(size_t i, Tensor in, Tensor in16, Tensor dz, Tensor dz16, Tensor din) {
    LinearGrads g = grads_[i];
    if (store_->frozen(weight_ids_[i])) g.w = Tensor();
    if (bias_ids_[i] >= 0 && store_->frozen(bias_ids_[i])) g.b = Tensor();
    if (precision_ == Precision::kF32) return linear_backward(layers_[i], g, in, dz, din);
    if (!din.empty()) gemm_bf16(dz16, false, w16_[i], false, din);  // [N, O] · [O, I]
    if (!g.w.empty()) gemm_bf16(dz16, true, in16, false, g.w, GemmScale{1.0f, 1.0f});  // [O, I]
    if (!g.b.empty()) sum_rows_accumulate(dz, g.b);
  }

  int64_t d_, f_;
  int depth_;
  Activation act_;
  bool bias_;
  // depth + 1 layers, layer i named w{i+1}, b{i+1}.
  std::vector<ParamId> weight_ids_, bias_ids_;
  const ParamStore* store_ = nullptr;
  std::vector<LinearParams> layers_;
  std::vector<LinearGrads> grads_;
  std::vector<Tensor> weights_;  // layers_[i].w, the masters Bf16Weights rounds
  Precision precision_ = Precision::kF32;
  Bf16Weights w16_;  // every W_i rounded
  Cache cache_;
};

}  // namespace

std::unique_ptr<ExpertKindImpl> make_mlp_expert(int64_t d_model, const ExpertConfig& c) {
  return std::make_unique<MlpExpert>(d_model, c);
}

}  // namespace moe
