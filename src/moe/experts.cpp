#include "moe/moe/experts.h"

#include <fmt/format.h>

#include "moe/kernels/bf16.h"
#include "moe/kernels/gemm.h"
#include "moe/kernels/swiglu_act.h"

namespace moe {

const char* expert_kind_name(ExpertKind k) {
  switch (k) {
    case ExpertKind::kLinear:
      return "linear";
    case ExpertKind::kMlp:
      return "mlp";
    case ExpertKind::kSwiglu:
      return "swiglu";
  }
  return "?";
}

bool parse_expert_kind(const std::string& s, ExpertKind* out) {
  for (ExpertKind k : {ExpertKind::kLinear, ExpertKind::kMlp, ExpertKind::kSwiglu}) {
    if (s == expert_kind_name(k)) {
      *out = k;
      return true;
    }
  }
  return false;
}

const char* precision_name(Precision p) {
  return p == Precision::kBF16 ? "bf16" : "fp32";
}

bool parse_precision(const std::string& s, Precision* out) {
  for (Precision p : {Precision::kF32, Precision::kBF16}) {
    if (s == precision_name(p)) {
      *out = p;
      return true;
    }
  }
  return false;
}

Status validate_expert_config(const ExpertConfig& c) {
  if (c.kind != ExpertKind::kLinear && c.hidden <= 0)
    return Status::error("{} expert: hidden width must be positive, got {}",
                         expert_kind_name(c.kind), c.hidden);
  if (c.kind == ExpertKind::kMlp && c.depth < 1)
    return Status::error("mlp expert: depth (hidden layers) must be at least 1, got {}", c.depth);
  return Status::ok();
}

Expert::Expert(int64_t d_model, ExpertConfig config) : d_model_(d_model), config_(config) {
  MOE_CHECK(d_model > 0, "expert with model width {}", d_model);
  const Status s = validate_expert_config(config);
  MOE_CHECK(s.is_ok(), "{}", s.message());
  if (config_.kind == ExpertKind::kMlp) {
    pre_.resize(static_cast<size_t>(config_.depth));
    post_.resize(static_cast<size_t>(config_.depth));
  }
}

int64_t Expert::n_params() const {
  const int64_t d = d_model_, f = config_.hidden;
  const int64_t b = config_.bias ? 1 : 0;
  switch (config_.kind) {
    case ExpertKind::kLinear:
      return d * d + b * d;
    case ExpertKind::kMlp:
      return (f * d + b * f) + (config_.depth - 1) * (f * f + b * f) + (d * f + b * d);
    case ExpertKind::kSwiglu:
      return 3 * d * f;
  }
  return 0;
}

int64_t Expert::flops_per_row() const {
  const int64_t d = d_model_, f = config_.hidden;
  switch (config_.kind) {
    case ExpertKind::kLinear:
      return 2 * d * d;
    case ExpertKind::kMlp:
      return 2 * (f * d + (config_.depth - 1) * f * f + d * f);
    case ExpertKind::kSwiglu:
      return 2 * 3 * d * f;
  }
  return 0;
}

void Expert::set_precision(Precision p) {
  if (config_.kind != ExpertKind::kSwiglu) return;  // Linear and MLP stay fp32
  precision_ = p;
  if (p == Precision::kF32 || !weights_bf16_.view().empty()) return;
  const int64_t d = d_model_, f = config_.hidden;
  weights_bf16_ = TensorBuffer(Shape{3 * f * d}, DType::kBF16);  // [3·F·D]
  auto* base = static_cast<bf16*>(weights_bf16_.view().raw());
  w1_bf16_ = Tensor(base, Shape{f, d}, DType::kBF16);              // [F, D]
  w2_bf16_ = Tensor(base + f * d, Shape{d, f}, DType::kBF16);      // [D, F]
  w3_bf16_ = Tensor(base + 2 * f * d, Shape{f, d}, DType::kBF16);  // [F, D]
}

int64_t Expert::bf16_weight_bytes() const {
  const Tensor w = weights_bf16_.view();
  return w.empty() ? 0 : static_cast<int64_t>(w.nbytes());
}

void Expert::declare(ParamStore& store, const std::string& prefix) {
  const int64_t d = d_model_, f = config_.hidden;
  weight_ids_.clear();
  bias_ids_.clear();
  auto add_layer = [&](int64_t out, int64_t in) {
    const size_t i = weight_ids_.size() + 1;
    weight_ids_.push_back(store.add(fmt::format("{}.w{}", prefix, i), Shape{out, in}));
    bias_ids_.push_back(config_.bias ? store.add(fmt::format("{}.b{}", prefix, i), Shape{out},
                                                 /*decay=*/false)
                                     : -1);
  };
  switch (config_.kind) {
    case ExpertKind::kLinear:
      add_layer(d, d);
      break;
    case ExpertKind::kMlp:
      add_layer(f, d);
      for (int i = 1; i < config_.depth; ++i) add_layer(f, f);
      add_layer(d, f);
      break;
    case ExpertKind::kSwiglu:
      // w1 (gate) [F, D], w2 (down) [D, F], w3 (up) [F, D], as LLaMA and Mixtral name them.
      weight_ids_.push_back(store.add(prefix + ".w1", Shape{f, d}));
      weight_ids_.push_back(store.add(prefix + ".w2", Shape{d, f}));
      weight_ids_.push_back(store.add(prefix + ".w3", Shape{f, d}));
      // backward_into writes each of them whole when it has rows: claim_grad applies.
      for (const ParamId id : weight_ids_) store.defer_zero_grad(id);
      break;
  }
}

void Expert::bind(const ParamStore& store) {
  MOE_CHECK(!weight_ids_.empty(), "Expert::bind before declare");
  store_ = &store;
  if (config_.kind == ExpertKind::kSwiglu) {
    swiglu_ = {store.value(weight_ids_[0]), store.value(weight_ids_[1]),
               store.value(weight_ids_[2])};
    swiglu_grads_ = {store.grad(weight_ids_[0]), store.grad(weight_ids_[1]),
                     store.grad(weight_ids_[2])};
    return;
  }
  layers_.clear();
  layer_grads_.clear();
  for (size_t i = 0; i < weight_ids_.size(); ++i) {
    const ParamId b = bias_ids_[i];
    layers_.push_back({store.value(weight_ids_[i]), b >= 0 ? store.value(b) : Tensor()});
    layer_grads_.push_back({store.grad(weight_ids_[i]), b >= 0 ? store.grad(b) : Tensor()});
  }
}

void Expert::init(Rng& rng) {
  if (config_.kind == ExpertKind::kSwiglu) {
    MOE_CHECK(!swiglu_.w1.empty(), "Expert::init before bind");
    swiglu_init(swiglu_, rng);
    return;
  }
  MOE_CHECK(!layers_.empty(), "Expert::init before bind");
  for (const LinearParams& l : layers_) linear_init(l, rng);
}

void Expert::forward(Tensor x, Tensor y, Arena& arena) {
  MOE_CHECK(x.cols() == d_model_ && y.cols() == d_model_ && x.rows() == y.rows(),
            "expert ({}) forward: x {} y {} for D={}", expert_kind_name(config_.kind),
            x.shape().str(), y.shape().str(), d_model_);
  x_ = x;
  const int64_t n = x.rows();
  if (n == 0) return;  // an expert that received no rows costs nothing
  switch (config_.kind) {
    case ExpertKind::kLinear:
      linear_forward(layers_[0], x, y);
      break;
    case ExpertKind::kMlp:
      mlp_forward(x, y, arena);
      break;
    case ExpertKind::kSwiglu: {
      const int64_t f = config_.hidden;
      const SwigluCache c = SwigluCache::allocate(arena, n, f);
      Bf16Forward bf;
      if (precision_ == Precision::kBF16)
        bf = {arena.alloc(Shape{n, d_model_}, DType::kBF16),  // [N, D]
              arena.alloc(Shape{n, f}, DType::kBF16)};        // [N, F]
      forward_into(x, y, c.h1, c.h3, arena.alloc(Shape{n, f}), bf);
      break;
    }
  }
}

void Expert::backward(Tensor dy, Tensor dx, Arena& arena) {
  MOE_CHECK(
      dy.rows() == x_.rows() && dy.cols() == d_model_ && (dx.empty() || dx.shape() == x_.shape()),
      "expert ({}) backward: dy {} dx {} after a forward of x {}", expert_kind_name(config_.kind),
      dy.shape().str(), dx.shape().str(), x_.shape().str());
  if (x_.rows() == 0) return;
  switch (config_.kind) {
    case ExpertKind::kLinear:
      linear_backward(layers_[0], layer_grads_[0], x_, dy, dx);
      break;
    case ExpertKind::kMlp:
      mlp_backward(dy, dx, arena);
      break;
    case ExpertKind::kSwiglu: {
      const int64_t n = x_.rows(), f = config_.hidden;
      const size_t mark = arena.mark();
      Tensor da = arena.alloc(Shape{n, f});  // [N, F]
      Bf16Backward bf;
      if (precision_ == Precision::kBF16)
        bf = {arena.alloc(Shape{n, d_model_}, DType::kBF16),  // [N, D]
              arena.alloc(Shape{n, f}, DType::kBF16)};        // [N, F]
      backward_into(dy, dx, da, bf);
      arena.release(mark);
      break;
    }
  }
}

Expert::SwigluGradScales Expert::swiglu_grad_scales() const {
  auto scale = [this](ParamId id) { return GemmScale{1.0f, store_->claim_grad(id) ? 0.0f : 1.0f}; };
  return {scale(weight_ids_[0]), scale(weight_ids_[1]), scale(weight_ids_[2])};
}

void Expert::forward_into(Tensor x, Tensor y, Tensor h1, Tensor h3, Tensor a, Bf16Forward bf) {
  const int64_t n = x.rows(), f = config_.hidden;
  MOE_CHECK(config_.kind == ExpertKind::kSwiglu && x.cols() == d_model_ && y.cols() == d_model_ &&
                y.rows() == n && h1.rows() == n && h1.cols() == f && h3.shape() == h1.shape() &&
                a.shape() == h1.shape(),
            "expert forward_into ({}): x {} y {} h1 {} h3 {} a {} for D={} F={}",
            expert_kind_name(config_.kind), x.shape().str(), y.shape().str(), h1.shape().str(),
            h3.shape().str(), a.shape().str(), d_model_, f);
  x_ = x;
  swiglu_cache_ = {h1, h3};
  swiglu_act_ = a;
  if (n == 0) return;
  if (precision_ == Precision::kBF16) return swiglu_forward_bf16(x, y, h1, h3, a, bf);
  gemm(x, false, swiglu_.w1, true, h1);  // h1 = x·W1ᵀ: [N, D] · [F, D]ᵀ
  gemm(x, false, swiglu_.w3, true, h3);  // h3 = x·W3ᵀ
  swiglu_act_forward(n * f, h1.f32(), h3.f32(), a.f32());
  gemm(a, false, swiglu_.w2, true, y);  // y = a·W2ᵀ: [N, F] · [D, F]ᵀ
}

void Expert::backward_into(Tensor dy, Tensor dx, Tensor da, Bf16Backward bf) {
  const int64_t n = x_.rows(), f = config_.hidden;
  MOE_CHECK(config_.kind == ExpertKind::kSwiglu && dy.rows() == n && dy.cols() == d_model_ &&
                (dx.empty() || dx.shape() == x_.shape()) && da.rows() == n && da.cols() == f,
            "expert backward_into ({}): dy {} dx {} da {} after a forward of x {}",
            expert_kind_name(config_.kind), dy.shape().str(), dx.shape().str(), da.shape().str(),
            x_.shape().str());
  if (n == 0) return;  // its gradients stay as they are (settle_grads zeroes them if clear)
  if (precision_ == Precision::kBF16) return swiglu_backward_bf16(dy, dx, da, bf);
  const GemmScale acc{1.0f, 1.0f};
  const SwigluGradScales dw = swiglu_grad_scales();  // dW += …, a write when clear
  Tensor a = swiglu_act_;
  gemm(dy, true, a, false, swiglu_grads_.w2, dw.w2);  // dW2 += dyᵀ·a: [D, N] · [N, F]
  gemm(dy, false, swiglu_.w2, false, da);             // da = dy·W2: [N, D] · [D, F]
  // a is spent: it becomes dh1, and da becomes dh3 in place.
  Tensor dh1 = a, dh3 = da;
  swiglu_act_backward(n * f, swiglu_cache_.h1.f32(), swiglu_cache_.h3.f32(), da.f32(), dh1.f32(),
                      dh3.f32());
  gemm(dh1, true, x_, false, swiglu_grads_.w1, dw.w1);  // dW1 += dh1ᵀ·x: [F, N] · [N, D]
  gemm(dh3, true, x_, false, swiglu_grads_.w3, dw.w3);  // dW3 += dh3ᵀ·x
  if (dx.empty()) return;
  gemm(dh1, false, swiglu_.w1, false, dx);       // dx = dh1·W1: [N, F] · [F, D]
  gemm(dh3, false, swiglu_.w3, false, dx, acc);  //    + dh3·W3
}

void Expert::swiglu_forward_bf16(Tensor x, Tensor y, Tensor h1, Tensor h3, Tensor a,
                                 Bf16Forward bf) {
  const int64_t n = x.rows(), f = config_.hidden;
  MOE_CHECK(bf.x.dtype() == DType::kBF16 && bf.x.shape() == x.shape() &&
                bf.a.dtype() == DType::kBF16 && bf.a.shape() == a.shape(),
            "expert forward_into (bf16): x16 {} a16 {} for x {} a {}", bf.x.shape().str(),
            bf.a.shape().str(), x.shape().str(), a.shape().str());
  swiglu_bf16_ = bf;
  // This step's master weights, rounded once; backward reuses the copies.
  convert_to_bf16(swiglu_.w1, w1_bf16_);
  convert_to_bf16(swiglu_.w2, w2_bf16_);
  convert_to_bf16(swiglu_.w3, w3_bf16_);
  convert_to_bf16(x, bf.x);
  gemm_bf16(bf.x, false, w1_bf16_, true, h1);  // h1 = x·W1ᵀ: [N, D] · [F, D]ᵀ, fp32 out
  gemm_bf16(bf.x, false, w3_bf16_, true, h3);  // h3 = x·W3ᵀ
  swiglu_act_forward(n * f, h1.f32(), h3.f32(), a.f32());  // fp32 gate
  convert_to_bf16(a, bf.a);
  gemm_bf16(bf.a, false, w2_bf16_, true, y);  // y = a·W2ᵀ: [N, F] · [D, F]ᵀ
}

void Expert::swiglu_backward_bf16(Tensor dy, Tensor dx, Tensor da, Bf16Backward bf) {
  const int64_t n = x_.rows(), f = config_.hidden;
  MOE_CHECK(bf.dy.dtype() == DType::kBF16 && bf.dy.shape() == dy.shape() &&
                bf.dh3.dtype() == DType::kBF16 && bf.dh3.shape() == da.shape(),
            "expert backward_into (bf16): dy16 {} dh3_16 {} for dy {} da {}", bf.dy.shape().str(),
            bf.dh3.shape().str(), dy.shape().str(), da.shape().str());
  const GemmScale acc{1.0f, 1.0f};
  const SwigluGradScales dw = swiglu_grad_scales();  // dW += …, a write when clear
  const Tensor x16 = swiglu_bf16_.x, a16 = swiglu_bf16_.a;
  convert_to_bf16(dy, bf.dy);
  gemm_bf16(bf.dy, true, a16, false, swiglu_grads_.w2, dw.w2);  // dW2 += dyᵀ·a: [D, N] · [N, F]
  gemm_bf16(bf.dy, false, w2_bf16_, false, da);                 // da = dy·W2: [N, D] · [D, F]
  // The fp32 a is spent (it becomes dh1, da becomes dh3 in place), then a16 holds dh1 rounded.
  Tensor dh1 = swiglu_act_, dh3 = da;
  swiglu_act_backward(n * f, swiglu_cache_.h1.f32(), swiglu_cache_.h3.f32(), da.f32(), dh1.f32(),
                      dh3.f32());
  const Tensor dh1_16 = a16, dh3_16 = bf.dh3;
  convert_to_bf16(dh1, dh1_16);
  convert_to_bf16(dh3, dh3_16);
  gemm_bf16(dh1_16, true, x16, false, swiglu_grads_.w1, dw.w1);  // dW1 += dh1ᵀ·x: [F, N] · [N, D]
  gemm_bf16(dh3_16, true, x16, false, swiglu_grads_.w3, dw.w3);  // dW3 += dh3ᵀ·x
  if (dx.empty()) return;
  gemm_bf16(dh1_16, false, w1_bf16_, false, dx);       // dx = dh1·W1: [N, F] · [F, D]
  gemm_bf16(dh3_16, false, w3_bf16_, false, dx, acc);  //    + dh3·W3
}

void Expert::mlp_forward(Tensor x, Tensor y, Arena& arena) {
  const int64_t n = x.rows(), f = config_.hidden;
  Tensor h = x;  // [N, D], then [N, F]
  for (size_t i = 0; i < pre_.size(); ++i) {
    pre_[i] = arena.alloc(Shape{n, f});   // [N, F]
    post_[i] = arena.alloc(Shape{n, f});  // [N, F]
    linear_forward(layers_[i], h, pre_[i]);
    activation_forward(config_.activation, pre_[i], post_[i]);
    h = post_[i];
  }
  linear_forward(layers_.back(), h, y);
}

void Expert::mlp_backward(Tensor dy, Tensor dx, Arena& arena) {
  // Walk the layers backwards. dz is dL/d(pre-activation) of the current layer, dh the gradient
  // of its input; the two [N, F] scratch buffers swap roles at each hidden layer.
  const int64_t n = dy.rows(), f = config_.hidden;
  const size_t mark = arena.mark();
  Tensor buf_a = arena.alloc(Shape{n, f});  // [N, F]
  Tensor buf_b = arena.alloc(Shape{n, f});  // [N, F]
  Tensor dz = dy;
  for (size_t i = layers_.size(); i-- > 0;) {
    const Tensor input = i == 0 ? x_ : post_[i - 1];
    Tensor dh = i == 0 ? dx : (dz.raw() == buf_a.raw() ? buf_b : buf_a);
    linear_backward(layers_[i], layer_grads_[i], input, dz, dh);
    if (i == 0) break;
    activation_backward(config_.activation, pre_[i - 1], dh, dh);  // dz of layer i − 1
    dz = dh;
  }
  arena.release(mark);
}

}  // namespace moe
