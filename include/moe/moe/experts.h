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
// (core/params.h); later contributions in the step add as usual. Linear and MLP experts add to
// gradients the step zeroed, as layers/linear.h does.
//
// One interface over the kinds: an Expert holds one implementation of its kind
// (src/moe/expert_<kind>.cpp, behind src/moe/expert_kind.h), and each kind brings its own fused
// forward and backward, in fp32 and in bf16. The MoE layer and the dense FFN call every kind
// through the same few calls, so every precision and every schedule applies to every kind.
//
// Memory: an Expert keeps views of its parameters (bind). Between a forward and its backward it
// keeps a view of its input x and a cache of activations in caller memory; backward works in
// scratch memory the caller gives too. footprint() says how many fp32 and bf16 values per row
// each needs, so a caller can lay out one packed buffer for many experts:
//   - forward / backward take it from an Arena (both must stay alive until backward returns);
//   - forward_into / backward_into run on memory the caller hands them and allocate nothing, so
//     the MoE layer runs several experts at once on different threads, each in its own slice of
//     one packed buffer per step.
// A backward consumes its forward's cache (SwiGLU turns a into dh1, MLP in bf16 its rounded
// hidden activations into rounded gradients): one backward per forward, as in a training step.
//
// Per-kind caches (per row; F hidden width, L hidden layers):
//   Linear  fp32: none (x is the cache);      bf16: x rounded [D]; backward dy rounded [D]
//   MLP     fp32: pre- and post-activation of each hidden layer [2·L·F]; backward 2 [F] scratch
//           bf16: + x and each post-activation rounded [D + L·F]; backward dy rounded [D]
//   SwiGLU  fp32: h1, h3, a = silu(h1) ⊙ h3 [3·F] (the fused kernels/swiglu_act.h pass; a is kept
//           so backward does not recompute it); backward da [F]
//           bf16: + x and a rounded [D + F]; backward dy and dh3 rounded [D + F]
//
// Precision: fp32, or bf16 compute with fp32 master weights (mixed precision, Micikevicius et al.
// 2018), for every kind. In bf16 each forward that has rows rounds the expert's weight matrices
// to bf16 once, into copies allocated when the precision was set (2 bytes per weight), and runs
// every GEMM on bf16 operands with fp32 accumulation and fp32 outputs (kernels/bf16.h): the
// GEMMs' activation operands are rounded on the way in (x and the hidden activations in forward,
// kept for backward; dy and the hidden gradients in backward). Biases, activations, the SwiGLU
// gate and its derivative stay fp32, and every gradient accumulates in fp32 into the fp32
// gradients the optimizer reads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/enum_names.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/core/status.h"
#include "moe/core/tensor.h"
#include "moe/kernels/bf16.h"
#include "moe/kernels/ops.h"

namespace moe {

enum class ExpertKind { kLinear, kMlp, kSwiglu };
inline constexpr EnumName<ExpertKind> kExpertKindNames[] = {
    {"linear", ExpertKind::kLinear}, {"mlp", ExpertKind::kMlp}, {"swiglu", ExpertKind::kSwiglu}};
inline const char* expert_kind_name(ExpertKind k) {
  return enum_name(kExpertKindNames, k);
}

enum class Precision { kF32, kBF16 };
inline constexpr EnumName<Precision> kPrecisionNames[] = {{"fp32", Precision::kF32},
                                                          {"bf16", Precision::kBF16}};
inline const char* precision_name(Precision p) {
  return enum_name(kPrecisionNames, p);
}

struct ExpertConfig {
  ExpertKind kind = ExpertKind::kSwiglu;
  int64_t hidden = 0;                         // F (MLP and SwiGLU; Linear has none)
  int depth = 1;                              // MLP: number of hidden layers L ≥ 1
  Activation activation = Activation::kGelu;  // MLP hidden activation
  bool bias = true;                           // Linear and MLP; SwiGLU never has biases
};

// User-facing check of one expert's configuration (kind, widths, depth); names the field.
Status validate_expert_config(const ExpertConfig& c);

// Per-row sizes, in values, of the memory an expert's forward and backward work in (at its
// current precision; the bf16 sizes are 0 in fp32).
struct ExpertFootprint {
  int64_t cache = 0;         // fp32, written by forward, kept until backward returns
  int64_t cache_bf16 = 0;    // bf16, likewise
  int64_t scratch = 0;       // fp32, backward's scratch
  int64_t scratch_bf16 = 0;  // bf16, backward's scratch
};

// Caller memory of one forward_into (its cache) or backward_into (its scratch): N rows times the
// footprint's values of each type. A pointer may be null where its size is 0.
struct ExpertMemory {
  float* f32 = nullptr;
  bf16* b16 = nullptr;
};

class ExpertKindImpl;  // one per kind: src/moe/expert_kind.h

class Expert {
 public:
  Expert(int64_t d_model, ExpertConfig config);
  ~Expert();
  Expert(Expert&&) noexcept;
  Expert& operator=(Expert&&) noexcept;

  const ExpertConfig& config() const { return config_; }
  int64_t d_model() const { return d_model_; }
  int64_t n_params() const;       // parameter count
  int64_t flops_per_row() const;  // forward FLOPs (2 per multiply-add) for one row

  void declare(ParamStore& store, const std::string& prefix);
  void bind(const ParamStore& store);  // after store.finalize(); the store must outlive *this
  void init(Rng& rng);                 // PyTorch's nn.Linear default for every matrix

  // x [N, D] -> y [N, D] (=). Keeps a view of x and takes its cache from `arena`; both must stay
  // alive until backward returns.
  void forward(Tensor x, Tensor y, Arena& arena);
  // dy [N, D] -> dx [N, D] (=; skipped when dx is empty); parameter gradients (+=).
  void backward(Tensor dy, Tensor dx, Arena& arena);

  // The same on caller memory: cache holds N · footprint().cache fp32 and N ·
  // footprint().cache_bf16 bf16 values and is kept until backward_into returns; scratch holds
  // N · footprint().scratch(_bf16). Neither allocates, and two experts may run them concurrently.
  ExpertFootprint footprint() const;
  void forward_into(Tensor x, Tensor y, ExpertMemory cache);
  void backward_into(Tensor dy, Tensor dx, ExpertMemory scratch);

  // In bf16 the expert allocates its bf16 weight copies here, once (kept if the precision goes
  // back to fp32; the fp32 weights stay the parameters).
  void set_precision(Precision p);
  Precision precision() const { return precision_; }
  int64_t bf16_weight_bytes() const;  // the bf16 copies held (0 until bf16 is set)

 private:
  int64_t d_model_;
  ExpertConfig config_;
  Precision precision_ = Precision::kF32;
  std::unique_ptr<ExpertKindImpl> impl_;
  // The last forward: its input [N, D] and its cache.
  Tensor x_;
  ExpertMemory cache_;
};

}  // namespace moe
