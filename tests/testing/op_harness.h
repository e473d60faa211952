// One harness for every op, in the spirit of ggml's test-backend-ops: an op registers an OpCase
// (how to build it on seeded random tensors, how to build it on a PyTorch fixture, which inputs
// and parameters to check, which tensors to compare and how closely) and one driver per label
// runs every registered case (tests/ops/ops_gradcheck.cpp, tests/ops/ops_golden.cpp).
//
// The op is bound to its tensors in an OpRun: `forward` computes its outputs from the current
// values, `backward` gets the upstream gradient dL/dy and writes the gradients of its inputs and
// accumulates those of its parameters. The gradient of the tensor named "x" is named "dx".
//
// Gradient check: L = Σ r ⊙ y with fixed N(0, 1) weights r (seeded by `projection_seed`), one
// backward with dy = r, then every target against central differences of L (testing/gradcheck.h).
// An op whose output is a scalar in double (a loss, a gate's weighted slots) sets `loss` (which
// recomputes L from the current values) and clears `y`; its backward then gets an empty dy.
// Either way the driver runs `forward` once before `backward`.
// Golden: forward, backward with the fixture's upstream gradient, then every compared tensor
// against the fixture's tensor of the same key.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "moe/core/tensor.h"
#include "testing/fixtures.h"
#include "testing/gradcheck.h"

namespace moe::testing {

// The tensors of one op instance by name: inputs, parameters, outputs and gradients. Owns what is
// added as a buffer; a view of a tensor owned elsewhere (a ParamStore's parameter) can be added.
class OpTensors {
 public:
  Tensor add(const std::string& name, TensorBuffer t);
  Tensor add_view(const std::string& name, Tensor t);
  Tensor zeros(const std::string& name, Shape shape, DType dtype = DType::kF32);
  // A zero tensor shaped and typed like the tensor `like`.
  Tensor zeros_like(const std::string& name, const std::string& like);
  // The fixture's tensor `key` (by default `name`) under `name`.
  Tensor load(const Fixture& f, const std::string& name, const std::string& key = "");
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Fails the test and returns an empty tensor if absent.
  Tensor operator[](const std::string& name) const;

 private:
  std::map<std::string, Tensor> tensors_;
  std::vector<TensorBuffer> owned_;
};

// {"y"}: the run's y against the fixture's y; {"dW", "dw"}: the run's dW against the fixture's dw.
struct GoldenCompare {
  GoldenCompare(std::string key, std::string expected = "", double rtol = 1e-5, double atol = 1e-6)
      : key(std::move(key)), expected(std::move(expected)), rtol(rtol), atol(atol) {}
  std::string key;       // the tensor in the run
  std::string expected;  // the fixture's tensor; "" when it has the same key
  double rtol;
  double atol;
};

// One op bound to its tensors, as a case builds it for one driver.
struct OpRun {
  OpTensors t;
  std::function<void()> forward;            // current inputs → outputs in t
  std::function<void(Tensor dy)> backward;  // dL/dy → gradients in t (dy empty: scalar ops)
  std::string y = "y";                      // the output dy flows into; "" for a scalar op
  std::function<double()> loss;             // scalar ops: L recomputed from the current values
  std::function<double()> extra_loss;       // optional: added to Σ r ⊙ y (auxiliary losses)
  std::vector<std::string> targets;         // gradient check: inputs and parameters perturbed
  std::vector<GoldenCompare> compare;       // golden: compared besides the spec's list
  std::function<void()> after;              // optional checks once the gradients are compared
  std::shared_ptr<void> state;              // what the closures point into (a gate, a layer)
};

struct GradcheckSpec {
  std::function<OpRun()> make;  // seeded random inputs and parameters
  uint64_t projection_seed = 0;
  GradCheckOptions tolerance = {};
};

struct GoldenSpec {
  std::string fixture;                          // tests/golden/fixtures/<fixture>.safetensors
  std::function<OpRun(const Fixture& f)> make;  // inputs and parameters from the fixture
  std::string dy = "dy";                        // the fixture's upstream gradient ("" scalar)
  std::vector<GoldenCompare> compare;
};

// A naive reference of the forward output, from the run's inputs; the gradient-check driver
// compares it with `y` before checking gradients.
struct ReferenceSpec {
  std::function<TensorBuffer(const OpTensors& t)> output;
  double rtol = 1e-5;
  double atol = 1e-5;
};

struct OpCase {
  std::string name;  // the test's name: letters, digits and '_' only
  std::optional<GradcheckSpec> gradcheck;
  std::optional<GoldenSpec> golden;
  std::optional<ReferenceSpec> reference;
};

// What the drivers run for one case.
void run_gradcheck(const OpCase& c);
void run_golden(const OpCase& c);

}  // namespace moe::testing
