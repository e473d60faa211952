// The SwiGLU expert: y = W2 · (silu(W1 x) ⊙ (W3 x)), no biases (LLaMA, Mixtral; layers/swiglu.h);
// W1, W3 [F, D], W2 [D, F], named "<prefix>.w1", ".w2", ".w3" (moe/experts.h).
//
// Dims: N rows · D model width · F hidden width.
//
// Cache (per row): h1, h3, a = silu(h1) ⊙ h3 [F] each, the gate being the fused
// kernels/swiglu_act.h pass; in bf16 also x and a rounded [D + F]. Backward's scratch: da [F]; in
// bf16 dy and dh3 rounded [D + F]. Backward turns the cached a into dh1 (and a rounded into dh1
// rounded), and da into dh3 in place.
//
// Its matrices are declared defer_zero_grad (core/params.h): the first contribution of a step to
// each weight gradient writes it (GEMM β = 0) instead of adding to zeros.
#include "expert_kind.h"
#include "moe/kernels/bf16.h"
#include "moe/kernels/gemm.h"
#include "moe/kernels/swiglu_act.h"
#include "moe/layers/swiglu.h"

namespace moe {

namespace {

class SwigluExpert final : public ExpertKindImpl {
 public:
  SwigluExpert(int64_t d_model, const ExpertConfig& c) : d_(d_model), f_(c.hidden) {}

  int64_t n_params() const override { return 3 * d_ * f_; }
  int64_t flops_per_row() const override { return 2 * 3 * d_ * f_; }

  ExpertFootprint footprint(Precision p) const override {
    ExpertFootprint fp{.cache = 3 * f_, .scratch = f_};  // h1, h3, a; da
    if (p == Precision::kBF16) {
      fp.cache_bf16 = d_ + f_;    // x, a rounded
      fp.scratch_bf16 = d_ + f_;  // dy, dh3 rounded
    }
    return fp;
  }

  void declare(ParamStore& store, const std::string& prefix) override {
    // w1 (gate) [F, D], w2 (down) [D, F], w3 (up) [F, D], as LLaMA and Mixtral name them.
    ids_[0] = store.add(prefix + ".w1", Shape{f_, d_});
    ids_[1] = store.add(prefix + ".w2", Shape{d_, f_});
    ids_[2] = store.add(prefix + ".w3", Shape{f_, d_});
    // backward writes each of them whole when it has rows: claim_grad applies.
    for (const ParamId id : ids_) store.defer_zero_grad(id);
  }

  void bind(const ParamStore& store) override {
    MOE_CHECK(ids_[0] >= 0, "swiglu expert: bind before declare");
    store_ = &store;
    p_ = {store.value(ids_[0]), store.value(ids_[1]), store.value(ids_[2])};
    g_ = {store.grad(ids_[0]), store.grad(ids_[1]), store.grad(ids_[2])};
    weights_ = {p_.w1, p_.w2, p_.w3};
  }

  void init(Rng& rng) override {
    MOE_CHECK(!p_.w1.empty(), "swiglu expert: init before bind");
    swiglu_init(p_, rng);
  }

  void set_precision(Precision p) override {
    precision_ = p;
    if (p == Precision::kBF16) w16_.allocate({Shape{f_, d_}, Shape{d_, f_}, Shape{f_, d_}});
  }
  int64_t bf16_weight_bytes() const override { return w16_.bytes(); }

  void forward(const ExpertStep& step, Tensor y) override {
    const Cache c = cache(step);
    const int64_t n = step.x.rows();
    if (precision_ == Precision::kBF16) return forward_bf16(step.x, y, c);
    gemm(step.x, false, p_.w1, true, c.h1);  // h1 = x·W1ᵀ: [N, D] · [F, D]ᵀ
    gemm(step.x, false, p_.w3, true, c.h3);  // h3 = x·W3ᵀ
    swiglu_act_forward(n * f_, c.h1.f32(), c.h3.f32(), c.a.f32());
    gemm(c.a, false, p_.w2, true, y);  // y = a·W2ᵀ: [N, F] · [D, F]ᵀ
  }

  void backward(const ExpertStep& step, Tensor dy, Tensor dx, ExpertMemory scratch) override {
    const Cache c = cache(step);
    const int64_t n = step.x.rows();
    float* s = scratch.f32;
    const Tensor da = take_rows(&s, n, f_);  // [N, F]
    if (precision_ == Precision::kBF16) return backward_bf16(dy, dx, da, scratch.b16, c);
    const GemmScale acc{1.0f, 1.0f};
    const GradScales dw = grad_scales();  // dW += …, a write when clear
    const Tensor x = step.x;
    if (!dw.frozen2) gemm(dy, true, c.a, false, g_.w2, dw.w2);  // dW2 += dyᵀ·a: [D, N] · [N, F]
    gemm(dy, false, p_.w2, false, da);                          // da = dy·W2: [N, D] · [D, F]
    // a is spent: it becomes dh1, and da becomes dh3 in place.
    const Tensor dh1 = c.a, dh3 = da;
    swiglu_act_backward(n * f_, c.h1.f32(), c.h3.f32(), da.f32(), dh1.f32(), dh3.f32());
    if (!dw.frozen1) gemm(dh1, true, x, false, g_.w1, dw.w1);  // dW1 += dh1ᵀ·x: [F, N] · [N, D]
    if (!dw.frozen3) gemm(dh3, true, x, false, g_.w3, dw.w3);  // dW3 += dh3ᵀ·x
    if (dx.empty()) return;
    gemm(dh1, false, p_.w1, false, dx);       // dx = dh1·W1: [N, F] · [F, D]
    gemm(dh3, false, p_.w3, false, dx, acc);  //    + dh3·W3
  }

