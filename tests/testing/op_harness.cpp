#include "testing/op_harness.h"

#include <gtest/gtest.h>

#include "moe/core/check.h"

namespace moe::testing {

Tensor OpTensors::add(const std::string& name, TensorBuffer t) {
  owned_.push_back(std::move(t));
  return add_view(name, owned_.back());
}

Tensor OpTensors::add_view(const std::string& name, Tensor t) {
  MOE_CHECK(tensors_.count(name) == 0, "OpTensors: '{}' added twice", name);
  tensors_[name] = t;
  return t;
}

Tensor OpTensors::zeros(const std::string& name, Shape shape, DType dtype) {
  return add(name, TensorBuffer(shape, dtype));
}

Tensor OpTensors::zeros_like(const std::string& name, const std::string& like) {
  const Tensor l = (*this)[like];
  return add(name, TensorBuffer(l.shape(), l.dtype()));
}

Tensor OpTensors::load(const Fixture& f, const std::string& name, const std::string& key) {
  return add(name, f.get(key.empty() ? name : key));
}

Tensor OpTensors::operator[](const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    ADD_FAILURE() << "the op has no tensor '" << name << "'";
    return {};
  }
  return it->second;
}

void run_gradcheck(const OpCase& c) {
  ASSERT_TRUE(c.gradcheck.has_value()) << c.name;
  const GradcheckSpec& spec = *c.gradcheck;
  OpRun run = spec.make();
  if (::testing::Test::HasFatalFailure()) return;
  OpTensors& t = run.t;
  std::function<double()> loss;
  Tensor dy;
  if (run.loss) {
    ASSERT_TRUE(run.y.empty()) << c.name << ": a scalar op has no output tensor";
    loss = run.loss;
  } else {
    const Tensor y = t[run.y];
    const Tensor r = t.zeros("r (projection)", y.shape());
    seed_projection(r, spec.projection_seed);
    dy = r;
    loss = [&run, y, r] {
      run.forward();
      return project(y, r) + (run.extra_loss ? run.extra_loss() : 0.0);
    };
  }
  if (run.loss)
    run.forward();
  else
    loss();
  if (::testing::Test::HasFatalFailure()) return;
  if (c.reference) {
    const TensorBuffer want = c.reference->output(t);
    expect_close(c.name + " y vs reference", t[run.y], want, c.reference->rtol, c.reference->atol);
  }
  run.backward(dy);
  std::vector<GradTarget> targets;
  for (const std::string& name : run.targets)
    targets.push_back({"d" + name, t[name], t["d" + name]});
  if (::testing::Test::HasFailure()) return;
  expect_gradients_match(loss, targets, spec.tolerance);
  if (run.after) run.after();
}

void run_golden(const OpCase& c) {
  ASSERT_TRUE(c.golden.has_value()) << c.name;
  const GoldenSpec& spec = *c.golden;
  Fixture f(spec.fixture);
  ASSERT_TRUE(f.ok());
  OpRun run = spec.make(f);
  if (::testing::Test::HasFatalFailure()) return;
  run.forward();
  if (::testing::Test::HasFatalFailure()) return;
  TensorBuffer dy;
  if (!spec.dy.empty()) dy = f.get(spec.dy);
  run.backward(dy);
  std::vector<GoldenCompare> compare = spec.compare;
  compare.insert(compare.end(), run.compare.begin(), run.compare.end());
  for (const GoldenCompare& k : compare) {
    const std::string& expected = k.expected.empty() ? k.key : k.expected;
    expect_close(k.key, run.t[k.key], f.get(expected), k.rtol, k.atol);
  }
  if (run.after) run.after();
}

}  // namespace moe::testing
