// Losses against torch.nn.functional (fixtures from tests/golden/gen_losses_optim.py): the mean
// loss and the gradient with respect to the input, for every option PyTorch has that we mirror.
//
// Dims: T rows · C classes.
#include <gtest/gtest.h>

#include <string>

#include "moe/layers/loss.h"
#include "testing/fixtures.h"

namespace moe {
namespace {

using testing::expect_close;
using testing::Fixture;

// Compares a double loss with the fixture's float32 [1] value through expect_close's labelled
// report.
void expect_loss(const std::string& label, double loss, Tensor expected) {
  TensorBuffer got(Shape{1});
  got.f32()[0] = static_cast<float>(loss);
  expect_close(label, got, expected);
}

TEST(LossGolden, CrossEntropyMatchesTorch) {
  Fixture fx("loss_cross_entropy");
  ASSERT_TRUE(fx.ok());
  for (const char* name : {"plain", "weighted", "smooth", "weighted_smooth",
                           "weighted_smooth_ignore", "ignore", "large_logits"}) {
    SCOPED_TRACE(name);
    const std::string p = std::string(name) + ".";
    TensorBuffer logits = fx.get(p + "logits");    // [T, C]
    TensorBuffer targets = fx.get(p + "targets");  // [T] int32
    TensorBuffer dlogits(logits.shape());          // [T, C]
    CrossEntropyOptions opts;
    TensorBuffer weights;  // [C]
    if (fx.file().contains(p + "weights")) {
      weights = fx.get(p + "weights");
      opts.class_weights = weights;
    }
    const std::string eps = fx.meta(p + "label_smoothing");
    ASSERT_FALSE(eps.empty());
    opts.label_smoothing = std::stod(eps);
    const double loss = cross_entropy_loss(logits, targets, dlogits, opts);
    expect_loss(p + "loss", loss, fx.get(p + "loss"));
    expect_close(p + "dlogits", dlogits, fx.get(p + "dlogits"));
  }
}

TEST(LossGolden, BceWithLogitsMatchesTorch) {
  Fixture fx("loss_bce");
  ASSERT_TRUE(fx.ok());
  for (const char* name :
       {"vector", "vector_pos_weight", "matrix_soft", "matrix_pos_weight", "matrix_large"}) {
    SCOPED_TRACE(name);
    const std::string p = std::string(name) + ".";
    TensorBuffer logits = fx.get(p + "logits");    // [T] or [T, C]
    TensorBuffer targets = fx.get(p + "targets");  // like logits
    TensorBuffer dlogits(logits.shape());
    BceOptions opts;
    TensorBuffer pos_weight;  // [C]
    if (fx.file().contains(p + "pos_weight")) {
      pos_weight = fx.get(p + "pos_weight");
      opts.pos_weight = pos_weight;
    }
    const double loss = bce_with_logits_loss(logits, targets, dlogits, opts);
    expect_loss(p + "loss", loss, fx.get(p + "loss"));
    expect_close(p + "dlogits", dlogits, fx.get(p + "dlogits"));
  }
}

TEST(LossGolden, MseAndHuberMatchTorch) {
  Fixture fx("loss_regression");
  ASSERT_TRUE(fx.ok());
  TensorBuffer pred = fx.get("pred");      // [T, C]
  TensorBuffer target = fx.get("target");  // [T, C]
  TensorBuffer dpred(pred.shape());        // [T, C]
  const double mse = mse_loss(pred, target, dpred);
  expect_loss("mse.loss", mse, fx.get("mse.loss"));
  expect_close("mse.dpred", dpred, fx.get("mse.dpred"));
  for (const char* name : {"huber_1", "huber_0p5", "huber_3"}) {
    const std::string p = std::string(name) + ".";
    const std::string delta = fx.meta(p + "delta");
    ASSERT_FALSE(delta.empty()) << name;
    const double loss = huber_loss(pred, target, dpred, std::stod(delta));
    expect_loss(p + "loss", loss, fx.get(p + "loss"));
    expect_close(p + "dpred", dpred, fx.get(p + "dpred"));
  }
}

}  // namespace
}  // namespace moe
