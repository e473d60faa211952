// moe predict CHECKPOINT DATA [--out FILE] [--batch-size N]
//
// Writes one CSV row per input row:
//   row, prediction, p.<class> … (classification)  |  row, <target> … (regression),
//   then for each MoE layer <layer>.experts and <layer>.weights: the experts the row was sent to,
//   in the gate's order, and their combine weights, each a space-separated list.
// `row` counts the input's data rows from 0. Label columns in DATA are ignored. With --out the
// file is written under a temporary name and renamed, so an existing file is replaced whole or
// not at all; FILE must be a regular file (or a link to one) or not exist (moe/core/file_io.h).
// A failed write, to FILE or to standard output, is exit code 1 with the reason.
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "commands.h"
#include "moe/core/file_io.h"
#include "moe/train/evaluate.h"

namespace moe::cli {

namespace {

struct PredictArgs {
  std::string checkpoint;
  std::string data;
  std::string out;
  int64_t batch_size = 256;
};

// RFC 4180: a field holding a comma, quote or line break is quoted, its quotes doubled.
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

std::string predictions_csv(const Predictions& p, const DataSchema& schema) {
  const bool classify = schema.labels.task == TaskKind::kClassification;
  const std::vector<std::string>& names = output_names(schema);
  std::string out = "row";
  if (classify) {
    out += ",prediction";
    for (const std::string& c : names) out += "," + csv_field("p." + c);
  } else {
    for (const std::string& t : names) out += "," + csv_field(t);
  }
  for (const LayerRouting& r : p.routing)
    out += fmt::format(",{}.experts,{}.weights", r.layer, r.layer);
  out += "\n";
  const size_t c = static_cast<size_t>(p.n_outputs);
  for (size_t i = 0; i < static_cast<size_t>(p.n_rows); ++i) {
    out += std::to_string(i);
    if (classify) out += "," + csv_field(names[static_cast<size_t>(p.predicted[i])]);
    for (size_t j = 0; j < c; ++j) out += fmt::format(",{:.6g}", p.outputs[i * c + j]);
    for (const LayerRouting& r : p.routing) {
      std::string experts, weights;
      for (int64_t s = r.offsets[i]; s < r.offsets[i + 1]; ++s) {
        const char* sep = s == r.offsets[i] ? "" : " ";
        experts += fmt::format("{}{}", sep, r.experts[static_cast<size_t>(s)]);
        weights += fmt::format("{}{:.4f}", sep, r.weights[static_cast<size_t>(s)]);
      }
      out += ",";
      out += experts;
      out += ",";
      out += weights;
    }
    out += "\n";
  }
  return out;
}

int run_predict(const PredictArgs& args) {
  // A bad --out (a device, a directory) fails before the model runs.
  if (!args.out.empty()) {
    if (Status s = check_output_file(args.out); !s) return fail(s);
  }
  Result<Checkpoint> ck = load_checkpoint(args.checkpoint);
  if (!ck) return fail(ck.status());
  // Refused before DATA is read: a language model has no rows to predict, whatever the file.
  if (ck->schema.format == DataFormat::kCorpus)
    return fail(
        Status::error("{}: a language model (data.format corpus) has no per-row "
                      "predictions; use moe generate for text, moe eval for perplexity",
                      args.checkpoint));
  if (ck->schema.format == DataFormat::kPairs)
    return fail(
        Status::error("{}: a translation model (data.format pairs) has no per-row "
                      "predictions; use moe translate for translations, moe eval for BLEU",
                      args.checkpoint));
  std::string report;
  Result<Dataset> data = load_with_schema(ck->schema, args.data, "", LabelUse::kIgnore, &report);
  if (!data) return fail(data.status());
  EvalOptions options;
  options.batch_size = args.batch_size;
  options.keep_routing = true;
  Predictions p;
  Result<EvalMetrics> m = evaluate(*ck->model, *data, ck->schema.labels, options, &p);
  if (!m) return fail(m.status());
  const std::string csv = predictions_csv(p, ck->schema);
  if (!report.empty()) std::fprintf(stderr, "note: %s\n", report.c_str());
  if (args.out.empty()) {
    if (Status s = write_stdout(csv); !s) return fail(s);
    return kExitOk;
  }
  if (Status s = write_file_atomic(args.out, csv); !s) return fail(s);
  std::printf("%lld predictions written to %s\n", static_cast<long long>(p.n_rows),
              args.out.c_str());
  return kExitOk;
}

}  // namespace

void add_predict_command(CLI::App& app, Run* run) {
  auto args = std::make_shared<PredictArgs>();
  CLI::App* cmd = app.add_subcommand(
      "predict", "Predict every row of a file: outputs and each MoE layer's routing, as CSV");
  cmd->add_option("CHECKPOINT", args->checkpoint, "A checkpoint directory (<out>/best)")
      ->required();
  cmd->add_option("DATA", args->data, "CSV/TSV file, or IDX images")->required();
  cmd->add_option("--out,-o", args->out, "Write the CSV here instead of to stdout")
      ->type_name("FILE");
  cmd->add_option("--batch-size", args->batch_size, "Rows per forward pass")
      ->check(positive_integer());
  cmd->callback([args, run] { *run = [args] { return run_predict(*args); }; });
}

}  // namespace moe::cli
