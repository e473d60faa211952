// ModelConfig's derived quantities: the MoE layer a block builds, its slots per token, and the
// dense FFN of equal active size (model/model_config.h).
#include "moe/model/model_config.h"

#include <algorithm>
#include <cmath>

namespace moe {

MoeConfig moe_layer_config(const MoeBlockConfig& b, int64_t width) {
  MoeConfig m;
  m.d_model = width;
  m.experts = b.routed_experts();
  m.shared = repeat_experts(b.shared, b.n_shared);
  m.gate = b.gate;
  m.gate.d_model = width;
  m.gate.n_experts = b.n_groups > 0 ? b.n_experts / b.n_groups : b.n_experts;
  m.hierarchy.n_groups = b.n_groups;
  m.precision = b.precision;
  m.expert_parallel = b.expert_parallel;
  if (b.n_groups > 0) {
    m.hierarchy.top = b.top_gate;
    m.hierarchy.top.d_model = width;
    m.hierarchy.top.n_experts = b.n_groups;
  }
  return m;
}

std::vector<ExpertConfig> MoeBlockConfig::routed_experts() const {
  return expert_list.empty() ? repeat_experts(expert, n_experts) : expert_list;
}

double moe_slots_per_token(const MoeBlockConfig& c) {
  const auto slots = [](const GateConfig& g, int64_t n_experts) -> double {
    if (g.kind == GateKind::kExpertChoice)
      return g.capacity_factor > 0 ? static_cast<double>(g.capacity_factor) : 1.0;
    GateConfig sized = g;
    sized.n_experts = n_experts;
    return static_cast<double>(gate_slots_per_token(sized));
  };
  if (c.n_groups > 0)
    return slots(c.top_gate, c.n_groups) * slots(c.gate, c.n_experts / c.n_groups);
  return slots(c.gate, c.n_experts);
}

ExpertConfig dense_equivalent(const MoeBlockConfig& c) {
  const std::vector<ExpertConfig> routed = c.routed_experts();
  double hidden_sum = 0;
  for (const ExpertConfig& e : routed) hidden_sum += static_cast<double>(e.hidden);
  ExpertConfig d = routed.front();
  const double mean_hidden = hidden_sum / static_cast<double>(routed.size());
  d.hidden = std::llround(std::max(1.0, moe_slots_per_token(c)) * mean_hidden) +
             c.n_shared * c.shared.hidden;
  return d;
}

}  // namespace moe
