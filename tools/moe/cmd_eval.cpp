// moe eval CHECKPOINT DATA [--labels FILE] [--json] [--batch-size N]
//
// Encodes DATA with the checkpoint's schema and prints the model's metrics on it: a table, or
// with --json one JSON object (EvalMetrics::to_json, then "checkpoint" and "data").
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "moe/train/evaluate.h"

namespace moe::cli {

namespace {

struct EvalArgs {
  std::string checkpoint;
  std::string data;
  std::string labels;
  bool json = false;
  int64_t batch_size = 256;
};

int run_eval(const EvalArgs& args) {
  std::string report;
  Result<LoadedInput> in = load_checkpoint_and_data(args.checkpoint, args.data, args.labels,
                                                    LabelUse::kRequired, &report);
  if (!in) return fail(in.status());
  const Checkpoint& ck = in->checkpoint;
  // A language model reads any UTF-8 file as text; a table given to it is most likely a mix-up
  // of checkpoints, so the metrics say what they were computed on.
  if (in->data.kind == FeatureKind::kTokens && report.empty()) {
    const std::string ext = std::filesystem::path(args.data).extension().string();
    if (ext == ".csv" || ext == ".tsv" || ext == ".CSV" || ext == ".TSV")
      report = fmt::format("{} is read as plain text: {} is a language model's checkpoint",
                           args.data, args.checkpoint);
  }
  EvalOptions options;
  options.batch_size = args.batch_size;
  options.regression_loss = ck.config.training.loss;
  options.huber_delta = ck.config.training.huber_delta;
  // Predictions are asked for so that evaluate refuses a NaN or infinite output, naming its row,
  // rather than printing metrics computed from it.
  // A language model's evaluation is over tokens and checks its loss instead.
  Predictions predictions;
  Predictions* rows = in->data.kind == FeatureKind::kTokens ? nullptr : &predictions;
  Result<EvalMetrics> m = evaluate(*ck.model, in->data, ck.schema.labels, options, rows);
  if (!m) return fail(m.status());
  const std::vector<std::string>& names = output_names(ck.schema);
  if (args.json) {
    nlohmann::ordered_json j = m->to_json(names);
    j["checkpoint"] = args.checkpoint;
    j["data"] = args.data;
    if (!report.empty()) j["note"] = report;
    if (Status s = write_stdout(j.dump(2) + "\n"); !s) return fail(s);
  } else {
    std::string text = report.empty() ? "" : "note: " + report + "\n";
    text += args.checkpoint + " on " + args.data + "\n" + m->to_text(names);
    if (Status s = write_stdout(text); !s) return fail(s);
  }
  return kExitOk;
}

}  // namespace

void add_eval_command(CLI::App& app, Run* run) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate a trained model on a labelled file");
  cmd->add_option("CHECKPOINT", args->checkpoint, "A checkpoint directory (<out>/best)")
      ->required();
  cmd->add_option("DATA", args->data, "CSV/TSV file, IDX images, or a text file (language model)")
      ->required();
  cmd->add_option("--labels", args->labels, "IDX labels file (image models)")->type_name("FILE");
  cmd->add_flag("--json", args->json, "Print the metrics as JSON");
  cmd->add_option("--batch-size", args->batch_size, "Rows per forward pass")
      ->check(positive_integer());
  cmd->callback([args, run] { *run = [args] { return run_eval(*args); }; });
}

}  // namespace moe::cli
