// RowModel: input stage, pre-norm residual blocks (dense FFN or MoE layer), final norm and head.
// See include/moe/model/row_model.h for the architecture and the parameter names.
//
// Dims: T rows in a batch · D_in dense input width · V text id range · D model width ·
// C classes or regression targets · L blocks.
#include "moe/model/row_model.h"

#include <cmath>
#include <string>
#include <utility>

#include "model_rules.h"
#include "moe/kernels/ops.h"
#include "moe/layers/dropout.h"
#include "moe/layers/embedding.h"
#include "moe/layers/linear.h"
#include "moe/layers/loss.h"
#include "moe/layers/norm.h"
#include "moe/moe/experts.h"

namespace moe {

namespace {

// Rng streams, one per purpose, so that adding a layer does not shift another's draws.
// (model_rules.h has those the models share.)
using model_detail::kInitBlock;
using model_detail::kInitHead;
using model_detail::kNoiseBlockMoe;
constexpr uint64_t kInitInput = 1;
constexpr uint64_t kNoiseInput = 1, kNoiseWords = 2, kNoiseBlockDropout = 100;

constexpr int64_t kMaxInputFeatures = int64_t{1} << 31;

BagMode bag_mode(InputBag b) {
  switch (b) {
    case InputBag::kSum:
      return BagMode::kSum;
    case InputBag::kMean:
      return BagMode::kMean;
    case InputBag::kWeightedSum:
      break;
  }
  return BagMode::kWeightedSum;
}

}  // namespace

struct RowModel::Block {
  std::string prefix;  // "blocks.<l>"
  ParamId norm_gain = -1, norm_bias = -1;
  std::unique_ptr<Expert> ffn;    // a dense block
  std::unique_ptr<MoeLayer> moe;  // an MoE block
  double slots_per_token = 0.0;   // an MoE block's routed slots per row

