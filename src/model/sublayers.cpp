// Pre-norm attention and FFN sub-layers over packed sequences (see sublayers.h).
//
// Dims: Tq query rows · Tk key rows · D width · H query heads · G kv heads · Dh head width.
#include "sublayers.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "moe/kernels/gemm.h"
#include "moe/kernels/ops.h"
#include "moe/layers/linear.h"
#include "moe/layers/norm.h"

namespace moe::model_detail {

Status check_token_moe_block(const MoeBlockConfig& m, int64_t width, bool dense,
                             const std::string& at, const char* kind) {
  Status st = validate_moe_config(moe_layer_config(m, width));
  if (!st.is_ok()) return st.with_context(at);
  // A gate that compares tokens with each other lets a token's routing depend on later tokens of
  // the batch: the model would see the future in training and lose it at generation.
  const auto looks_across = [](const GateConfig& g) {
    return g.kind == GateKind::kExpertChoice || g.kind == GateKind::kSinkhorn ||
           g.capacity_factor > 0;
  };
  if (looks_across(m.gate) || (m.n_groups > 0 && looks_across(m.top_gate)))
    return Status::error(
        "{}: {} needs a causal gate, and expert choice, Sinkhorn and capacity limits "
        "route each token by comparing it with the others in the batch (later tokens "
        "included); use topk_softmax, noisy_topk, sigmoid_bias, hash, dense_softmax or "
        "gumbel_softmax, with capacity_factor 0",
        at, kind);
  if (dense) {
    st = validate_expert_config(dense_equivalent(m));
    if (!st.is_ok()) return st.with_context(at + " (dense)");
  }
  return Status::ok();
}

void embed_rows(Tensor table, const int32_t* tokens, int64_t n, Tensor out) {
  const int64_t v = table.rows(), d = table.cols();
  const float* e = table.f32();
  for (int64_t i = 0; i < n; ++i) {
    MOE_CHECK(tokens[i] >= 0 && tokens[i] < v, "model: token {} outside the vocabulary of {}",
              tokens[i], v);
    std::memcpy(out.f32() + i * d, e + static_cast<int64_t>(tokens[i]) * d, sizeof(float) * d);
  }
}

void embed_rows_backward(Tensor dtable, const int32_t* tokens, int64_t n, Tensor grad) {
  const int64_t d = dtable.cols();
  float* de = dtable.f32();
  const float* g = grad.f32();
  // Threads split D, each walking the tokens in order.
#pragma omp parallel for schedule(static) if (n * d > 65536)
  for (int64_t c0 = 0; c0 < d; c0 += 16) {
    const int64_t c1 = std::min(d, c0 + 16);
    for (int64_t i = 0; i < n; ++i) {
      float* row = de + static_cast<int64_t>(tokens[i]) * d;
      for (int64_t c = c0; c < c1; ++c) row[c] += g[i * d + c];
    }
  }
}

void AttentionSublayer::declare(ParamStore& store, const std::string& prefix,
                                const std::string& norm, const std::string& name,
                                const AttentionShape& shape) {
  shape_ = shape;
  const int64_t d = shape.width, hq = shape.heads * shape.head_dim(),
                hkv = shape.kv_heads * shape.head_dim();
  const std::string at = prefix + "." + name;
  gain_ = store.add(prefix + "." + norm + ".gain", Shape{d}, /*decay=*/false);
  wq_ = store.add(at + ".wq", Shape{hq, d});
  wk_ = store.add(at + ".wk", Shape{hkv, d});
  wv_ = store.add(at + ".wv", Shape{hkv, d});
  wo_ = store.add(at + ".wo", Shape{d, hq});
}

void AttentionSublayer::init(ParamStore& store, Rng& rng) const {
  fill(store.value(gain_), 1.0f);
  for (const ParamId id : {wq_, wk_, wv_, wo_}) linear_init({store.value(id), Tensor()}, rng);
}

// RoPE over packed rows: each sequence's positions start at 0 (inverse: the backward).
void AttentionSublayer::rope_rows(Tensor x, int64_t n_heads, bool inverse) const {
  for (int64_t b = 0; b < dims_.batch(); ++b) {
    const auto i = static_cast<size_t>(b);
    const int64_t start = dims_.q_starts[i], len = dims_.q_starts[i + 1] - start;
    if (len == 0) continue;
    const Tensor rows(x.f32() + start * x.cols(), Shape{len, x.cols()});
    if (inverse) {
      rope_backward(*rope_, 1, len, n_heads, 0, rows);
    } else {
      rope_forward(*rope_, 1, len, n_heads, 0, rows);
    }
  }
}

void AttentionSublayer::forward(const ParamStore& store, const PackedAttentionDims& d,
                                const RopeTable* rope, Tensor h, Tensor memory, Tensor out,
                                Arena& arena) {
  const int64_t tq = h.rows(), w = shape_.width;
  const int64_t hq = shape_.heads * shape_.head_dim(), hkv = shape_.kv_heads * shape_.head_dim();
  dims_ = d;
  rope_ = rope;
  h_in_ = h;
  memory_ = memory;
  x_ = arena.alloc(Shape{tq, w});
  rstd_ = arena.alloc(Shape{tq});
  rms_norm_forward({store.value(gain_)}, shape_.norm_eps, h, x_, {rstd_});
  const Tensor source = memory.empty() ? x_ : memory;  // [Tk, D]
  q_ = arena.alloc(Shape{tq, hq});
  k_ = arena.alloc(Shape{source.rows(), hkv});
  v_ = arena.alloc(Shape{source.rows(), hkv});
  gemm(x_, false, store.value(wq_), true, q_);
  gemm(source, false, store.value(wk_), true, k_);
  gemm(source, false, store.value(wv_), true, v_);
  if (rope_ != nullptr) {
    rope_rows(q_, shape_.heads, false);
    rope_rows(k_, shape_.kv_heads, false);
  }
  att_ = arena.alloc(Shape{tq, hq});
  lse_ = arena.alloc(Shape{shape_.heads, tq});
  Tensor ws = arena.alloc(Shape{attention_workspace_floats(d, omp_get_max_threads())});
  attention_forward(d, q_, k_, v_, att_, {lse_}, ws);
  copy(out, h);
  gemm(att_, false, store.value(wo_), true, out, {1.0f, 1.0f});
}

void AttentionSublayer::backward(ParamStore& store, Tensor dh, Tensor dmemory, Arena& arena) {
  const int64_t tq = dh.rows(), w = shape_.width;
  const int64_t hq = shape_.heads * shape_.head_dim(), hkv = shape_.kv_heads * shape_.head_dim();
  Tensor datt = arena.alloc(Shape{tq, hq});
  gemm(dh, false, store.value(wo_), false, datt);
  // A frozen weight's gradient is read by nothing (ParamStore::freeze): its product is skipped.
  if (!store.frozen(wo_)) gemm(dh, true, att_, false, store.grad(wo_), {1.0f, 1.0f});
  Tensor dq = arena.alloc(Shape{tq, hq}), dk = arena.alloc(Shape{k_.rows(), hkv}),
         dv = arena.alloc(Shape{k_.rows(), hkv});
  Tensor ws = arena.alloc(Shape{attention_workspace_floats(dims_, omp_get_max_threads())});
  attention_backward(dims_, q_, k_, v_, att_, {lse_}, datt, dq, dk, dv, ws);
  if (rope_ != nullptr) {
    rope_rows(dq, shape_.heads, true);
    rope_rows(dk, shape_.kv_heads, true);
  }
  const Tensor source = memory_.empty() ? x_ : memory_;
  // dx = dq Wq (+ dk Wk + dv Wv for self-attention); dW += dᵀ input
  Tensor dx = arena.alloc(Shape{tq, w});
  gemm(dq, false, store.value(wq_), false, dx);
  Tensor dsource = memory_.empty() ? dx : dmemory;  // where dk Wk + dv Wv go (+=)
  gemm(dk, false, store.value(wk_), false, dsource, {1.0f, 1.0f});
  gemm(dv, false, store.value(wv_), false, dsource, {1.0f, 1.0f});
  if (!store.frozen(wq_)) gemm(dq, true, x_, false, store.grad(wq_), {1.0f, 1.0f});
  if (!store.frozen(wk_)) gemm(dk, true, source, false, store.grad(wk_), {1.0f, 1.0f});
  if (!store.frozen(wv_)) gemm(dv, true, source, false, store.grad(wv_), {1.0f, 1.0f});
  Tensor dnorm = arena.alloc(Shape{tq, w});
  rms_norm_backward({store.value(gain_)}, {store.grad(gain_)}, {rstd_}, h_in_, dx, dnorm);
  add(dh, dnorm, dh);
}

void AttentionSublayer::decode_self(const ParamStore& store, const RopeTable& rope, Tensor h,
                                    int64_t pos, int64_t max_len, Tensor k_cache, Tensor v_cache,
                                    Tensor out, Arena& arena) const {
  const int64_t n = h.rows(), w = shape_.width, dh = shape_.head_dim();
  const int64_t hq = shape_.heads * dh, hkv = shape_.kv_heads * dh;
  Tensor x = arena.alloc(Shape{n, w}), rstd = arena.alloc(Shape{n});
  rms_norm_forward({store.value(gain_)}, shape_.norm_eps, h, x, {rstd});
  Tensor q = arena.alloc(Shape{n, hq}), k = arena.alloc(Shape{n, hkv}),
         v = arena.alloc(Shape{n, hkv});
  gemm(x, false, store.value(wq_), true, q);
  gemm(x, false, store.value(wk_), true, k);
  gemm(x, false, store.value(wv_), true, v);
  rope_forward(rope, n, 1, shape_.heads, pos, q);
  rope_forward(rope, n, 1, shape_.kv_heads, pos, k);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = i * max_len + pos;
    std::memcpy(k_cache.f32() + row * hkv, k.f32() + i * hkv, sizeof(float) * hkv);
    std::memcpy(v_cache.f32() + row * hkv, v.f32() + i * hkv, sizeof(float) * hkv);
  }
  const AttentionDims d{.batch = n,
                        .seq = 1,
                        .n_heads = shape_.heads,
                        .n_kv_heads = shape_.kv_heads,
                        .head_dim = dh,
                        .causal = true};
  Tensor att = arena.alloc(Shape{n, hq});
  Tensor ws = arena.alloc(Shape{attention_workspace_floats(d, omp_get_max_threads())});
  attention_decode(d, pos, max_len, q, k_cache, v_cache, att, ws);
  copy(out, h);
  gemm(att, false, store.value(wo_), true, out, {1.0f, 1.0f});
}