 private:
  struct Cache {
    Tensor h1, h3, a;  // [N, F]
    Tensor x16, a16;   // [N, D], [N, F] bf16 (bf16 only)
  };
  // The scales of the three weight-gradient products dW1, dW2, dW3 (+=): β = 0 for a gradient
  // the store says is clear (ParamStore::claim_grad), else 1; and which products to skip, for
  // parameters that are frozen (ParamStore::freeze: nothing reads their gradient).
  struct GradScales {
    GemmScale w1, w2, w3;
    bool frozen1 = false, frozen2 = false, frozen3 = false;
  };

  Cache cache(const ExpertStep& step) const {
    const int64_t n = step.x.rows();
    float* p = step.cache.f32;
    Cache c;
    c.h1 = take_rows(&p, n, f_);
    c.h3 = take_rows(&p, n, f_);
    c.a = take_rows(&p, n, f_);
    if (precision_ == Precision::kBF16) {
      bf16* p16 = step.cache.b16;
      c.x16 = take_rows(&p16, n, d_);
      c.a16 = take_rows(&p16, n, f_);
    }
    return c;
  }

  GradScales grad_scales() const {
    auto scale = [this](ParamId id) {
      if (store_->frozen(id)) return GemmScale{};
      return GemmScale{1.0f, store_->claim_grad(id) ? 0.0f : 1.0f};
    };
    return {scale(ids_[0]),          scale(ids_[1]),          scale(ids_[2]),
            store_->frozen(ids_[0]), store_->frozen(ids_[1]), store_->frozen(ids_[2])};
  }

  void forward_bf16(Tensor x, Tensor y, const Cache& c) {
    const int64_t n = x.rows();
    // This step's master weights, rounded once; backward reuses the copies.
    w16_.round(weights_);
    convert_to_bf16(x, c.x16);
    gemm_bf16(c.x16, false, w16_[0], true, c.h1);  // h1 = x·W1ᵀ: [N, D] · [F, D]ᵀ, fp32 out
    gemm_bf16(c.x16, false, w16_[2], true, c.h3);  // h3 = x·W3ᵀ
    swiglu_act_forward(n * f_, c.h1.f32(), c.h3.f32(), c.a.f32());  // fp32 gate
    convert_to_bf16(c.a, c.a16);
    gemm_bf16(c.a16, false, w16_[1], true, y);  // y = a·W2ᵀ: [N, F] · [D, F]ᵀ
  }

  void backward_bf16(Tensor dy, Tensor dx, Tensor da, bf16* s16, const Cache& c) {
    const int64_t n = dy.rows();
    const Tensor dy16 = take_rows(&s16, n, d_);    // [N, D]
    const Tensor dh3_16 = take_rows(&s16, n, f_);  // [N, F]
    const GemmScale acc{1.0f, 1.0f};
    const GradScales dw = grad_scales();  // dW += …, a write when clear
    convert_to_bf16(dy, dy16);
    if (!dw.frozen2) gemm_bf16(dy16, true, c.a16, false, g_.w2, dw.w2);  // dW2 += dyᵀ·a
    gemm_bf16(dy16, false, w16_[1], false, da);  // da = dy·W2: [N, D] · [D, F]
    // The fp32 a is spent (it becomes dh1, da becomes dh3 in place), then a16 holds dh1 rounded.
    const Tensor dh1 = c.a, dh3 = da;
    swiglu_act_backward(n * f_, c.h1.f32(), c.h3.f32(), da.f32(), dh1.f32(), dh3.f32());
    const Tensor dh1_16 = c.a16;
    convert_to_bf16(dh1, dh1_16);
    convert_to_bf16(dh3, dh3_16);
    if (!dw.frozen1) gemm_bf16(dh1_16, true, c.x16, false, g_.w1, dw.w1);  // dW1 += dh1ᵀ·x
    if (!dw.frozen3) gemm_bf16(dh3_16, true, c.x16, false, g_.w3, dw.w3);  // dW3 += dh3ᵀ·x
    if (dx.empty()) return;
    gemm_bf16(dh1_16, false, w16_[0], false, dx);       // dx = dh1·W1: [N, F] · [F, D]
    gemm_bf16(dh3_16, false, w16_[2], false, dx, acc);  //    + dh3·W3
  }

  int64_t d_, f_;
  ParamId ids_[3] = {-1, -1, -1};  // w1, w2, w3
  const ParamStore* store_ = nullptr;
  SwigluParams p_;
  SwigluGrads g_;
  std::vector<Tensor> weights_;  // W1, W2, W3: the masters Bf16Weights rounds
  Precision precision_ = Precision::kF32;
  Bf16Weights w16_;  // W1, W2, W3 rounded
};

}  // namespace

std::unique_ptr<ExpertKindImpl> make_swiglu_expert(int64_t d_model, const ExpertConfig& c) {
  return std::make_unique<SwigluExpert>(d_model, c);
}

}  // namespace moe
