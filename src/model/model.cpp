// What every kind of model shares (see include/moe/model/model.h): the registered MoE layers'
// losses, after-step updates and gate states, parameter counts, and the choice of kind.
//
// Dims: E experts of a MoE layer.
#include "moe/model/model.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include <fmt/format.h>

#include "moe/core/check.h"
#include "moe/model/lm_model.h"
#include "moe/model/row_model.h"
#include "moe/model/translation_model.h"

namespace moe {

Result<std::unique_ptr<Model>> Model::create(const ModelConfig& config, const DataShape& shape) {
  // Token windows make a language model, sentence pairs a translation model; rows (tabular, text
  // bags, images) a classifier or regressor.
  if (shape.input == FeatureKind::kPairs) {
    MOE_ASSIGN_OR_RETURN(std::unique_ptr<TranslationModel> model,
                         TranslationModel::create(config, shape));
    return std::unique_ptr<Model>(std::move(model));
  }
  if (shape.input == FeatureKind::kTokens) {
    MOE_ASSIGN_OR_RETURN(std::unique_ptr<LmModel> model, LmModel::create(config, shape));
    return std::unique_ptr<Model>(std::move(model));
  }
  MOE_ASSIGN_OR_RETURN(std::unique_ptr<RowModel> model, RowModel::create(config, shape));
  return std::unique_ptr<Model>(std::move(model));
}

Model::Model(ModelConfig config, DataShape shape) : config_(std::move(config)), shape_(shape) {}
Model::~Model() = default;

void Model::add_moe_layer(std::string name, int64_t block, MoeLayer* layer,
                          double slots_per_token) {
  moe_.push_back({std::move(name), block, layer, slots_per_token});
}

const Model::MoeSite& Model::site(int64_t i) const {
  MOE_CHECK(i >= 0 && i < n_moe_layers(), "MoE layer {} of {}", i, n_moe_layers());
  return moe_[static_cast<size_t>(i)];
}

const MoeLayer& Model::moe_layer(int64_t i) const {
  return *site(i).layer;
}
const std::string& Model::moe_layer_name(int64_t i) const {
  return site(i).name;
}
int64_t Model::moe_layer_block(int64_t i) const {
  return site(i).block;
}

void Model::set_aux_grad_scale(float scale) {
  for (const MoeSite& s : moe_) s.layer->set_aux_grad_scale(scale);
}

double Model::expert_exchange_seconds() const {
  double s = 0.0;
  for (const MoeSite& site : moe_) s += site.layer->stage_times().exchange;
  return s;
}

void Model::set_expert_parallel(Communicator* comm) {
  for (const MoeSite& s : moe_) s.layer->set_expert_parallel(comm);
}

void Model::after_step(const LoadSum& sum_loads) {
  for (const MoeSite& s : moe_) s.layer->after_step(sum_loads);
}

double Model::aux_loss() const {
  double total = 0.0;
  for (const MoeSite& s : moe_) total += s.layer->aux_loss();
  return total;
}

int64_t Model::n_params() const {
  return store_.n_elements();
}

int64_t Model::n_active_params() const {
  double active = static_cast<double>(store_.n_elements());
  for (const MoeSite& s : moe_) {
    MoeLayer& m = *s.layer;  // expert() has no const overload
    double routed = 0.0;
    for (int64_t e = 0; e < m.n_experts(); ++e)
      routed += static_cast<double>(m.expert(e).n_params());
    const double mean = routed / static_cast<double>(m.n_experts());
    active += s.slots_per_token * mean - routed;
  }
  return std::llround(active);
}

std::vector<NamedTensor> Model::named_parameters() const {
  std::vector<NamedTensor> out;
  out.reserve(static_cast<size_t>(store_.size()));
  for (ParamId id = 0; id < store_.size(); ++id)
    out.push_back({store_.info(id).name, store_.value(id)});
  return out;
}

std::vector<GateState> Model::gate_states() const {
  std::vector<GateState> out;
  const auto record = [&](const Gate& g, std::string name) {
    GateState s;
    s.name = std::move(name);
    s.step = g.step();
    const Tensor bias = g.bias();
    if (!bias.empty()) s.bias.assign(bias.f32(), bias.f32() + bias.numel());
    out.push_back(std::move(s));
  };
  for (const MoeSite& s : moe_) {
    record(s.layer->gate(), s.name + ".router");
    for (int64_t g = 0; g < s.layer->n_groups(); ++g)
      record(s.layer->group_gate(g), fmt::format("{}.groups.{}.router", s.name, g));
  }
  return out;
}

Status Model::set_gate_states(const std::vector<GateState>& states) {
  // Every gate exactly once, by name; validate everything before changing anything.
  std::vector<std::pair<Gate*, const GateState*>> plan;
  const auto match = [&](Gate& g, const std::string& name) -> Status {
    const GateState* found = nullptr;
    for (const GateState& s : states) {
      if (s.name != name) continue;
      if (found != nullptr) return Status::error("gate state {}: given twice", name);
      found = &s;
    }
    if (found == nullptr) return Status::error("gate state {}: missing", name);
    if (found->step < 0) return Status::error("gate state {}: step {} < 0", name, found->step);
    const int64_t n_bias = g.bias().empty() ? 0 : g.bias().numel();
    if (static_cast<int64_t>(found->bias.size()) != n_bias)
      return Status::error("gate state {}: bias of {} values, the gate has {}", name,
                           found->bias.size(), n_bias);
    for (float v : found->bias)
      if (!std::isfinite(v)) return Status::error("gate state {}: bias not finite", name);
    plan.emplace_back(&g, found);
    return Status::ok();
  };
  for (const MoeSite& s : moe_) {
    MOE_TRY(match(s.layer->gate(), s.name + ".router"));
    for (int64_t g = 0; g < s.layer->n_groups(); ++g)
      MOE_TRY(match(s.layer->group_gate(g), fmt::format("{}.groups.{}.router", s.name, g)));
  }
  if (plan.size() != states.size()) {
    for (const GateState& s : states) {
      bool used = false;
      for (const auto& [g, st] : plan) used = used || st == &s;
      if (!used) return Status::error("gate state {}: the model has no such gate", s.name);
    }
  }
  for (const auto& [g, s] : plan) {
    g->set_state(s->step);
    if (!s->bias.empty()) std::copy(s->bias.begin(), s->bias.end(), g->bias().f32());
  }
  return Status::ok();
}

}  // namespace moe
