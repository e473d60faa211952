// moe inspect CHECKPOINT DATA [--labels FILE] [--format text|json|html] [--json] [--out FILE]
//                             [--trace FILE] [--top N] [--min-count M] [--top-features N]
//                             [--batch-size N]
//
// How every MoE layer (and every level of a hierarchical gate) routes the rows of DATA: load,
// importance, gate entropy, dropped slots, dead experts, collapse, co-activation, the class ×
// expert table with the mutual information between label and expert, target statistics per
// expert, and what characterises each expert's rows (tokens, features or mean images); for a
// language model, per token: characteristic tokens, load by window position, the switch rate. The
// analysis is the library's (moe/train/inspect.h); its JSON is documented in docs/inspect.md;
// --format html draws it with the training report's renderer (moe/report/report.h).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "commands.h"
#include "moe/core/file_io.h"
#include "moe/io/safetensors.h"
#include "moe/report/report.h"
#include "moe/train/inspect.h"

namespace moe::cli {

namespace {

struct InspectArgs {
  std::string checkpoint;
  std::string data;
  std::string labels;
  std::string format = "text";
  bool json = false;  // --json: the same as --format json
  std::string out;
  std::string trace;
  int64_t top = 10;
  int64_t min_count = 5;
  int64_t top_features = 8;
  int64_t batch_size = 256;
};

// The expert changes `moe experts` recorded in the checkpoint (info.experts_history), one line
// each, oldest first; "" when there are none. The info object is free-form, so nothing in it is
// trusted to have a type.
std::string history_text(const nlohmann::json& info) {
  const auto h = info.find("experts_history");
  if (h == info.end() || !h->is_array() || h->empty()) return "";
  const auto field = [](const nlohmann::json& e, const char* key) {
    const auto it = e.find(key);
    return it == e.end() ? std::string("?") : it->is_string() ? it->get<std::string>() : it->dump();
  };
  std::string text = "expert changes (moe experts, adaptive training):\n";
  for (const nlohmann::json& e : *h) {
    if (!e.is_object()) continue;
    // A new expert takes the next index, the count before the change.
    const std::string op = field(e, "op"), expert = field(e, "expert"),
                      born = field(e, "experts_before");
    std::string what = op;
    if (e.contains("expert")) what += fmt::format(" expert {}", expert);
    if (op == "split") what = fmt::format("split expert {} into {} and {}", expert, expert, born);
    if (op == "add")
      what = fmt::format("added expert {} ({})", born,
                         e.contains("expert") ? "a copy of " + expert : "fresh");
    if (op == "remove") what = fmt::format("removed expert {}", expert);
    if (op == "freeze") what = fmt::format("froze expert {}", expert);
    text += fmt::format("  after epoch {}: {} {} ({} → {} experts){}\n", field(e, "epoch"),
                        field(e, "layer"), what, born, field(e, "experts_after"),
                        e.contains("why") ? ": " + field(e, "why") : "");
  }
  return text + "\n";
}

int run_inspect(const InspectArgs& args) {
  // A bad --out or --trace (a device, a directory) fails before the model runs.
  for (const std::string* path : {&args.out, &args.trace}) {
    if (path->empty()) continue;
    if (Status s = check_output_file(*path); !s) return fail(s);
  }
  const std::string format = args.json ? "json" : args.format;
  std::string report_line;
  Result<LoadedInput> in = load_checkpoint_and_data(args.checkpoint, args.data, args.labels,
                                                    LabelUse::kIfPresent, &report_line);
  if (!in) return fail(in.status());
  Checkpoint& ck = in->checkpoint;
  const Dataset& data = in->data;
  if (ck.model->n_moe_layers() == 0) {
    return fail(Status::error("{}: a dense model has no experts to inspect", args.checkpoint));
  }
  InspectOptions options;
  options.batch_size = args.batch_size;
  options.top_tokens = args.top;
  options.min_count = args.min_count;
  options.top_features = args.top_features;
  options.keep_trace = !args.trace.empty();
  const InspectContext context = InspectContext::from_schema(ck.schema, data, args.data);
  Result<InspectReport> report = inspect_model(*ck.model, context, options);
  if (!report) return fail(report.status());

  if (!args.trace.empty()) {
    const Status s = write_trace(*report, data, args.trace);
    if (!s) return fail(s);
  }
  std::string text;
  if (format == "json") {
    nlohmann::ordered_json j = inspect_to_json(*report);
    if (const auto h = ck.info.find("experts_history"); h != ck.info.end() && h->is_array())
      j["experts_history"] = *h;
    text = j.dump(2) + "\n";
  } else if (format == "html") {
    // The training report's renderer with the routing part alone (no training curves: those
    // come from a run directory, `moe report RUN_DIR`), the checkpoint's config beside it.
    Result<report::InspectData> parsed =
        report::parse_inspect_json(inspect_to_json(*report).dump(), args.data);
    if (!parsed) return fail(parsed.status());
    report::RunData run;
    run.name = args.checkpoint;
    run.inspect = std::move(parsed.value());
    run.config = config_to_json(ck.config);
    text = report::render_report_html(run);
  } else {
    if (!report_line.empty()) text = fmt::format("note: {}\n", report_line);
    text += history_text(ck.info) + inspect_to_text(*report);
  }
  if (args.out.empty()) {
    if (Status s = write_stdout(text); !s) return fail(s);
  } else {
    const Status s = write_file_atomic(args.out, text.data(), text.size());
    if (!s) return fail(s);
  }
  return kExitOk;
}

}  // namespace

void add_inspect_command(CLI::App& app, Run* run) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand(
      "inspect",
      "Show how each MoE layer routes a file: load, entropy, collapse, co-activation, "
      "specialisation per expert (docs/inspect.md)");
  cmd->add_option("CHECKPOINT", args->checkpoint, "A checkpoint directory (<out>/best)")
      ->required();
  cmd->add_option("DATA", args->data, "CSV/TSV file, IDX images, or a text file (language models)")
      ->required();
  cmd->add_option("--labels", args->labels, "IDX labels file (image models)")->type_name("FILE");
  cmd->add_option("--format", args->format,
                  "Output: text (default), json, or html (the report's routing charts)")
      ->check(CLI::IsMember({"text", "json", "html"}));
  cmd->add_flag("--json", args->json, "The same as --format json");
  cmd->add_option("--out", args->out, "Write the output to FILE instead of stdout")
      ->type_name("FILE");
  cmd->add_option("--trace", args->trace,
                  "Write each row's experts and weights per layer to FILE (.jsonl: JSON lines, "
                  "else CSV)")
      ->type_name("FILE");
  cmd->add_option("--top", args->top, "Tokens listed per expert (text models)")
      ->check(positive_integer());
  cmd->add_option("--min-count", args->min_count,
                  "Rows (language models: tokens) of an expert a token must occur in to be listed")
      ->check(positive_integer());
  cmd->add_option("--top-features", args->top_features, "Features listed per expert (tabular)")
      ->check(positive_integer());
  cmd->add_option("--batch-size", args->batch_size, "Rows per forward pass")
      ->check(positive_integer());
  cmd->callback([args, run] { *run = [args] { return run_inspect(*args); }; });
}

}  // namespace moe::cli
