// Dispatch and combine: the data movement around the experts, driven by a RoutingPlan.
//
// Dims: T tokens · D model width · S slots · S_kept slots not dropped.
//
//   dispatch  x [T, D]       -> xs [S_kept, D]   xs[p] = x[slot_token[perm[p]]]
//   combine   ys [S_kept, D] -> y [T, D]         y[t]  = Σ_{kept s of t} weight[s] ·
//   ys[inv_perm[s]]
//
// Rows of xs are grouped by expert (expert e owns [expert_offsets[e], expert_offsets[e+1])), so
// each expert runs one GEMM per weight matrix on a contiguous block. Nothing here is [T, E, C] or
// [T, E, D]: the cost is O(S · D) whatever the number of experts.
//
// The two are adjoints of each other (for fixed weights): combine's backward is a weighted gather,
// dispatch's backward a sum over each token's slots. Every output row is owned by one token or one
// sorted position and summed in slot order, so results are bit-identical across runs and thread
// counts: no atomics, no reduction whose order depends on scheduling.
#pragma once

#include "moe/core/tensor.h"
#include "moe/moe/routing_plan.h"

namespace moe {

// x [T, D] -> xs [S_kept, D] (=).
void dispatch_forward(const RoutingPlan& plan, Tensor x, Tensor xs);
// dxs [S_kept, D] -> dx [T, D] (=): dx[t] = Σ_{kept s of t, in slot order} dxs[inv_perm[s]];
// a token with no kept slot gets a zero row.
void dispatch_backward(const RoutingPlan& plan, Tensor dxs, Tensor dx);

// ys [S_kept, D] -> y [T, D] (=); a token with no kept slot gets a zero row.
void combine_forward(const RoutingPlan& plan, Tensor ys, Tensor y);
// dy [T, D] -> dys [S_kept, D] (=) with dys[inv_perm[s]] = weight[s] · dy[token(s)], and
// dweights [S] (=) with dweights[s] = <dy[token(s)], ys[inv_perm[s]]>, 0 for a dropped slot.
// ys is combine's forward input.
void combine_backward(const RoutingPlan& plan, Tensor ys, Tensor dy, Tensor dys, float* dweights);

}  // namespace moe