void AttentionSublayer::cross_keys(const ParamStore& store, Tensor memory, Tensor k,
                                   Tensor v) const {
  gemm(memory, false, store.value(wk_), true, k);
  gemm(memory, false, store.value(wv_), true, v);
}

void AttentionSublayer::decode_cross(const ParamStore& store, const PackedAttentionDims& d,
                                     Tensor h, Tensor k, Tensor v, Tensor out, Arena& arena) const {
  const int64_t n = h.rows(), w = shape_.width, hq = shape_.heads * shape_.head_dim();
  Tensor x = arena.alloc(Shape{n, w}), rstd = arena.alloc(Shape{n});
  rms_norm_forward({store.value(gain_)}, shape_.norm_eps, h, x, {rstd});
  Tensor q = arena.alloc(Shape{n, hq});
  gemm(x, false, store.value(wq_), true, q);
  Tensor att = arena.alloc(Shape{n, hq});
  Tensor ws = arena.alloc(Shape{attention_workspace_floats(d, omp_get_max_threads())});
  attention_forward(d, q, k, v, att, AttentionCache{}, ws);
  copy(out, h);
  gemm(att, false, store.value(wo_), true, out, {1.0f, 1.0f});
}

void FfnSublayer::declare(ParamStore& store, const std::string& prefix, int64_t width,
                          float norm_eps, const MoeConfig* moe, const ExpertConfig& dense,
                          Precision precision) {
  eps_ = norm_eps;
  gain_ = store.add(prefix + ".ffn_norm.gain", Shape{width}, /*decay=*/false);
  if (moe != nullptr) {
    moe_ = std::make_unique<MoeLayer>(*moe);
    moe_->declare(store, prefix + ".moe");
  } else {
    dense_ = std::make_unique<Expert>(width, dense);
    dense_->set_precision(precision);
    dense_->declare(store, prefix + ".ffn");
  }
}

