// The layers as op cases: linear, every activation (the kernels of kernels/ops.h), embedding
// bags, layer and RMS norm, dropout. Each op is bound once (`<op>_op`); its gradient check draws
// the inputs with the seeds and ranges the layers have always been checked with, its golden reads
// tests/golden/gen_layers.py's fixture (float64 autograd on the stored float32 inputs).
//
// Dims: T rows · D/I/O features · F hidden · V vocabulary · N ids · B bags.
#include <cmath>
#include <memory>
#include <string>

#include "moe/core/arena.h"
#include "moe/core/rng.h"
#include "moe/kernels/ops.h"
#include "moe/layers/dropout.h"
#include "moe/layers/embedding.h"
#include "moe/layers/linear.h"
#include "moe/layers/norm.h"
#include "op_cases.h"
#include "testing/tensors.h"

namespace moe::testing {
namespace {

// ---- linear: y = x Wᵀ (+ b); x [T, I], W [O, I], b [O] ------------------------------------------

OpRun linear_op(OpTensors t, bool bias) {
  OpRun run;
  const Tensor x = t["x"], w = t["W"], b = bias ? t["b"] : Tensor();
  const Tensor y = t.zeros("y", Shape{x.dim(0), w.dim(0)}), dx = t.zeros_like("dx", "x"),
               dw = t.zeros_like("dW", "W");
  const Tensor db = bias ? t.zeros_like("db", "b") : Tensor();
  const LinearParams p{w, b};
  run.forward = [p, x, y] { linear_forward(p, x, y); };
  run.backward = [p, x, dx, dw, db](Tensor dy) {
    linear_backward(p, LinearGrads{dw, db}, x, dy, dx);
  };
  run.targets = {"x", "W"};
  if (bias) run.targets.push_back("b");
  run.t = std::move(t);
  return run;
}

// y[t, o] = Σ_i x[t, i] W[o, i] + b[o], in double.
TensorBuffer naive_linear(const OpTensors& t) {
  const Tensor x = t["x"], w = t["W"];
  const Tensor b = t.has("b") ? t["b"] : Tensor();
  TensorBuffer y(Shape{x.dim(0), w.dim(0)});
  for (int64_t r = 0; r < x.dim(0); ++r)
    for (int64_t o = 0; o < w.dim(0); ++o) {
      double s = b.empty() ? 0.0 : b.f32()[o];
      for (int64_t i = 0; i < x.dim(1); ++i) s += static_cast<double>(x.at(r, i)) * w.at(o, i);
      y.view().at(r, o) = static_cast<float>(s);
    }
  return y;
}

OpRun linear_drawn(bool bias) {
  Rng rng(11);
  OpTensors t;
  t.add("x", random_uniform({3, 5}, rng));
  t.add("W", random_uniform({4, 5}, rng));
  TensorBuffer b = random_uniform({4}, rng);  // drawn either way: the same x and W
  if (bias) t.add("b", std::move(b));
  return linear_op(std::move(t), bias);
}

OpRun linear_from(const Fixture& f, bool bias) {
  OpTensors t;
  t.load(f, "x");
  t.load(f, "W", "w");
  if (bias) t.load(f, "b");
  return linear_op(std::move(t), bias);
}

OpCase linear_case(bool bias) {
  const std::string s = bias ? "" : "_nobias";
  OpCase c{.name = bias ? "linear_bias" : "linear_nobias"};
  c.gradcheck = GradcheckSpec{.make = [bias] { return linear_drawn(bias); }, .projection_seed = 1};
  c.golden = GoldenSpec{.fixture = "layers_linear",
                        .make = [bias](const Fixture& f) { return linear_from(f, bias); },
                        .compare = {{"y", "y" + s}, {"dx", "dx" + s}, {"dW", "dw" + s}}};
  if (bias) c.golden->compare.push_back({"db"});
  c.reference = ReferenceSpec{.output = naive_linear};
  return c;
}

// ---- activations: y = f(x), x [T, D]
// -------------------------------------------------------------

OpRun activation_op(OpTensors t, Activation act) {
  OpRun run;
  const Tensor x = t["x"], y = t.zeros_like("y", "x"), dx = t.zeros_like("dx", "x");
  run.forward = [act, x, y] { activation_forward(act, x, y); };
  run.backward = [act, x, dx](Tensor dy) { activation_backward(act, x, dy, dx); };
  run.targets = {"x"};
  run.t = std::move(t);
  return run;
}

OpRun activation_drawn(Activation act) {
  OpTensors t;
  const Tensor x = t.add("x", random_uniform({4, 6}, 12, -3.0f, 3.0f));
  // Keep inputs a few eps away from ReLU's kink, where a central difference straddles it.
  for (int64_t i = 0; i < x.numel(); ++i)
    if (std::fabs(x.f32()[i]) < 0.05f) x.f32()[i] += 0.1f;
  return activation_op(std::move(t), act);
}

OpCase activation_case(Activation act) {
  const std::string name = activation_name(act);
  OpCase c{.name = "activation_" + name};
  c.gradcheck =
      GradcheckSpec{.make = [act] { return activation_drawn(act); }, .projection_seed = 2};
  if (act != Activation::kIdentity) {  // PyTorch's fixture has no identity
    c.golden = GoldenSpec{.fixture = "kernels_activation",
                          .make =
                              [act](const Fixture& f) {
                                OpTensors t;
                                t.load(f, "x");
                                return activation_op(std::move(t), act);
                              },
                          .compare = {{"y", "y_" + name}, {"dx", "dx_" + name}}};
  }
  return c;
}

// ---- embedding bags: y[b] = Σ, mean or Σ weight · W[ids[n]] over bag b --------------------------
// W [V, D], ids [N] int32, offsets [B + 1] int64, weights [N] (weighted sum only)

OpRun embedding_bag_op(OpTensors t, BagMode mode) {
  OpRun run;
  const bool weighted = mode == BagMode::kWeightedSum;
  const Tensor w = t["W"], dw = t.zeros_like("dW", "W");
  const Tensor dweights = weighted ? t.zeros_like("dweights", "weights") : Tensor();
  const EmbeddingBagInput in{t["ids"], t["offsets"], weighted ? t["weights"] : Tensor()};
  const Tensor y = t.zeros("y", Shape{in.offsets.numel() - 1, w.dim(1)});
  run.forward = [w, mode, in, y] { embedding_bag_forward(EmbeddingParams{w}, mode, in, y); };
  run.backward = [w, dw, mode, in, dweights](Tensor dy) {
    embedding_bag_backward(EmbeddingParams{w}, EmbeddingGrads{dw}, mode, in, dy, dweights);
  };
  run.targets = {"W"};
  if (weighted) run.targets.push_back("weights");
  run.t = std::move(t);
  return run;
}

OpRun embedding_bag_drawn(BagMode mode) {
  Rng rng(15);
  OpTensors t;
  t.add("W", random_uniform({6, 4}, rng));
  TensorBuffer weights = random_uniform({6}, rng, -0.5f, 2.0f);
  // Bags of lengths 2, 0, 3, 1 with ids repeated inside and across bags.
  t.add("ids", i32_tensor({1, 4, 1, 1, 3, 5}));
  t.add("offsets", i64_tensor({0, 2, 2, 5, 6}));
  if (mode == BagMode::kWeightedSum) t.add("weights", std::move(weights));
  return embedding_bag_op(std::move(t), mode);
}

OpRun embedding_bag_from(const Fixture& f, BagMode mode) {
  OpTensors t;
  t.load(f, "W", "w");
  t.load(f, "ids");
  t.load(f, "offsets");
  if (mode == BagMode::kWeightedSum) t.load(f, "weights");
  return embedding_bag_op(std::move(t), mode);
}

OpCase embedding_bag_case(BagMode mode) {
  const std::string name = bag_mode_name(mode);
  OpCase c{.name = "embedding_bag_" + name};
  c.gradcheck =
      GradcheckSpec{.make = [mode] { return embedding_bag_drawn(mode); }, .projection_seed = 5};
  c.golden = GoldenSpec{.fixture = "layers_embedding_bag",
                        .make = [mode](const Fixture& f) { return embedding_bag_from(f, mode); },
                        .compare = {{"y", "y_" + name}, {"dW", "dw_" + name}}};
  if (mode == BagMode::kWeightedSum) c.golden->compare.push_back({"dweights", "dweights_" + name});
  return c;
}

// ---- layer norm over the last dim: x [T, D], gain [D], bias [D] (optional)
// -----------------------

OpRun layer_norm_op(OpTensors t, float eps, bool bias) {
  OpRun run;
  const Tensor x = t["x"], y = t.zeros_like("y", "x"), dx = t.zeros_like("dx", "x"),
               dgain = t.zeros_like("dgain", "gain");
  const Tensor dbias = bias ? t.zeros_like("dbias", "bias") : Tensor();
  auto arena = std::make_shared<Arena>();
  const LayerNormCache cache = LayerNormCache::allocate(*arena, x.dim(0));
  const LayerNormParams p{t["gain"], bias ? t["bias"] : Tensor()};
  run.forward = [p, eps, x, y, cache] { layer_norm_forward(p, eps, x, y, cache); };
  run.backward = [p, dgain, dbias, cache, x, dx](Tensor dy) {
    layer_norm_backward(p, LayerNormGrads{dgain, dbias}, cache, x, dy, dx);
  };
  run.targets = {"x", "gain"};
  if (bias) run.targets.push_back("bias");
  run.state = arena;
  run.t = std::move(t);
  return run;
}

OpRun layer_norm_drawn(bool bias) {
  Rng rng(16);
  OpTensors t;
  t.add("x", random_uniform({3, 6}, rng, -2.0f, 2.0f));
  t.add("gain", random_uniform({6}, rng, 0.5f, 1.5f));
  TensorBuffer b = random_uniform({6}, rng);
  if (bias) t.add("bias", std::move(b));
  return layer_norm_op(std::move(t), 1e-5f, bias);
}

OpRun layer_norm_from(const Fixture& f, bool bias) {
  OpTensors t;
  t.load(f, "x");
  t.load(f, "gain");
  if (bias) t.load(f, "bias");
  return layer_norm_op(std::move(t), f.meta_float("layer_norm_eps"), bias);
}

OpCase layer_norm_case(bool bias) {
  const std::string s = bias ? "" : "_nobias";
  OpCase c{.name = bias ? "layer_norm_bias" : "layer_norm_nobias"};
  c.gradcheck =
      GradcheckSpec{.make = [bias] { return layer_norm_drawn(bias); }, .projection_seed = 6};
  c.golden =
      GoldenSpec{.fixture = "layers_norm",
                 .make = [bias](const Fixture& f) { return layer_norm_from(f, bias); },
                 .compare = {{"y", "ln_y" + s}, {"dx", "ln_dx" + s}, {"dgain", "ln_dgain" + s}}};
  if (bias) c.golden->compare.push_back({"dbias", "ln_dbias"});
  return c;
}

// ---- RMS norm over the last dim: x [T, D], gain [D]
// ----------------------------------------------

OpRun rms_norm_op(OpTensors t, float eps) {
  OpRun run;
  const Tensor x = t["x"], gain = t["gain"], y = t.zeros_like("y", "x"),
               dx = t.zeros_like("dx", "x"), dgain = t.zeros_like("dgain", "gain");
  auto arena = std::make_shared<Arena>();
  const RmsNormCache cache = RmsNormCache::allocate(*arena, x.dim(0));
  run.forward = [gain, eps, x, y, cache] {
    rms_norm_forward(RmsNormParams{gain}, eps, x, y, cache);
  };
  run.backward = [gain, dgain, cache, x, dx](Tensor dy) {
    rms_norm_backward(RmsNormParams{gain}, RmsNormGrads{dgain}, cache, x, dy, dx);
  };
  run.targets = {"x", "gain"};
  run.state = arena;
  run.t = std::move(t);
  return run;
}

OpRun rms_norm_drawn() {
  Rng rng(17);
  OpTensors t;
  t.add("x", random_uniform({3, 6}, rng, -2.0f, 2.0f));
  t.add("gain", random_uniform({6}, rng, 0.5f, 1.5f));
  return rms_norm_op(std::move(t), 1e-6f);
}

OpRun rms_norm_from(const Fixture& f) {
  OpTensors t;
  t.load(f, "x");
  t.load(f, "gain");
  return rms_norm_op(std::move(t), f.meta_float("rms_norm_eps"));
}

OpCase rms_norm_case() {
  return OpCase{
      .name = "rms_norm",
      .gradcheck = GradcheckSpec{.make = rms_norm_drawn, .projection_seed = 7},
      .golden = GoldenSpec{.fixture = "layers_norm",
                           .make = rms_norm_from,
                           .compare = {{"y", "rms_y"}, {"dx", "rms_dx"}, {"dgain", "rms_dgain"}}}};
}

// ---- dropout with a fixed mask: y = x ⊙ mask / (1 − p); x [T, D], mask [T, D] uint8
// --------------

OpRun dropout_op(OpTensors t, float p) {
  OpRun run;
  const Tensor x = t["x"], y = t.zeros_like("y", "x"), dx = t.zeros_like("dx", "x");
  const DropoutCache cache{t["mask"]};
  run.forward = [p, cache, x, y] { dropout_apply_mask(p, cache, x, y); };
  run.backward = [p, cache, dx](Tensor dy) { dropout_backward(p, cache, dy, dx); };
  run.targets = {"x"};
  run.t = std::move(t);
  return run;
}

OpRun dropout_drawn() {
  const float p = 0.4f;
  OpTensors t;
  const Tensor x = t.add("x", random_uniform({4, 5}, 18));
  const Tensor mask = t.zeros("mask", Shape{4, 5}, DType::kU8);
  TensorBuffer y(Shape{4, 5});
  Rng mask_rng(19);
  dropout_forward(p, mask_rng, x, y,
                  DropoutCache{mask});  // draws the mask once; forward replays it
  return dropout_op(std::move(t), p);
}

OpRun dropout_from(const Fixture& f) {
  OpTensors t;
  t.load(f, "x");
  t.load(f, "mask");
  return dropout_op(std::move(t), f.meta_float("p"));
}

OpCase dropout_case() {
  return OpCase{.name = "dropout_fixed_mask",
                .gradcheck = GradcheckSpec{.make = dropout_drawn, .projection_seed = 8},
                .golden = GoldenSpec{
                    .fixture = "layers_dropout", .make = dropout_from, .compare = {{"y"}, {"dx"}}}};
}

}  // namespace

std::vector<OpCase> layer_op_cases() {
  std::vector<OpCase> cases = {linear_case(true), linear_case(false)};
  for (Activation act :
       {Activation::kIdentity, Activation::kRelu, Activation::kGelu, Activation::kGeluTanh,
        Activation::kSilu, Activation::kSigmoid, Activation::kTanh})
    cases.push_back(activation_case(act));
  for (BagMode mode : {BagMode::kSum, BagMode::kMean, BagMode::kWeightedSum})
    cases.push_back(embedding_bag_case(mode));
  cases.push_back(layer_norm_case(true));
  cases.push_back(layer_norm_case(false));
  cases.push_back(rms_norm_case());
  cases.push_back(dropout_case());
  return cases;
}

}  // namespace moe::testing
