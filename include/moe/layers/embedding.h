// EmbeddingBag: one pooled vector per bag of ids, the bags given in CSR form (ids [N] with
// offsets [B+1]; bag b is ids[offsets[b] .. offsets[b+1])). Bags pool by sum, mean, or a per-token
// weighted sum (how TF-IDF or bag-of-words features with counts are fed to a model). PyTorch
// layout: W [V, D].
//
// Dims: N ids in all bags · B bags · V vocabulary · D embedding width.
// Ids are validated by the data layer; an id outside [0, V) reaching these functions is a
// programmer error (MOE_CHECK), as are malformed offsets.
//
// Backward accumulates into dW without atomics and in a fixed order (bag by bag, and within a bag
// id by id), so a run is bit-identical whatever the thread count: threads split the embedding
// dimension D, never the bags.
#pragma once

#include "moe/core/tensor.h"

namespace moe {

struct EmbeddingParams {
  Tensor w;  // [V, D]
};
using EmbeddingGrads = EmbeddingParams;

enum class BagMode { kSum, kMean, kWeightedSum };

const char* bag_mode_name(BagMode m);  // "sum", "mean", "weighted_sum"

struct EmbeddingBagInput {
  Tensor ids;      // [N] int32
  Tensor offsets;  // [B+1] int64, offsets[0] = 0, non-decreasing, offsets[B] = N
  Tensor weights;  // [N] float, per-token weights; kWeightedSum only, empty otherwise
  int64_t n_bags() const { return offsets.numel() - 1; }
};

// -> y [B, D]:  sum: Σ_n W[ids[n]];  mean: the sum / bag length;  weighted: Σ_n w_n · W[ids[n]].
// An empty bag gives a row of zeros in every mode.
void embedding_bag_forward(const EmbeddingParams& p, BagMode mode, const EmbeddingBagInput& in,
                           Tensor y);
// dy [B, D]: g.w[ids[n]] += s_n · dy[bag(n)] with s_n = 1, 1/length or w_n.
// For kWeightedSum, dweights [N] = (dL/dw_n = dy[bag(n)] · W[ids[n]]) is written; it may be empty
// to skip it, and must be empty in the other modes.
void embedding_bag_backward(const EmbeddingParams& p, const EmbeddingGrads& g, BagMode mode,
                            const EmbeddingBagInput& in, Tensor dy, Tensor dweights);

}  // namespace moe
