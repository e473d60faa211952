// Finite-difference gradient checking for every layer, loss and gate.
//
// The function under test is reduced to a scalar L = Σ_i r_i · y_i with fixed random weights r
// (seed_projection), so one backward with dy = r gives the analytic gradient of L with respect to
// every input and parameter. Each checked element is perturbed by ±eps and compared with the
// central difference (L(x+eps) − L(x−eps)) / 2eps, computed in double from the float forward.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/core/tensor.h"

namespace moe::testing {

struct GradTarget {
  std::string name;  // printed in failure messages: "dx", "dW_up", ...
  Tensor value;      // perturbed in place (and restored)
  Tensor grad;       // the analytic gradient of L with respect to value
};

struct GradCheckOptions {
  double eps = 1e-2;
  double atol = 2e-3;
  double rtol = 2e-2;
  int max_elements = 48;  // per target; elements are sampled evenly beyond this
};

// Fills r with fixed N(0, 1) weights and returns Σ r · y in double.
double project(Tensor y, Tensor r);
void seed_projection(Tensor r, uint64_t seed);

// Expects every gradient of a parameter `frozen` does not freeze to equal, bit for bit, the same
// parameter's gradient in `reference` (the same model with nothing frozen); returns how many
// were compared.
int64_t expect_unfrozen_gradients_equal(const ParamStore& reference, const ParamStore& frozen);

// `loss` must recompute L from the current contents of the targets' values. Reports every
// mismatch through GoogleTest with the target name, element index, analytic and numeric values.
void expect_gradients_match(const std::function<double()>& loss,
                            const std::vector<GradTarget>& targets, GradCheckOptions opts = {});

}  // namespace moe::testing
