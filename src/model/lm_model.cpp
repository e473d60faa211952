// LmModel: token embedding, pre-norm attention and FFN blocks, final norm and (tied) head.
// See include/moe/model/lm_model.h for the architecture and the parameter names.
//
// Dims: B windows · S context · T = B·S tokens · V vocabulary · D width · H query heads ·
// G key/value heads · Dh head width · L blocks.
#include "moe/model/lm_model.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "model_rules.h"
#include "moe/kernels/gemm.h"
#include "moe/kernels/ops.h"
#include "moe/kernels/stage_timer.h"
#include "moe/layers/attention.h"
#include "moe/layers/linear.h"
#include "moe/layers/loss.h"
#include "moe/layers/norm.h"
#include "moe/moe/experts.h"
#include "sublayers.h"

namespace moe {

namespace {

// Rng streams, one per purpose, so that adding a layer does not shift another's draws.
// (model_rules.h has those the models share.)
using model_detail::kEmbedStd;
using model_detail::kInitBlock;
using model_detail::kInitEmbed;
using model_detail::kInitHead;
using model_detail::kMaxLayers;
using model_detail::kMaxVocab;
using model_detail::kNoiseBlockMoe;
constexpr uint64_t kInitAttn = 200;

constexpr int64_t kMaxContext = int64_t{1} << 16;

Status check_lm_config(const ModelConfig& c, const DataShape& shape) {
  const LmConfig& lm = c.lm;
  if (shape.n_features < 2 || shape.n_features > kMaxVocab)
    return Status::error("model: a vocabulary of {} tokens; need 2 to 2^24", shape.n_features);
  if (c.width < 1) return Status::error("model.width: must be positive, got {}", c.width);
  if (lm.layers < 1 || lm.layers > kMaxLayers)
    return Status::error("model.lm.layers: must be in [1, {}], got {}", kMaxLayers, lm.layers);
  if (lm.heads < 1 || c.width % lm.heads != 0)
    return Status::error("model.lm.heads: {} heads must divide model.width {}", lm.heads, c.width);
  if ((c.width / lm.heads) % 2 != 0)
    return Status::error(
        "model.lm.heads: the head width model.width / heads = {} must be even "
        "(RoPE rotates pairs)",
        c.width / lm.heads);
  if (lm.kv_heads < 0 || lm.n_kv_heads() > lm.heads || lm.heads % lm.n_kv_heads() != 0)
    return Status::error("model.lm.kv_heads: {} key/value heads must divide the {} heads",
                         lm.kv_heads, lm.heads);
  if (lm.context < 1 || lm.context > kMaxContext)
    return Status::error("model.lm.context: must be in [1, {}], got {}", kMaxContext, lm.context);
  if (!(lm.rope_theta > 1.0 && std::isfinite(lm.rope_theta)))
    return Status::error("model.lm.rope_theta: must be a finite number > 1, got {}", lm.rope_theta);
  if (lm.ffn_hidden < 0) return Status::error("model.lm.ffn_hidden: must be ≥ 0");
  if (!(lm.norm_eps > 0.0f)) return Status::error("model.lm.norm_eps: must be positive");
  const int64_t n_moe = lm.n_moe_blocks();
  if (c.moe.size() != 1 && static_cast<int64_t>(c.moe.size()) != n_moe)
    return Status::error(
        "model.moe: a language model takes one MoE layer object (used by every MoE block) or a "
        "list of one per MoE block ({} here), got {}",
        n_moe, c.moe.size());
  for (size_t i = 0; i < c.moe.size(); ++i) {
    const std::string at = c.moe.size() == 1 ? "model.moe" : fmt::format("model.moe.{}", i);
    Status st = model_detail::check_token_moe_block(c.moe[i], c.width, c.dense, at);
    if (!st.is_ok()) return st;
  }
  return Status::ok();
}

}  // namespace

struct LmModel::Block {
  std::string prefix;  // "blocks.<l>"
  ParamId attn_gain = -1, wq = -1, wk = -1, wv = -1, wo = -1, ffn_gain = -1;
  std::unique_ptr<Expert> ffn;    // a dense block
  std::unique_ptr<MoeLayer> moe;  // an MoE block

