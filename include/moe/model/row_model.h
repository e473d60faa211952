// RowModel: the Model (model.h) over rows: a classifier or regressor of tabular, text and image
// rows, built from a ModelConfig and the data's shape.
//
// Dims: T rows in a batch · D_in dense input width · V text id range · N ids in a batch ·
// D model width · C classes or regression targets · L blocks.
//
//   input     dense (tabular, images):  h = x · W_inᵀ + b_in           x [T, D_in], W_in [D, D_in]
//             text:  h = EmbeddingBag(ids, TF-IDF weights) + b_in     W_in [V, D]
//                    (training with model.word_dropout p: each id's weight w_n becomes
//                    w_n · m_n / (1 − p), m_n ~ Bernoulli(1 − p))
//             then dropout (model.input_dropout)
//             training with model.input_l2 λ: the loss gains (λ/2)·‖W_in‖² (its gradient is
//             added in backward; the loss value the trainer reports leaves it out)
//   blocks    l = 0 .. L−1:  h = h + Dropout(F_l(Norm_l(h)))          (pre-norm residual)
//             F_l: a dense FFN (the trunk's blocks, then MoE blocks when model.dense), or an MoE
//             layer (moe/moe_layer.h)
//   output    logits = Norm_f(h) · W_headᵀ + b_head                   [T, C]
//
// Norm is an RMSNorm, a LayerNorm, or nothing (model.trunk.norm); Norm_f is left out when
// model.trunk.final_norm is false. The trunk's dense blocks come
// first, then one block per entry of model.moe.
//
// Parameter names (PyTorch layouts, [out, in]), the names checkpoints use:
//   input.w [D, D_in] or [V, D] (text), input.b [D]
//   blocks.<l>.norm.gain [D], blocks.<l>.norm.bias [D] (LayerNorm)
//   blocks.<l>.ffn.w1, .b1, …               a dense block (moe/experts.h names)
//   blocks.<l>.moe.router.w, blocks.<l>.moe.experts.<e>.w1, …, blocks.<l>.moe.shared.<i>.w1, …,
//   blocks.<l>.moe.groups.<g>.router.w      an MoE block (moe/moe_layer.h names)
//   final_norm.gain [D], final_norm.bias [D] (LayerNorm; neither without a final norm)
//   head.w [C, D], head.b [C]
//
// Memory: forward takes every activation it caches from the caller's Arena, which must stay
// alive and unreset until backward returns. Reset it before each step: after the first steps it
// holds one block of the high-water size, and a steady-state step allocates nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moe/layers/embedding.h"
#include "moe/model/model.h"

namespace moe {

class RowModel final : public Model {
 public:
  // Checks the config against the data's shape (widths, expert counts, every gate option) and
  // builds the parameters, zero-filled; call init() or load values into params().
  static Result<std::unique_ptr<RowModel>> create(const ModelConfig& config,
                                                  const DataShape& shape);
  ~RowModel() override;

  // Every parameter from its own stream of Rng(seed): linear layers PyTorch's default, the
  // embedding table N(0, 1/D) (so that a TF-IDF bag, unit norm, starts at unit scale), norms
  // at gain 1 and bias 0.
  void init(uint64_t seed) override;

  // One batch -> logits [T, C] (regression: predictions of the standardised targets). Uses
  // batch.features [T, D_in] (dense input) or batch.ids / offsets / weights (text), and
  // batch.rows (the hash gate's token ids) when set.
  Tensor forward(const Batch& batch, bool training, const Rng& rng, Arena& arena) override;
  void backward(Tensor dlogits, Arena& arena) override;
  // Classification: cross-entropy against batch.labels; regression: MSE or Huber against
  // batch.targets (standardised).
  double task_loss(const Batch& batch, Tensor logits, Tensor dlogits,
                   const TaskLossOptions& options) const override;
  int64_t n_blocks() const override;
  ParamEnd param_end(const std::string& name) const override;

 private:
  struct Block;
  RowModel(ModelConfig config, DataShape shape);
  void build();
  void drop_words(const Rng& rng, Arena& arena);
  // Parameter id's gradient, or an empty tensor when it is frozen (its product is skipped).
  Tensor trained_grad(ParamId id) const;
  bool final_norm() const {
    return config_.trunk.norm != NormChoice::kNone && config_.trunk.final_norm;
  }
  void norm_forward(ParamId gain, ParamId bias, Tensor x, Tensor y, Tensor rstd, Tensor mean);
  void norm_backward(ParamId gain, ParamId bias, Tensor x, Tensor dy, Tensor dx, Tensor rstd,
                     Tensor mean);

  ParamId input_w_ = -1, input_b_ = -1;
  ParamId final_gain_ = -1, final_bias_ = -1;
  ParamId head_w_ = -1, head_b_ = -1;
  std::vector<std::unique_ptr<Block>> blocks_;

  // The last forward's cache (arena memory).
  Batch batch_;
  bool training_ = false;
  EmbeddingBagInput bag_in_;  // text: the bags as the forward pooled them
  BagMode bag_mode_ = BagMode::kWeightedSum;
  Tensor input_mask_;      // [T, D] uint8 input dropout mask (training, p > 0)
  std::vector<Tensor> h_;  // [T, D] the residual stream before each block, and after the last
  Tensor final_in_;        // [T, D] = h_[L]
  Tensor final_out_;       // [T, D] normalised
  Tensor final_rstd_, final_mean_;  // [T]
};

}  // namespace moe