void FfnSublayer::bind(const ParamStore& store) {
  if (dense_) dense_->bind(store);
  if (moe_) moe_->bind(store);
}

void FfnSublayer::init(ParamStore& store, Rng& rng) const {
  fill(store.value(gain_), 1.0f);
  if (dense_) dense_->init(rng);
  if (moe_) moe_->init(rng);
}

void FfnSublayer::forward(const ParamStore& store, Tensor h, Tensor out, bool training,
                          const Rng& rng, const int64_t* token_ids, Arena& arena) {
  h_in_ = h;
  x_ = arena.alloc(h.shape());
  rstd_ = arena.alloc(Shape{h.rows()});
  rms_norm_forward({store.value(gain_)}, eps_, h, x_, {rstd_});
  if (dense_) {
    dense_->forward(x_, out, arena);
  } else {
    moe_->forward(x_, out, training, rng, arena, token_ids);
  }
  add(out, h, out);
}

void FfnSublayer::backward(ParamStore& store, Tensor dh, Arena& arena) {
  Tensor dx = arena.alloc(dh.shape());
  if (dense_) {
    dense_->backward(dh, dx, arena);
  } else {
    moe_->backward(dh, dx, arena);
  }
  Tensor dnorm = arena.alloc(dh.shape());
  rms_norm_backward({store.value(gain_)}, {store.grad(gain_)}, {rstd_}, h_in_, dx, dnorm);
  add(dh, dnorm, dh);
}

}  // namespace moe::model_detail
