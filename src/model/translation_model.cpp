// TranslationModel: token embedding, an encoder and a decoder stack of pre-norm sub-layers over
// packed sentences, final norm and (tied) head. See include/moe/model/translation_model.h.
//
// Dims: B pairs · Ts source and Tt target tokens · V vocabulary · D width · H query heads ·
// G key/value heads · Dh head width · Le encoder and Ld decoder blocks.
#include "moe/model/translation_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "model_rules.h"
#include "moe/kernels/gemm.h"
#include "moe/kernels/ops.h"
#include "moe/layers/linear.h"
#include "moe/layers/loss.h"
#include "moe/layers/norm.h"
#include "sublayers.h"

namespace moe {

namespace {

using model_detail::AttentionShape;
using model_detail::AttentionSublayer;
using model_detail::FfnSublayer;

// Rng streams, one per purpose, so that adding a layer does not shift another's draws.
// (model_rules.h has those the models share.)
using model_detail::kEmbedStd;
using model_detail::kInitEmbed;
using model_detail::kInitHead;
using model_detail::kMaxLayers;
using model_detail::kMaxVocab;
using model_detail::kNoiseBlockMoe;
constexpr uint64_t kInitEncoderFfn = 100, kInitEncoderAttn = 200, kInitDecoderFfn = 300,
                   kInitDecoderAttn = 400, kInitCross = 600;

constexpr int64_t kMaxTokens = int64_t{1} << 16;

Status check_translation_config(const ModelConfig& c, const DataShape& shape) {
  const TranslationConfig& tr = c.translation;
  if (shape.n_features < 4 || shape.n_features > kMaxVocab)
    return Status::error("model: a vocabulary of {} tokens; need 4 to 2^24", shape.n_features);
  if (c.width < 1) return Status::error("model.width: must be positive, got {}", c.width);
  if (tr.encoder_layers < 1 || tr.encoder_layers > kMaxLayers)
    return Status::error("model.translation.encoder_layers: must be in [1, {}], got {}", kMaxLayers,
                         tr.encoder_layers);
  if (tr.decoder_layers < 1 || tr.decoder_layers > kMaxLayers)
    return Status::error("model.translation.decoder_layers: must be in [1, {}], got {}", kMaxLayers,
                         tr.decoder_layers);
  if (tr.heads < 1 || c.width % tr.heads != 0)
    return Status::error("model.translation.heads: {} heads must divide model.width {}", tr.heads,
                         c.width);
  if ((c.width / tr.heads) % 2 != 0)
    return Status::error(
        "model.translation.heads: the head width model.width / heads = {} must be even "
        "(RoPE rotates pairs)",
        c.width / tr.heads);
  if (tr.kv_heads < 0 || tr.n_kv_heads() > tr.heads || tr.heads % tr.n_kv_heads() != 0)
    return Status::error("model.translation.kv_heads: {} key/value heads must divide the {} heads",
                         tr.kv_heads, tr.heads);
  if (tr.max_tokens < 2 || tr.max_tokens > kMaxTokens)
    return Status::error("model.translation.max_tokens: must be in [2, {}], got {}", kMaxTokens,
                         tr.max_tokens);
  if (!(tr.rope_theta > 1.0 && std::isfinite(tr.rope_theta)))
    return Status::error("model.translation.rope_theta: must be a finite number > 1, got {}",
                         tr.rope_theta);
  if (tr.ffn_hidden < 0) return Status::error("model.translation.ffn_hidden: must be ≥ 0");
  if (!(tr.norm_eps > 0.0f)) return Status::error("model.translation.norm_eps: must be positive");
  const int64_t n_moe = tr.n_moe_blocks();
  if (c.moe.empty() || (c.moe.size() != 1 && static_cast<int64_t>(c.moe.size()) != n_moe))
    return Status::error(
        "model.moe: a translation model takes one MoE layer object (used by every MoE block) or "
        "a list of one per MoE block ({} here: the encoder's, then the decoder's), got {}",
        n_moe, c.moe.size());
  for (size_t i = 0; i < c.moe.size(); ++i) {
    const std::string at = c.moe.size() == 1 ? "model.moe" : fmt::format("model.moe.{}", i);
    Status st =
        model_detail::check_token_moe_block(c.moe[i], c.width, c.dense, at, "a translation model");
    if (!st.is_ok()) return st;
  }
  return Status::ok();
}

// The starts [B+1] of a batch's packed sentences, checked against the rows they index.
void read_starts(Tensor starts, int64_t rows, int64_t max_len, const char* what,
                 std::vector<int64_t>& out) {
  MOE_CHECK(starts.dtype() == DType::kI64 && starts.numel() >= 2, "model: {} starts {}", what,
            starts.shape().str());
  const int64_t* s = starts.data<int64_t>();
  out.assign(s, s + starts.numel());
  MOE_CHECK(out.front() == 0 && out.back() == rows, "model: {} starts from {} to {} for {} rows",
            what, out.front(), out.back(), rows);
  for (size_t i = 0; i + 1 < out.size(); ++i) {
    const int64_t len = out[i + 1] - out[i];
    MOE_CHECK(len >= 1 && len <= max_len, "model: {} sentence {} has {} tokens (1 to {})", what, i,
              len, max_len);
  }
}

}  // namespace

struct TranslationModel::EncoderBlock {
  AttentionSublayer attn;
  FfnSublayer ffn;
};

struct TranslationModel::DecoderBlock {
  AttentionSublayer attn;
  AttentionSublayer cross;
  FfnSublayer ffn;
};

TranslationModel::TranslationModel(ModelConfig config, DataShape shape)
    : Model(std::move(config), shape) {}
TranslationModel::~TranslationModel() = default;

Result<std::unique_ptr<TranslationModel>> TranslationModel::create(const ModelConfig& config,
                                                                   const DataShape& shape) {
  Status st = check_translation_config(config, shape);
  if (!st.is_ok()) return st;
  std::unique_ptr<TranslationModel> model(new TranslationModel(config, shape));
  model->build();
  return model;
}

void TranslationModel::build() {
  const TranslationConfig& tr = config_.translation;
  const int64_t d = config_.width, v = shape_.n_features;
  const AttentionShape shape{
      .width = d, .heads = tr.heads, .kv_heads = tr.n_kv_heads(), .norm_eps = tr.norm_eps};
  // A block without MoE has a dense FFN of ffn_hidden (0: the MoE layer's active width); an MoE
  // block under model.dense always gets the active width (the dense twin's size).
  int64_t moe_index = 0;
  const auto add_ffn = [&](FfnSublayer& ffn, const std::string& prefix, int64_t block,
                           bool is_moe) {
    const MoeBlockConfig& mb = config_.lm_moe(is_moe ? moe_index++ : 0);
    ExpertConfig dense = dense_equivalent(mb);
    if (!is_moe && tr.ffn_hidden > 0) dense.hidden = tr.ffn_hidden;
    if (is_moe && !config_.dense) {
      const MoeConfig layer = moe_layer_config(mb, d);
      ffn.declare(store_, prefix, d, tr.norm_eps, &layer, dense, mb.precision);
      hashed_ = hashed_ || mb.gate.kind == GateKind::kHash;
      add_moe_layer(prefix + ".moe", block, ffn.moe_layer(), moe_slots_per_token(mb));
    } else {
      ffn.declare(store_, prefix, d, tr.norm_eps, nullptr, dense, mb.precision);
    }
  };

  embed_ = store_.add("embed.w", Shape{v, d});
  for (int64_t l = 0; l < tr.encoder_layers; ++l) {
    auto b = std::make_unique<EncoderBlock>();
    const std::string prefix = fmt::format("encoder.{}", l);
    b->attn.declare(store_, prefix, "attn_norm", "attn", shape);
    add_ffn(b->ffn, prefix, l, tr.encoder_block_is_moe(l));
    encoder_.push_back(std::move(b));
  }
  encoder_gain_ = store_.add("encoder_norm.gain", Shape{d}, /*decay=*/false);
  for (int64_t l = 0; l < tr.decoder_layers; ++l) {
    auto b = std::make_unique<DecoderBlock>();
    const std::string prefix = fmt::format("decoder.{}", l);
    b->attn.declare(store_, prefix, "attn_norm", "attn", shape);
    b->cross.declare(store_, prefix, "cross_norm", "cross", shape);
    add_ffn(b->ffn, prefix, tr.encoder_layers + l, tr.decoder_block_is_moe(l));
    decoder_.push_back(std::move(b));
  }
  final_gain_ = store_.add("final_norm.gain", Shape{d}, /*decay=*/false);
  if (!tr.tie_embeddings) head_ = store_.add("head.w", Shape{v, d});
  store_.finalize();
  for (auto& b : encoder_) b->ffn.bind(store_);
  for (auto& b : decoder_) b->ffn.bind(store_);
  rope_ = RopeTable::build(tr.max_tokens, d / tr.heads, tr.rope_theta);
}

void TranslationModel::init(uint64_t seed) {
  const Rng root(seed);
  Rng embed_rng = root.fork(kInitEmbed);
  embed_rng.fill_normal(store_.value(embed_), 0.0f, kEmbedStd);
  for (size_t l = 0; l < encoder_.size(); ++l) {
    Rng attn_rng = root.fork(kInitEncoderAttn + l);
    encoder_[l]->attn.init(store_, attn_rng);
    Rng ffn_rng = root.fork(kInitEncoderFfn + l);
    encoder_[l]->ffn.init(store_, ffn_rng);
  }
  fill(store_.value(encoder_gain_), 1.0f);
  for (size_t l = 0; l < decoder_.size(); ++l) {
    Rng attn_rng = root.fork(kInitDecoderAttn + l);
    decoder_[l]->attn.init(store_, attn_rng);
    Rng cross_rng = root.fork(kInitCross + l);
    decoder_[l]->cross.init(store_, cross_rng);
    Rng ffn_rng = root.fork(kInitDecoderFfn + l);
    decoder_[l]->ffn.init(store_, ffn_rng);
  }
  fill(store_.value(final_gain_), 1.0f);
  if (head_ >= 0) {
    Rng head_rng = root.fork(kInitHead);
    linear_init({store_.value(head_), Tensor()}, head_rng);
  }
}

Tensor TranslationModel::head_weight() const {
  return store_.value(head_ >= 0 ? head_ : embed_);
}
Tensor TranslationModel::head_grad() const {
  return store_.grad(head_ >= 0 ? head_ : embed_);
}

int64_t TranslationModel::n_blocks() const {
  return static_cast<int64_t>(encoder_.size() + decoder_.size());
}

ParamEnd TranslationModel::param_end(const std::string& name) const {
  if (name == "embed.w")
    return config_.translation.tie_embeddings ? ParamEnd::kBoth : ParamEnd::kInput;
  return name == "head.w" ? ParamEnd::kOutput : ParamEnd::kInner;
}

// E[tokens] [T, D]; *hash_ids the ids as a hash gate takes them (arena), when one routes by them.
Tensor TranslationModel::embed(Tensor tokens, Arena& arena, const int64_t** hash_ids) {
  const int64_t t = tokens.numel();
  Tensor h = arena.alloc(Shape{t, config_.width});
  const int32_t* tok = tokens.data<int32_t>();
  model_detail::embed_rows(store_.value(embed_), tok, t, h);
  *hash_ids = nullptr;
  if (hashed_) {
    auto* ids = arena.alloc_array<int64_t>(t);
    std::copy(tok, tok + t, ids);
    *hash_ids = ids;
  }
  return h;
}

Tensor TranslationModel::encode(Tensor src_tokens, const PackedAttentionDims& d, bool training,
                                const Rng& rng, Arena& arena) {
  const int64_t ts = src_tokens.numel(), w = config_.width;
  const int64_t* src_ids = nullptr;
  Tensor x = embed(src_tokens, arena, &src_ids);  // [Ts, D]
  for (size_t l = 0; l < encoder_.size(); ++l) {
    EncoderBlock& b = *encoder_[l];
    Tensor mid = arena.alloc(Shape{ts, w}), next = arena.alloc(Shape{ts, w});
    b.attn.forward(store_, d, &rope_, x, Tensor(), mid, arena);
    b.ffn.forward(store_, mid, next, training, rng.fork(kNoiseBlockMoe + l), src_ids, arena);
    x = next;
  }
  encoder_out_ = x;
  memory_ = arena.alloc(Shape{ts, w});
  memory_rstd_ = arena.alloc(Shape{ts});
  rms_norm_forward({store_.value(encoder_gain_)}, config_.translation.norm_eps, x, memory_,
                   {memory_rstd_});
  return memory_;
}

Tensor TranslationModel::forward(const Batch& batch, bool training, const Rng& rng, Arena& arena) {
  const TranslationConfig& tr = config_.translation;
  const int64_t d = config_.width, v = shape_.n_features;
  MOE_CHECK(batch.src_tokens.dtype() == DType::kI32 && batch.tgt_in.dtype() == DType::kI32 &&
                batch.tgt_out.numel() == batch.tgt_in.numel(),
            "model: a translation model needs a batch of sentence pairs");
  read_starts(batch.src_starts, batch.src_tokens.numel(), tr.max_tokens, "source", src_starts_);
  read_starts(batch.tgt_starts, batch.tgt_in.numel(), tr.max_tokens, "target", tgt_starts_);
  MOE_CHECK(src_starts_.size() == tgt_starts_.size(), "model: {} sources and {} targets",
            src_starts_.size() - 1, tgt_starts_.size() - 1);
  training_ = training;
  src_tokens_ = batch.src_tokens;
  tgt_in_ = batch.tgt_in;
  const int64_t tt = tgt_in_.numel();
  const int64_t hkv = tr.n_kv_heads();
  const PackedAttentionDims enc{.q_starts = src_starts_,
                                .k_starts = src_starts_,
                                .n_heads = tr.heads,
                                .n_kv_heads = hkv,
                                .head_dim = d / tr.heads,
                                .causal = false};
  PackedAttentionDims self = enc;
  self.q_starts = tgt_starts_;
  self.k_starts = tgt_starts_;
  self.causal = true;
  PackedAttentionDims cross = enc;
  cross.q_starts = tgt_starts_;

  encode(src_tokens_, enc, training, rng, arena);

  const int64_t* tgt_ids = nullptr;
  Tensor y = embed(tgt_in_, arena, &tgt_ids);  // [Tt, D]
  for (size_t l = 0; l < decoder_.size(); ++l) {
    DecoderBlock& b = *decoder_[l];
    Tensor a = arena.alloc(Shape{tt, d}), c = arena.alloc(Shape{tt, d}),
           next = arena.alloc(Shape{tt, d});
    b.attn.forward(store_, self, &rope_, y, Tensor(), a, arena);
    b.cross.forward(store_, cross, nullptr, a, memory_, c, arena);
    b.ffn.forward(store_, c, next, training, rng.fork(kNoiseBlockMoe + encoder_.size() + l),
                  tgt_ids, arena);
    y = next;
  }
  final_in_ = y;
  final_out_ = arena.alloc(Shape{tt, d});
  final_rstd_ = arena.alloc(Shape{tt});
  rms_norm_forward({store_.value(final_gain_)}, tr.norm_eps, y, final_out_, {final_rstd_});
  Tensor logits = arena.alloc(Shape{tt, v});  // [Tt, V]
  gemm(final_out_, false, head_weight(), true, logits);
  return logits;
}

double TranslationModel::task_loss(const Batch& batch, Tensor logits, Tensor dlogits,
                                   const TaskLossOptions& options) const {
  MOE_CHECK(batch.tgt_out.numel() == logits.rows() &&
                batch.tgt_in.data<int32_t>() == tgt_in_.data<int32_t>(),
            "model: task_loss for another batch than the last forward");
  CrossEntropyOptions ce;
  ce.label_smoothing = options.cross_entropy.label_smoothing;
  return cross_entropy_loss(logits, batch.tgt_out, dlogits, ce);
}

void TranslationModel::backward(Tensor dlogits, Arena& arena) {
  MOE_CHECK(training_, "model: backward after an evaluation forward");
  const int64_t d = config_.width, tt = tgt_in_.numel(), ts = src_tokens_.numel();
  MOE_CHECK(dlogits.rows() == tt && dlogits.cols() == shape_.n_features,
            "model: dlogits {} for {} target tokens of a vocabulary of {}", dlogits.shape().str(),
            tt, shape_.n_features);
  Tensor dfinal = arena.alloc(Shape{tt, d});
  gemm(dlogits, false, head_weight(), false, dfinal);
  if (!store_.frozen(head_ >= 0 ? head_ : embed_))
    gemm(dlogits, true, final_out_, false, head_grad(), {1.0f, 1.0f});
  Tensor dy = arena.alloc(Shape{tt, d});  // the decoder's residual gradient
  rms_norm_backward({store_.value(final_gain_)}, {store_.grad(final_gain_)}, {final_rstd_},
                    final_in_, dfinal, dy);
  Tensor dmemory = arena.alloc(Shape{ts, d});  // Σ over decoder blocks of the cross-attention's
  fill(dmemory, 0.0f);
  for (size_t l = decoder_.size(); l-- > 0;) {
    DecoderBlock& b = *decoder_[l];
    b.ffn.backward(store_, dy, arena);
    b.cross.backward(store_, dy, dmemory, arena);
    b.attn.backward(store_, dy, Tensor(), arena);
  }
  Tensor dx = arena.alloc(Shape{ts, d});  // the encoder's residual gradient
  rms_norm_backward({store_.value(encoder_gain_)}, {store_.grad(encoder_gain_)}, {memory_rstd_},
                    encoder_out_, dmemory, dx);
  for (size_t l = encoder_.size(); l-- > 0;) {
    EncoderBlock& b = *encoder_[l];
    b.ffn.backward(store_, dx, arena);
    b.attn.backward(store_, dx, Tensor(), arena);
  }
  if (store_.frozen(embed_)) return;
  model_detail::embed_rows_backward(store_.grad(embed_), tgt_in_.data<int32_t>(), tt, dy);
  model_detail::embed_rows_backward(store_.grad(embed_), src_tokens_.data<int32_t>(), ts, dx);
}

// ---- generation ---------------------------------------------------------------------------------

// What decoding keeps between steps. Dims: N = sources · copies hypotheses, L positions.
struct TranslationModel::DecodeState {
  int64_t copies = 1;
  int64_t n = 0;    // N
  int64_t pos = 0;  // the position the next step's tokens take
  int64_t max_len = 0;
  std::vector<int64_t> src_starts;    // [sources + 1] the encoded sources' rows
  std::vector<int64_t> query_starts;  // [sources + 1] i · copies: each source's hypotheses
  TensorBuffer src_tokens;            // [Ts] int32
  std::vector<TensorBuffer> cross_k, cross_v;  // per decoder block [Ts, G·Dh]
  std::vector<TensorBuffer> self_k, self_v;    // per decoder block [N·L, G·Dh]
  TensorBuffer scratch;                        // [N·L, G·Dh] for reordering
  Arena arena;                                 // each step's temporaries
};

void TranslationModel::start_decoding(std::span<const std::vector<int32_t>> sources, int64_t copies,
                                      int32_t eos) {
  const TranslationConfig& tr = config_.translation;
  MOE_CHECK(!sources.empty() && copies >= 1, "model: decoding {} sources with {} copies",
            sources.size(), copies);
  if (!decode_) decode_ = std::make_unique<DecodeState>();
  DecodeState& st = *decode_;
  st.copies = copies;
  st.n = static_cast<int64_t>(sources.size()) * copies;
  st.pos = 0;
  st.max_len = tr.max_tokens;
  st.src_starts.assign(1, 0);
  st.query_starts.assign(1, 0);
  for (const std::vector<int32_t>& s : sources) {
    const auto len = static_cast<int64_t>(s.size()) + 1;
    MOE_CHECK(len <= tr.max_tokens, "model: a source of {} tokens and eos; at most {} fit",
              s.size(), tr.max_tokens);
    st.src_starts.push_back(st.src_starts.back() + len);
    st.query_starts.push_back(st.query_starts.back() + copies);
  }
  const int64_t ts = st.src_starts.back();
  st.src_tokens = TensorBuffer(Shape{ts}, DType::kI32);
  int32_t* tok = st.src_tokens.view().data<int32_t>();
  for (size_t i = 0; i < sources.size(); ++i) {
    std::copy(sources[i].begin(), sources[i].end(), tok + st.src_starts[i]);
    tok[st.src_starts[i + 1] - 1] = eos;
  }
  st.arena.reset();
  const PackedAttentionDims enc{.q_starts = st.src_starts,
                                .k_starts = st.src_starts,
                                .n_heads = tr.heads,
                                .n_kv_heads = tr.n_kv_heads(),
                                .head_dim = config_.width / tr.heads,
                                .causal = false};
  training_ = false;
  const Tensor memory = encode(st.src_tokens.view(), enc, false, Rng(0), st.arena);
  const int64_t hkv = tr.n_kv_heads() * (config_.width / tr.heads);
  st.cross_k.resize(decoder_.size());
  st.cross_v.resize(decoder_.size());
  st.self_k.resize(decoder_.size());
  st.self_v.resize(decoder_.size());
  for (size_t l = 0; l < decoder_.size(); ++l) {
    st.cross_k[l] = TensorBuffer(Shape{ts, hkv});
    st.cross_v[l] = TensorBuffer(Shape{ts, hkv});
    decoder_[l]->cross.cross_keys(store_, memory, st.cross_k[l], st.cross_v[l]);
    if (st.self_k[l].view().numel() != st.n * st.max_len * hkv) {
      st.self_k[l] = TensorBuffer(Shape{st.n * st.max_len, hkv});
      st.self_v[l] = TensorBuffer(Shape{st.n * st.max_len, hkv});
    }
  }
  st.scratch = TensorBuffer(Shape{st.n * st.max_len, hkv});
}

Tensor TranslationModel::decode_step(std::span<const int32_t> tokens) {
  MOE_CHECK(decode_ != nullptr, "model: decode_step before start_decoding");
  DecodeState& st = *decode_;
  const TranslationConfig& tr = config_.translation;
  const int64_t n = st.n, w = config_.width;
  MOE_CHECK(static_cast<int64_t>(tokens.size()) == n && st.pos < st.max_len,
            "model: {} tokens at position {} for {} hypotheses of at most {} positions",
            tokens.size(), st.pos, n, st.max_len);
  st.arena.reset();
  Tensor tok = st.arena.alloc(Shape{n}, DType::kI32);
  std::copy(tokens.begin(), tokens.end(), tok.data<int32_t>());
  const int64_t* ids = nullptr;
  Tensor y = embed(tok, st.arena, &ids);  // [N, D]
  const PackedAttentionDims cross{.q_starts = st.query_starts,
                                  .k_starts = st.src_starts,
                                  .n_heads = tr.heads,
                                  .n_kv_heads = tr.n_kv_heads(),
                                  .head_dim = w / tr.heads,
                                  .causal = false};
  for (size_t l = 0; l < decoder_.size(); ++l) {
    DecoderBlock& b = *decoder_[l];
    Tensor a = st.arena.alloc(Shape{n, w}), c = st.arena.alloc(Shape{n, w}),
           next = st.arena.alloc(Shape{n, w});
    b.attn.decode_self(store_, rope_, y, st.pos, st.max_len, st.self_k[l], st.self_v[l], a,
                       st.arena);
    b.cross.decode_cross(store_, cross, a, st.cross_k[l], st.cross_v[l], c, st.arena);
    b.ffn.forward(store_, c, next, false, Rng(0), ids, st.arena);
    y = next;
  }
  ++st.pos;
  Tensor normed = st.arena.alloc(Shape{n, w}), rstd = st.arena.alloc(Shape{n});
  rms_norm_forward({store_.value(final_gain_)}, tr.norm_eps, y, normed, {rstd});
  Tensor logits = st.arena.alloc(Shape{n, shape_.n_features});
  gemm(normed, false, head_weight(), true, logits);
  return logits;
}

void TranslationModel::reorder_hypotheses(std::span<const int64_t> parent) {
  MOE_CHECK(decode_ != nullptr, "model: reorder_hypotheses before start_decoding");
  DecodeState& st = *decode_;
  MOE_CHECK(static_cast<int64_t>(parent.size()) == st.n, "model: {} parents for {} hypotheses",
            parent.size(), st.n);
  for (int64_t i = 0; i < st.n; ++i) {
    MOE_CHECK(parent[i] >= 0 && parent[i] < st.n && parent[i] / st.copies == i / st.copies,
              "model: hypothesis {} cannot continue hypothesis {}", i, parent[i]);
  }
  const int64_t rows = st.pos;  // the positions cached so far
  for (size_t l = 0; l < decoder_.size(); ++l) {
    for (TensorBuffer* cache : {&st.self_k[l], &st.self_v[l]}) {
      const int64_t width = cache->view().cols(), block = st.max_len * width;
      copy(st.scratch.view(), cache->view());
      for (int64_t i = 0; i < st.n; ++i) {
        std::memcpy(cache->f32() + i * block, st.scratch.f32() + parent[i] * block,
                    sizeof(float) * static_cast<size_t>(rows * width));
      }
    }
  }
}

namespace {

// ln softmax of one row of logits, in double.
void log_softmax(const float* logits, int64_t v, std::vector<double>& out) {
  out.resize(static_cast<size_t>(v));
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < v; ++j) mx = std::max(mx, static_cast<double>(logits[j]));
  double sum = 0.0;
  for (int64_t j = 0; j < v; ++j) sum += std::exp(static_cast<double>(logits[j]) - mx);
  const double lse = mx + std::log(sum);
  for (int64_t j = 0; j < v; ++j) out[static_cast<size_t>(j)] = logits[j] - lse;
}

struct Candidate {
  double log_prob = 0.0;
  int64_t hyp = 0;
  int32_t token = 0;
};

// One source's beam: its live hypotheses' tokens and log-probabilities, and the finished ones.
struct Beam {
  std::vector<std::vector<int32_t>> tokens;  // [K]
  std::vector<double> log_prob;              // [K], −∞ for an empty slot
  std::vector<TranslationModel::Hypothesis> finished;
  bool done = false;

