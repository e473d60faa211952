// The report's plain-language verdict (report.h): balance, dead experts and specialisation per
// MoE layer, how the load moved over training, and the run's result.
//
// Dims: N epochs, E experts, K experts per row.
//
// Load statistics follow the inspector's definitions (docs/inspect.md): the coefficient of
// variation CV = std(load) / mean(load) over the E shares (Shazeer et al. 2017 balance on the
// CV), a dead expert gets under 1/(10E) of the slots, and the effective number of experts is
// exp(H(load)), the perplexity of the load distribution (1 when one expert takes everything, E
// when the load is uniform).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "moe/report/report.h"
#include "moe/report/svg.h"

namespace moe::report {

namespace {

struct LayerView {
  std::string name;
  int64_t k = 1;
  size_t n_experts = 0;  // E
  LoadAssessment load;
  std::vector<int64_t> silent;  // from inspect.json
  double mi = NAN;
  double mi_max = NAN;
  double entropy_mean = NAN;  // mean per-row gate entropy (nats)
  double entropy_max = NAN;   // ln E
};

int64_t config_k(const RunData& run) {
  if (!run.config) return 1;
  const nlohmann::json& c = *run.config;
  if (c.contains("model") && c["model"].is_object() && c["model"].contains("moe") &&
      c["model"]["moe"].is_object() && c["model"]["moe"].contains("k") &&
      c["model"]["moe"]["k"].is_number_integer()) {
    return std::max<int64_t>(1, c["model"]["moe"]["k"].get<int64_t>());
  }
  return 1;
}

std::string id_list(const std::vector<int64_t>& ids) {
  std::string s;
  const size_t shown = std::min<size_t>(ids.size(), 8);
  for (size_t i = 0; i < shown; ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
  if (shown < ids.size()) s += fmt::format(" and {} more", ids.size() - shown);
  return s;
}

// The layers to judge: inspect.json's when present (the best model on held-out data), else the
// last epoch's load from metrics.jsonl.
std::vector<LayerView> layer_views(const RunData& run) {
  std::vector<LayerView> views;
  if (run.inspect) {
    for (const InspectLayer& l : run.inspect->layers) {
      LayerView v;
      v.name = l.display_name();
      v.k = l.k > 0 ? l.k : config_k(run);
      v.n_experts = l.load.size();
      v.load = assess_load(l.load, v.k, l.collapsed);
      if (!l.dead.empty()) v.load.dead = l.dead;
      v.silent = l.silent;
      v.mi = l.mutual_information;
      v.mi_max = l.mutual_information_max;
      v.entropy_mean = l.entropy_mean;
      v.entropy_max = l.entropy_max;
      views.push_back(std::move(v));
    }
  } else if (run.epochs && !run.epochs->empty()) {
    for (const auto& [name, load] : run.epochs->back().expert_load) {
      LayerView v;
      v.name = name;
      v.k = config_k(run);
      v.n_experts = load.size();
      v.load = assess_load(load, v.k);
      views.push_back(std::move(v));
    }
  }
  return views;
}

std::string layer_sentence(const LayerView& v) {
  const size_t n_experts = v.n_experts;
  const LoadAssessment& a = v.load;
  std::string s;
  switch (a.balance) {
    case Balance::kBalanced:
      s = fmt::format(
          "{} is balanced: the load over its {} experts has a CV of {} and the busiest "
          "expert takes {}x the mean share",
          v.name, n_experts, format_number(a.cv), format_number(a.max_over_mean));
      break;
    case Balance::kImbalanced:
      s = fmt::format(
          "{} is imbalanced: the load over its {} experts has a CV of {} (balanced is "
          "at most {}) and the busiest expert takes {}x the mean share",
          v.name, n_experts, format_number(a.cv), format_number(kBalancedCv),
          format_number(a.max_over_mean));
      break;
    case Balance::kCollapsed:
      s = fmt::format(
          "{} has collapsed: its slots go to about {} effective experts of its {} (exp of "
          "the load's entropy; top-{} routing uses at least {})",
          v.name, fmt::format("{:.1f}", a.effective_experts), n_experts, v.k, v.k);
      break;
  }
  if (a.dead.empty()) {
    s += "; no expert is dead.";
  } else {
    s += fmt::format("; {} dead expert{} ({}) receive{} under 1/(10E) of the slots.", a.dead.size(),
                     a.dead.size() == 1 ? "" : "s", id_list(a.dead), a.dead.size() == 1 ? "s" : "");
  }
  if (!v.silent.empty()) {
    const bool one = v.silent.size() == 1;
    s += fmt::format(
        " {} of its experts ({}) {} silent: {} rows but {} under 1% of the largest expert's "
        "output (weights decayed to zero, typically), so the layer is narrower than its load "
        "suggests.",
        v.silent.size(), id_list(v.silent), one ? "is" : "are",
        one ? "it receives" : "they receive", one ? "returns" : "return");
  }
  return s;
}

// How sure the gate is per row: its mean entropy against the uniform gate's ln E.
std::string confidence_sentence(const LayerView& v) {
  if (!std::isfinite(v.entropy_mean) || !std::isfinite(v.entropy_max) || v.entropy_max <= 0.0)
    return "";
  const double share = v.entropy_mean / v.entropy_max;
  if (share >= kUndecidedGate) {
    return fmt::format(
        "The gate of {} is nearly undecided: its mean per-row entropy is {} of at "
        "most {} nats, so the chosen experts win by small margins.",
        v.name, format_number(v.entropy_mean), format_number(v.entropy_max));
  }
  if (share <= kConfidentGate) {
    return fmt::format(
        "The gate of {} is confident: its mean per-row entropy is {} of at most {} "
        "nats.",
        v.name, format_number(v.entropy_mean), format_number(v.entropy_max));
  }
  return "";
}

std::string specialisation_sentence(const LayerView& v) {
  if (!std::isfinite(v.mi) || !std::isfinite(v.mi_max)) return "";
  if (v.mi_max <= 0.0) {
    return fmt::format(
        "In {}, expert choice cannot tell the classes apart (the maximum mutual "
        "information is 0).",
        v.name);
  }
  const double share = v.mi / v.mi_max;
  const char* meaning = share >= kStrongSpecialisation ? "the experts specialise strongly by class"
                        : share >= kWeakSpecialisation ? "the experts specialise partly by class"
                                                       : "the experts barely specialise by class";
  return fmt::format(
      "In {}, expert choice carries {:.0f}% of the information it could about the "
      "class (mutual information {} of at most {} nats): {}.",
      v.name, 100.0 * share, format_number(v.mi), format_number(v.mi_max), meaning);
}

// How each layer's load CV moved from the first epoch to the last (metrics.jsonl).
std::string trend_sentence(const RunData& run) {
  if (!run.epochs || run.epochs->size() < 2) return "";
  const EpochPoint& first = run.epochs->front();
  const EpochPoint& last = run.epochs->back();
  std::vector<std::string> parts;
  for (const auto& [name, load] : last.expert_load) {
    for (const auto& [name0, load0] : first.expert_load) {
      if (name0 != name) continue;
      const double cv0 = assess_load(load0, 1).cv, cv1 = assess_load(load, 1).cv;
      const char* word = cv1 > cv0 + 0.1   ? "grew more uneven"
                         : cv1 < cv0 - 0.1 ? "evened out"
                                           : "stayed steady";
      parts.push_back(fmt::format("{} in {} (CV {} at epoch {}, {} at epoch {})", word, name,
                                  format_number(cv0), format_number(first.epoch),
                                  format_number(cv1), format_number(last.epoch)));
    }
  }
  if (parts.empty()) return "";
  std::string s = "Over training the load ";
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) s += i + 1 == parts.size() ? " and " : ", ";
    s += parts[i];
  }
  return s + ".";
}

std::string result_sentence(const RunData& run) {
  if (!run.summary) return "";
  const nlohmann::json& s = *run.summary;
  std::string out;
  auto number = [&](const nlohmann::json& obj, const char* key) {
    return obj.contains(key) && obj[key].is_number() ? obj[key].get<double>() : NAN;
  };
  const double best = number(s, "best_value"), best_epoch = number(s, "best_epoch");
  const double epochs = number(s, "epochs");
  if (std::isfinite(best) && s.contains("metric") && s["metric"].is_string()) {
    out = fmt::format("The best {} was {}", s["metric"].get<std::string>(), format_number(best));
    if (std::isfinite(best_epoch)) out += fmt::format(" at epoch {}", format_number(best_epoch));
    if (std::isfinite(epochs)) out += fmt::format(" of {}", format_number(epochs));
    if (s.contains("stopped_early") && s["stopped_early"].is_boolean() &&
        s["stopped_early"].get<bool>())
      out += " (stopped early)";
  }
  if (s.contains("test") && s["test"].is_object()) {
    std::vector<std::string> parts;
    for (const char* key : {"accuracy", "f1", "roc_auc", "r2", "mae"}) {
      const double v = number(s["test"], key);
      if (std::isfinite(v)) parts.push_back(fmt::format("{} {}", key, format_number(v)));
    }
    if (!parts.empty()) {
      out += (out.empty() ? "On the test data: " : "; on the test data: ") +
             fmt::format("{}", fmt::join(parts, ", "));
    }
  }
  return out.empty() ? out : out + ".";
}

}  // namespace

