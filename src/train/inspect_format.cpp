// Routing inspection output: the "moe.inspect" JSON document, the terminal summary, and the
// per-row trace (see inspect.h; the fields are documented in docs/inspect.md).
//
// Dims: N rows · E experts of a level · C classes · Y regression targets · P pixels.
#include <algorithm>
#include <cmath>
#include <sstream>

#include <fmt/format.h>

#include "moe/core/file_io.h"
#include "moe/core/index.h"
#include "moe/train/inspect.h"

namespace moe {

namespace {

using Json = nlohmann::ordered_json;

// A row-major [rows, cols] matrix as a JSON array of arrays.
template <typename T>
Json matrix(const std::vector<T>& v, int64_t rows, int64_t cols) {
  Json out = Json::array();
  for (int64_t r = 0; r < rows; ++r) {
    Json row = Json::array();
    for (int64_t c = 0; c < cols; ++c) row.push_back(v[sz(r * cols + c)]);
    out.push_back(std::move(row));
  }
  return out;
}

const std::vector<std::string>& output_names(const InspectReport& r) {
  return r.labels.task == TaskKind::kClassification ? r.labels.class_names : r.labels.columns;
}

Json level_json(const InspectReport& report, const LevelStats& s) {
  const int64_t e_n = s.n_experts;
  Json j;
  j["name"] = s.layer;
  j["level"] = s.level;
  j["experts"] = e_n;
  j["k"] = s.k;
  j["gate"] = s.gate;
  j["rows"] = s.n_rows;
  j["load"] = s.load;
  j["importance"] = s.importance;
  j["cv_load"] = s.cv_load;
  j["cv_importance"] = s.cv_importance;
  j["max_over_mean_load"] = s.max_over_mean_load;
  j["entropy_mean"] = s.entropy_mean;
  j["entropy_of_mean"] = s.entropy_of_mean;
  j["entropy_max"] = s.entropy_max;
  j["entropy_source"] = s.entropy_from_router ? "router" : "kept_weights";
  j["dropped_rate"] = s.dropped_rate;
  j["dead"] = s.dead;
  if (!s.output_ratio.empty()) {
    j["output_ratio"] = s.output_ratio;
    j["silent"] = s.silent;
  }
  if (!s.reap.empty()) j["reap"] = s.reap;
  j["collapsed"] = s.collapsed;
  j["coactivation"] = matrix(s.coactivation, e_n, e_n);
  if (!s.class_counts.empty()) {
    const int64_t c_n = static_cast<int64_t>(s.class_counts.size()) / std::max<int64_t>(e_n, 1);
    j["class_expert"] = {{"counts", matrix(s.class_counts, c_n, e_n)},
                         {"shares", matrix(s.class_shares, c_n, e_n)}};
    j["mutual_information"] = s.mutual_information;
    j["mutual_information_max"] = s.mutual_information_max;
  }
  if (!s.target_mean.empty()) {
    const int64_t y_n = static_cast<int64_t>(s.target_mean.size()) / std::max<int64_t>(e_n, 1);
    j["regression"] = {{"mean", matrix(s.target_mean, e_n, y_n)},
                       {"std", matrix(s.target_std, e_n, y_n)}};
  }
  if (report.input == InputKind::kText || report.input == InputKind::kTokens ||
      report.input == InputKind::kPairs) {
    Json tokens = Json::array();
    for (const std::vector<ExpertWord>& words : s.tokens) {
      Json list = Json::array();
      for (const ExpertWord& w : words)
        list.push_back({{"token", w.word}, {"count", w.count}, {"lift", w.lift}});
      tokens.push_back(std::move(list));
    }
    j["tokens"] = std::move(tokens);
  }
  if (report.input == InputKind::kTokens) {
    const auto b_n = static_cast<int64_t>(s.position_starts.size());
    j["positions"] = {{"starts", s.position_starts},
                      {"tokens", s.position_tokens},
                      {"load", matrix(s.position_load, b_n, e_n)}};
    j["switch_pairs"] = s.switch_pairs;
    j["switch_rate"] = s.switch_rate;
    j["switch_rate_independent"] = s.switch_rate_independent;
  }
  if (!s.features.empty()) {
    Json features = Json::array();
    for (const std::vector<FeatureDelta>& list : s.features) {
      Json l = Json::array();
      for (const FeatureDelta& f : list) l.push_back({{"feature", f.feature}, {"delta", f.delta}});
      features.push_back(std::move(l));
    }
    j["features"] = std::move(features);
  }
  if (!s.mean_images.empty()) {
    const int64_t p = report.image_height * report.image_width;
    j["mean_images"] = {{"height", report.image_height},
                        {"width", report.image_width},
                        {"pixels", matrix(s.mean_images, e_n, p)}};
  }
  return j;
}

// "0.123" with a NaN shown as "-".
std::string num(double v, int digits = 3) {
  return std::isnan(v) ? std::string("-") : fmt::format("{:.{}f}", v, digits);
}

// One expert's row of the level table: load, importance, output ratio, the largest classes of
// its rows or its targets' mean ± std, then its characteristic words or features.
std::string expert_row(const LevelStats& s, int64_t e, const std::vector<std::string>& names) {
  const int64_t e_n = s.n_experts;
  const int64_t c_n = static_cast<int64_t>(s.class_counts.size()) / std::max<int64_t>(e_n, 1);
  const int64_t y_n = static_cast<int64_t>(s.target_mean.size()) / std::max<int64_t>(e_n, 1);
  std::string out =
      fmt::format("  {:>6}  {:5.1f}%  {:10.3f}", e, 100 * s.load[sz(e)], s.importance[sz(e)]);
  if (!s.output_ratio.empty()) out += fmt::format("  {:6.3f}", s.output_ratio[sz(e)]);
  if (c_n > 0) {
    std::vector<std::pair<int64_t, int64_t>> by_count;  // (rows, class)
    int64_t rows = 0;
    for (int64_t c = 0; c < c_n; ++c) {
      by_count.emplace_back(s.class_counts[sz(c * e_n + e)], c);
      rows += s.class_counts[sz(c * e_n + e)];
    }
    std::stable_sort(by_count.begin(), by_count.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t i = 0; i < std::min<size_t>(3, by_count.size()) && rows > 0; ++i) {
      if (by_count[i].first == 0) break;
      const auto c = sz(by_count[i].second);
      out += fmt::format("  {} {:.0f}%", c < names.size() ? names[c] : std::to_string(c),
                         100.0 * static_cast<double>(by_count[i].first) / double(rows));
    }
  }
  for (int64_t y = 0; y < y_n; ++y) {
    const auto i = sz(e * y_n + y);
    // Six significant digits: targets come in any unit (a sale price, a temperature).
    const auto g6 = [](double v) {
      return std::isnan(v) ? std::string("-") : fmt::format("{:.6g}", v);
    };
    out += fmt::format("  {}{} ± {}", y_n > 1 ? names[sz(y)] + " " : "", g6(s.target_mean[i]),
                       g6(s.target_std[i]));
  }
  out += "\n";
  if (sz(e) < s.tokens.size()) {
    std::string line;
    for (const ExpertWord& w : s.tokens[sz(e)])
      line += fmt::format("{}{} ({:.1f}×)", line.empty() ? "" : ", ", w.word, w.lift);
    out += "          " +
           (line.empty() ? std::string("(no token reaches the minimum count)") : line) + "\n";
  }
  if (sz(e) < s.features.size() && !s.features[sz(e)].empty()) {
    std::string line;
    for (const FeatureDelta& f : s.features[sz(e)])
      line += fmt::format("{}{} {:+.2f}", line.empty() ? "" : ", ", f.feature, f.delta);
    out += "          " + line + "\n";
  }
  return out;
}

// The co-activation matrix, for layers of up to 16 experts.
std::string coactivation_text(const LevelStats& s, const char* unit) {
  const int64_t e_n = s.n_experts;
  if (e_n > 16) return "";
  std::string out = fmt::format("  co-activation (% of {} choosing both):\n       ", unit);
  for (int64_t j = 0; j < e_n; ++j) out += fmt::format("{:>5}", j);
  out += "\n";
  for (int64_t i = 0; i < e_n; ++i) {
    out += fmt::format("  {:>5}", i);
    for (int64_t j = 0; j < e_n; ++j)
      out += fmt::format("{:>5.0f}", 100 * s.coactivation[sz(i * e_n + j)]);
    out += "\n";
  }
  return out;
}

// Language models: the load of each bucket of window positions, and routing persistence.
std::string position_text(const LevelStats& s, int64_t context) {
  const int64_t e_n = s.n_experts;
  const auto b_n = static_cast<int64_t>(s.position_starts.size());
  if (b_n == 0 || e_n > 16) return "";
  std::string out =
      "  load by position in the window (% of the positions' slots):\n  positions  tokens";
  for (int64_t e = 0; e < e_n; ++e) out += fmt::format("{:>5}", e);
  out += "\n";
  for (int64_t b = 0; b < b_n; ++b) {
    const int64_t first = s.position_starts[sz(b)];
    const int64_t last = b + 1 < b_n ? s.position_starts[sz(b + 1)] - 1 : context - 1;
    const std::string range =
        last == first ? std::to_string(first) : fmt::format("{}-{}", first, last);
    out += fmt::format("  {:>9}  {:>6}", range, s.position_tokens[sz(b)]);
    for (int64_t e = 0; e < e_n; ++e)
      out += fmt::format("{:>5.0f}", 100 * s.position_load[sz(b * e_n + e)]);
    out += "\n";
  }
  return out;
}

std::string switch_text(const LevelStats& s) {
  if (s.switch_pairs == 0) return "";
  return fmt::format(
      "  next token on another first expert: {:.1f}% of {} neighbouring pairs (independent "
      "routing: {:.1f}%)\n",
      100 * s.switch_rate, s.switch_pairs, 100 * s.switch_rate_independent);
}

std::string level_text(const InspectReport& report, const LevelStats& s) {
  const int64_t e_n = s.n_experts;
  const bool lm = report.input == InputKind::kTokens;
  const bool per_token = lm || report.input == InputKind::kPairs;
  const char* unit = per_token ? "tokens" : "rows";
  std::string out;
  const std::string title = s.level.empty() ? s.layer : s.layer + " [" + s.level + "]";
  out += fmt::format("{}  {}, {} experts, k {}, {} {}\n", title, s.gate, e_n,
                     s.k > 0 ? std::to_string(s.k) : "variable", s.n_rows, unit);
  // A list of experts in brackets, so one expert reads as a list ("dead [2]"), not a count.
  const auto list = [](const std::vector<int64_t>& experts) {
    if (experts.empty()) return std::string("none");
    return fmt::format("[{}]", fmt::join(experts, " "));
  };
  const bool outputs = !s.output_ratio.empty();
  out += fmt::format(
      "  load CV {}  importance CV {}  max/mean load {}  dropped {:.1f}%  dead {}{}  collapsed "
      "{}\n",
      num(s.cv_load, 2), num(s.cv_importance, 2), num(s.max_over_mean_load, 2),
      100 * s.dropped_rate, list(s.dead), outputs ? "  silent " + list(s.silent) : "",
      s.collapsed ? "YES" : "no");
  out +=
      fmt::format("  gate entropy (nats, max {}): per {} {}, of the mean {}{}\n",
                  num(s.entropy_max), per_token ? "token" : "row", num(s.entropy_mean),
                  num(s.entropy_of_mean), s.entropy_from_router ? "" : " (from the kept weights)");
  if (!s.class_counts.empty()) {
    const double frac =
        s.mutual_information_max > 0 ? s.mutual_information / s.mutual_information_max : 0.0;
    out += fmt::format("  mutual information (label; expert) {} of at most {} nats ({:.0f}%)\n",
                       num(s.mutual_information), num(s.mutual_information_max), 100 * frac);
  }
  const std::vector<std::string>& names = output_names(report);
  const int64_t c_n = static_cast<int64_t>(s.class_counts.size()) / std::max<int64_t>(e_n, 1);
  const int64_t y_n = static_cast<int64_t>(s.target_mean.size()) / std::max<int64_t>(e_n, 1);
  out += "  expert    load  importance";
  if (outputs) out += "  output";
  if (c_n > 0) out += "  rows by class (largest shares of the expert's rows)";
  if (y_n > 0) out += "  target mean ± std";
  out += "\n";
  for (int64_t e = 0; e < e_n; ++e) out += expert_row(s, e, names);
  out += coactivation_text(s, unit);
  if (lm) out += position_text(s, report.context) + switch_text(s);
  if (!s.mean_images.empty()) out += "  (the mean input image per expert is in --format json)\n";
  return out;
}

}  // namespace

nlohmann::ordered_json inspect_to_json(const InspectReport& report) {
  Json j;
  j["format"] = "moe.inspect";
  j["version"] = 1;
  Json data;
  data["path"] = report.path;
  data["rows"] = report.n_rows;
  if (report.input == InputKind::kTokens) {  // W windows of L tokens; the labels are tokens
    data["task"] = "language_model";
    data["context"] = report.context;
    data["tokens"] = report.n_rows * report.context;
  } else if (report.input == InputKind::kPairs) {  // sentence pairs; the labels are tokens
    data["task"] = "translation";
  } else if (report.labels.task == TaskKind::kClassification) {
    data["task"] = task_kind_name(report.labels.task);
    data["classes"] = report.labels.class_names;
  } else {
    data["task"] = task_kind_name(report.labels.task);
    data["targets"] = report.labels.columns;
  }
  data["input"] = input_kind_name(report.input);
  data["labels"] = report.has_labels;
  j["data"] = std::move(data);
  j["metrics"] = report.metrics;
  Json layers = Json::array();
  for (const LevelStats& s : report.levels) layers.push_back(level_json(report, s));
  j["layers"] = std::move(layers);
  return j;
}

std::string inspect_to_text(const InspectReport& report) {
  std::string out =
      report.input == InputKind::kTokens
          ? fmt::format("{}: {} windows of {} tokens ({} tokens), language model\n", report.path,
                        report.n_rows, report.context, report.n_rows * report.context)
      : report.input == InputKind::kPairs
          ? fmt::format(
                "{}: {} sentence pairs, translation model (encoder layers route source "
                "tokens, decoder layers target tokens)\n",
                report.path, report.n_rows)
          : fmt::format("{}: {} rows, {}, {} input\n", report.path, report.n_rows,
                        task_kind_name(report.labels.task), input_kind_name(report.input));
  int64_t collapsed = 0, silent = 0, experts = 0;
  for (const LevelStats& s : report.levels) {
    out += '\n';
    out += level_text(report, s);
    collapsed += s.collapsed;
    if (!s.output_ratio.empty()) {
      silent += static_cast<int64_t>(s.silent.size());
      experts += s.n_experts;
    }
  }
  if (collapsed > 0)
    out +=
        fmt::format("\nwarning: {} routing level(s) collapsed (see docs/inspect.md)\n", collapsed);
  if (silent > 0)
    out += fmt::format(
        "\nnote: {} of {} experts are silent: routed to, but what they return is under {}% of "
        "the largest expert's output (see docs/inspect.md)\n",
        silent, experts, 100 * kSilentRatio);
  return out;
}

Result<InspectReport> inspect_run(Model& model, const LoadedData& data) {
  const Dataset& rows = data.validation.n_rows > 0 ? data.validation : data.train;
  const InspectContext context = InspectContext::from_schema(data.schema, rows, rows.source);
  return inspect_model(model, context, InspectOptions());
}

Status write_inspect_json(const std::string& path, const InspectReport& report) {
  const std::string text = inspect_to_json(report).dump(2) + "\n";
  return write_file_atomic(path, text.data(), text.size());
}

Status write_trace(const InspectReport& report, const Dataset& data, const std::string& path) {
  const bool jsonl = path.size() >= 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
  std::ostringstream out;  // written whole at the end, atomically (moe/core/file_io.h)
  if (!jsonl) {
    out << "row,source_row";
    for (const LayerRouting& r : report.trace)
      out << ',' << r.layer << ".experts," << r.layer << ".weights";
    out << '\n';
  }
  for (int64_t i = 0; i < data.n_rows; ++i) {
    const int64_t source = data.source_rows.empty() ? i : data.source_rows[sz(i)];
    Json line;
    if (jsonl) {
      line["row"] = i;
      line["source_row"] = source;
      line["layers"] = Json::object();
    } else {
      out << i << ',' << source;
    }
    for (const LayerRouting& r : report.trace) {
      if (sz(i + 1) >= r.offsets.size()) return Status::error("trace: routing of too few rows");
      std::string experts, weights;
      Json je = Json::array(), jw = Json::array();
      for (int64_t s = r.offsets[sz(i)]; s < r.offsets[sz(i + 1)]; ++s) {
        const int32_t e = r.experts[sz(s)];
        const float w = r.weights[sz(s)];
        experts += fmt::format("{}{}", experts.empty() ? "" : " ", e);
        weights += fmt::format("{}{}", weights.empty() ? "" : " ", w);
        je.push_back(e);
        jw.push_back(w);
      }
      if (jsonl) {
        line["layers"][r.layer] = {{"experts", je}, {"weights", jw}};
      } else {
        out << ',' << experts << ',' << weights;
      }
    }
    if (jsonl) out << line.dump();
    out << '\n';
  }
  return write_file_atomic(path, out.str());
}

}  // namespace moe