  // The last forward's cache (arena memory).
  Tensor h_in;       // [T, D] the block's input
  Tensor x_attn;     // [T, D] RMSNorm(h_in)
  Tensor rstd_attn;  // [T]
  Tensor q, k, v;    // [T, H·Dh], [T, G·Dh], [T, G·Dh]; q and k after RoPE
  Tensor att;        // [T, H·Dh] attention output before Wo
  Tensor lse;        // [B, H, S]
  Tensor h_mid;      // [T, D] after the attention residual
  Tensor x_ffn;      // [T, D] RMSNorm(h_mid)
  Tensor rstd_ffn;   // [T]
};

LmModel::LmModel(ModelConfig config, DataShape shape) : Model(std::move(config), shape) {}
LmModel::~LmModel() = default;

Result<std::unique_ptr<LmModel>> LmModel::create(const ModelConfig& config,
                                                 const DataShape& shape) {
  Status st = check_lm_config(config, shape);
  if (!st.is_ok()) return st;
  std::unique_ptr<LmModel> model(new LmModel(config, shape));
  model->build();
  return model;
}

void LmModel::build() {
  const LmConfig& lm = config_.lm;
  const int64_t d = config_.width, v = shape_.n_features;
  const int64_t dh = d / lm.heads, hq = lm.heads * dh, hkv = lm.n_kv_heads() * dh;
  const MoeBlockConfig& m = config_.moe[0];
  int64_t moe_index = 0;
  // A block without MoE has a dense FFN of model.lm.ffn_hidden (0: the MoE layer's active
  // width); an MoE block replaced under model.dense always gets the active width, so the dense
  // twin has the MoE model's active size whatever ffn_hidden says.
  ExpertConfig dense_ffn = dense_equivalent(m);
  if (lm.ffn_hidden > 0) dense_ffn.hidden = lm.ffn_hidden;

  embed_ = store_.add("embed.w", Shape{v, d});
  for (int64_t l = 0; l < lm.layers; ++l) {
    auto b = std::make_unique<Block>();
    b->prefix = fmt::format("blocks.{}", l);
    b->attn_gain = store_.add(b->prefix + ".attn_norm.gain", Shape{d}, /*decay=*/false);
    b->wq = store_.add(b->prefix + ".attn.wq", Shape{hq, d});
    b->wk = store_.add(b->prefix + ".attn.wk", Shape{hkv, d});
    b->wv = store_.add(b->prefix + ".attn.wv", Shape{hkv, d});
    b->wo = store_.add(b->prefix + ".attn.wo", Shape{d, hq});
    b->ffn_gain = store_.add(b->prefix + ".ffn_norm.gain", Shape{d}, /*decay=*/false);
    const MoeBlockConfig& mb = config_.lm_moe(lm.block_is_moe(l) ? moe_index++ : 0);
    if (lm.block_is_moe(l) && !config_.dense) {
      b->moe = std::make_unique<MoeLayer>(moe_layer_config(mb, d));
      b->moe->declare(store_, b->prefix + ".moe");
      hashed_ = hashed_ || mb.gate.kind == GateKind::kHash;
      add_moe_layer(b->prefix + ".moe", l, b->moe.get(), moe_slots_per_token(mb));
    } else {
      b->ffn = std::make_unique<Expert>(d, lm.block_is_moe(l) ? dense_equivalent(mb) : dense_ffn);
      b->ffn->set_precision(mb.precision);
      b->ffn->declare(store_, b->prefix + ".ffn");
    }
    blocks_.push_back(std::move(b));
  }
  final_gain_ = store_.add("final_norm.gain", Shape{d}, /*decay=*/false);
  if (!lm.tie_embeddings) head_ = store_.add("head.w", Shape{v, d});
  store_.finalize();
  for (auto& b : blocks_) {
    if (b->ffn) b->ffn->bind(store_);
    if (b->moe) b->moe->bind(store_);
  }
  rope_ = RopeTable::build(lm.context, dh, lm.rope_theta);
}

void LmModel::init(uint64_t seed) {
  const Rng root(seed);
  Rng embed_rng = root.fork(kInitEmbed);
  embed_rng.fill_normal(store_.value(embed_), 0.0f, kEmbedStd);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    Block& b = *blocks_[l];
    fill(store_.value(b.attn_gain), 1.0f);
    fill(store_.value(b.ffn_gain), 1.0f);
    Rng attn_rng = root.fork(kInitAttn + l);
    for (ParamId id : {b.wq, b.wk, b.wv, b.wo}) linear_init({store_.value(id), Tensor()}, attn_rng);
    Rng block_rng = root.fork(kInitBlock + l);
    if (b.ffn) b.ffn->init(block_rng);
    if (b.moe) b.moe->init(block_rng);
  }
  fill(store_.value(final_gain_), 1.0f);
  if (head_ >= 0) {
    Rng head_rng = root.fork(kInitHead);
    linear_init({store_.value(head_), Tensor()}, head_rng);
  }
}

