// TranslationModel: the encoder-decoder Transformer (Vaswani et al. 2017, pre-norm, with RMSNorm,
// RoPE and SwiGLU as in the language model) whose FFNs may be MoE layers, in the encoder, the
// decoder or both (GShard's every-other-block pattern by default), a Model (model.h) over sentence
// pairs (data.format "pairs"). One vocabulary serves both sides.
//
// Dims: B pairs in a batch · Ts source tokens and Tt target tokens over the batch, packed
// without padding (data/dataset.h, Batch) · V vocabulary · D width · H query heads · G key/value
// heads · Dh = D / H · Le encoder and Ld decoder blocks.
//
//   encoder   x = E[source tokens]                                          [Ts, D]
//             block l: x += SelfAttention(RMSNorm(x))     not causal, within each sentence,
//                                                         RoPE at the position in the sentence
//                      x += FFN_l(RMSNorm(x))             MoE or dense SwiGLU
//             m = RMSNorm(x)                                                [Ts, D]
//   decoder   y = E[bos, y_1 .. y_m of each sentence]                       [Tt, D]
//             block l: y += SelfAttention(RMSNorm(y))     causal within each sentence, RoPE
//                      y += CrossAttention(RMSNorm(y), m) sentence b's queries over sentence
//                                                         b's encoder rows, no RoPE
//                      y += FFN_l(RMSNorm(y))
//   output    logits = RMSNorm(y) · Wᵀ                    [Tt, V], W = E when tied, else head.w
//   loss      mean cross-entropy against y_1 .. y_m, eos of each sentence (label smoothing from
//             training.label_smoothing), plus the MoE layers' auxiliary losses
//
// Parameter names (PyTorch layouts [out, in]):
//   embed.w [V, D]
//   encoder.<l>.attn_norm.gain [D], encoder.<l>.attn.wq [H·Dh, D], .wk, .wv [G·Dh, D], .wo [D,
//   H·Dh] encoder.<l>.ffn_norm.gain [D], encoder.<l>.moe.* (router.w, experts.<e>.w1 ...) or .ffn.*
//   encoder_norm.gain [D]
//   decoder.<l>.attn_norm.gain, decoder.<l>.attn.*, decoder.<l>.cross_norm.gain,
//   decoder.<l>.cross.wq, .wk, .wv, .wo, decoder.<l>.ffn_norm.gain, decoder.<l>.moe.* or .ffn.*
//   final_norm.gain [D]
//   head.w [V, D]                        when model.translation.tie_embeddings is false
// The MoE layers are registered encoder blocks first (blocks 0 .. Le−1), then the decoder's
// (blocks Le .. Le+Ld−1); rows are tokens, and a hash gate hashes each row's token id.
//
// Memory: forward takes every activation it caches from the caller's Arena.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "moe/layers/attention.h"
#include "moe/layers/rope.h"
#include "moe/model/model.h"

namespace moe {

class TranslationModel final : public Model {
 public:
  // Checks the config (widths, heads, lengths, every MoE block and gate) against the data's shape
  // (shape.n_features = V) and builds the parameters, zero-filled.
  static Result<std::unique_ptr<TranslationModel>> create(const ModelConfig& config,
                                                          const DataShape& shape);
  ~TranslationModel() override;

  // The token embedding N(0, 0.02²); every other matrix PyTorch's nn.Linear default; gains 1.
  void init(uint64_t seed) override;

  // A batch of sentence pairs (Batch::src_tokens ... tgt_starts) -> logits [Tt, V].
  Tensor forward(const Batch& batch, bool training, const Rng& rng, Arena& arena) override;
  void backward(Tensor dlogits, Arena& arena) override;
  // Mean cross-entropy against batch.tgt_out.
  double task_loss(const Batch& batch, Tensor logits, Tensor dlogits,
                   const TaskLossOptions& options) const override;
  int64_t n_blocks() const override;
  ParamEnd param_end(const std::string& name) const override;

  int64_t vocab() const { return shape_.n_features; }
  int64_t max_tokens() const { return config_.translation.max_tokens; }

  // Translation by beam search (greedy at beam 1), every source at once: N = sources · beam
  // hypotheses decoded in step, one token each per step, over a cache of each decoder block's
  // keys and values and the cross-attention's keys and values of the encoded sources (computed
  // once). At each step a source's hypotheses extend to their 2·beam best continuations by
  // log-probability; one ending in eos within the first `beam` is finished, scored
  // log p / len^length_penalty (len counting eos), the others continue up to `beam`. A source is
  // done when it has `beam` finished hypotheses; at the last position only eos is allowed. The
  // best finished hypothesis by score wins (the first on a tie).
  struct DecodeOptions {
    int32_t bos = 1;
    int32_t eos = 2;
    int64_t beam = 1;
    double length_penalty = 1.0;
    int64_t max_tokens =
        0;  // decoder positions (bos .. eos); 0 (or over max_tokens()): max_tokens()
  };
  struct Hypothesis {
    std::vector<int32_t> tokens;  // without bos and eos
    double log_prob = 0.0;        // Σ ln p of the tokens and eos
    double score = 0.0;           // log_prob / (tokens + 1)^length_penalty
  };
  // sources: token ids without eos (it is added), each at most max_tokens() − 1 long.
  std::vector<Hypothesis> translate(std::span<const std::vector<int32_t>> sources,
                                    const DecodeOptions& options);

  // The steps translate() is made of: encode the sources (`eos` appended) with `copies`
  // hypotheses each (hypothesis i belongs to source i / copies); then per step one token per
  // hypothesis in (bos first) and the next token's logits [N, V] out; reorder_hypotheses makes
  // hypothesis i continue from hypothesis parent[i], of the same source, from the next step on.
  void start_decoding(std::span<const std::vector<int32_t>> sources, int64_t copies, int32_t eos);
  Tensor decode_step(std::span<const int32_t> tokens);
  void reorder_hypotheses(std::span<const int64_t> parent);

 private:
  struct DecodeState;
  struct EncoderBlock;
  struct DecoderBlock;
  TranslationModel(ModelConfig config, DataShape shape);
  void build();
  Tensor embed(Tensor tokens, Arena& arena, const int64_t** hash_ids);
  // The encoder over src_tokens [Ts] packed as d says -> memory_ [Ts, D] (arena memory).
  Tensor encode(Tensor src_tokens, const PackedAttentionDims& d, bool training, const Rng& rng,
                Arena& arena);
  Tensor head_weight() const;
  Tensor head_grad() const;

  std::vector<std::unique_ptr<EncoderBlock>> encoder_;
  std::vector<std::unique_ptr<DecoderBlock>> decoder_;
  ParamId embed_ = -1, encoder_gain_ = -1, final_gain_ = -1, head_ = -1;
  RopeTable rope_;
  bool hashed_ = false;  // an MoE layer routes by hashing token ids

  // The last forward's state (arena memory, but the starts, which the attention dims view).
  bool training_ = false;
  std::vector<int64_t> src_starts_, tgt_starts_;  // [B+1] each
  Tensor src_tokens_, tgt_in_;                    // [Ts], [Tt] int32
  Tensor encoder_out_, memory_, memory_rstd_;     // [Ts, D], [Ts, D], [Ts]
  Tensor final_in_, final_out_, final_rstd_;      // [Tt, D], [Tt, D], [Tt]

  std::unique_ptr<DecodeState> decode_;  // generation's caches, kept for the next call
};

}  // namespace moe
