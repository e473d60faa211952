// Gate kinds not built yet: each fails loudly if used.
#include "gate_internal.h"

namespace moe::gate_detail {

#define MOE_GATE_PENDING(name) MOE_CHECK(false, "gate kind {} is not built yet", name)

float gumbel_temperature(const GateConfig& c, int64_t) {
  return c.tau_start;
}
void gumbel_forward(GateState&, const GateInput&, Arena&, RoutingPlan*) {
  MOE_GATE_PENDING("gumbel");
}
void gumbel_backward(const GateState&, const RoutingPlan&, const float*, const GateGrads&) {}
void noisy_forward(GateState&, const GateInput&, Arena&, RoutingPlan*) {
  MOE_GATE_PENDING("noisy");
}
void noisy_backward(const GateState&, const RoutingPlan&, const float*, const GateGrads&) {}
double noisy_load_loss(const GateState&, const RoutingPlan&, Arena&) {
  return 0.0;
}
void noisy_load_loss_backward(const GateState&, const RoutingPlan&, float, const GateGrads&,
                              Arena&) {}
void sigmoid_forward(GateState&, RoutingPlan*) {
  MOE_GATE_PENDING("sigmoid");
}
void sigmoid_backward(const GateState&, const RoutingPlan&, const float*, const GateGrads&) {}
void sigmoid_after_step(GateState&, const RoutingPlan&) {}
void expert_choice_forward(GateState&, Arena&, RoutingPlan*) {
  MOE_GATE_PENDING("expert choice");
}
void expert_choice_backward(const GateState&, const RoutingPlan&, const float*, const GateGrads&) {}
void hash_forward(const GateState&, const GateInput&, RoutingPlan*) {
  MOE_GATE_PENDING("hash");
}
void sinkhorn_forward(GateState&, Arena&, RoutingPlan*) {
  MOE_GATE_PENDING("sinkhorn");
}
void sinkhorn_backward(const GateState&, const RoutingPlan&, const float*, const GateGrads&) {}

}  // namespace moe::gate_detail