Tensor LmModel::head_weight() const {
  return store_.value(head_ >= 0 ? head_ : embed_);
}
Tensor LmModel::head_grad() const {
  return store_.grad(head_ >= 0 ? head_ : embed_);
}

int64_t LmModel::n_blocks() const {
  return static_cast<int64_t>(blocks_.size());
}

ParamEnd LmModel::param_end(const std::string& name) const {
  if (name == "embed.w") return config_.lm.tie_embeddings ? ParamEnd::kBoth : ParamEnd::kInput;
  return name == "head.w" ? ParamEnd::kOutput : ParamEnd::kInner;
}

void LmModel::block_forward(Block& b, int64_t l, Tensor h, Tensor out, bool training,
                            const Rng& rng, Arena& arena) {
  const LmConfig& lm = config_.lm;
  const int64_t t = h.rows(), d = config_.width, s = lm.context;
  const int64_t dh = d / lm.heads, hq = lm.heads * dh, hkv = lm.n_kv_heads() * dh;
  const float eps = lm.norm_eps;

  // a = Attention(RoPE(x Wqᵀ), RoPE(x Wkᵀ), x Wvᵀ),  x = RMSNorm(h)
  b.h_in = h;
  b.x_attn = arena.alloc(Shape{t, d});
  b.rstd_attn = arena.alloc(Shape{t});
  {
    const StageScope timed(Stage::kNorm);
    rms_norm_forward({store_.value(b.attn_gain)}, eps, h, b.x_attn, {b.rstd_attn});
  }
  b.q = arena.alloc(Shape{t, hq});
  b.k = arena.alloc(Shape{t, hkv});
  b.v = arena.alloc(Shape{t, hkv});
  {
    const StageScope timed(Stage::kQkvGemm);
    gemm(b.x_attn, false, store_.value(b.wq), true, b.q);
    gemm(b.x_attn, false, store_.value(b.wk), true, b.k);
    gemm(b.x_attn, false, store_.value(b.wv), true, b.v);
  }
  {
    const StageScope timed(Stage::kRope);
    rope_forward(rope_, batch_, s, lm.heads, 0, b.q);
    rope_forward(rope_, batch_, s, lm.n_kv_heads(), 0, b.k);
  }
  const AttentionDims dims{batch_, s, lm.heads, lm.n_kv_heads(), dh, true};
  b.att = arena.alloc(Shape{t, hq});
  b.lse = arena.alloc(Shape{batch_, lm.heads, s});
  Tensor ws = arena.alloc(Shape{attention_workspace_floats(dims, omp_get_max_threads())});
  {
    const StageScope timed(Stage::kAttentionForward);
    attention_forward(dims, b.q, b.k, b.v, b.att, {b.lse}, ws);
  }

  // h_mid = h + a Woᵀ
  Tensor h_mid = arena.alloc(Shape{t, d});
  {
    const StageScope timed(Stage::kOutGemm);
    copy(h_mid, h);
    gemm(b.att, false, store_.value(b.wo), true, h_mid, {1.0f, 1.0f});
  }

  ffn_forward(b, l, h_mid, out, training, rng, arena);
}

// out = h_mid + FFN(RMSNorm(h_mid)), the rows' tokens in tokens_ (the hash gate's ids).
void LmModel::ffn_forward(Block& b, int64_t l, Tensor h_mid, Tensor out, bool training,
                          const Rng& rng, Arena& arena) {
  const int64_t t = h_mid.rows(), d = config_.width;
  b.h_mid = h_mid;
  b.x_ffn = arena.alloc(Shape{t, d});
  b.rstd_ffn = arena.alloc(Shape{t});
  {
    const StageScope timed(Stage::kNorm);
    rms_norm_forward({store_.value(b.ffn_gain)}, config_.lm.norm_eps, h_mid, b.x_ffn, {b.rstd_ffn});
  }
  const StageScope timed(Stage::kFfn);
  if (b.ffn) {
    b.ffn->forward(b.x_ffn, out, arena);
  } else {
    b.moe->forward(b.x_ffn, out, training, rng.fork(kNoiseBlockMoe + static_cast<uint64_t>(l)),
                   arena, token_ids_);
  }
  add(out, h_mid, out);  // timed with the FFN
}