  explicit Beam(int64_t k)
      : tokens(static_cast<size_t>(k)),
        log_prob(static_cast<size_t>(k), -std::numeric_limits<double>::infinity()) {
    log_prob[0] = 0.0;  // one live hypothesis to start from
  }

  // One step: `logits` [K, V] are the next-token logits of this beam's hypotheses; hypothesis j
  // of the next step continues parent[j] (an index in [0, K)) with token[j]. Unused slots
  // continue hypothesis 0 with eos.
  void advance(const float* logits, int64_t v, bool last, const TranslationModel::DecodeOptions& o,
               int64_t* parent, int32_t* token, std::vector<Candidate>& cands,
               std::vector<double>& lp) {
    const int64_t k = o.beam;
    std::fill(parent, parent + k, 0);
    std::fill(token, token + k, o.eos);
    if (done) return;
    cands.clear();
    for (int64_t j = 0; j < k; ++j) {
      const double base = log_prob[static_cast<size_t>(j)];
      if (std::isinf(base)) continue;
      log_softmax(logits + j * v, v, lp);
      for (int64_t t = 0; t < v; ++t) {
        if (last && t != o.eos) continue;  // at the last position only eos
        cands.push_back({base + lp[static_cast<size_t>(t)], j, static_cast<int32_t>(t)});
      }
    }
    const size_t keep = std::min(cands.size(), static_cast<size_t>(2 * k));
    std::partial_sort(cands.begin(), cands.begin() + static_cast<ptrdiff_t>(keep), cands.end(),
                      [](const Candidate& x, const Candidate& y) {
                        if (x.log_prob != y.log_prob) return x.log_prob > y.log_prob;
                        return x.hyp != y.hyp ? x.hyp < y.hyp : x.token < y.token;
                      });
    std::vector<std::vector<int32_t>> next;
    std::vector<double> next_lp;
    for (size_t r = 0; r < keep; ++r) {
      const Candidate& c = cands[r];
      const std::vector<int32_t>& prefix = tokens[static_cast<size_t>(c.hyp)];
      if (c.token == o.eos) {  // finished, if within the first K
        if (r < static_cast<size_t>(k)) {
          const double len = static_cast<double>(prefix.size() + 1);
          finished.push_back({prefix, c.log_prob, c.log_prob / std::pow(len, o.length_penalty)});
        }
        continue;
      }
      if (static_cast<int64_t>(next.size()) == k) continue;
      parent[next.size()] = c.hyp;
      token[next.size()] = c.token;
      next.push_back(prefix);
      next.back().push_back(c.token);
      next_lp.push_back(c.log_prob);
    }
    next.resize(static_cast<size_t>(k));
    next_lp.resize(static_cast<size_t>(k), -std::numeric_limits<double>::infinity());
    tokens = std::move(next);
    log_prob = std::move(next_lp);
    done = static_cast<int64_t>(finished.size()) >= k || std::isinf(log_prob[0]);
  }
};

}  // namespace

