// Experts: the feed-forward networks an MoE layer routes tokens to, each a map [N, D] -> [N, D].
//
// Dims: N rows given to the expert (its segment of the dispatched rows, possibly 0) · D model
// width · F expert hidden width.
//
//   Linear  y = x · W1ᵀ + b1;  W1 [D, D]
//   MLP     h_0 = x,  h_i = act(h_{i−1} · W_iᵀ + b_i) for i = 1..L (L = depth hidden layers of
//           width F),  y = h_L · W_{L+1}ᵀ + b_{L+1};  W1 [F, D], W_2..W_L [F, F], W_{L+1} [D, F]
//   SwiGLU  y = W2 · (silu(W1 x) ⊙ (W3 x)), no biases (LLaMA, Mixtral; layers/swiglu.h);
//           W1, W3 [F, D], W2 [D, F]
//
// Parameters are named "<prefix>.w1", "<prefix>.b1", … in PyTorch's [out, in] layout, so an
// expert of an MoE layer is "<layer>.experts.<e>.w1" and a checkpoint maps one to one. Each
// expert runs one GEMM per weight matrix on its whole segment; a segment of 0 rows costs nothing.
//
// Parameter gradients accumulate (+=). A SwiGLU expert declares its matrices defer_zero_grad: in
// a training step (ParamStore::clear_grads) its first contribution to each weight gradient
// writes it (GEMM β = 0) instead of adding to zeros, which spares zeroing and re-reading them
// (core/params.h); later contributions in the step add as usual.
//
// An Expert keeps views of its parameters (bind) and, between forward and backward, a cache of
// its input and hidden activations in memory from the caller's Arena. A SwiGLU expert can also
// run on buffers the caller hands it (forward_into / backward_into): nothing is taken from an
// Arena, so the MoE layer can run several experts at once on different threads, each in its own
// slice of one packed hidden buffer per step. Its gate is the fused kernels/swiglu_act.h pass,
// and a = silu(h1) ⊙ h3 is kept from forward, so backward does not recompute it.
//
// Precision (SwiGLU experts): fp32, or bf16 compute with fp32 master weights (mixed precision,
// Micikevicius et al. 2018). In bf16 each forward that has rows rounds W1, W2, W3 to bf16 once,
// into copies the expert allocated when the precision was set (3·D·F · 2 bytes), and runs every
// GEMM on bf16 operands with fp32 accumulation and fp32 outputs (kernels/bf16.h): forward rounds
// x and a to bf16 (kept for backward, which consumes them as GEMM operands), backward rounds dy,
// dh1 and dh3. h1, h3, the silu gate and its derivative stay fp32, and the weight gradients
// accumulate in fp32 into the fp32 gradients the optimizer reads. Linear and MLP experts always
// compute in fp32.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/core/status.h"
#include "moe/core/tensor.h"
#include "moe/kernels/gemm.h"
#include "moe/kernels/ops.h"
#include "moe/layers/linear.h"
#include "moe/layers/swiglu.h"

namespace moe {

enum class ExpertKind { kLinear, kMlp, kSwiglu };

const char* expert_kind_name(ExpertKind k);                     // "linear", "mlp", "swiglu"
bool parse_expert_kind(const std::string& s, ExpertKind* out);  // false if unknown

enum class Precision { kF32, kBF16 };

const char* precision_name(Precision p);                     // "fp32", "bf16"
bool parse_precision(const std::string& s, Precision* out);  // false if unknown

struct ExpertConfig {
  ExpertKind kind = ExpertKind::kSwiglu;
  int64_t hidden = 0;                         // F (MLP and SwiGLU; Linear has none)
  int depth = 1;                              // MLP: number of hidden layers L ≥ 1
  Activation activation = Activation::kGelu;  // MLP hidden activation
  bool bias = true;                           // Linear and MLP; SwiGLU never has biases
};

// User-facing check of one expert's configuration (kind, widths, depth); names the field.
Status validate_expert_config(const ExpertConfig& c);

class Expert {
 public:
  Expert(int64_t d_model, ExpertConfig config);

  const ExpertConfig& config() const { return config_; }
  int64_t d_model() const { return d_model_; }
  int64_t n_params() const;       // parameter count
  int64_t flops_per_row() const;  // forward FLOPs (2 per multiply-add) for one row

