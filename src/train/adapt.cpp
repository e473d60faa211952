// Adaptive experts (adapt.h).
#include "moe/train/adapt.h"

#include <algorithm>

#include <fmt/format.h>

namespace moe {

namespace {

// The config of MoE layer i of `model` (a language or translation model's may be shared by every
// layer).
const MoeBlockConfig& layer_config(const Model& model, int64_t i) {
  const ModelConfig& m = model.config();
  return m.language_model || m.translation_model ? m.lm_moe(i) : m.moe[static_cast<size_t>(i)];
}

size_t at(int64_t i) {
  return static_cast<size_t>(i);
}

std::string epochs(int64_t n) {
  return fmt::format("{} epoch{}", n, n == 1 ? "" : "s");
}

std::string percent(double v) {
  return fmt::format("{:.1f}%", 100.0 * v);
}

}  // namespace

ExpertAdapter::ExpertAdapter(const Model& model) {
  for (int64_t i = 0; i < model.n_moe_layers(); ++i) {
    if (!layer_config(model, i).adapt.enabled) continue;
    const auto e = at(model.moe_layer(i).n_experts());
    counts_[model.moe_layer_name(i)] = {std::vector<int64_t>(e, 0), std::vector<int64_t>(e, 0)};
  }
}

nlohmann::json ExpertAdapter::to_json() const {
  nlohmann::json counts = nlohmann::json::object(), pending = nlohmann::json::array();
  for (const auto& [name, c] : counts_) counts[name] = {{"over", c.over}, {"dead", c.dead}};
  for (const AdaptStep& p : pending_)
    pending.push_back({{"layer", p.layer},
                       {"op", enum_name(kExpertOpNames, p.surgery.op)},
                       {"expert", p.surgery.expert},
                       {"noise", p.surgery.noise},
                       {"why", p.why}});
  return {{"counts", counts}, {"pending", pending}};
}

Status ExpertAdapter::from_json(const nlohmann::json& j, const Model& model) {
  const ExpertAdapter fresh(model);
  const auto counts = j.find("counts");
  const auto pending = j.find("pending");
  if (!j.is_object() || counts == j.end() || !counts->is_object() || pending == j.end() ||
      !pending->is_array())
    return Status::error("adapt: expected an object with \"counts\" and \"pending\"");
  for (auto& [name, c] : counts_) {
    const auto it = counts->find(name);
    const size_t n = fresh.counts_.at(name).over.size();
    if (it == counts->end() || !it->is_object())
      return Status::error("adapt: no counts for the adapting layer {}", name);
    for (auto [key, v] : {std::pair{"over", &c.over}, std::pair{"dead", &c.dead}}) {
      const auto a = it->find(key);
      if (a == it->end() || !a->is_array() || a->size() != n)
        return Status::error("adapt.counts.{}.{}: expected {} counts, one per expert", name, key,
                             n);
      v->clear();
      for (const nlohmann::json& x : *a) {
        if (!x.is_number_integer() || x.get<int64_t>() < 0)
          return Status::error("adapt.counts.{}.{}: expected integers ≥ 0", name, key);
        v->push_back(x.get<int64_t>());
      }
    }
  }
  if (counts->size() != counts_.size())
    return Status::error("adapt: counts for {} layers, the model adapts {}", counts->size(),
                         counts_.size());
  pending_.clear();
  for (const nlohmann::json& p : *pending) {
    AdaptStep step;
    const auto layer = p.is_object() ? p.find("layer") : p.end();
    if (layer == p.end() || !layer->is_string() || !counts_.contains(layer->get<std::string>()))
      return Status::error("adapt.pending: a change names no adapting layer");
    step.layer = layer->get<std::string>();
    for (int64_t i = 0; i < model.n_moe_layers(); ++i)
      if (model.moe_layer_name(i) == step.layer) step.surgery.layer = i;
    const int64_t n = static_cast<int64_t>(counts_.at(step.layer).over.size());
    if (!p.contains("op") || !p["op"].is_string() ||
        !parse_enum_name(kExpertOpNames, p["op"].get<std::string>(), &step.surgery.op) ||
        !p.contains("expert") || !p["expert"].is_number_integer() ||
        p["expert"].get<int64_t>() < 0 || p["expert"].get<int64_t>() >= n || !p.contains("noise") ||
        !p["noise"].is_number() || !p.contains("why") || !p["why"].is_string())
      return Status::error("adapt.pending: a change of {} is malformed", step.layer);
    step.surgery.expert = p["expert"].get<int64_t>();
    step.surgery.noise = p["noise"].get<float>();
    step.why = p["why"].get<std::string>();
    pending_.push_back(std::move(step));
  }
  return Status::ok();
}

void ExpertAdapter::observe(const Model& model, const std::vector<ExpertLoad>& loads) {
  std::vector<AdaptStep>& steps = pending_;
  steps.clear();
  for (int64_t i = 0; i < model.n_moe_layers(); ++i) {
    const std::string& name = model.moe_layer_name(i);
    const auto c_it = counts_.find(name);
    const auto l_it = std::find_if(loads.begin(), loads.end(),
                                   [&](const ExpertLoad& l) { return l.layer == name; });
    if (c_it == counts_.end() || l_it == loads.end()) continue;
    Counts& c = c_it->second;
    const std::vector<double>& share = l_it->share;
    const AdaptConfig& a = layer_config(model, i).adapt;
    const auto e_n = static_cast<int64_t>(share.size());
    if (at(e_n) != c.over.size()) continue;  // a programmer error: counts follow every change
    const double mean = 1.0 / static_cast<double>(e_n);
    int64_t split = -1, remove = -1;
    for (int64_t e = 0; e < e_n; ++e) {
      c.over[at(e)] = share[at(e)] > a.split_above * mean ? c.over[at(e)] + 1 : 0;
      c.dead[at(e)] = share[at(e)] < a.remove_below * mean ? c.dead[at(e)] + 1 : 0;
      if (c.over[at(e)] >= a.epochs && (split < 0 || share[at(e)] > share[at(split)])) split = e;
      if (c.dead[at(e)] >= a.epochs && (remove < 0 || share[at(e)] < share[at(remove)])) remove = e;
    }
    const GateConfig& g = model.moe_layer(i).config().gate;
    const bool uses_k = g.kind == GateKind::kTopKSoftmax || g.kind == GateKind::kNoisyTopK ||
                        g.kind == GateKind::kSigmoidBias || g.kind == GateKind::kSinkhorn;
    AdaptStep step;
    step.layer = name;
    step.surgery.layer = i;
    if (split >= 0 && e_n < a.max_experts) {
      step.surgery.op = ExpertOp::kSplit;
      step.surgery.expert = split;
      step.surgery.noise = a.noise;
      step.why =
          fmt::format("it held over {} × the mean share ({}) for {}, {} this epoch", a.split_above,
                      percent(mean), epochs(c.over[at(split)]), percent(share[at(split)]));
    } else if (remove >= 0 && e_n > a.min_experts && (!uses_k || g.k <= e_n - 1)) {
      step.surgery.op = ExpertOp::kRemove;
      step.surgery.expert = remove;
      step.why = fmt::format("it held under {} × the mean share ({}) for {}, {} this epoch",
                             a.remove_below, percent(mean), epochs(c.dead[at(remove)]),
                             percent(share[at(remove)]));
    } else {
      continue;
    }
    steps.push_back(std::move(step));
  }
}

std::vector<AdaptStep> ExpertAdapter::take_pending() {
  std::vector<AdaptStep> out = std::move(pending_);
  pending_.clear();
  return out;
}

void ExpertAdapter::changed(const AdaptStep& step) {
  Counts& c = counts_.at(step.layer);
  const auto e = at(step.surgery.expert);
  if (step.surgery.op == ExpertOp::kSplit) {
    c.over[e] = c.dead[e] = 0;
    c.over.push_back(0);
    c.dead.push_back(0);
  } else if (step.surgery.op == ExpertOp::kRemove) {
    c.over.erase(c.over.begin() + static_cast<std::ptrdiff_t>(e));
    c.dead.erase(c.dead.begin() + static_cast<std::ptrdiff_t>(e));
  }
}

}  // namespace moe