const char* balance_name(Balance balance) {
  switch (balance) {
    case Balance::kBalanced:
      return "balanced";
    case Balance::kImbalanced:
      return "imbalanced";
    case Balance::kCollapsed:
      return "collapsed";
  }
  return "balanced";
}

LoadAssessment assess_load(const std::vector<double>& load, int64_t k,
                           std::optional<bool> collapsed) {
  LoadAssessment a;
  const size_t e = load.size();
  if (e == 0) return a;
  double sum = 0.0;
  for (double v : load) sum += std::isfinite(v) ? std::max(v, 0.0) : 0.0;
  const double mean = sum / e;
  double var = 0.0, max_load = 0.0, entropy = 0.0;
  for (size_t i = 0; i < e; ++i) {
    const double v = std::isfinite(load[i]) ? std::max(load[i], 0.0) : 0.0;
    var += (v - mean) * (v - mean);
    max_load = std::max(max_load, v);
    const double p = sum > 0 ? v / sum : 0.0;
    if (p > 0) entropy -= p * std::log(p);
    // Dead: under a tenth of the uniform share 1/E of the slots.
    if (sum > 0 && p < 1.0 / (10.0 * e)) a.dead.push_back(static_cast<int64_t>(i));
  }
  a.cv = mean > 0 ? std::sqrt(var / e) / mean : 0.0;
  a.max_over_mean = mean > 0 ? max_load / mean : 0.0;
  a.effective_experts = sum > 0 ? std::exp(entropy) : 0.0;
  const double kk = static_cast<double>(std::max<int64_t>(k, 1));
  const bool by_rule = e > static_cast<size_t>(kk) && a.effective_experts <= kCollapseFactor * kk;
  if (collapsed.value_or(by_rule)) {
    a.balance = Balance::kCollapsed;
  } else if (a.cv > kBalancedCv || !a.dead.empty()) {
    a.balance = Balance::kImbalanced;
  } else {
    a.balance = Balance::kBalanced;
  }
  return a;
}

