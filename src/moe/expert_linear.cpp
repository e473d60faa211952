// The linear expert: y = x · Wᵀ + b, W [D, D], b [D] (optional), named "<prefix>.w1", ".b1".
//
// Dims: N rows · D model width.
//
// fp32: layers/linear.h; x is the whole cache. bf16: y = bf16(x) · bf16(W)ᵀ + b with fp32
// accumulation; backward rounds dy once and reuses it for dW += dyᵀ·x and dx = dy·W, while
// db += Σ_rows dy sums the fp32 dy.
#include "expert_kind.h"
#include "moe/kernels/bf16.h"
#include "moe/kernels/ops.h"
#include "moe/layers/linear.h"

namespace moe {

namespace {

class LinearExpert final : public ExpertKindImpl {
 public:
  LinearExpert(int64_t d_model, const ExpertConfig& c) : d_(d_model), bias_(c.bias) {}

  int64_t n_params() const override { return d_ * d_ + (bias_ ? d_ : 0); }
  int64_t flops_per_row() const override { return 2 * d_ * d_; }

  ExpertFootprint footprint(Precision p) const override {
    if (p == Precision::kF32) return {};
    return {.cache_bf16 = d_, .scratch_bf16 = d_};  // x rounded; dy rounded
  }

  void declare(ParamStore& store, const std::string& prefix) override {
    w_id_ = store.add(prefix + ".w1", Shape{d_, d_});
    b_id_ = bias_ ? store.add(prefix + ".b1", Shape{d_}, /*decay=*/false) : -1;
  }

  void bind(const ParamStore& store) override {
    MOE_CHECK(w_id_ >= 0, "linear expert: bind before declare");
    store_ = &store;
    p_ = {store.value(w_id_), b_id_ >= 0 ? store.value(b_id_) : Tensor()};
    g_ = {store.grad(w_id_), b_id_ >= 0 ? store.grad(b_id_) : Tensor()};
    weights_ = {p_.w};
  }

  void init(Rng& rng) override {
    MOE_CHECK(!p_.w.empty(), "linear expert: init before bind");
    linear_init(p_, rng);
  }

  void set_precision(Precision p) override {
    precision_ = p;
    if (p == Precision::kBF16) w16_.allocate({Shape{d_, d_}});
  }
  int64_t bf16_weight_bytes() const override { return w16_.bytes(); }

  void forward(const ExpertStep& step, Tensor y) override {
    if (precision_ == Precision::kF32) return linear_forward(p_, step.x, y);
    const int64_t n = step.x.rows();
    bf16* c16 = step.cache.b16;
    const Tensor x16 = take_rows(&c16, n, d_);  // [N, D]
    w16_.round(weights_);
    convert_to_bf16(step.x, x16);
    gemm_bf16(x16, false, w16_[0], true, y);  // y = x·Wᵀ: [N, D] · [D, D]ᵀ, fp32 out
    if (!p_.b.empty()) add_bias_rows(y, p_.b);
  }

  void backward(const ExpertStep& step, Tensor dy, Tensor dx, ExpertMemory scratch) override {
    // A frozen parameter's gradient is left out (ParamStore::freeze): its product is skipped.
    LinearGrads g = g_;
    if (store_->frozen(w_id_)) g.w = Tensor();
    if (b_id_ >= 0 && store_->frozen(b_id_)) g.b = Tensor();
    if (precision_ == Precision::kF32) return linear_backward(p_, g, step.x, dy, dx);
    const int64_t n = step.x.rows();
    bf16* c16 = step.cache.b16;
    bf16* s16 = scratch.b16;
    const Tensor x16 = take_rows(&c16, n, d_);   // [N, D]
    const Tensor dy16 = take_rows(&s16, n, d_);  // [N, D]
    convert_to_bf16(dy, dy16);
    if (!dx.empty()) gemm_bf16(dy16, false, w16_[0], false, dx);  // dx = dy·W: [N, D] · [D, D]
    if (!g.w.empty()) gemm_bf16(dy16, true, x16, false, g.w, GemmScale{1.0f, 1.0f});  // dW += dyᵀx
    if (!g.b.empty()) sum_rows_accumulate(dy, g.b);
  }

 private:
  int64_t d_;
  bool bias_;
  ParamId w_id_ = -1, b_id_ = -1;
  const ParamStore* store_ = nullptr;
  LinearParams p_;
  LinearGrads g_;
  std::vector<Tensor>
      weights_;  // W: the master Bf16Weights rounds (held, so a step allocates nothing)
  Precision precision_ = Precision::kF32;
  Bf16Weights w16_;  // W rounded
};

}  // namespace

std::unique_ptr<ExpertKindImpl> make_linear_expert(int64_t d_model, const ExpertConfig& c) {
  return std::make_unique<LinearExpert>(d_model, c);
}

}  // namespace moe
