// moe inspect CHECKPOINT DATA [--labels FILE] [--top N] [--min-count M] [--json]
//
// Where each MoE layer sends the rows of DATA: every expert's share of the routed slots and
// rows, the class mix of its rows (when DATA has labels), and for text models the words most
// characteristic of the rows it receives (evaluate.h: characteristic_words).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "moe/train/evaluate.h"

namespace moe::cli {

namespace {

struct InspectArgs {
  std::string checkpoint;
  std::string data;
  std::string labels;
  int64_t top = 10;
  int64_t min_count = 5;
  bool json = false;
};

// Rows of each class among the rows routed to each expert: [E][C].
std::vector<std::vector<int64_t>> class_mix(const Dataset& data, const LayerRouting& r,
                                            int64_t n_classes) {
  std::vector<std::vector<int64_t>> mix(static_cast<size_t>(r.n_experts),
                                        std::vector<int64_t>(static_cast<size_t>(n_classes), 0));
  for (int64_t i = 0; i < data.n_rows; ++i) {
    std::vector<bool> seen(static_cast<size_t>(r.n_experts), false);
    for (int64_t s = r.offsets[i]; s < r.offsets[i + 1]; ++s) {
      const size_t e = static_cast<size_t>(r.experts[static_cast<size_t>(s)]);
      if (seen[e]) continue;
      seen[e] = true;
      ++mix[e][static_cast<size_t>(data.labels[static_cast<size_t>(i)])];
    }
  }
  return mix;
}

int run_inspect(const InspectArgs& args) {
  std::string report;
  Result<LoadedInput> in = load_checkpoint_and_data(args.checkpoint, args.data, args.labels,
                                                    LabelUse::kIfPresent, &report);
  if (!in) return fail(in.status());
  const Checkpoint& ck = in->checkpoint;
  const Dataset& data = in->data;
  if (ck.model->n_moe_layers() == 0) {
    return fail(Status::error("{}: a dense model has no experts to inspect", args.checkpoint));
  }
  EvalOptions options;
  options.keep_routing = true;
  Predictions p;
  Result<EvalMetrics> m = evaluate(*ck.model, data, ck.schema.labels, options, &p);
  if (!m) return fail(m.status());

  const bool text = ck.schema.text.has_value() && data.kind == FeatureKind::kSparse;
  const bool classes = data.has_labels && ck.schema.labels.task == TaskKind::kClassification;
  const std::vector<std::string> no_words;
  const std::vector<std::string>& words = text ? ck.schema.text->words() : no_words;
  const std::vector<std::string>& class_names = ck.schema.labels.class_names;

  nlohmann::ordered_json j;
  j["checkpoint"] = args.checkpoint;
  j["data"] = args.data;
  j["rows"] = data.n_rows;
  j["layers"] = nlohmann::ordered_json::array();
  std::string out;
  for (const LayerRouting& r : p.routing) {
    const std::vector<ExpertProfile> profiles =
        characteristic_words(data, r, words, text ? args.top : 0, args.min_count);
    const auto mix = classes ? class_mix(data, r, ck.schema.labels.n_classes())
                             : std::vector<std::vector<int64_t>>();
    nlohmann::ordered_json layer;
    layer["layer"] = r.layer;
    layer["experts"] = nlohmann::ordered_json::array();
    out += fmt::format("{}: {} experts, {} rows\n", r.layer, r.n_experts, data.n_rows);
    for (const ExpertProfile& e : profiles) {
      nlohmann::ordered_json ej;
      ej["expert"] = e.expert;
      ej["share"] = e.share;
      ej["rows"] = e.rows;
      out += fmt::format("  expert {:>2}  {:5.1f}% of slots  {:>6} rows", e.expert, 100.0 * e.share,
                         e.rows);
      if (classes) {
        nlohmann::ordered_json cj;
        const std::vector<int64_t>& counts = mix[static_cast<size_t>(e.expert)];
        std::vector<std::pair<double, size_t>> by_share;  // (share, class)
        for (size_t c = 0; c < counts.size(); ++c) {
          const double frac =
              e.rows > 0 ? static_cast<double>(counts[c]) / static_cast<double>(e.rows) : 0.0;
          cj[class_names[c]] = frac;
          by_share.emplace_back(frac, c);
        }
        // Every class when there are few, else the three largest shares.
        if (by_share.size() > 4) {
          std::stable_sort(by_share.begin(), by_share.end(),
                           [](const auto& a, const auto& b) { return a.first > b.first; });
          by_share.resize(3);
        }
        for (const auto& [frac, c] : by_share)
          out += fmt::format("  {} {:.0f}%", class_names[c], 100 * frac);
        ej["classes"] = cj;
      }
      out += "\n";
      if (text) {
        nlohmann::ordered_json wj = nlohmann::ordered_json::array();
        std::string line;
        for (const ExpertWord& w : e.words) {
          wj.push_back({{"word", w.word}, {"count", w.count}, {"lift", w.lift}});
          line += (line.empty() ? "" : ", ") + w.word;
        }
        ej["words"] = wj;
        out +=
            fmt::format("             {}\n", line.empty() ? "(no word reaches --min-count)" : line);
      }
      layer["experts"].push_back(ej);
    }
    j["layers"].push_back(layer);
  }
  if (args.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    if (!report.empty()) std::printf("note: %s\n", report.c_str());
    std::fputs(out.c_str(), stdout);
  }
  return kExitOk;
}

}  // namespace

void add_inspect_command(CLI::App& app, Run* run) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Show how each MoE layer routes a file: load, class mix, characteristic words");
  cmd->add_option("CHECKPOINT", args->checkpoint, "A checkpoint directory (<out>/best)")
      ->required();
  cmd->add_option("DATA", args->data, "CSV/TSV file, or IDX images")->required();
  cmd->add_option("--labels", args->labels, "IDX labels file (image models)")->type_name("FILE");
  cmd->add_option("--top", args->top, "Words listed per expert (text models)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--min-count", args->min_count,
                  "Rows of an expert a word must occur in to be listed")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", args->json, "Print JSON");
  cmd->callback([args, run] { *run = [args] { return run_inspect(*args); }; });
}

}  // namespace moe::cli
