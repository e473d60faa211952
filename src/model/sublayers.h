// The pre-norm residual sub-layers of the encoder-decoder model (translation_model.cpp), over
// packed sequences of different lengths (layers/attention.h, PackedAttentionDims):
//
//   attention   out = h + Attention(RoPE(x·Wqᵀ), RoPE(s·Wkᵀ), s·Wvᵀ)·Woᵀ,   x = RMSNorm(h)
//               self-attention: s = x, RoPE at each token's position in its own sequence,
//               causal or not; cross-attention: s = the memory (the encoder's output, already
//               normalised), no RoPE, queries of sequence b over keys of sequence b.
//   FFN         out = h + FFN(RMSNorm(h)), FFN a dense expert or an MoE layer.
//
// Parameters (PyTorch layouts [out, in]): <prefix>.<norm>.gain [D], <prefix>.<name>.wq [H·Dh, D],
// .wk, .wv [G·Dh, D], .wo [D, H·Dh]; the FFN's <prefix>.<norm>.gain and <prefix>.ffn.* or
// <prefix>.moe.* (moe/experts.h, moe/moe_layer.h names).
//
// Dims: Tq query rows · Tk key rows · D width · H query heads · G kv heads · Dh head width.
// Forward caches what backward needs in the caller's arena; backward adds the branch's gradient
// to the residual gradient dh in place (and, for cross-attention, to the memory's).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/core/status.h"
#include "moe/layers/attention.h"
#include "moe/layers/rope.h"
#include "moe/model/model_config.h"
#include "moe/moe/experts.h"
#include "moe/moe/moe_layer.h"

namespace moe::model_detail {

// One MoE layer object of a model over token sequences (`kind`: "a language model", "a
// translation model"): a valid layer whose gate routes each token on its own, so that training
// sees what generation will see. `at` names it in messages ("model.moe", "model.moe.1").
Status check_token_moe_block(const MoeBlockConfig& m, int64_t width, bool dense,
                             const std::string& at, const char* kind = "a language model");

// Token embedding rows: out [T, D] = table[tokens] (every token checked against V), and its
// backward dtable[token] += grad[t], tokens in order so the sum does not depend on threads.
void embed_rows(Tensor table, const int32_t* tokens, int64_t n, Tensor out);
void embed_rows_backward(Tensor dtable, const int32_t* tokens, int64_t n, Tensor grad);

struct AttentionShape {
  int64_t width = 0;     // D
  int64_t heads = 1;     // H
  int64_t kv_heads = 1;  // G
  float norm_eps = 1e-5f;
  int64_t head_dim() const { return width / heads; }
};

class AttentionSublayer {
 public:
  // Declares <prefix>.<norm>.gain and <prefix>.<name>.w{q,k,v,o}.
  void declare(ParamStore& store, const std::string& prefix, const std::string& norm,
               const std::string& name, const AttentionShape& shape);
  void init(ParamStore& store, Rng& rng) const;  // gain 1, matrices nn.Linear's default

  // h [Tq, D] -> out [Tq, D]. Self-attention: memory empty, `rope` the positions' table (null:
  // none). Cross-attention: memory [Tk, D], rope null. d's starts must stay valid until backward.
  void forward(const ParamStore& store, const PackedAttentionDims& d, const RopeTable* rope,
               Tensor h, Tensor memory, Tensor out, Arena& arena);
  // dh [Tq, D]: in, dL/d out; out, dL/d h. dmemory [Tk, D] (cross-attention) accumulates.
  void backward(ParamStore& store, Tensor dh, Tensor dmemory, Arena& arena);

  // Generation, n sequences in step. Self-attention: h [n, D] the new token of each sequence, at
  // position `pos` of all; the keys and values of positions 0 .. pos − 1 of sequence i are rows
  // i·L .. i·L + pos − 1 of k_cache, v_cache [n·L, G·Dh], and this step's go to row i·L + pos.
  void decode_self(const ParamStore& store, const RopeTable& rope, Tensor h, int64_t pos,
                   int64_t max_len, Tensor k_cache, Tensor v_cache, Tensor out, Arena& arena) const;
  // Cross-attention: the memory's keys and values k, v [Tk, G·Dh], once per batch of sources;
  // then each step's queries h [Tq, D] over them as d says (packed, not causal).
  void cross_keys(const ParamStore& store, Tensor memory, Tensor k, Tensor v) const;
  void decode_cross(const ParamStore& store, const PackedAttentionDims& d, Tensor h, Tensor k,
                    Tensor v, Tensor out, Arena& arena) const;

 private:
  void rope_rows(Tensor x, int64_t n_heads, bool inverse) const;

  ParamId gain_ = -1, wq_ = -1, wk_ = -1, wv_ = -1, wo_ = -1;
  AttentionShape shape_;
  // The last forward's state (arena memory).
  PackedAttentionDims dims_;
  const RopeTable* rope_ = nullptr;
  Tensor h_in_, x_, rstd_, memory_, q_, k_, v_, att_, lse_;
};

class FfnSublayer {
 public:
  // An MoE FFN (`moe` non-null) or a dense expert `dense`, under <prefix>.<norm>.gain.
  void declare(ParamStore& store, const std::string& prefix, int64_t width, float norm_eps,
               const MoeConfig* moe, const ExpertConfig& dense, Precision precision);
  void bind(const ParamStore& store);
  void init(ParamStore& store, Rng& rng) const;
  MoeLayer* moe_layer() const { return moe_.get(); }

  // h [T, D] -> out [T, D]; token_ids [T] for a hash gate (else null); rng the layer's noise.
  // An evaluation forward (training false) keeps nothing a backward needs.
  void forward(const ParamStore& store, Tensor h, Tensor out, bool training, const Rng& rng,
               const int64_t* token_ids, Arena& arena);
  void backward(ParamStore& store, Tensor dh, Arena& arena);

 private:
  ParamId gain_ = -1;
  float eps_ = 1e-5f;
  std::unique_ptr<Expert> dense_;
  std::unique_ptr<MoeLayer> moe_;
  Tensor h_in_, x_, rstd_;
};

}  // namespace moe::model_detail
