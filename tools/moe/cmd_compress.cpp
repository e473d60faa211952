// moe compress CHECKPOINT DATA --out DIR [--quantize f32|bf16|int8] [--prune-to N |
//              --prune-fraction F] [--prune-by reap|load] [--calibration FILE]
//              [--labels FILE] [--calibration-labels FILE] [--metric NAME] [--batch-size N]
//              [--json]
//
// Writes a smaller checkpoint: experts pruned by their score on the calibration rows, weights
// stored in bf16 or int8 (moe/train/compress.h, moe/train/checkpoint.h). Then loads what it wrote
// and measures it beside the original on DATA: size on disk, rows per second at batch 1 and at
// batch 256, and the quality metric. The written checkpoint is an ordinary one: eval, predict,
// inspect, generate and translate load it.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "moe/train/compress.h"
#include "moe/train/data_source.h"
#include "moe/train/evaluate.h"

namespace moe::cli {

namespace {

namespace fs = std::filesystem;

struct CompressArgs {
  std::string checkpoint;
  std::string data;
  std::string out;
  std::string quantize;  // "": not given (f32 when pruning)
  int64_t prune_to = 0;
  double prune_fraction = 0.0;
  std::string prune_by = "reap";
  std::string calibration;
  std::string labels;
  std::string calibration_labels;
  std::string metric;
  int64_t batch_size = 256;
  bool json = false;
};

// Rows timed at batch 1 and at the large batch: enough for a steady figure, few enough that the
// batch-1 pass over a large file stays short.
constexpr int64_t kTimedRowsSmall = 128;
constexpr int64_t kTimedRowsLarge = 2048;
constexpr int64_t kLargeBatch = 256;

// What one checkpoint measures on the data.
struct Measured {
  uint64_t bytes = 0;   // model.safetensors on disk
  int64_t experts = 0;  // per MoE layer, the first layer's (all prune alike)
  double rows_per_s_1 = 0.0, rows_per_s_large = 0.0;
  double metric = 0.0;
  EvalMetrics metrics;
};

// The metric a task reports by default: accuracy, RMSE, or a language model's perplexity.
std::string default_metric(const EvalMetrics& m) {
  if (m.language_model) return "perplexity";
  return m.task == TaskKind::kClassification ? "accuracy" : "rmse";
}

// Rows per second of evaluate over the first `rows` rows of `data` in batches of `batch`: the
// fastest of the timed passes after a warm-up one (at least kTimedPasses, and until
// kTimedSeconds have passed), so a moment of other work on the machine does not decide it.
constexpr int kTimedPasses = 3;
constexpr double kTimedSeconds = 0.5;

Result<double> rows_per_second(Model& model, const Dataset& data, const LabelSpec& labels,
                               int64_t rows, int64_t batch) {
  const Dataset part = data.head(rows);
  EvalOptions options;
  options.batch_size = batch;
  MOE_TRY(evaluate(model, part, labels, options).status());  // warm: buffers, caches
  double best = 0.0, total = 0.0;
  for (int pass = 0; pass < kTimedPasses || total < kTimedSeconds; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    MOE_TRY(evaluate(model, part, labels, options).status());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = pass == 0 ? s : std::min(best, s);
    total += s;
  }
  return static_cast<double>(part.n_rows) / std::max(best, 1e-9);
}

Result<Measured> measure(const std::string& dir, const Checkpoint& ck, const Dataset& data,
                         const CompressArgs& args, std::string* metric_name) {
  Measured m;
  std::error_code ec;
  m.bytes = fs::file_size(fs::path(dir) / kCheckpointWeightsFile, ec);
  if (ec) return Status::error("{}: {}", dir, ec.message());
  m.experts = ck.model->n_moe_layers() > 0 ? ck.model->moe_layer(0).n_experts() : 0;
  EvalOptions options;
  options.batch_size = args.batch_size;
  options.regression_loss = ck.config.training.loss;
  options.huber_delta = ck.config.training.huber_delta;
  MOE_ASSIGN_OR_RETURN(m.metrics, evaluate(*ck.model, data, ck.schema.labels, options));
  if (metric_name->empty()) *metric_name = default_metric(m.metrics);
  MOE_ASSIGN_OR_RETURN(m.metric, m.metrics.value(*metric_name));
  MOE_ASSIGN_OR_RETURN(m.rows_per_s_1,
                       rows_per_second(*ck.model, data, ck.schema.labels, kTimedRowsSmall, 1));
  MOE_ASSIGN_OR_RETURN(m.rows_per_s_large, rows_per_second(*ck.model, data, ck.schema.labels,
                                                           kTimedRowsLarge, kLargeBatch));
  return m;
}

std::string removed_text(const std::vector<PrunedLayer>& layers, const std::string& by) {
  std::string text;
  for (const PrunedLayer& p : layers) {
    text += fmt::format("{}: {} → {} experts; removed", p.layer, p.experts_before, p.experts_after);
    if (p.removed.empty()) text += " none";
    for (const int64_t e : p.removed)
      text += fmt::format(" {} ({} {:.4g}, load {:.3f})", e, by, p.score[static_cast<size_t>(e)],
                          p.load[static_cast<size_t>(e)]);
    text += "\n";
  }
  return text;
}

std::string table_text(const Measured& a, const Measured& b, const std::string& format_a,
                       const std::string& format_b, const std::string& metric) {
  std::string text =
      fmt::format("{:<8} {:>8} {:>8} {:>14} {:>12} {:>14} {:>12}\n", "", "weights", "experts",
                  "size on disk", "rows/s b=1", fmt::format("rows/s b={}", kLargeBatch), metric);
  for (const auto& [name, m, f] : {std::tuple{"before", &a, &format_a}, {"after", &b, &format_b}})
    text += fmt::format("{:<8} {:>8} {:>8} {:>11.3f} MB {:>12.1f} {:>14.1f} {:>12.4f}\n", name, *f,
                        m->experts, static_cast<double>(m->bytes) / 1e6, m->rows_per_s_1,
                        m->rows_per_s_large, m->metric);
  return text;
}

nlohmann::ordered_json measured_json(const Measured& m, const std::string& format,
                                     const std::string& metric) {
  return {{"weights_format", format},
          {"experts", m.experts},
          {"bytes", m.bytes},
          {"rows_per_s_batch_1", m.rows_per_s_1},
          {"rows_per_s_batch_256", m.rows_per_s_large},
          {metric, m.metric}};
}

int run_compress(const CompressArgs& args) {
  CompressOptions options;
  options.prune_to = args.prune_to;
  options.prune_fraction = args.prune_fraction;
  options.batch_size = args.batch_size;
  MOE_CHECK(parse_enum_name(kPruneByNames, args.prune_by, &options.prune_by), "--prune-by {}",
            args.prune_by);
  if (args.quantize.empty() && !prunes(options))
    return fail(Status::error(
        "nothing to compress: give --quantize bf16|int8, --prune-to N or --prune-fraction F"));
  const std::string quantize = args.quantize.empty() ? "f32" : args.quantize;
  WeightFormat format = WeightFormat::kF32;
  MOE_CHECK(parse_enum_name(kWeightFormatNames, quantize, &format), "--quantize {}", quantize);
  if (std::error_code ec; fs::exists(args.out, ec))
    return fail(Status::error("{}: already exists; choose a new --out", args.out));

  std::string report;
  Result<LoadedInput> in = load_checkpoint_and_data(args.checkpoint, args.data, args.labels,
                                                    LabelUse::kRequired, &report);
  if (!in) return fail(in.status());
  Checkpoint& ck = in->checkpoint;
  if (prunes(options) && ck.model->n_moe_layers() == 0)
    return fail(Status::error("{}: a dense model has no experts to prune", args.checkpoint));
  std::string metric = args.metric;
  Result<Measured> before = measure(args.checkpoint, ck, in->data, args, &metric);
  if (!before) return fail(before.status());
  const std::string format_before = enum_name(kWeightFormatNames, ck.weights_format);

  std::vector<PrunedLayer> layers;
  if (prunes(options)) {
    const std::string& path = args.calibration.empty() ? args.data : args.calibration;
    Dataset calibration_data;
    if (!args.calibration.empty()) {
      Result<Dataset> c = load_with_schema(ck.schema, args.calibration, args.calibration_labels,
                                           LabelUse::kIfPresent, nullptr);
      if (!c) return fail(c.status());
      calibration_data = std::move(*c);
    }
    const Dataset& rows = args.calibration.empty() ? in->data : calibration_data;
    const InspectContext context = InspectContext::from_schema(ck.schema, rows, path);
    Result<std::vector<PrunedLayer>> pruned = prune_checkpoint(&ck, context, options);
    if (!pruned) return fail(pruned.status().with_context(args.checkpoint));
    layers = std::move(*pruned);
  }
  if (Status s = save_compressed(ck, format, args.out); !s) return fail(s);

  // The written checkpoint, as every other command will load it.
  Result<Checkpoint> written = load_checkpoint(args.out);
  if (!written) return fail(written.status());
  Result<Measured> after = measure(args.out, *written, in->data, args, &metric);
  if (!after) return fail(after.status());

  std::string text;
  if (args.json) {
    nlohmann::ordered_json j;
    j["checkpoint"] = args.checkpoint;
    j["out"] = args.out;
    j["data"] = args.data;
    j["metric"] = metric;
    j["before"] = measured_json(*before, format_before, metric);
    j["after"] = measured_json(*after, quantize, metric);
    nlohmann::ordered_json pj = nlohmann::ordered_json::array();
    for (const PrunedLayer& p : layers)
      pj.push_back({{"layer", p.layer},
                    {"experts_before", p.experts_before},
                    {"experts_after", p.experts_after},
                    {"removed", p.removed},
                    {"score", p.score},
                    {"load", p.load}});
    j["pruned"] = pj;
    if (!layers.empty()) j["prune_by"] = args.prune_by;
    if (!report.empty()) j["note"] = report;
    text = j.dump(2) + "\n";
  } else {
    if (!report.empty()) text += "note: " + report + "\n";
    if (!layers.empty()) {
      text += fmt::format("pruned by {} on {}{}\n", args.prune_by,
                          args.calibration.empty() ? args.data : args.calibration,
                          args.calibration.empty() ? " (the evaluation rows themselves)" : "");
      text += removed_text(layers, args.prune_by);
    }
    text += fmt::format("{} → {}, measured on {}\n", args.checkpoint, args.out, args.data);
    text += table_text(*before, *after, format_before, quantize, metric);
  }
  if (Status s = write_stdout(text); !s) return fail(s);
  return kExitOk;
}

}  // namespace

void add_compress_command(CLI::App& app, Run* run) {
  auto args = std::make_shared<CompressArgs>();
  CLI::App* cmd = app.add_subcommand(
      "compress",
      "Prune experts and store weights in bf16 or int8; compare size, speed and quality "
      "(docs/compression.md)");
  cmd->add_option("CHECKPOINT", args->checkpoint, "A checkpoint directory (<out>/best)")
      ->required();
  cmd->add_option("DATA", args->data,
                  "Labelled data to measure the quality on (as moe eval reads it)")
      ->required();
  cmd->add_option("--out", args->out, "The new checkpoint directory (must not exist)")
      ->required()
      ->type_name("DIR");
  cmd->add_option("--quantize", args->quantize,
                  "How the matrices are stored: f32 (the default when pruning), bf16, or int8 "
                  "(blocks of 32)")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}));
  auto* to = cmd->add_option("--prune-to", args->prune_to, "Experts each MoE layer keeps")
                 ->check(positive_integer());
  auto* fraction = cmd->add_option("--prune-fraction", args->prune_fraction,
                                   "Share of each MoE layer's experts to remove, rounded down")
                       ->check(CLI::Range(0.0, 0.99));
  to->excludes(fraction);
  cmd->add_option("--prune-by", args->prune_by,
                  "Expert score: reap (router-weighted output norm, default) or load")
      ->check(CLI::IsMember({"reap", "load"}));
  cmd->add_option("--calibration", args->calibration,
                  "Rows the experts are scored on (default: DATA)")
      ->type_name("FILE");
  cmd->add_option("--labels", args->labels, "IDX labels file of DATA (image models)")
      ->type_name("FILE");
  cmd->add_option("--calibration-labels", args->calibration_labels,
                  "IDX labels file of the calibration images (optional)")
      ->type_name("FILE");
  cmd->add_option("--metric", args->metric,
                  "Quality metric shown (default: accuracy, rmse, or perplexity)");
  cmd->add_option("--batch-size", args->batch_size, "Rows per forward pass when evaluating")
      ->check(positive_integer());
  cmd->add_flag("--json", args->json, "Print the measurements as JSON");
  cmd->callback([args, run] { *run = [args] { return run_compress(*args); }; });
}

}  // namespace moe::cli
