// LmModel: the decoder-only Transformer language model (the Mixtral architecture when every FFN
// is an MoE layer of SwiGLU experts under a renormalised top-k softmax gate), a Model (model.h)
// over token windows (data.format "corpus").
//
// Dims: B windows in a batch · S context (tokens a window predicts) · T = B·S tokens · V
// vocabulary · D model width · H query heads · G key/value heads · Dh = D / H head width ·
// L blocks · F hidden width of a dense FFN.
//
//   input     h = E[tokens]                                  E = embed.w [V, D], tokens [B, S]
//   blocks    l = 0 .. L−1 (pre-norm residual):
//               a = Attention(RoPE(RMSNorm(h)·Wqᵀ), RoPE(RMSNorm(h)·Wkᵀ), RMSNorm(h)·Wvᵀ)
//               h = h + a·Woᵀ                                causal, GQA when G < H
//               h = h + FFN_l(RMSNorm(h))                    an MoE layer (model.moe) or a dense
//                                                            FFN (model.lm.moe_layers) of the
//                                                            experts' kind (SwiGLU in Mixtral)
//   output    logits = RMSNorm(h) · Wᵀ                       [T, V], W = E when tied, else head.w
//   loss      mean cross-entropy of logits against the next tokens (+ the MoE layers' auxiliary
//             losses, as for every model)
//
// RoPE rotates interleaved pairs (2i, 2i+1) of each head by p·θ^(−2i/Dh), p the position in the
// window (layers/rope.h). Rows are tokens: the MoE layers route each of the T tokens; the hash
// gate hashes its token id.
//
// Parameter names (PyTorch layouts [out, in]; docs/formats.md maps them to Mixtral's):
//   embed.w [V, D]
//   blocks.<l>.attn_norm.gain [D]
//   blocks.<l>.attn.wq [H·Dh, D], .wk [G·Dh, D], .wv [G·Dh, D], .wo [D, H·Dh]
//   blocks.<l>.ffn_norm.gain [D]
//   blocks.<l>.moe.router.w [E, D], blocks.<l>.moe.experts.<e>.w1 [F, D], .w2 [D, F], .w3 [F, D]
//   blocks.<l>.ffn.w1, .w2, .w3          a dense block (moe/experts.h names)
//   final_norm.gain [D]
//   head.w [V, D]                        when model.lm.tie_embeddings is false
//
// Memory: forward takes every activation it caches from the caller's Arena (as RowModel).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "moe/layers/rope.h"
#include "moe/model/model.h"

namespace moe {

class LmModel final : public Model {
 public:
  // Checks the config (widths, heads, context, every MoE block and gate) against the data's shape
  // (shape.n_features = V) and builds the parameters, zero-filled.
  static Result<std::unique_ptr<LmModel>> create(const ModelConfig& config, const DataShape& shape);
  ~LmModel() override;

  // The token embedding N(0, 0.02²) (GPT-2, Mixtral's initializer_range); every other matrix
  // PyTorch's nn.Linear default; norm gains 1.
  void init(uint64_t seed) override;

  // batch.tokens [B, S+1] -> logits [B·S, V] of the next token after each of the first S.
  Tensor forward(const Batch& batch, bool training, const Rng& rng, Arena& arena) override;
  void backward(Tensor dlogits, Arena& arena) override;
  // Mean cross-entropy against batch.tokens[:, 1:].
  double task_loss(const Batch& batch, Tensor logits, Tensor dlogits,
                   const TaskLossOptions& options) const override;
  int64_t n_blocks() const override;
  ParamEnd param_end(const std::string& name) const override;

  int64_t context() const { return config_.lm.context; }
  int64_t vocab() const { return shape_.n_features; }

  // Generation, one sequence, with a cache of every block's keys and values ([S, G·Dh] each,
  // allocated once by start_generation, which also empties it). extend() runs `tokens` at the
  // next positions (the prompt at once, then one token at a time), attending to everything
  // cached, and returns the logits [V] after the last one; the same as forward() over the whole
  // sequence, without recomputing it. At most context() positions fit: the caller starts again
  // from a shorter suffix when they are used up.
  void start_generation();
  int64_t cached_positions() const { return cached_; }
  Tensor extend(std::span<const int32_t> tokens, Arena& arena);

 private:
  struct Block;
  LmModel(ModelConfig config, DataShape shape);
  void build();
  void block_forward(Block& b, int64_t l, Tensor h, Tensor out, bool training, const Rng& rng,
                     Arena& arena);
  void block_backward(Block& b, Tensor dh, Arena& arena);
  Tensor embed_tokens(Arena& arena);
  void block_extend(Block& b, int64_t l, Tensor h, Tensor out, Arena& arena);
  void ffn_forward(Block& b, int64_t l, Tensor x, Tensor y, bool training, const Rng& rng,
                   Arena& arena);
  Tensor head_weight() const;
  Tensor head_grad() const;

  std::vector<std::unique_ptr<Block>> blocks_;
  ParamId embed_ = -1, final_gain_ = -1, head_ = -1;
  RopeTable rope_;

  // The last forward's state (arena memory).
  int64_t batch_ = 0;  // B
  bool training_ = false;
  const int64_t* token_ids_ = nullptr;  // [T] tokens_ for hash gates (arena), else null
  bool hashed_ = false;                 // an MoE layer routes by hashing token ids
  Tensor tokens_;                       // [B, S] int32 inputs
  Tensor targets_;                      // [B·S] int32
  Tensor final_in_;                     // [T, D]
  Tensor final_out_;                    // [T, D]
  Tensor final_rstd_;                   // [T]

  // Generation: keys and values of every block and position, [L, S, G·Dh] each.
  TensorBuffer k_cache_, v_cache_;
  int64_t cached_ = 0;
};

}  // namespace moe