std::optional<Balance> routing_balance(const RunData& run) {
  const std::vector<LayerView> views = layer_views(run);
  if (views.empty()) return std::nullopt;
  Balance worst = Balance::kBalanced;
  for (const LayerView& v : views) worst = std::max(worst, v.load.balance);
  return worst;
}

std::string verdict_text(const RunData& run) {
  const std::vector<LayerView> views = layer_views(run);
  std::vector<std::string> sentences;
  if (views.empty()) {
    sentences.push_back(
        "There is no routing to judge: neither inspect.json nor metrics.jsonl holds an MoE "
        "layer's expert load (a dense model, or a run that has not finished an epoch).");
  } else {
    Balance worst = Balance::kBalanced;
    for (const LayerView& v : views) worst = std::max(worst, v.load.balance);
    const char* where = views.size() == 1             ? ""
                        : worst == Balance::kBalanced ? " in every layer"
                                                      : " in at least one layer";
    const char* source = run.inspect ? "the best model on held-out data (inspect.json)"
                                     : "the last epoch's load (metrics.jsonl)";
    sentences.push_back(
        fmt::format("Routing is {}{}, judged from {}.", balance_name(worst), where, source));
    for (const LayerView& v : views) sentences.push_back(layer_sentence(v));
    for (const LayerView& v : views) {
      std::string s = specialisation_sentence(v);
      if (!s.empty()) sentences.push_back(std::move(s));
      s = confidence_sentence(v);
      if (!s.empty()) sentences.push_back(std::move(s));
    }
  }
  if (std::string s = trend_sentence(run); !s.empty()) sentences.push_back(std::move(s));
  if (std::string s = result_sentence(run); !s.empty()) sentences.push_back(std::move(s));
  if (!run.inspect) {
    sentences.push_back(
        "This run has no inspect.json, so co-activation and specialisation are not shown.");
  }
  return fmt::format("{}", fmt::join(sentences, " "));
}

}  // namespace moe::report