  void declare(ParamStore& store, const std::string& prefix);
  void bind(const ParamStore& store);  // after store.finalize(); the store must outlive *this
  void init(Rng& rng);                 // PyTorch's nn.Linear default for every matrix

  // x [N, D] -> y [N, D] (=). Keeps a view of x and takes its hidden activations from `arena`;
  // both must stay alive until backward returns.
  void forward(Tensor x, Tensor y, Arena& arena);
  // dy [N, D] -> dx [N, D] (=; skipped when dx is empty); parameter gradients (+=).
  void backward(Tensor dy, Tensor dx, Arena& arena);

  // SwiGLU experts in bf16 allocate their bf16 weight copies here, once (kept if the precision
  // goes back to fp32; the fp32 weights stay the parameters). Other kinds keep fp32.
  void set_precision(Precision p);
  Precision precision() const { return precision_; }
  int64_t bf16_weight_bytes() const;  // the bf16 copies held (0 until bf16 is set)

  // bf16 operands of the SwiGLU GEMMs, in the caller's memory (BF16 tensors; empty in fp32).
  struct Bf16Forward {
    Tensor x;  // [N, D] x rounded; kept until backward returns
    Tensor a;  // [N, F] a rounded; kept until backward, which reuses it for dh1
  };
  struct Bf16Backward {
    Tensor dy;   // [N, D] scratch
    Tensor dh3;  // [N, F] scratch
  };

  // SwiGLU experts only. forward_into: x [N, D] -> y [N, D] with the cache in the caller's
  // h1, h3, a [N, F] (kept until backward returns). backward_into: da [N, F] is scratch.
  // Neither allocates, and two experts may run them concurrently. backward_into consumes the
  // cached a (it becomes dh1): one backward per forward, as in a training step. In bf16 the
  // Bf16Forward / Bf16Backward buffers are required (for N > 0).
  void forward_into(Tensor x, Tensor y, Tensor h1, Tensor h3, Tensor a, Bf16Forward bf = {});
  void backward_into(Tensor dy, Tensor dx, Tensor da, Bf16Backward bf = {});

 private:
  void mlp_forward(Tensor x, Tensor y, Arena& arena);
  void mlp_backward(Tensor dy, Tensor dx, Arena& arena);
  void swiglu_forward_bf16(Tensor x, Tensor y, Tensor h1, Tensor h3, Tensor a, Bf16Forward bf);
  void swiglu_backward_bf16(Tensor dy, Tensor dx, Tensor da, Bf16Backward bf);
  // The scales of the three weight-gradient products dW1, dW2, dW3 (+=): β = 0 for a gradient
  // the store says is clear (ParamStore::claim_grad), else 1.
  struct SwigluGradScales {
    GemmScale w1, w2, w3;
  };
  SwigluGradScales swiglu_grad_scales() const;

  int64_t d_model_;
  ExpertConfig config_;
  // Linear: one layer; MLP: depth + 1 layers, layer i named w{i+1}, b{i+1}.
  std::vector<ParamId> weight_ids_, bias_ids_;
  std::vector<LinearParams> layers_;
  std::vector<LinearGrads> layer_grads_;
  const ParamStore* store_ = nullptr;
  SwigluParams swiglu_;
  SwigluGrads swiglu_grads_;

  // Cache of the last forward.
  Tensor x_;                  // [N, D]
  std::vector<Tensor> pre_;   // MLP: [N, F] per hidden layer, before the activation
  std::vector<Tensor> post_;  // MLP: [N, F] per hidden layer, after it
  SwigluCache swiglu_cache_;  // SwiGLU: h1, h3 [N, F]
  Tensor swiglu_act_;         // SwiGLU: a = silu(h1) ⊙ h3 [N, F]
  Bf16Forward swiglu_bf16_;   // SwiGLU in bf16: x, a rounded

  Precision precision_ = Precision::kF32;
  TensorBuffer weights_bf16_;           // [3·F·D] bf16 copies of W1, W2, W3 (bf16 SwiGLU only)
  Tensor w1_bf16_, w2_bf16_, w3_bf16_;  // views: [F, D], [D, F], [F, D]
};

}  // namespace moe
