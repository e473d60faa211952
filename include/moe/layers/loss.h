// Training losses: softmax cross-entropy, MSE and Huber.
//
// Dims: T rows/tokens · C classes (or output columns).
// Each loss is one call that returns the mean loss (a double, reduced in a fixed order so a run
// is bit-identical whatever the thread count) and, when the gradient tensor is not empty, writes
// d(loss)/d(input) (=) multiplied by `grad_scale`. The scale lets a caller fold a loss weight or
// a gradient-accumulation factor into the gradient without a second pass. The semantics are
// PyTorch's torch.nn.functional losses with reduction="mean"; the golden tests check them.
//
// Targets are assumed validated by the data layer: an out-of-range class id is a programmer
// error (MOE_CHECK). Nothing here allocates.
#pragma once

#include <cstdint>

#include "moe/core/tensor.h"

namespace moe {

inline constexpr int32_t kDefaultIgnoreIndex = -100;  // PyTorch's default ignore_index

struct CrossEntropyOptions {
  Tensor class_weights;                        // [C] w_c, empty for none
  double label_smoothing = 0;                  // ε in [0, 1]
  int32_t ignore_index = kDefaultIgnoreIndex;  // rows with this target contribute nothing
};

// Softmax cross-entropy, torch.nn.functional.cross_entropy with class-index targets.
// With logp = log_softmax(z) per row, the valid rows V (target ≠ ignore_index) and
// W = Σ_{i∈V} w_{y_i} (W = |V| without weights, i.e. w ≡ 1):
//   loss = [ (1 − ε) Σ_{i∈V} w_{y_i}·(−logp_{i,y_i}) + (ε/C) Σ_{i∈V} Σ_c w_c·(−logp_{i,c}) ] / W
//   dloss/dz_{i,j} = p_{i,j}·S_i − a_{i,j},  a_{i,j} = ((1 − ε) w_{y_i}[j = y_i] + (ε/C) w_j) / W,
//   S_i = Σ_j a_{i,j}
// (the smoothing term divides by Σ w_{y_i}, not by Σ w_c, exactly as PyTorch 1.13 does).
// If every row is ignored PyTorch returns NaN; this returns 0 with a zero gradient so a batch of
// padding cannot poison training.
// logits [T, C], targets [T] int32, dlogits [T, C] or empty
double cross_entropy_loss(Tensor logits, Tensor targets, Tensor dlogits,
                          const CrossEntropyOptions& opts = {}, double grad_scale = 1.0);

// Mean squared error: loss = mean (x − y)²,  dloss/dx = 2 (x − y) / N with N = numel.
// pred [T, C], target like pred, dpred like pred or empty
double mse_loss(Tensor pred, Tensor target, Tensor dpred, double grad_scale = 1.0);

// Huber loss with threshold δ > 0 (torch.nn.functional.huber_loss), d = x − y:
//   l = ½ d²            if |d| < δ
//   l = δ (|d| − ½ δ)   otherwise
//   dl/dd = clamp(d, −δ, δ);  loss = mean l, gradient divided by N = numel.
// pred [T, C], target like pred, dpred like pred or empty
double huber_loss(Tensor pred, Tensor target, Tensor dpred, double delta = 1.0,
                  double grad_scale = 1.0);

}  // namespace moe