// h = E[tokens_] [T, D]; and, when a layer routes by hashing token ids, those ids as the MoE
// layer takes them (once per forward, for every block).
Tensor LmModel::embed_tokens(Arena& arena) {
  const int64_t t = tokens_.numel(), d = config_.width;
  Tensor h = arena.alloc(Shape{t, d});
  const StageScope timed(Stage::kEmbed);
  const int32_t* tok = tokens_.data<int32_t>();
  model_detail::embed_rows(store_.value(embed_), tok, t, h);
  token_ids_ = nullptr;
  if (hashed_) {
    auto* ids = arena.alloc_array<int64_t>(t);
    std::copy(tok, tok + t, ids);
    token_ids_ = ids;
  }
  return h;
}

Tensor LmModel::forward(const Batch& batch, bool training, const Rng& rng, Arena& arena) {
  const int64_t s = config_.lm.context, d = config_.width, v = shape_.n_features;
  MOE_CHECK(batch.tokens.rank() == 2 && batch.tokens.dim(1) == s + 1,
            "model: token batch {} for a context of {}", batch.tokens.shape().str(), s);
  batch_ = batch.tokens.dim(0);
  training_ = training;
  const int64_t t = batch_ * s;

  // Inputs tokens[:, :S] and targets tokens[:, 1:], each [B·S] contiguous.
  tokens_ = arena.alloc(Shape{batch_, s}, DType::kI32);
  targets_ = arena.alloc(Shape{t}, DType::kI32);
  const int32_t* win = batch.tokens.data<int32_t>();
  for (int64_t b = 0; b < batch_; ++b) {
    std::memcpy(tokens_.data<int32_t>() + b * s, win + b * (s + 1), sizeof(int32_t) * s);
    std::memcpy(targets_.data<int32_t>() + b * s, win + b * (s + 1) + 1, sizeof(int32_t) * s);
  }

  Tensor h = embed_tokens(arena);  // [T, D]
  for (size_t l = 0; l < blocks_.size(); ++l) {
    Tensor next = arena.alloc(Shape{t, d});
    block_forward(*blocks_[l], static_cast<int64_t>(l), h, next, training, rng, arena);
    h = next;
  }

  final_in_ = h;
  final_out_ = arena.alloc(Shape{t, d});
  final_rstd_ = arena.alloc(Shape{t});
  {
    const StageScope timed(Stage::kNorm);
    rms_norm_forward({store_.value(final_gain_)}, config_.lm.norm_eps, h, final_out_,
                     {final_rstd_});
  }
  Tensor logits = arena.alloc(Shape{t, v});  // [T, V]
  const StageScope timed(Stage::kHeadGemm);
  gemm(final_out_, false, head_weight(), true, logits);
  return logits;
}

double LmModel::task_loss(const Batch& batch, Tensor logits, Tensor dlogits,
                          const TaskLossOptions& options) const {
  MOE_CHECK(batch.tokens.dim(0) == batch_ && logits.rows() == targets_.numel(),
            "model: task_loss for another batch than the last forward");
  const StageScope timed(Stage::kLoss);
  CrossEntropyOptions ce;
  ce.label_smoothing = options.cross_entropy.label_smoothing;
  return cross_entropy_loss(logits, targets_, dlogits, ce);
}

