// The HTML training report (report.h): layout, tables and the choice of charts.
//
// Dims: N epochs, E experts, C classes, P regression targets, H x W image pixels.
//
// The document is self-contained: inline CSS, inline SVG, images as data URIs, and a Content
// Security Policy that forbids scripts and every network fetch, so opening it can never reach
// out even if a string slipped through. Every string from the run's files passes escape_xml.
#include "moe/report/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "moe/io/safetensors.h"
#include "moe/report/svg.h"

namespace moe::report {

namespace {

using nlohmann::json;
using Out = std::back_insert_iterator<std::string>;

constexpr int kWide = 900;          // full-width charts
constexpr int kHalf = 560;          // charts that sit two to a row on a wide screen
constexpr size_t kMaxTopItems = 8;  // tokens / features listed per expert

constexpr const char* kStyle = R"(
body{font-family:sans-serif;margin:24px auto;max-width:1180px;padding:0 16px;color:#222}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;border-bottom:1px solid #ccc;
padding-bottom:4px;margin-top:32px}h3{font-size:15px;margin:20px 0 6px}
.verdict{background:#f4f6fa;border-left:4px solid #4c78a8;padding:10px 14px;line-height:1.5}
.badge{font-weight:bold;padding:1px 6px;border-radius:3px;color:#fff}
.balanced{background:#2ca02c}.imbalanced{background:#e08a00}.collapsed{background:#d62728}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts svg{border:1px solid #eee}
.note{color:#666;font-style:italic}.sub{color:#666;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.config td:first-child{font-family:monospace}.config{columns:2}
)";

std::string esc(const std::string& s) {
  return escape_xml(s);
}

void svg_into(Out out, const std::string& svg) {
  std::copy(svg.begin(), svg.end(), out);
  *out++ = '\n';
}

void note(Out out, const std::string& text) {
  fmt::format_to(out, "<p class=\"note\">{}</p>\n", esc(text));
}

// ---- training curves (metrics.jsonl) ---------------------------------------------------------

// Values of `name` in each epoch's list, NaN where an epoch lacks it.
std::vector<double> column(const std::vector<EpochPoint>& epochs, NamedValues EpochPoint::*list,
                           const std::string& name) {
  std::vector<double> out;
  for (const EpochPoint& e : epochs) {
    double v = NAN;
    for (const auto& [n, x] : e.*list)
      if (n == name) v = x;
    out.push_back(v);
  }
  return out;
}

// Names in first-seen order over all epochs.
std::vector<std::string> names_of(const std::vector<EpochPoint>& epochs,
                                  NamedValues EpochPoint::*list) {
  std::vector<std::string> names;
  for (const EpochPoint& e : epochs)
    for (const auto& [n, x] : e.*list)
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  return names;
}

bool all_in_unit_range(const std::vector<double>& v) {
  for (double x : v)
    if (std::isfinite(x) && (x < 0.0 || x > 1.0)) return false;
  return true;
}

void training_section(Out out, const RunData& run) {
  fmt::format_to(out, "<h2 id=\"training\">Training</h2>\n");
  if (!run.epochs || run.epochs->empty()) {
    note(out, run.epochs ? "metrics.jsonl is empty: no epoch finished, so there are no curves."
                         : "No metrics.jsonl in this run directory, so there are no training "
                           "curves.");
    return;
  }
  const std::vector<EpochPoint>& epochs = *run.epochs;
  std::vector<double> x;
  x.reserve(epochs.size());
  for (const EpochPoint& e : epochs) x.push_back(e.epoch);
  fmt::format_to(out, "<div class=\"charts\">\n");

  LineChart loss{{"Loss per epoch", "epoch", "loss", kHalf, 300}, {}, false};
  std::vector<double> train_loss;
  train_loss.reserve(epochs.size());
  for (const EpochPoint& e : epochs) train_loss.push_back(e.train_loss);
  loss.series.push_back({"train", x, train_loss, false});
  const std::vector<double> val_loss = column(epochs, &EpochPoint::validation, "loss");
  if (std::any_of(val_loss.begin(), val_loss.end(), [](double v) { return std::isfinite(v); }))
    loss.series.push_back({"validation", x, val_loss, true});
  svg_into(out, line_chart_svg(loss));

  // Metrics on a 0..1 scale share one chart; others (MSE, RMSE, MAE, R² that can go negative) get
  // their own so no scale squashes another.
  LineChart unit{{"Metrics per epoch", "epoch", "value", kHalf, 300}, {}, true};
  std::vector<LineChart> own;
  for (const std::string& name : names_of(epochs, &EpochPoint::validation)) {
    if (name == "loss") continue;
    const std::vector<double> val = column(epochs, &EpochPoint::validation, name);
    const std::vector<double> train = column(epochs, &EpochPoint::train_metrics, name);
    const bool has_train =
        std::any_of(train.begin(), train.end(), [](double v) { return std::isfinite(v); });
    if (all_in_unit_range(val) && all_in_unit_range(train)) {
      if (has_train) unit.series.push_back({"train " + name, x, train, false});
      unit.series.push_back({"validation " + name, x, val, true});
    } else {
      LineChart c{{name + " per epoch", "epoch", name, kHalf, 300}, {}, false};
      if (has_train) c.series.push_back({"train", x, train, false});
      c.series.push_back({"validation", x, val, true});
      own.push_back(std::move(c));
    }
  }
  if (!unit.series.empty()) svg_into(out, line_chart_svg(unit));
  for (const LineChart& c : own) svg_into(out, line_chart_svg(c));
  fmt::format_to(out, "</div>\n");
  if (unit.series.empty() && own.empty())
    note(out, "No validation metrics in metrics.jsonl (the run had no validation data).");

  const std::vector<std::string> aux = names_of(epochs, &EpochPoint::aux_losses);
  const std::vector<std::string> entropy_layers = names_of(epochs, &EpochPoint::gate_entropy);
  if (!aux.empty() || !entropy_layers.empty()) {
    fmt::format_to(out, "<div class=\"charts\">\n");
    if (!aux.empty()) {
      LineChart c{
          {"Auxiliary losses per epoch (unweighted)", "epoch", "loss", kHalf, 300}, {}, false};
      for (const std::string& name : aux)
        c.series.push_back({name, x, column(epochs, &EpochPoint::aux_losses, name), false});
      svg_into(out, line_chart_svg(c));
    }
    if (!entropy_layers.empty()) {
      LineChart c{{"Gate entropy per epoch", "epoch", "entropy (nats)", kHalf, 300}, {}, true};
      for (const std::string& name : entropy_layers) {
        c.series.push_back({name, x, column(epochs, &EpochPoint::gate_entropy, name), false});
        // ln E beside it: a gate at its maximum entropy has not learned to choose.
        const std::vector<double> max = column(epochs, &EpochPoint::gate_entropy_max, name);
        if (std::any_of(max.begin(), max.end(), [](double v) { return std::isfinite(v); }))
          c.series.push_back({"max: " + name, x, max, true});
      }
      svg_into(out, line_chart_svg(c));
    }
    fmt::format_to(out, "</div>\n");
  }
  if (entropy_layers.empty())
    note(out, "metrics.jsonl carries no gate entropy, so its curve is not shown.");

  // Expert load over training per layer: a stacked area while the experts are few enough to
  // tell apart by colour, a heat map (experts x epochs) beyond that.
  std::vector<std::string> layers;
  for (const EpochPoint& e : epochs)
    for (const auto& [name, load] : e.expert_load)
      if (std::find(layers.begin(), layers.end(), name) == layers.end()) layers.push_back(name);
  if (layers.empty()) {
    note(out, "metrics.jsonl has no expert load: the model has no MoE layer.");
    return;
  }
  fmt::format_to(out,
                 "<h3>Expert load over training</h3>\n<p class=\"sub\">Share of the "
                 "routed slots each expert received per epoch; even bands mean balanced "
                 "routing, one band swallowing the others means collapse.</p>\n");
  fmt::format_to(out, "<div class=\"charts\">\n");
  for (const std::string& layer : layers) {
    size_t n_experts = 0;
    std::vector<std::vector<double>> per_expert;  // [E][N]
    for (const EpochPoint& e : epochs)
      for (const auto& [name, load] : e.expert_load)
        if (name == layer) n_experts = std::max(n_experts, load.size());
    per_expert.assign(n_experts, std::vector<double>(epochs.size(), NAN));
    for (size_t i = 0; i < epochs.size(); ++i)
      for (const auto& [name, load] : epochs[i].expert_load)
        if (name == layer)
          for (size_t k = 0; k < load.size(); ++k) per_expert[k][i] = load[k];
    std::vector<std::string> experts;
    for (size_t k = 0; k < n_experts; ++k) experts.push_back(fmt::format("expert {}", k));
    const std::string title = "Expert load over training: " + layer;
    if (n_experts <= 16 && epochs.size() >= 2) {
      svg_into(out, stacked_area_svg(
                        {{title, "epoch", "share of slots", kHalf, 300}, x, experts, per_expert}));
    } else {
      std::vector<std::string> cols;
      cols.reserve(x.size());
      for (double e : x) cols.push_back(format_number(e));
      HeatMap map{{title, "epoch", "expert", kHalf, 0},
                  experts,
                  cols,
                  per_expert,
                  0.0,
                  0.0,
                  "share of slots"};
      svg_into(out, heat_map_svg(map));
    }
  }
  fmt::format_to(out, "</div>\n");
  // What adaptive training changed (model.moe.adapt), epoch by epoch.
  std::string changes;
  for (const EpochPoint& e : epochs)
    for (const std::string& c : e.expert_changes)
      changes += fmt::format("<li>after epoch {}: {}</li>\n", format_number(e.epoch), esc(c));
  if (!changes.empty())
    fmt::format_to(out,
                   "<h3>Expert changes</h3>\n<p class=\"sub\">Experts adaptive training split "
                   "or removed (model.moe.adapt); the load chart shows the new ones from the "
                   "epoch after.</p>\n<ul>\n{}</ul>\n",
                   changes);
}

// ---- routing of the best model (inspect.json) ------------------------------------------------

void stat_row(Out out, const char* name, const std::string& value, const char* meaning) {
  fmt::format_to(out, "<tr><th>{}</th><td class=\"num\">{}</td><td>{}</td></tr>", name, esc(value),
                 meaning);
}

void layer_stats(Out out, const InspectLayer& l, const LoadAssessment& a) {
  fmt::format_to(out, "<table>\n");
  stat_row(out, "gate", l.gate.empty() ? "?" : l.gate, "how rows choose experts");
  stat_row(out, "experts / k", fmt::format("{} / {}", l.experts, l.k),
           "experts in the layer / experts per row");
  stat_row(out, "verdict", balance_name(a.balance),
           "balanced: load CV at most 0.3 and no dead expert");
  stat_row(out, "load CV", format_number(std::isfinite(l.cv_load) ? l.cv_load : a.cv),
           "std / mean of the load shares; 0 is perfectly even");
  stat_row(out, "importance CV", format_number(l.cv_importance),
           "the same for the summed gate weights");
  stat_row(
      out, "max / mean load",
      format_number(std::isfinite(l.max_over_mean_load) ? l.max_over_mean_load : a.max_over_mean),
      "the busiest expert against an even share");
  stat_row(out, "gate entropy (mean / of mean / max)",
           fmt::format("{} / {} / {}", format_number(l.entropy_mean),
                       format_number(l.entropy_of_mean), format_number(l.entropy_max)),
           "nats: per-row confidence / spread of the average choice / ln E");
  stat_row(out, "dropped slots", format_number(l.dropped_rate), "share lost to capacity limits");
  const auto id_list = [](const std::vector<int64_t>& ids) {
    std::string s;
    for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
    return s.empty() ? std::string("none") : s;
  };
  stat_row(out, "dead experts", id_list(a.dead), "load under 1/(10E)");
  // Only inspect.json files that carry output ratios say which experts are silent.
  if (!l.silent.empty())
    stat_row(out, "silent experts", id_list(l.silent),
             "routed to, returning under 1% of the largest expert's output");
  if (std::isfinite(l.switch_rate)) {
    stat_row(out, "next token switches expert",
             fmt::format("{} (independent: {})", format_number(l.switch_rate),
                         format_number(l.switch_rate_independent)),
             "share of neighbouring tokens whose first expert differs; against tokens drawing "
             "their expert independently");
  }
  if (std::isfinite(l.mutual_information)) {
    stat_row(out, "mutual information",
             fmt::format("{} of {} nats", format_number(l.mutual_information),
                         format_number(l.mutual_information_max)),
             "between expert choice and label; the maximum is min(H(label), H(expert))");
  }
  fmt::format_to(out, "</table>\n");
}

std::vector<std::string> expert_names(size_t n) {
  std::vector<std::string> names;
  for (size_t i = 0; i < n; ++i) names.push_back(std::to_string(i));
  return names;
}

// "0-15", "16-31", ... for buckets of window positions starting at `starts`, the last ending at
// context − 1 (or open when the context is unknown).
std::vector<std::string> position_names(const std::vector<double>& starts, int64_t context) {
  std::vector<std::string> names;
  for (size_t b = 0; b < starts.size(); ++b) {
    const auto first = static_cast<int64_t>(starts[b]);
    const int64_t last = b + 1 < starts.size() ? static_cast<int64_t>(starts[b + 1]) - 1
                         : context > 0         ? context - 1
                                               : -1;
    names.push_back(last < 0        ? fmt::format("{}-", first)
                    : last == first ? std::to_string(first)
                                    : fmt::format("{}-{}", first, last));
  }
  return names;
}

void tokens_table(Out out, const InspectLayer& l) {
  fmt::format_to(out,
                 "<table><tr><th>expert</th><th>load</th><th>most characteristic tokens "
                 "(lift over the overall frequency, count)</th></tr>\n");
  for (size_t e = 0; e < l.tokens.size(); ++e) {
    fmt::format_to(out, "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td>", e,
                   format_number(e < l.load.size() ? l.load[e] : NAN));
    const size_t n = std::min(kMaxTopItems, l.tokens[e].size());
    for (size_t i = 0; i < n; ++i) {
      const TokenLift& t = l.tokens[e][i];
      fmt::format_to(out, "{}<b>{}</b> ({}x, {})", i ? ", " : "", esc(t.token),
                     format_number(t.lift), format_number(t.count));
    }
    if (n == 0) fmt::format_to(out, "<span class=\"note\">none above the minimum count</span>");
    fmt::format_to(out, "</td></tr>\n");
  }
  fmt::format_to(out, "</table>\n");
}

void features_table(Out out, const InspectLayer& l) {
  fmt::format_to(out,
                 "<table><tr><th>expert</th><th>load</th><th>features whose standardised "
                 "mean differs most from the whole data (delta in standard deviations)"
                 "</th></tr>\n");
  for (size_t e = 0; e < l.features.size(); ++e) {
    fmt::format_to(out, "<tr><td class=\"num\">{}</td><td class=\"num\">{}</td><td>", e,
                   format_number(e < l.load.size() ? l.load[e] : NAN));
    const size_t n = std::min(kMaxTopItems, l.features[e].size());
    for (size_t i = 0; i < n; ++i) {
      const FeatureDelta& f = l.features[e][i];
      fmt::format_to(out, "{}<b>{}</b> {}{}", i ? ", " : "", esc(f.feature), f.delta > 0 ? "+" : "",
                     format_number(f.delta));
    }
    fmt::format_to(out, "</td></tr>\n");
  }
  fmt::format_to(out, "</table>\n");
}

void regression_table(Out out, const InspectLayer& l, const std::vector<std::string>& targets) {
  const size_t p = l.regression_mean.empty() ? 0 : l.regression_mean[0].size();
  fmt::format_to(out, "<table><tr><th>expert</th>");
  for (size_t t = 0; t < p; ++t)
    fmt::format_to(out, "<th>{} mean &plusmn; std</th>",
                   esc(t < targets.size() ? targets[t] : "target " + std::to_string(t)));
  fmt::format_to(out, "</tr>\n");
  for (size_t e = 0; e < l.regression_mean.size(); ++e) {
    fmt::format_to(out, "<tr><td class=\"num\">{}</td>", e);
    for (size_t t = 0; t < p; ++t) {
      const double sd = e < l.regression_std.size() && t < l.regression_std[e].size()
                            ? l.regression_std[e][t]
                            : NAN;
      fmt::format_to(out, "<td class=\"num\">{} &plusmn; {}</td>",
                     format_number(l.regression_mean[e][t]), format_number(sd));
    }
    fmt::format_to(out, "</tr>\n");
  }
  fmt::format_to(out, "</table>\n");
}

void routing_layer(Out out, const RunData& run, const InspectLayer& l) {
  const InspectData& doc = *run.inspect;
  const LoadAssessment a = assess_load(l.load, l.k, l.collapsed);
  fmt::format_to(out, "<h3>{} <span class=\"badge {}\">{}</span></h3>\n", esc(l.display_name()),
                 balance_name(a.balance), balance_name(a.balance));
  layer_stats(out, l, a);
  const size_t n = l.load.size();
  fmt::format_to(out, "<div class=\"charts\">\n");
  std::vector<bool> dead(n, false);
  for (int64_t d : a.dead)
    if (d >= 0 && static_cast<size_t>(d) < n) dead[static_cast<size_t>(d)] = true;
  BarChart load{
      {"Final load per expert: " + l.display_name(), "expert", "share of slots", kHalf, 300},
      expert_names(n),
      l.load,
      dead,
      "dead expert",
      1.0 / static_cast<double>(std::max<size_t>(n, 1)),
      "even share 1/E"};
  svg_into(out, bar_chart_svg(load));
  if (!l.coactivation.empty()) {
    svg_into(out,
             heat_map_svg({{"Co-activation: " + l.display_name(), "expert", "expert", kHalf, 0},
                           expert_names(n),
                           expert_names(n),
                           l.coactivation,
                           0.0,
                           0.0,
                           "share of rows"}));
  }
  const auto& shares = l.class_shares.empty() ? l.class_counts : l.class_shares;
  if (!shares.empty()) {
    std::vector<std::string> classes = doc.classes;
    for (size_t c = classes.size(); c < shares.size(); ++c) classes.push_back(std::to_string(c));
    svg_into(out,
             heat_map_svg({{"Class x expert: " + l.display_name(), "expert", "class", kWide, 0},
                           classes,
                           expert_names(n),
                           shares,
                           0.0,
                           0.0,
                           l.class_shares.empty() ? "rows" : "share of class"}));
  }
  if (!l.position_load.empty()) {
    svg_into(out, heat_map_svg({{"Load by position in the window: " + l.display_name(), "expert",
                                 "positions", kHalf, 0},
                                position_names(l.position_starts, doc.context),
                                expert_names(n),
                                l.position_load,
                                0.0,
                                0.0,
                                "share of the positions' slots"}));
  }
  fmt::format_to(out, "</div>\n");
  if (l.coactivation.empty()) note(out, "inspect.json has no co-activation matrix for this layer.");
  // A language model's labels are its next tokens: it has no class x expert table.
  if (shares.empty() && doc.task != "regression" && doc.task != "language_model")
    note(out, "inspect.json has no class x expert table for this layer.");
  if (!l.regression_mean.empty()) regression_table(out, l, doc.targets);
  if (!l.tokens.empty()) tokens_table(out, l);
  if (!l.features.empty()) features_table(out, l);
  if (!l.mean_images.empty()) {
    std::vector<std::string> captions;
    for (size_t e = 0; e < l.mean_images.size(); ++e)
      captions.push_back(
          fmt::format("expert {} ({:.0f}%)", e, e < l.load.size() ? 100.0 * l.load[e] : 0.0));
    svg_into(out, image_grid_svg({"Mean input image per expert: " + l.display_name(), captions,
                                  l.image_height, l.image_width, l.mean_images, 96, 8}));
  }
  if (l.tokens.empty() && l.features.empty() && l.mean_images.empty())
    note(out, "inspect.json has no characteristic tokens, features or images for this layer.");
}

void routing_section(Out out, const RunData& run) {
  fmt::format_to(out, "<h2 id=\"routing\">Routing of the best model</h2>\n");
  if (!run.inspect) {
    note(out,
         "No inspect.json in this run directory: the final load, co-activation, class x "
         "expert and per-expert content charts need it. `moe train` writes it at the end "
         "of a run; `moe inspect CHECKPOINT DATA --format json` prints the same document.");
    return;
  }
  const InspectData& doc = *run.inspect;
  if (doc.task == "language_model") {
    fmt::format_to(out,
                   "<p class=\"sub\">From inspect.json: {} windows of {} tokens of {} (a language "
                   "model; every count is of tokens).</p>\n",
                   doc.rows, doc.context, esc(doc.data_path.empty() ? "?" : doc.data_path));
  } else {
    fmt::format_to(
        out, "<p class=\"sub\">From inspect.json: {} rows of {} ({} task, {} input).</p>\n",
        doc.rows, esc(doc.data_path.empty() ? "?" : doc.data_path),
        esc(doc.task.empty() ? "?" : doc.task), esc(doc.input.empty() ? "?" : doc.input));
  }
  if (doc.layers.empty()) note(out, "inspect.json lists no MoE layer (a dense model).");
  for (const InspectLayer& l : doc.layers) routing_layer(out, run, l);
}

// ---- summary and config ----------------------------------------------------------------------

// Deeper nesting than this is not shown: walking (or dumping) it recurses, and a hostile file
// could nest deep enough to overflow the stack.
constexpr int kMaxShownDepth = 16;

bool deeper_than(const json& v, int levels) {
  if (!v.is_structured()) return false;
  if (levels <= 0) return true;
  for (const json& child : v)
    if (deeper_than(child, levels - 1)) return true;
  return false;
}

// Leaves of a JSON object as dotted keys; arrays stay on one line.
void flatten(const json& v, const std::string& key, int depth,
             std::vector<std::pair<std::string, std::string>>* out) {
  if (v.is_object() && !v.empty() && depth < kMaxShownDepth) {
    for (const auto& [k, child] : v.items()) {
      std::string path = key;
      if (!path.empty()) path += '.';
      path += k;
      flatten(child, path, depth + 1, out);
    }
    return;
  }
  std::string text;
  if (deeper_than(v, kMaxShownDepth - depth)) {
    text = fmt::format("(nested more than {} levels deep: not shown)", kMaxShownDepth);
  } else if (v.is_string()) {
    text = v.get<std::string>();
  } else if (v.is_number_float()) {
    text = format_number(v.get<double>());
  } else {
    text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  out->emplace_back(key, text);
}

void key_value_table(Out out, const json& doc, const char* css_class) {
  std::vector<std::pair<std::string, std::string>> rows;
  flatten(doc, "", 0, &rows);
  fmt::format_to(out, "<table class=\"{}\">\n", css_class);
  for (const auto& [k, v] : rows) {
    fmt::format_to(out, "<tr><td>{}</td><td>{}</td></tr>\n", esc(k),
                   esc(v.size() > 400 ? v.substr(0, 400) + "..." : v));
  }
  fmt::format_to(out, "</table>\n");
}

void run_section(Out out, const RunData& run) {
  fmt::format_to(out, "<h2 id=\"run\">Run</h2>\n<h3>Summary (summary.json)</h3>\n");
  if (run.summary) {
    key_value_table(out, *run.summary, "summary");
  } else {
    note(out, "No summary.json in this run directory (the run has not finished).");
  }
  fmt::format_to(out, "<h3>Config (config.json)</h3>\n");
  if (run.config) {
    key_value_table(out, *run.config, "config");
  } else {
    note(out, "No config.json in this run directory.");
  }
}

}  // namespace

std::string render_report_html(const RunData& run) {
  std::string html;
  Out out(html);
  fmt::format_to(out,
                 "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                 "img-src data:; style-src 'unsafe-inline'\">\n"
                 "<title>moe report: {0}</title>\n<style>{1}</style>\n</head>\n<body>\n"
                 "<h1>moe report: {0}</h1>\n",
                 esc(run.name), kStyle);
  const std::optional<Balance> balance = routing_balance(run);
  const std::string badge =
      balance ? fmt::format("<span class=\"badge {0}\">{0}</span> ", balance_name(*balance)) : "";
  fmt::format_to(out, "<p class=\"verdict\">{}{}</p>\n", badge, esc(verdict_text(run)));
  training_section(out, run);
  routing_section(out, run);
  run_section(out, run);
  fmt::format_to(out,
                 "<p class=\"sub\">Written by moe. Thresholds: balanced means load CV at most "
                 "{}; a dead expert gets under 1/(10E) of the slots; collapse means the load "
                 "spreads over at most {}xK experts (exp of its entropy). Specialisation: mutual "
                 "information at least {}% of its maximum is strong, under {}% weak.</p>\n"
                 "</body>\n</html>\n",
                 format_number(kBalancedCv), format_number(kCollapseFactor),
                 format_number(100 * kStrongSpecialisation),
                 format_number(100 * kWeakSpecialisation));
  return html;
}

Status write_report(const std::string& run_dir, const std::string& out_path) {
  MOE_ASSIGN_OR_RETURN(RunData run, load_run(run_dir));
  const std::string html = render_report_html(run);
  return write_file_atomic(out_path, html.data(), html.size());
}

}  // namespace moe::report
