#include "moe/moe/moe_stack.h"

#include <cmath>

#include <fmt/format.h>

#include "moe/kernels/ops.h"

namespace moe {

Status validate_moe_stack_config(const MoeStackConfig& c) {
  if (c.layers.empty()) return Status::error("moe stack: at least one layer is needed");
  if (!(c.norm_eps > 0.0f) || !std::isfinite(c.norm_eps))
    return Status::error("moe stack: norm_eps must be positive, got {}", c.norm_eps);
  for (size_t l = 0; l < c.layers.size(); ++l) {
    MOE_TRY(validate_moe_config(c.layers[l]).with_context(fmt::format("moe stack: layers[{}]", l)));
    if (c.layers[l].d_model != c.layers[0].d_model)
      return Status::error("moe stack: layers[{}] has d_model {}, layers[0] has {}", l,
                           c.layers[l].d_model, c.layers[0].d_model);
  }
  return Status::ok();
}

MoeStack::MoeStack(MoeStackConfig config) : config_(std::move(config)) {
  const Status s = validate_moe_stack_config(config_);
  MOE_CHECK(s.is_ok(), "{}", s.message());
  for (const MoeConfig& c : config_.layers) layers_.emplace_back(c);
  norms_.resize(layers_.size());
  inputs_.resize(layers_.size());
}

void MoeStack::declare(ParamStore& store, const std::string& prefix) {
  const int64_t d = d_model();
  for (size_t l = 0; l < layers_.size(); ++l) {
    const std::string p = fmt::format("{}.{}", prefix, l);
    norms_[l].gain = store.add(p + ".norm.gain", Shape{d}, /*decay=*/false);
    if (config_.norm == NormKind::kLayer)
      norms_[l].bias = store.add(p + ".norm.bias", Shape{d}, /*decay=*/false);
    layers_[l].declare(store, p + ".moe");
  }
}

void MoeStack::bind(const ParamStore& store) {
  for (size_t l = 0; l < layers_.size(); ++l) {
    Norm& n = norms_[l];
    MOE_CHECK(n.gain >= 0, "MoeStack::bind before declare");
    n.params = {store.value(n.gain), n.bias >= 0 ? store.value(n.bias) : Tensor()};
    n.grads = {store.grad(n.gain), n.bias >= 0 ? store.grad(n.bias) : Tensor()};
    layers_[l].bind(store);
  }
}

void MoeStack::init(Rng& rng) {
  for (size_t l = 0; l < layers_.size(); ++l) {
    layer_norm_init(norms_[l].params);  // gain 1, bias 0: the same start for both kinds
    Rng r = rng.fork(l);
    layers_[l].init(r);
  }
}

void MoeStack::norm_forward(const Norm& n, Tensor x, Tensor y) const {
  if (config_.norm == NormKind::kLayer)
    layer_norm_forward(n.params, config_.norm_eps, x, y, n.cache);
  else
    rms_norm_forward(RmsNormParams{n.params.gain}, config_.norm_eps, x, y,
                     RmsNormCache{n.cache.rstd});
}

void MoeStack::norm_backward(const Norm& n, Tensor x, Tensor dy, Tensor dx) const {
  if (config_.norm == NormKind::kLayer)
    layer_norm_backward(n.params, n.grads, n.cache, x, dy, dx);
  else
    rms_norm_backward(RmsNormParams{n.params.gain}, RmsNormGrads{n.grads.gain},
                      RmsNormCache{n.cache.rstd}, x, dy, dx);
}

void MoeStack::forward(Tensor x, Tensor y, bool training, const Rng& rng, Arena& arena,
                       const int64_t* token_ids) {
  const int64_t t = x.rows(), d = d_model();
  MOE_CHECK(x.cols() == d && y.shape() == x.shape() && y.raw() != x.raw(),
            "moe stack forward: x {} y {} for D={} (y must not alias x)", x.shape().str(),
            y.shape().str(), d);
  Tensor h = x;  // [T, D]
  for (size_t l = 0; l < layers_.size(); ++l) {
    Norm& n = norms_[l];
    inputs_[l] = h;
    n.cache = config_.norm == NormKind::kLayer
                  ? LayerNormCache::allocate(arena, t)
                  : LayerNormCache{Tensor(), RmsNormCache::allocate(arena, t).rstd};
    Tensor normed = arena.alloc(Shape{t, d});  // [T, D], kept: the MoE caches it as its input
    norm_forward(n, h, normed);
    Tensor out = l + 1 == layers_.size() ? y : arena.alloc(Shape{t, d});  // [T, D] h_{l+1}
    layers_[l].forward(normed, out, training, rng.fork(l), arena, token_ids);
    add(out, h, out);  // the residual connection
    h = out;
  }
}

void MoeStack::backward(Tensor dy, Tensor dx, Arena& arena) {
  const int64_t t = dy.rows(), d = d_model();
  MOE_CHECK(dy.shape() == inputs_[0].shape() && dx.shape() == dy.shape() && dx.raw() != dy.raw(),
            "moe stack backward: dy {} dx {} after a forward of x {}", dy.shape().str(),
            dx.shape().str(), inputs_[0].shape().str());
  const size_t mark = arena.mark();
  Tensor dnormed = arena.alloc(Shape{t, d});  // [T, D] dL/d(Norm_l(h_l))
  Tensor dh_norm = arena.alloc(Shape{t, d});  // [T, D] its share of dL/dh_l through the norm
  // dx holds dL/dh_{l+1} going down: the residual passes it through, the branch adds to it.
  copy(dx, dy);
  for (size_t l = layers_.size(); l-- > 0;) {
    layers_[l].backward(dx, dnormed, arena);
    norm_backward(norms_[l], inputs_[l], dnormed, dh_norm);
    add(dx, dh_norm, dx);
  }
  arena.release(mark);
}

void MoeStack::after_step() {
  for (MoeLayer& l : layers_) l.after_step();
}

double MoeStack::aux_loss() const {
  double total = 0.0;
  for (const MoeLayer& l : layers_) total += l.aux_loss();
  return total;
}

}  // namespace moe