void LmModel::block_backward(Block& b, Tensor dh, Arena& arena) {
  const LmConfig& lm = config_.lm;
  const int64_t t = dh.rows(), d = config_.width, s = lm.context;
  const int64_t hd = d / lm.heads, hq = lm.heads * hd, hkv = lm.n_kv_heads() * hd;
  Tensor dx = arena.alloc(Shape{t, d});     // [T, D] dL/d(normalised input) of a branch
  Tensor dnorm = arena.alloc(Shape{t, d});  // [T, D] dL/dh through a branch

  // FFN branch: dh += RMSNormᵀ(FFNᵀ(dh)).
  {
    const StageScope timed(Stage::kFfn);
    if (b.ffn) {
      b.ffn->backward(dh, dx, arena);
    } else {
      b.moe->backward(dh, dx, arena);
    }
  }
  {
    const StageScope timed(Stage::kNorm);
    rms_norm_backward({store_.value(b.ffn_gain)}, {store_.grad(b.ffn_gain)}, {b.rstd_ffn}, b.h_mid,
                      dx, dnorm);
    add(dh, dnorm, dh);
  }

  // Attention branch.
  Tensor datt = arena.alloc(Shape{t, hq});  // [T, H·Dh]
  {
    const StageScope timed(Stage::kOutGemm);
    gemm(dh, false, store_.value(b.wo), false, datt);
    // A frozen weight's gradient is read by nothing (ParamStore::freeze): its product is skipped.
    if (!store_.frozen(b.wo)) gemm(dh, true, b.att, false, store_.grad(b.wo), {1.0f, 1.0f});
  }
  Tensor dq = arena.alloc(Shape{t, hq}), dk = arena.alloc(Shape{t, hkv}),
         dv = arena.alloc(Shape{t, hkv});
  const AttentionDims dims{batch_, s, lm.heads, lm.n_kv_heads(), hd, true};
  Tensor ws = arena.alloc(Shape{attention_workspace_floats(dims, omp_get_max_threads())});
  {
    const StageScope timed(Stage::kAttentionBackward);
    attention_backward(dims, b.q, b.k, b.v, b.att, {b.lse}, datt, dq, dk, dv, ws);
  }
  {
    const StageScope timed(Stage::kRope);
    rope_backward(rope_, batch_, s, lm.heads, 0, dq);
    rope_backward(rope_, batch_, s, lm.n_kv_heads(), 0, dk);
  }
  {
    // dx = dq Wq + dk Wk + dv Wv;  dW += dᵀ x
    const StageScope timed(Stage::kQkvGemm);
    gemm(dq, false, store_.value(b.wq), false, dx);
    gemm(dk, false, store_.value(b.wk), false, dx, {1.0f, 1.0f});
    gemm(dv, false, store_.value(b.wv), false, dx, {1.0f, 1.0f});
    if (!store_.frozen(b.wq)) gemm(dq, true, b.x_attn, false, store_.grad(b.wq), {1.0f, 1.0f});
    if (!store_.frozen(b.wk)) gemm(dk, true, b.x_attn, false, store_.grad(b.wk), {1.0f, 1.0f});
    if (!store_.frozen(b.wv)) gemm(dv, true, b.x_attn, false, store_.grad(b.wv), {1.0f, 1.0f});
  }
  {
    const StageScope timed(Stage::kNorm);
    rms_norm_backward({store_.value(b.attn_gain)}, {store_.grad(b.attn_gain)}, {b.rstd_attn},
                      b.h_in, dx, dnorm);
    add(dh, dnorm, dh);
  }
}

void LmModel::backward(Tensor dlogits, Arena& arena) {
  MOE_CHECK(training_, "model: backward after an evaluation forward");
  const int64_t s = config_.lm.context, d = config_.width, t = batch_ * s;
  MOE_CHECK(dlogits.rows() == t && dlogits.cols() == shape_.n_features,
            "model: dlogits {} for {} tokens of a vocabulary of {}", dlogits.shape().str(), t,
            shape_.n_features);

  // Head and final norm: dfinal = dlogits W, dW += dlogitsᵀ final_out.
  Tensor dfinal = arena.alloc(Shape{t, d});
  {
    const StageScope timed(Stage::kHeadGemm);
    gemm(dlogits, false, head_weight(), false, dfinal);
    if (!store_.frozen(head_ >= 0 ? head_ : embed_))
      gemm(dlogits, true, final_out_, false, head_grad(), {1.0f, 1.0f});
  }
  Tensor dh = arena.alloc(Shape{t, d});  // [T, D] the residual stream's gradient
  {
    const StageScope timed(Stage::kNorm);
    rms_norm_backward({store_.value(final_gain_)}, {store_.grad(final_gain_)}, {final_rstd_},
                      final_in_, dfinal, dh);
  }

  for (size_t i = blocks_.size(); i-- > 0;) block_backward(*blocks_[i], dh, arena);

  if (store_.frozen(embed_)) return;
  const StageScope timed(Stage::kEmbed);
  model_detail::embed_rows_backward(store_.grad(embed_), tokens_.data<int32_t>(), t, dh);
}

