// What the training report reads from a run directory: metrics.jsonl (one line per epoch),
// config.json, summary.json and inspect.json (the routing analysis of the best model, schema in
// docs/inspect.md), checked and turned into plain structs.
//
// Dims: N epochs, E experts, K experts per row, C classes, P targets, H x W image pixels.
//
// Every file is optional except that a run directory must hold at least one of them: a missing
// file leaves its part of the report as a note. A file that is there but malformed (bad JSON, a
// field of the wrong type, matrices of the wrong shape) is an error naming the file, the line for
// metrics.jsonl, and the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/core/status.h"

namespace moe::report {

using NamedValues = std::vector<std::pair<std::string, double>>;

// One line of metrics.jsonl. Values absent from the line are NaN or empty.
struct EpochPoint {
  double epoch = 0.0;
  double train_loss = 0.0;    // NaN when absent
  NamedValues train_metrics;  // other top-level numbers named "train_<metric>"
  NamedValues validation;     // scalar validation metrics ("loss", "accuracy", ...)
  NamedValues aux_losses;     // "<layer>.<kind>", nested objects flattened with '.'
  std::vector<std::pair<std::string, std::vector<double>>> expert_load;  // per layer: [E]
  NamedValues gate_entropy;      // per layer (nats), when the trainer logs it
  NamedValues gate_entropy_max;  // per layer: ln E, the entropy of a uniform gate
  double learning_rate = 0.0;    // NaN when absent
  // What adaptive training changed after the epoch ("expert_changes"), one sentence each:
  // "blocks.0.moe split expert 2 (now 5 experts): why".
  std::vector<std::string> expert_changes;
};

struct TokenLift {
  std::string token;
  double count = 0.0;
  double lift = 0.0;
};

struct FeatureDelta {
  std::string feature;
  double delta = 0.0;
};

// One entry of inspect.json "layers": an MoE layer, or one level of a hierarchical gate.
// Scalars absent from the file are NaN; matrices absent are empty.
struct InspectLayer {
  std::string name;
  std::string level;  // "" for a flat gate; "top", "group.0", ... for a hierarchy
  std::string gate;
  int64_t experts = 0;             // E
  int64_t k = 0;                   // K, 0 when absent
  std::vector<double> load;        // [E] share of kept slots
  std::vector<double> importance;  // [E] or empty
  double cv_load = 0.0;
  double cv_importance = 0.0;
  double max_over_mean_load = 0.0;
  double entropy_mean = 0.0;
  double entropy_of_mean = 0.0;
  double entropy_max = 0.0;
  double dropped_rate = 0.0;
  std::vector<int64_t> dead;
  std::vector<int64_t> silent;                    // routed to, returning almost nothing
  std::optional<bool> collapsed;                  // the inspector's own flag
  std::vector<std::vector<double>> coactivation;  // [E][E] or empty
  std::vector<std::vector<double>> class_counts;  // [C][E] or empty
  std::vector<std::vector<double>> class_shares;  // [C][E] or empty
  double mutual_information = 0.0;                // nats, NaN when absent
  double mutual_information_max = 0.0;
  std::vector<std::vector<double>> regression_mean;  // [E][P] or empty
  std::vector<std::vector<double>> regression_std;   // [E][P] or empty
  std::vector<std::vector<TokenLift>> tokens;        // [E][top] or empty
  std::vector<std::vector<FeatureDelta>> features;   // [E][top] or empty
  int64_t image_height = 0;                          // H
  int64_t image_width = 0;                           // W
  std::vector<std::vector<double>> mean_images;      // [E][H * W] or empty
  // Language models: the load of each bucket of window positions, and how often neighbouring
  // tokens change first expert (against independent routing); NaN / empty when absent.
  std::vector<double> position_starts;             // [B] first position of each bucket
  std::vector<std::vector<double>> position_load;  // [B][E] or empty
  double switch_rate = 0.0;
  double switch_rate_independent = 0.0;

  // "blocks.1.moe" or "blocks.1.moe (top)" for a hierarchy level.
  std::string display_name() const;
};

struct InspectData {
  std::string data_path;
  int64_t rows = 0;
  std::string task;                  // "classification" | "regression" | "language_model"
  std::string input;                 // "dense" | "text" | "image" | "tokens"
  int64_t context = 0;               // language models: tokens per window (rows are windows)
  std::vector<std::string> classes;  // [C]
  std::vector<std::string> targets;  // [P]
  std::vector<InspectLayer> layers;
};

// Everything the report shows about one run.
struct RunData {
  std::string name;                               // the run directory as given, shown in the title
  std::optional<std::vector<EpochPoint>> epochs;  // metrics.jsonl
  std::optional<nlohmann::json> config;           // config.json (an object)
  std::optional<nlohmann::json> summary;          // summary.json (an object)
  std::optional<InspectData> inspect;             // inspect.json
};

// Reads the run directory. Missing files stay nullopt; a directory holding none of the four
// files, or any malformed file, is an error naming it.
Result<RunData> load_run(const std::string& run_dir);

// Parses the text of metrics.jsonl; `source` names the file in messages ("<source> line 3: ...").
Result<std::vector<EpochPoint>> parse_metrics_jsonl(std::string_view text,
                                                    const std::string& source);

// Parses and checks an inspect.json document (format "moe.inspect", version 1).
Result<InspectData> parse_inspect_json(std::string_view text, const std::string& source);

}  // namespace moe::report
