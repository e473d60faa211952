// Model: the network `moe train` builds from a ModelConfig and the data's shape.
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

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/core/status.h"
#include "moe/core/tensor.h"
#include "moe/data/dataset.h"
#include "moe/io/safetensors.h"
#include "moe/layers/embedding.h"
#include "moe/moe/moe_layer.h"
#include "moe/train/config.h"
#include "moe/train/data_source.h"

namespace moe {

// A gate's persistent state (not a parameter): what checkpoints save beside the weights.
struct GateState {
  std::string name;         // the gate's parameter prefix: "blocks.2.moe.router",
                            // "blocks.2.moe.groups.1.router"
  int64_t step = 0;         // after_step calls so far (the Gumbel temperature's position)
  std::vector<float> bias;  // [E] the sigmoid gate's selection bias; empty for other kinds
};

class Model {
 public:
  // Checks the config against the data's shape (widths, expert counts, every gate option) and
  // builds the parameters, zero-filled; call init() or load values into params().
  static Result<std::unique_ptr<Model>> create(const ModelConfig& config, const DataShape& shape);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const DataShape& shape() const { return shape_; }
  ParamStore& params() { return store_; }
  const ParamStore& params() const { return store_; }

  // Every parameter from its own stream of Rng(seed): linear layers PyTorch's default, the
  // embedding table N(0, 1/D) (so that a TF-IDF bag, unit norm, starts at unit scale), norms
  // at gain 1 and bias 0.
  void init(uint64_t seed);

  // One batch -> logits [T, C] (regression: predictions of the standardised targets), memory
  // from `arena`. Uses batch.features [T, D_in] (dense input) or batch.ids / offsets / weights
  // (text), and batch.rows (the hash gate's token ids) when set. `rng` is this step's noise
  // source (dropout, Gumbel and noisy gates); the caller forks it per step.
  Tensor forward(const Batch& batch, bool training, const Rng& rng, Arena& arena);
  // dlogits [T, C] -> every parameter gradient (+=), the MoE layers' weighted auxiliary losses
  // included. Call after a training forward, with the same arena.
  void backward(Tensor dlogits, Arena& arena);
  // Once per optimizer step: the gates' bias balancing and temperature schedules.
  void after_step();

  int64_t n_blocks() const;
  // The MoE layers in block order (none when config.dense).
  int64_t n_moe_layers() const;
  const MoeLayer& moe_layer(int64_t i) const;
  const std::string& moe_layer_name(int64_t i) const;  // "blocks.2.moe"
  int64_t moe_layer_block(int64_t i) const;            // its block index l
  // Σ over MoE layers of the weighted auxiliary losses of the last forward (the term the
  // training loss adds, whose gradient backward applies).
  double aux_loss() const;

  int64_t n_params() const;  // every parameter element
  // Parameters one row uses: everything but the routed experts, plus for each MoE layer its
  // slots per token (K; expert choice: its capacity factor) times the mean routed expert's size.
  // Embedding tables count whole.
  int64_t n_active_params() const;

  // Every parameter by name, in store order (views into params()).
  std::vector<NamedTensor> named_parameters() const;

  std::vector<GateState> gate_states() const;
  // Restores states saved by gate_states(); every gate must appear once with a bias of its size.
  Status set_gate_states(const std::vector<GateState>& states);

 private:
  struct Block;
  Model(ModelConfig config, DataShape shape);
  void build();
  void drop_words(const Rng& rng, Arena& arena);
  bool final_norm() const {
    return config_.trunk.norm != NormChoice::kNone && config_.trunk.final_norm;
  }
  void norm_forward(ParamId gain, ParamId bias, Tensor x, Tensor y, Tensor rstd, Tensor mean);
  void norm_backward(ParamId gain, ParamId bias, Tensor x, Tensor dy, Tensor dx, Tensor rstd,
                     Tensor mean);

  ModelConfig config_;
  DataShape shape_;
  ParamStore store_;
  ParamId input_w_ = -1, input_b_ = -1;
  ParamId final_gain_ = -1, final_bias_ = -1;
  ParamId head_w_ = -1, head_b_ = -1;
  std::vector<std::unique_ptr<Block>> blocks_;
  std::vector<int64_t> moe_blocks_;  // block index of each MoE layer
  std::vector<std::string> moe_names_;

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
