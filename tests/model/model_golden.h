// A whole model against its PyTorch twin's fixture (gen_lm.py, gen_translation.py), llm.c's
// test_gpt2 way: the fixture's parameters loaded, then three AdamW steps on one batch, checking
// the losses before each step, the logits, task and auxiliary losses and every gradient of the
// first, and every parameter after the third.
//
// Dims: R output rows (tokens) · V vocabulary.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "moe/core/arena.h"
#include "moe/model/model.h"
#include "moe/optim/optimizer.h"
#include "testing/fixtures.h"

namespace moe::testing {

inline void expect_fixture_trajectory(const std::string& name, const Fixture& f, Model& model,
                                      const Batch& batch, int64_t output_rows) {
  ParamStore& store = model.params();
  for (ParamId id = 0; id < store.size(); ++id) {
    const std::string& p = store.info(id).name;
    ASSERT_TRUE(f.contains(p)) << name << " lacks " << p;
    copy(store.value(id), f.get(p).view());
  }
  OptimizerConfig oc;
  oc.kind = OptimizerKind::kAdamW;
  oc.beta1 = f.meta_double("beta1");
  oc.beta2 = f.meta_double("beta2");
  oc.eps = f.meta_double("adam_eps");
  oc.weight_decay = f.meta_double("weight_decay");
  std::unique_ptr<Optimizer> opt = make_optimizer(store, oc);
  const double lr = f.meta_double("lr");
  TensorBuffer dlogits(Shape{output_rows, model.shape().n_outputs});  // [R, V]
  Arena arena;
  for (int step = 0; step < 3; ++step) {
    arena.reset();
    store.zero_grads();
    const Tensor logits = model.forward(batch, true, Rng(0), arena);
    const double task = model.task_loss(batch, logits, dlogits.view(), TaskLossOptions());
    const double aux = model.aux_loss();
    EXPECT_NEAR(task + aux, f.get("loss.step" + std::to_string(step)).view().f32()[0], 2e-5)
        << name << " step " << step;
    model.backward(dlogits.view(), arena);
    if (step == 0) {
      expect_close(name + " logits", logits, f.get("logits").view(), 1e-4, 1e-5);
      EXPECT_NEAR(task, f.get("task_loss").view().f32()[0], 1e-5) << name;
      EXPECT_NEAR(aux, f.get("aux_loss").view().f32()[0], 1e-6) << name;
      for (ParamId id = 0; id < store.size(); ++id) {
        const std::string& p = store.info(id).name;
        expect_close(name + " grad." + p, store.grad(id), f.get("grad." + p).view(), 1e-3, 2e-6);
      }
    }
    opt->step(lr);
    model.after_step();
  }
  for (ParamId id = 0; id < store.size(); ++id) {
    const std::string& p = store.info(id).name;
    expect_close(name + " step3." + p, store.value(id), f.get("step3." + p).view(), 1e-4, 1e-5);
  }
}

}  // namespace moe::testing
