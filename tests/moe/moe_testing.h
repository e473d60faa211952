// Shared set-up of the MoE layer tests (moe_layer_test.cpp, moe_bf16_test.cpp,
// moe_threading_test.cpp, moe_alloc_test.cpp): the usual SwiGLU top-k layer and one
// forward and backward pass of a LayerHarness with everything it produced kept.
//
// Dims: T tokens · D model width · F expert hidden width · E experts · K experts per token.
#pragma once

#include "moe/core/rng.h"
#include "moe_layer_testing.h"
#include "testing/tensors.h"

namespace moe::testing {

// The layer most tests build: E SwiGLU experts of hidden width F under a top-k softmax gate.
inline MoeConfig swiglu_top_k_config(int64_t d, int64_t e, int64_t k, int64_t f) {
  return moe_config(d, e, expert_config(ExpertKind::kSwiglu, f),
                    gate_config(GateKind::kTopKSoftmax, d, e, k));
}

struct LayerStep {
  TensorBuffer y;      // [T, D]
  TensorBuffer dx;     // [T, D]
  TensorBuffer grads;  // every parameter's gradient, in the store's layout
};

// Zeroes the gradients, runs forward (gate noise from the harness's fixed seed) and backward with
// dy, and returns y, dx and a copy of the parameter gradients.
inline LayerStep forward_backward(LayerHarness& h, Tensor x, Tensor dy, bool training) {
  LayerStep r{TensorBuffer(x.shape()), TensorBuffer(x.shape()),
              TensorBuffer(h.store.grads().shape())};
  h.store.zero_grads();
  h.forward(x, r.y, training);
  h.layer.backward(dy, r.dx, h.arena);
  copy(r.grads, h.store.grads());
  return r;
}

}  // namespace moe::testing