  // The last forward's cache (arena memory).
  Tensor x_norm;      // [T, D] the FFN's input (the block input itself when there is no norm)
  Tensor rstd, mean;  // [T] norm statistics
  Tensor mask;        // [T, D] uint8 dropout mask (training with dropout only)
};

RowModel::RowModel(ModelConfig config, DataShape shape) : Model(std::move(config), shape) {}
RowModel::~RowModel() = default;

Result<std::unique_ptr<RowModel>> RowModel::create(const ModelConfig& config,
                                                   const DataShape& shape) {
  if (shape.n_features < 1 || shape.n_features > kMaxInputFeatures)
    return Status::error("model: the data has {} input features; need 1 to 2^31", shape.n_features);
  if (shape.task == TaskKind::kClassification && shape.n_outputs < 2)
    return Status::error("model: a classifier needs at least 2 classes, the data has {}",
                         shape.n_outputs);
  if (shape.n_outputs < 1) return Status::error("model: the data has no regression target");
  if (config.width < 1) return Status::error("model.width: must be positive, got {}", config.width);
  if (!(config.word_dropout >= 0.0f && config.word_dropout < 1.0f))
    return Status::error("model.word_dropout: must be in [0, 1), got {}", config.word_dropout);
  if (!(config.input_l2 >= 0.0f && std::isfinite(config.input_l2)))
    return Status::error("model.input_l2: must be a finite number ≥ 0, got {}", config.input_l2);
  if (!(config.input_dropout >= 0.0f && config.input_dropout < 1.0f))
    return Status::error("model.input_dropout: must be in [0, 1), got {}", config.input_dropout);
  if (!(config.trunk.dropout >= 0.0f && config.trunk.dropout < 1.0f))
    return Status::error("model.trunk.dropout: must be in [0, 1), got {}", config.trunk.dropout);
  if (!(config.trunk.norm_eps > 0.0f))
    return Status::error("model.trunk.norm_eps: must be positive, got {}", config.trunk.norm_eps);
  for (size_t i = 0; i < config.trunk.hidden.size(); ++i)
    if (config.trunk.hidden[i] < 1)
      return Status::error("model.trunk.hidden.{}: must be positive, got {}", i,
                           config.trunk.hidden[i]);
  for (size_t i = 0; i < config.moe.size(); ++i) {
    const MoeConfig m = moe_layer_config(config.moe[i], config.width);
    Status st = validate_moe_config(m);
    if (!st.is_ok()) return st.with_context(fmt::format("model.moe.{}", i));
    if (config.dense) {
      st = validate_expert_config(dense_equivalent(config.moe[i]));
      if (!st.is_ok()) return st.with_context(fmt::format("model.moe.{} (dense)", i));
    }
  }
  std::unique_ptr<RowModel> model(new RowModel(config, shape));
  model->build();
  return model;
}

void RowModel::build() {
  const int64_t d = config_.width;
  if (shape_.input == FeatureKind::kSparse) {
    input_w_ = store_.add("input.w", Shape{shape_.n_features, d});  // [V, D]
  } else {
    input_w_ = store_.add("input.w", Shape{d, shape_.n_features});  // [D, D_in]
  }
  input_b_ = store_.add("input.b", Shape{d}, /*decay=*/false);

  const auto add_block = [&](std::unique_ptr<Block> b) {
    b->prefix = fmt::format("blocks.{}", blocks_.size());
    if (config_.trunk.norm != NormChoice::kNone)
      b->norm_gain = store_.add(b->prefix + ".norm.gain", Shape{d}, /*decay=*/false);
    if (config_.trunk.norm == NormChoice::kLayer)
      b->norm_bias = store_.add(b->prefix + ".norm.bias", Shape{d}, /*decay=*/false);
    if (b->ffn) b->ffn->declare(store_, b->prefix + ".ffn");
    if (b->moe) {
      b->moe->declare(store_, b->prefix + ".moe");
      add_moe_layer(b->prefix + ".moe", static_cast<int64_t>(blocks_.size()), b->moe.get(),
                    b->slots_per_token);
    }
    blocks_.push_back(std::move(b));
  };
  for (int64_t hidden : config_.trunk.hidden) {
    auto b = std::make_unique<Block>();
    b->ffn = std::make_unique<Expert>(
        d, ExpertConfig{ExpertKind::kMlp, hidden, 1, config_.trunk.activation, true});
    add_block(std::move(b));
  }
  for (const MoeBlockConfig& m : config_.moe) {
    auto b = std::make_unique<Block>();
    if (config_.dense) {
      b->ffn = std::make_unique<Expert>(d, dense_equivalent(m));
      b->ffn->set_precision(m.precision);
    } else {
      b->moe = std::make_unique<MoeLayer>(moe_layer_config(m, d));
      b->slots_per_token = moe_slots_per_token(m);
    }
    add_block(std::move(b));
  }
  if (final_norm()) final_gain_ = store_.add("final_norm.gain", Shape{d}, /*decay=*/false);
  if (final_norm() && config_.trunk.norm == NormChoice::kLayer)
    final_bias_ = store_.add("final_norm.bias", Shape{d}, /*decay=*/false);
  head_w_ = store_.add("head.w", Shape{shape_.n_outputs, d});
  head_b_ = store_.add("head.b", Shape{shape_.n_outputs}, /*decay=*/false);
  store_.finalize();
  for (auto& b : blocks_) {
    if (b->ffn) b->ffn->bind(store_);
    if (b->moe) b->moe->bind(store_);
  }
  h_.resize(blocks_.size() + 1);
}

void RowModel::init(uint64_t seed) {
  const Rng root(seed);
  Rng input_rng = root.fork(kInitInput);
  if (shape_.input == FeatureKind::kSparse) {
    // A document's bag has unit-norm TF-IDF weights, so with entries of std 1/√D its embedding
    // starts at about unit length, like one row of the table.
    input_rng.fill_normal(store_.value(input_w_), 0.0f,
                          1.0f / std::sqrt(static_cast<float>(config_.width)));
    fill(store_.value(input_b_), 0.0f);
  } else {
    linear_init({store_.value(input_w_), store_.value(input_b_)}, input_rng);
  }
  for (size_t l = 0; l < blocks_.size(); ++l) {
    Block& b = *blocks_[l];
    if (b.norm_gain >= 0) fill(store_.value(b.norm_gain), 1.0f);
    if (b.norm_bias >= 0) fill(store_.value(b.norm_bias), 0.0f);
    Rng block_rng = root.fork(kInitBlock + l);
    if (b.ffn) b.ffn->init(block_rng);
    if (b.moe) b.moe->init(block_rng);
  }
  if (final_gain_ >= 0) fill(store_.value(final_gain_), 1.0f);
  if (final_bias_ >= 0) fill(store_.value(final_bias_), 0.0f);
  Rng head_rng = root.fork(kInitHead);
  linear_init({store_.value(head_w_), store_.value(head_b_)}, head_rng);
}

void RowModel::norm_forward(ParamId gain, ParamId bias, Tensor x, Tensor y, Tensor rstd,
                            Tensor mean) {
  const float eps = config_.trunk.norm_eps;
  if (config_.trunk.norm == NormChoice::kRms) {
    rms_norm_forward({store_.value(gain)}, eps, x, y, {rstd});
  } else {
    layer_norm_forward({store_.value(gain), store_.value(bias)}, eps, x, y, {mean, rstd});
  }
}

void RowModel::norm_backward(ParamId gain, ParamId bias, Tensor x, Tensor dy, Tensor dx,
                             Tensor rstd, Tensor mean) {
  if (config_.trunk.norm == NormChoice::kRms) {
    rms_norm_backward({store_.value(gain)}, {store_.grad(gain)}, {rstd}, x, dy, dx);
  } else {
    layer_norm_backward({store_.value(gain), store_.value(bias)},
                        {store_.grad(gain), store_.grad(bias)}, {mean, rstd}, x, dy, dx);
  }
}

// Word dropout as per-id weights: w'_n = base_n · m_n / (1 − p), base_n the id's weight in the
// configured pooling (TF-IDF weight, 1 for a sum, 1/|bag| for a mean); pooled as a weighted sum.
void RowModel::drop_words(const Rng& rng, Arena& arena) {
  const int64_t n = bag_in_.ids.numel();
  const float p = config_.word_dropout, scale = 1.0f / (1.0f - p);
  Tensor u = arena.alloc(Shape{n});        // [N] uniform draws
  Tensor weights = arena.alloc(Shape{n});  // [N] the kept ids' weights
  Rng r = rng.fork(kNoiseWords);
  if (n > 0) r.fill_uniform(u, 0.0f, 1.0f);
  const int64_t* off = bag_in_.offsets.data<int64_t>();
  const float* base = bag_mode_ == BagMode::kWeightedSum ? bag_in_.weights.f32() : nullptr;
  for (int64_t b = 0; b + 1 < bag_in_.offsets.numel(); ++b) {
    const float mean = off[b + 1] > off[b] ? 1.0f / static_cast<float>(off[b + 1] - off[b]) : 0.0f;
    for (int64_t i = off[b]; i < off[b + 1]; ++i) {
      const float w = base != nullptr ? base[i] : bag_mode_ == BagMode::kMean ? mean : 1.0f;
      weights.f32()[i] = u.f32()[i] >= p ? w * scale : 0.0f;
    }
  }
  bag_in_.weights = weights;
  bag_mode_ = BagMode::kWeightedSum;
}

Tensor RowModel::forward(const Batch& batch, bool training, const Rng& rng, Arena& arena) {
  const int64_t t = batch.n_rows, d = config_.width;
  const bool norm = config_.trunk.norm != NormChoice::kNone;
  batch_ = batch;
  training_ = training;

  // Input stage.
  Tensor h = arena.alloc(Shape{t, d});  // [T, D]
  if (shape_.input == FeatureKind::kSparse) {
    MOE_CHECK(batch.offsets.numel() == t + 1, "model: text batch of {} rows with {} offsets", t,
              batch.offsets.numel());
    bag_mode_ = bag_mode(config_.bag);
    bag_in_ = {batch.ids, batch.offsets,
               bag_mode_ == BagMode::kWeightedSum ? batch.weights : Tensor()};
    if (training && config_.word_dropout > 0.0f) drop_words(rng, arena);
    embedding_bag_forward({store_.value(input_w_)}, bag_mode_, bag_in_, h);
    add_bias_rows(h, store_.value(input_b_));
  } else {
    MOE_CHECK(batch.features.rows() == t && batch.features.cols() == shape_.n_features,
              "model: features {} for {} rows of {} features", batch.features.shape().str(), t,
              shape_.n_features);
    linear_forward({store_.value(input_w_), store_.value(input_b_)}, batch.features, h);
  }
  input_mask_ = Tensor();
  if (training && config_.input_dropout > 0.0f) {
    input_mask_ = arena.alloc(Shape{t, d}, DType::kU8);
    Rng r = rng.fork(kNoiseInput);
    dropout_forward(config_.input_dropout, r, h, h, {input_mask_});
  }

  // Blocks: h_{l+1} = h_l + Dropout(F_l(Norm_l(h_l))).
  const int64_t* token_ids = batch.rows.empty() ? nullptr : batch.rows.data<int64_t>();
  const float p = config_.trunk.dropout;
  for (size_t l = 0; l < blocks_.size(); ++l) {
    Block& b = *blocks_[l];
    h_[l] = h;
    b.x_norm = h;
    if (norm) {
      b.x_norm = arena.alloc(Shape{t, d});
      b.rstd = arena.alloc(Shape{t});
      b.mean = config_.trunk.norm == NormChoice::kLayer ? arena.alloc(Shape{t}) : Tensor();
      norm_forward(b.norm_gain, b.norm_bias, h, b.x_norm, b.rstd, b.mean);
    }
    Tensor y = arena.alloc(Shape{t, d});  // [T, D]
    if (b.ffn) {
      b.ffn->forward(b.x_norm, y, arena);
    } else {
      b.moe->forward(b.x_norm, y, training, rng.fork(kNoiseBlockMoe + l), arena, token_ids);
    }
    b.mask = Tensor();
    if (training && p > 0.0f) {
      b.mask = arena.alloc(Shape{t, d}, DType::kU8);
      Rng r = rng.fork(kNoiseBlockDropout + l);
      dropout_forward(p, r, y, y, {b.mask});
    }
    Tensor next = arena.alloc(Shape{t, d});
    add(h, y, next);
    h = next;
  }
  h_.back() = h;

  // Final norm and head.
  final_in_ = h;
  final_out_ = h;
  if (final_norm()) {
    final_out_ = arena.alloc(Shape{t, d});
    final_rstd_ = arena.alloc(Shape{t});
    final_mean_ = config_.trunk.norm == NormChoice::kLayer ? arena.alloc(Shape{t}) : Tensor();
    norm_forward(final_gain_, final_bias_, h, final_out_, final_rstd_, final_mean_);
  }
  Tensor logits = arena.alloc(Shape{t, shape_.n_outputs});  // [T, C]
  linear_forward({store_.value(head_w_), store_.value(head_b_)}, final_out_, logits);
  return logits;
}

void RowModel::backward(Tensor dlogits, Arena& arena) {
  MOE_CHECK(training_, "model: backward after an evaluation forward");
  const int64_t t = batch_.n_rows, d = config_.width;
  MOE_CHECK(dlogits.rows() == t && dlogits.cols() == shape_.n_outputs,
            "model: dlogits {} for {} rows of {} outputs", dlogits.shape().str(), t,
            shape_.n_outputs);
  const bool norm = config_.trunk.norm != NormChoice::kNone;
  const float p = config_.trunk.dropout;

  Tensor dh = arena.alloc(Shape{t, d});     // [T, D] dL/dh, the residual stream's gradient
  Tensor dy = arena.alloc(Shape{t, d});     // [T, D] dL/d(block output)
  Tensor dxn = arena.alloc(Shape{t, d});    // [T, D] dL/d(normalised block input)
  Tensor dnorm = arena.alloc(Shape{t, d});  // [T, D] dL/dh through a block's branch

  // Head and final norm.
  Tensor dfinal = final_norm() ? dy : dh;
  linear_backward({store_.value(head_w_), store_.value(head_b_)},
                  {trained_grad(head_w_), trained_grad(head_b_)}, final_out_, dlogits, dfinal);
  if (final_norm())
    norm_backward(final_gain_, final_bias_, final_in_, dfinal, dh, final_rstd_, final_mean_);

  // Blocks in reverse: dh_l = dh_{l+1} + Norm_lᵀ(F_lᵀ(Dropoutᵀ(dh_{l+1}))).
  for (size_t i = blocks_.size(); i-- > 0;) {
    Block& b = *blocks_[i];
    if (!b.mask.empty()) {
      dropout_backward(p, {b.mask}, dh, dy);
    } else {
      copy(dy, dh);
    }
    Tensor branch = norm ? dxn : dnorm;  // without a norm, F's dx is the branch gradient
    if (b.ffn) {
      b.ffn->backward(dy, branch, arena);
    } else {
      b.moe->backward(dy, branch, arena);
    }
    if (norm) norm_backward(b.norm_gain, b.norm_bias, h_[i], dxn, dnorm, b.rstd, b.mean);
    add(dh, dnorm, dh);
  }

  // Input stage.
  if (!input_mask_.empty()) dropout_backward(config_.input_dropout, {input_mask_}, dh, dh);
  if (shape_.input == FeatureKind::kSparse) {
    if (!store_.frozen(input_w_))
      embedding_bag_backward({store_.value(input_w_)}, {store_.grad(input_w_)}, bag_mode_, bag_in_,
                             dh, Tensor());
    // db = Σ_t dh[t], rows in order so the sum does not depend on threads. In fp32, as trained
    // checkpoints were: kernels/ops.h's sum_rows_accumulate sums in double and would change them.
    float* db = store_.grad(input_b_).f32();
    const float* g = dh.f32();
    if (!store_.frozen(input_b_))
      for (int64_t r = 0; r < t; ++r)
        for (int64_t j = 0; j < d; ++j) db[j] += g[r * d + j];
  } else {
    linear_backward({store_.value(input_w_), store_.value(input_b_)},
                    {trained_grad(input_w_), trained_grad(input_b_)}, batch_.features, dh,
                    Tensor());
  }
  // model.input_l2: d/dW_in of (λ/2)·‖W_in‖² is λ·W_in, every row, every step.
  if (config_.input_l2 > 0.0f && !store_.frozen(input_w_))
    axpy(config_.input_l2, store_.value(input_w_), store_.grad(input_w_));
}

int64_t RowModel::n_blocks() const {
  return static_cast<int64_t>(blocks_.size());
}

Tensor RowModel::trained_grad(ParamId id) const {
  return store_.frozen(id) ? Tensor() : store_.grad(id);
}

ParamEnd RowModel::param_end(const std::string& name) const {
  if (name == "input.w" || name == "input.b") return ParamEnd::kInput;
  return name == "head.w" || name == "head.b" ? ParamEnd::kOutput : ParamEnd::kInner;
}

double RowModel::task_loss(const Batch& batch, Tensor logits, Tensor dlogits,
                           const TaskLossOptions& options) const {
  if (shape_.task == TaskKind::kClassification)
    return cross_entropy_loss(logits, batch.labels, dlogits, options.cross_entropy);
  if (options.huber) return huber_loss(logits, batch.targets, dlogits, options.huber_delta);
  return mse_loss(logits, batch.targets, dlogits);
}

}  // namespace moe
