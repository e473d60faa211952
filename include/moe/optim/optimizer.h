// Optimizers over a ParamStore: SGD (momentum, Nesterov), Adam and AdamW.
//
// Dims: N = the ParamStore's arena length (every parameter, 64-byte aligned, padding included);
// M = the same for the parameters that are not frozen (M = N when none is).
// An optimizer updates every parameter of the store that is not frozen (ParamStore::freeze) from
// its gradient in one pass; frozen ones get no update and no state. Its state (moments) lives in
// arenas [M] each, laid out as the store's arena with the frozen parameters left out
// (state_slice), so a checkpoint saves each parameter's state as it saves the values, and
// restoring is copying into the same views plus set_step_count(). Parameters whose ParamInfo::decay
// is false get no weight decay. Updates are computed in double per element and stored in float;
// step() allocates nothing.
//
// Semantics are PyTorch's (torch.optim, 1.13, the defaults not listed here off), with g the
// gradient, λ the weight decay, η the learning rate and t the step number (from 1):
//
//   SGD (dampening 0):  d = g + λ·p;  b = μ·b + d;  d = nesterov ? d + μ·b : b  (μ > 0);  p -= η·d
//                      (b starts at 0, which equals PyTorch's b₁ = d₁)
//   Adam (Kingma & Ba 2015, L2 decay added to the gradient):
//                      g' = g + λ·p;  m = β₁·m + (1 − β₁)·g';  v = β₂·v + (1 − β₂)·g'²
//                      p -= (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)      (ε outside the √)
//   AdamW (Loshchilov & Hutter 2019, decoupled decay): p *= 1 − η·λ first, then the Adam update
//                      with g' = g.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "moe/core/enum_names.h"
#include "moe/core/params.h"
#include "moe/core/status.h"
#include "moe/core/tensor.h"

namespace moe {

enum class OptimizerKind { kSgd, kAdam, kAdamW };

inline constexpr EnumName<OptimizerKind> kOptimizerKindNames[] = {
    {"sgd", OptimizerKind::kSgd}, {"adam", OptimizerKind::kAdam}, {"adamw", OptimizerKind::kAdamW}};

const char* optimizer_kind_name(OptimizerKind k);
// Parses the names above; false if unknown.
bool parse_optimizer_kind(const std::string& name, OptimizerKind* out);

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kAdamW;
  double weight_decay = 0.0;  // λ
  double momentum = 0.0;      // μ, SGD
  bool nesterov = false;      // SGD, needs μ > 0
  double beta1 = 0.9;         // Adam, AdamW
  double beta2 = 0.999;
  double eps = 1e-8;

  // Rejects what a user could write in a config: λ or μ negative, β outside [0, 1), ε ≤ 0,
  // Nesterov without momentum, non-finite values.
  Status validate() const;
};

// The view of parameter `info` inside an arena of the ParamStore's layout (values, grads).
Tensor param_slice(Tensor arena, const ParamInfo& info);

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter from the store's gradients with learning rate lr; advances
  // step_count().
  virtual void step(double lr) = 0;
  // The state tensors, [M] views each, named "sgd.momentum" or "adam.m" and "adam.v" (SGD without
  // momentum has none). Writing into them restores a checkpoint.
  virtual std::vector<NamedTensor> state() const = 0;
  // Parameter id's part of a state tensor; id must not be frozen.
  Tensor state_slice(Tensor arena, ParamId id) const;

  int64_t step_count() const { return step_count_; }  // updates applied so far
  void set_step_count(int64_t n);
  const OptimizerConfig& config() const { return config_; }

 protected:
  Optimizer(ParamStore& store, const OptimizerConfig& config);

  ParamStore* store_;
  OptimizerConfig config_;
  int64_t step_count_ = 0;
  std::vector<int64_t> state_offset_;  // [params] where each starts in a state arena; -1: frozen
  int64_t state_size_ = 0;             // M
};

class Sgd final : public Optimizer {
 public:
  Sgd(ParamStore& store, const OptimizerConfig& config);
  void step(double lr) override;
  std::vector<NamedTensor> state() const override;

 private:
  TensorBuffer momentum_;  // [M] b, empty when μ = 0
};

// Adam, or AdamW when config.kind is kAdamW.
class Adam final : public Optimizer {
 public:
  Adam(ParamStore& store, const OptimizerConfig& config);
  void step(double lr) override;
  std::vector<NamedTensor> state() const override;

 private:
  TensorBuffer m_;  // [M] first moment
  TensorBuffer v_;  // [M] second moment
};

// The optimizer config.kind names; the store must be finalized and the config valid.
std::unique_ptr<Optimizer> make_optimizer(ParamStore& store, const OptimizerConfig& config);

}  // namespace moe
