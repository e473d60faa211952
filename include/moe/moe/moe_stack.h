// MoeStack: MoE layers at several depths, each a pre-norm residual block,
//
//   h_0 = x,   h_{l+1} = h_l + MoE_l(Norm_l(h_l)),   y = h_L,
//
// with Norm an RMSNorm (Zhang & Sennrich 2019) or a LayerNorm (Ba et al. 2016), as in the
// pre-norm Transformer blocks that MoE models stack (Switch, Mixtral). The residual path is also
// what carries a token whose slots were all dropped by capacity.
//
// Dims: T tokens · D model width · L layers.
//
// Parameter names: "<prefix>.<l>.norm.gain" (and ".norm.bias" for LayerNorm), and each layer's
// MoE under "<prefix>.<l>.moe" (moe_layer.h), e.g. "blocks.1.moe.experts.3.w2".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/core/status.h"
#include "moe/core/tensor.h"
#include "moe/layers/norm.h"
#include "moe/moe/moe_layer.h"

namespace moe {

enum class NormKind { kRms, kLayer };

struct MoeStackConfig {
  std::vector<MoeConfig> layers;  // L layers, all with the same d_model
  NormKind norm = NormKind::kRms;
  float norm_eps = 1e-5f;
};

// User-facing check: at least one layer, equal widths, every layer valid, eps positive.
Status validate_moe_stack_config(const MoeStackConfig& c);

class MoeStack {
 public:
  // The config must pass validate_moe_stack_config (checked).
  explicit MoeStack(MoeStackConfig config);

  const MoeStackConfig& config() const { return config_; }
  int64_t n_layers() const { return static_cast<int64_t>(layers_.size()); }
  int64_t d_model() const { return config_.layers[0].d_model; }
  MoeLayer& layer(int64_t l) { return layers_[static_cast<size_t>(l)]; }

  void declare(ParamStore& store, const std::string& prefix);
  void bind(const ParamStore& store);
  void init(Rng& rng);  // norms at gain 1 (bias 0), layer l's MoE from rng.fork(l)

  // x [T, D] -> y [T, D] (=); y must not alias x. Layer l draws its noise from rng.fork(l).
  // Activations are cached in the arena until backward returns.
  void forward(Tensor x, Tensor y, bool training, const Rng& rng, Arena& arena,
               const int64_t* token_ids = nullptr);
  // dy [T, D] -> dx [T, D] (=; must not alias dy); every parameter gradient (+=).
  void backward(Tensor dy, Tensor dx, Arena& arena);
  void after_step();

  // Σ over layers of each layer's weighted auxiliary loss (the term to add to the training loss).
  double aux_loss() const;

 private:
  struct Norm {
    ParamId gain = -1, bias = -1;
    LayerNormParams params, grads;  // RMSNorm uses only the gain
    LayerNormCache cache;           // RMSNorm uses only rstd
  };
  void norm_forward(const Norm& n, Tensor x, Tensor y) const;
  void norm_backward(const Norm& n, Tensor x, Tensor dy, Tensor dx) const;

  MoeStackConfig config_;
  std::vector<MoeLayer> layers_;
  std::vector<Norm> norms_;
  std::vector<Tensor> inputs_;  // [T, D] h_l of the last forward, per layer
};

}  // namespace moe