std::vector<TranslationModel::Hypothesis> TranslationModel::translate(
    std::span<const std::vector<int32_t>> sources, const DecodeOptions& options) {
  const int64_t k = options.beam, v = shape_.n_features;
  MOE_CHECK(k >= 1, "model: beam {}", k);
  const int64_t max_len =
      options.max_tokens > 0 ? std::min(options.max_tokens, max_tokens()) : max_tokens();
  start_decoding(sources, k, options.eos);
  const auto n = static_cast<int64_t>(sources.size()) * k;
  std::vector<Beam> beams(sources.size(), Beam(k));
  std::vector<int32_t> step_tokens(static_cast<size_t>(n), options.bos);  // [N]
  std::vector<int64_t> parent(static_cast<size_t>(n));                    // [N]
  std::vector<double> lp;
  std::vector<Candidate> cands;
  for (int64_t step = 0; step < max_len; ++step) {
    const Tensor logits = decode_step(step_tokens);  // [N, V]
    bool all_done = true;
    for (size_t b = 0; b < beams.size(); ++b) {
      const auto first = static_cast<int64_t>(b) * k;
      beams[b].advance(logits.f32() + first * v, v, step == max_len - 1, options,
                       parent.data() + first, step_tokens.data() + first, cands, lp);
      for (int64_t j = first; j < first + k; ++j) parent[static_cast<size_t>(j)] += first;
      all_done = all_done && beams[b].done;
    }
    if (all_done) break;
    reorder_hypotheses(parent);
  }
  std::vector<Hypothesis> out;
  for (Beam& beam : beams) {
    MOE_CHECK(!beam.finished.empty(), "model: a source ended without a finished hypothesis");
    out.push_back(*std::max_element(
        beam.finished.begin(), beam.finished.end(),
        [](const Hypothesis& x, const Hypothesis& y) { return x.score < y.score; }));
  }
  return out;
}

}  // namespace moe