void LmModel::start_generation() {
  const LmConfig& lm = config_.lm;
  const int64_t kv = lm.n_kv_heads() * (config_.width / lm.heads);
  if (k_cache_.view().empty()) {
    k_cache_ = TensorBuffer(Shape{lm.layers, lm.context, kv});
    v_cache_ = TensorBuffer(Shape{lm.layers, lm.context, kv});
  }
  cached_ = 0;
}

// One block over n new tokens at positions cached_ .. cached_ + n − 1 of the one sequence.
void LmModel::block_extend(Block& b, int64_t l, Tensor h, Tensor out, Arena& arena) {
  const LmConfig& lm = config_.lm;
  const int64_t n = h.rows(), d = config_.width, s = lm.context;
  const int64_t dh = d / lm.heads, hq = lm.heads * dh, hkv = lm.n_kv_heads() * dh;
  Tensor x = arena.alloc(Shape{n, d}), rstd = arena.alloc(Shape{n});
  rms_norm_forward({store_.value(b.attn_gain)}, lm.norm_eps, h, x, {rstd});
  Tensor q = arena.alloc(Shape{n, hq});
  // This block's cache [S, G·Dh]; the new keys and values go straight into their rows.
  Tensor kc(k_cache_.f32() + l * s * hkv, Shape{1, s, hkv});
  Tensor vc(v_cache_.f32() + l * s * hkv, Shape{1, s, hkv});
  Tensor k_new(kc.f32() + cached_ * hkv, Shape{n, hkv});
  Tensor v_new(vc.f32() + cached_ * hkv, Shape{n, hkv});
  gemm(x, false, store_.value(b.wq), true, q);
  gemm(x, false, store_.value(b.wk), true, k_new);
  gemm(x, false, store_.value(b.wv), true, v_new);
  rope_forward(rope_, 1, n, lm.heads, cached_, q);
  rope_forward(rope_, 1, n, lm.n_kv_heads(), cached_, k_new);
  const AttentionDims dims{1, n, lm.heads, lm.n_kv_heads(), dh, true};
  Tensor att = arena.alloc(Shape{n, hq});
  Tensor ws = arena.alloc(Shape{attention_workspace_floats(
      AttentionDims{1, cached_ + n, lm.heads, lm.n_kv_heads(), dh, true}, omp_get_max_threads())});
  attention_decode(dims, cached_, s, q, kc, vc, att, ws);
  Tensor h_mid = arena.alloc(Shape{n, d});
  copy(h_mid, h);
  gemm(att, false, store_.value(b.wo), true, h_mid, {1.0f, 1.0f});
  ffn_forward(b, l, h_mid, out, /*training=*/false, Rng(0), arena);
}

Tensor LmModel::extend(std::span<const int32_t> tokens, Arena& arena) {
  const int64_t n = static_cast<int64_t>(tokens.size()), d = config_.width, v = shape_.n_features;
  MOE_CHECK(!k_cache_.view().empty(), "model: extend before start_generation");
  MOE_CHECK(n >= 1 && cached_ + n <= config_.lm.context,
            "model: {} new tokens after {} cached exceed the context of {}", n, cached_,
            config_.lm.context);
  training_ = false;
  batch_ = 1;
  tokens_ = arena.alloc(Shape{1, n}, DType::kI32);
  std::copy(tokens.begin(), tokens.end(), tokens_.data<int32_t>());
  Tensor h = embed_tokens(arena);  // [n, D]
  for (size_t l = 0; l < blocks_.size(); ++l) {
    Tensor next = arena.alloc(Shape{n, d});
    block_extend(*blocks_[l], static_cast<int64_t>(l), h, next, arena);
    h = next;
  }
  cached_ += n;
  // Only the last position's logits are needed.
  Tensor last(h.f32() + (n - 1) * d, Shape{1, d});
  Tensor normed = arena.alloc(Shape{1, d}), rstd = arena.alloc(Shape{1});
  rms_norm_forward({store_.value(final_gain_)}, config_.lm.norm_eps, last, normed, {rstd});
  Tensor logits = arena.alloc(Shape{1, v});
  gemm(normed, false, head_weight(), true, logits);
  return logits;
}

}  // namespace moe
