// Warm starts (warm_start.h): which of a checkpoint's parameters a new model can take over.
//
// An end of the network keeps its meaning when the data's ids at that end name the same things:
// the same encoded feature names in the same order (tabular), the same vocabulary (text), the
// same image size, the same tokenizer (by its hash), the same classes in the same order or the
// same regression targets. Statistics that only rescale (column means, idf weights, target
// standardisation) may differ: the trained weights still apply and training adapts them.
#include "moe/train/warm_start.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "moe/train/checkpoint.h"
#include "moe/train/config.h"
#include "moe/train/freeze.h"

namespace moe {

namespace {

// What the data's input ids name, and a few words for a message when they differ.
struct EndMeaning {
  nlohmann::json ids;
  std::string what;
};

EndMeaning input_meaning(const DataSchema& s) {
  switch (s.format) {
    case DataFormat::kCsv:
    case DataFormat::kTsv:
      return {s.features ? nlohmann::json(s.features->feature_names()) : nlohmann::json(),
              "feature columns or categories"};
    case DataFormat::kText:
      return {s.text ? nlohmann::json{s.text->words(), s.text->n_features()} : nlohmann::json(),
              "text vocabulary"};
    case DataFormat::kIdx:
      return {s.image_size, "image size"};
    case DataFormat::kCorpus:
    case DataFormat::kPairs:
      return {s.tokenizer_fnv1a64, "tokenizer"};
  }
  return {};
}

EndMeaning output_meaning(const DataSchema& s) {
  if (s.format == DataFormat::kCorpus || s.format == DataFormat::kPairs)
    return {s.tokenizer_fnv1a64, "tokenizer"};
  if (s.labels.task == TaskKind::kClassification)
    return {nlohmann::json{"classes", s.labels.class_names}, "classes"};
  return {nlohmann::json{"targets", s.labels.columns}, "regression targets"};
}

// Why parameter `end` cannot be loaded as it is ("" when it can): an end whose meaning changed.
std::string end_changed(ParamEnd end, bool inputs_same, bool outputs_same,
                        const std::string& inputs_what, const std::string& outputs_what) {
  const bool input = end == ParamEnd::kInput || end == ParamEnd::kBoth;
  const bool output = end == ParamEnd::kOutput || end == ParamEnd::kBoth;
  if (output && !outputs_same) return fmt::format("the outputs differ ({})", outputs_what);
  if (input && !inputs_same) return fmt::format("the inputs differ ({})", inputs_what);
  return "";
}

// Sparse upcycling: the dense FFN parameter an expert's parameter starts from, when the
// checkpoint has a dense FFN where this model has an MoE layer ("blocks.2.moe.experts.5.w1" ->
// "blocks.2.ffn.w1"); "" when the name is not an expert's.
std::string upcycle_source(const std::string& name) {
  const std::string marker = ".moe.experts.";
  const size_t at = name.find(marker);
  if (at == std::string::npos) return "";
  const size_t e_end = name.find('.', at + marker.size());
  if (e_end == std::string::npos) return "";
  return name.substr(0, at) + ".ffn" + name.substr(e_end);
}

// The sigmoid gates' selection biases of the routers whose weights were loaded.
Status carry_gate_states(Model& model, const Model& from, const WarmStartReport& report) {
  std::vector<GateState> now = model.gate_states();
  const std::vector<GateState> then = from.gate_states();
  for (GateState& g : now) {
    const bool loaded =
        std::find(report.loaded.begin(), report.loaded.end(), g.name + ".w") != report.loaded.end();
    if (!loaded) continue;
    for (const GateState& t : then)
      if (t.name == g.name && t.bias.size() == g.bias.size()) g.bias = t.bias;
  }
  return model.set_gate_states(now);
}

// Appends "key (old, now new)" for each key under `key` whose value differs between `a` and `b`;
// objects are compared key by key, anything else (an array included) as one value.
void differences(const std::string& key, const nlohmann::json& a, const nlohmann::json& b,
                 std::vector<std::string>* out) {
  if (a.is_object() && b.is_object()) {
    for (const auto& [k, v] : a.items())
      differences(fmt::format("{}.{}", key, k), v, b.contains(k) ? b.at(k) : nlohmann::json(), out);
    for (const auto& [k, v] : b.items())
      if (!a.contains(k)) differences(fmt::format("{}.{}", key, k), nlohmann::json(), v, out);
  } else if (a != b) {
    out->push_back(fmt::format("{} ({}, now {})", key, a.is_null() ? "absent" : a.dump(),
                               b.is_null() ? "absent" : b.dump()));
  }
}

// The model keys whose values differ between the checkpoint's config and this model's, as
// "model.lm.heads (4, now 8)": a change of shape shows in the parameters, but not one of meaning
// over the same shapes (heads over the same width, another activation).
std::vector<std::string> model_differences(const ModelConfig& then, const ModelConfig& now) {
  Config a, b;
  a.model = then;
  b.model = now;
  std::vector<std::string> out;
  differences("model", config_to_json(a)["model"], config_to_json(b)["model"], &out);
  return out;
}

}  // namespace

Result<Checkpoint> load_init_checkpoint(const std::string& dir) {
  Result<Checkpoint> loaded = load_checkpoint(dir);
  if (!loaded) return loaded.status().with_context("training.init");
  return loaded;
}

Result<WarmStartReport> warm_start(Model& model, const DataSchema& schema, const std::string& dir,
                                   const std::vector<std::string>& exclude) {
  MOE_ASSIGN_OR_RETURN(const Checkpoint ck, load_init_checkpoint(dir));
  return warm_start(model, schema, ck, dir, exclude);
}

Result<WarmStartReport> warm_start(Model& model, const DataSchema& schema, const Checkpoint& ck,
                                   const std::string& dir,
                                   const std::vector<std::string>& exclude) {
  MOE_TRY(check_param_patterns(model.params(), exclude, "training.init_exclude"));
  const EndMeaning in_now = input_meaning(schema), in_then = input_meaning(ck.schema);
  const EndMeaning out_now = output_meaning(schema), out_then = output_meaning(ck.schema);
  const bool inputs_same = schema.format == ck.schema.format && in_now.ids == in_then.ids;
  const bool outputs_same =
      schema.labels.task == ck.schema.labels.task && out_now.ids == out_then.ids;

  std::unordered_map<std::string, Tensor> theirs;
  for (const NamedTensor& t : ck.model->named_parameters()) theirs.emplace(t.name, t.tensor);

  WarmStartReport r;
  r.from = dir;
  ParamStore& store = model.params();
  std::vector<std::pair<Tensor, Tensor>> copies;  // (into, from), applied once all is checked
  for (ParamId id = 0; id < store.size(); ++id) {
    const ParamInfo& p = store.info(id);
    r.total_elements += p.shape.numel();
    const auto it = theirs.find(p.name);
    const bool excluded = std::any_of(exclude.begin(), exclude.end(), [&](const std::string& g) {
      return param_name_matches(g, p.name);
    });
    if (excluded) {
      r.reinitialised.push_back({p.name, "excluded by training.init_exclude"});
      continue;
    }
    if (it == theirs.end()) {
      const auto dense = theirs.find(upcycle_source(p.name));
      if (dense != theirs.end() && dense->second.shape() == p.shape) {
        copies.emplace_back(store.value(id), dense->second);
        r.upcycled.push_back({p.name, dense->first});
        r.loaded_elements += p.shape.numel();
        continue;
      }
      r.reinitialised.push_back({p.name, "new in this model"});
      continue;
    }
    const std::string changed =
        end_changed(model.param_end(p.name), inputs_same, outputs_same, in_now.what, out_now.what);
    if (!changed.empty()) {
      r.reinitialised.push_back({p.name, changed});
    } else if (it->second.shape() != p.shape) {
      return Status::error(
          "training.init: {}: cannot warm-start from this checkpoint: {} is {} there but {} in "
          "this model; only parameters new to the model or serving changed inputs or outputs may "
          "differ (the model's widths must be the checkpoint's: model.* in {}/{})",
          dir, p.name, it->second.shape().str(), p.shape.str(), dir, kCheckpointJsonFile);
    } else {
      copies.emplace_back(store.value(id), it->second);
      r.loaded.push_back(p.name);
      r.loaded_elements += p.shape.numel();
    }
  }
  for (const NamedTensor& t : ck.model->named_parameters()) {
    const bool upcycled = std::any_of(r.upcycled.begin(), r.upcycled.end(),
                                      [&](const auto& u) { return u.second == t.name; });
    if (store.find(t.name) < 0 && !upcycled) r.ignored.push_back(t.name);
  }
  if (r.loaded.empty() && r.upcycled.empty())
    return Status::error(
        "training.init: {}: cannot warm-start from this checkpoint: it shares no parameter this "
        "model can take (names and shapes differ, or its only matches serve inputs or outputs "
        "that changed)",
        dir);
  for (const auto& [into, from] : copies)
    std::memcpy(into.f32(), from.f32(), static_cast<size_t>(from.numel()) * sizeof(float));
  MOE_TRY(carry_gate_states(model, *ck.model, r));
  r.model_differences = model_differences(ck.config.model, model.config());
  return r;
}

std::string WarmStartReport::to_text() const {
  const size_t total = loaded.size() + upcycled.size() + reinitialised.size();
  std::string s = fmt::format(
      "warm start from {}: {} of {} parameter tensors loaded{} ({} of {} values), {} "
      "reinitialised, {} of the checkpoint's ignored\n",
      from, loaded.size() + upcycled.size(), total,
      upcycled.empty() ? "" : fmt::format(", {} of them upcycled", upcycled.size()),
      loaded_elements, total_elements, reinitialised.size(), ignored.size());
  if (!upcycled.empty()) {
    // One line per dense FFN: which experts start as its copies.
    std::vector<std::string> sources;
    for (const auto& [expert, dense] : upcycled)
      if (std::find(sources.begin(), sources.end(), dense) == sources.end())
        sources.push_back(dense);
    size_t n_experts_each = upcycled.size() / std::max<size_t>(sources.size(), 1);
    s += fmt::format(
        "  upcycled (sparse upcycling: every expert a copy of the dense FFN): {} "
        "dense parameter tensors into {} expert tensors ({} each)\n",
        sources.size(), upcycled.size(), n_experts_each);
  }
  for (size_t i = 0; i < reinitialised.size();) {
    size_t j = i + 1;
    while (j < reinitialised.size() && reinitialised[j].why == reinitialised[i].why) ++j;
    std::vector<std::string> names;
    for (size_t k = i; k < j; ++k) names.push_back(reinitialised[k].name);
    s += fmt::format("  reinitialised, {}: {}\n", reinitialised[i].why, fmt::join(names, ", "));
    i = j;
  }
  if (!ignored.empty())
    s += fmt::format("  ignored (not in this model): {}\n", fmt::join(ignored, ", "));
  if (!model_differences.empty())
    s += fmt::format("  the model differs from the checkpoint's in {}\n",
                     fmt::join(model_differences, ", "));
  return s;
}

nlohmann::ordered_json WarmStartReport::to_json() const {
  nlohmann::ordered_json re = nlohmann::ordered_json::array();
  for (const Reinitialised& x : reinitialised) re.push_back({{"name", x.name}, {"why", x.why}});
  nlohmann::ordered_json up = nlohmann::ordered_json::array();
  for (const auto& [expert, dense] : upcycled) up.push_back({{"name", expert}, {"from", dense}});
  return {{"from", from},
          {"loaded", loaded},
          {"upcycled", up},
          {"reinitialised", re},
          {"ignored", ignored},
          {"model_differences", model_differences},
          {"loaded_values", loaded_elements},
          {"total_values", total_elements}};
}

}  // namespace moe
