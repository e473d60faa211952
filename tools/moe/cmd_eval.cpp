// moe eval CHECKPOINT DATA [--labels FILE] [--json] [--batch-size N] [--beam K]
//
// Encodes DATA with the checkpoint's schema and prints the model's metrics on it: a table, or
// with --json one JSON object (EvalMetrics::to_json, then "checkpoint" and "data"). A
// translation model (DATA a TSV of sentence pairs) also translates every source, with beam K,
// and scores the translations against the targets with corpus BLEU and chrF as sacreBLEU
// computes them (train/translation_metrics.h).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "moe/data/pairs.h"
#include "moe/model/translation_model.h"
#include "moe/train/evaluate.h"
#include "moe/train/translate.h"
#include "moe/train/translation_metrics.h"

namespace moe::cli {

namespace {

struct EvalArgs {
  std::string checkpoint;
  std::string data;
  std::string labels;
  bool json = false;
  int64_t batch_size = 256;
  int64_t beam = 4;
};

// What translating DATA's sources scores against its targets.
struct TranslationScores {
  BleuScore bleu;
  double chrf = 0.0;
  TranslateStats stats;
};

Result<TranslationScores> score_translations(const Checkpoint& ck, const EvalArgs& args) {
  auto* model = dynamic_cast<TranslationModel*>(ck.model.get());
  MOE_CHECK(model != nullptr && ck.schema.tokenizer, "a pairs checkpoint without its model");
  MOE_ASSIGN_OR_RETURN(const SentencePairs pairs, read_sentence_pairs(args.data));
  // The pairs the token metrics kept (load_with_schema leaves out those over max_tokens).
  std::vector<std::string> sources, targets;
  const Tokenizer& tokenizer = *ck.schema.tokenizer;
  for (size_t i = 0; i < pairs.sources.size(); ++i) {
    const auto fits = [&](const std::string& s) {
      return static_cast<int64_t>(tokenizer.encode(s).size()) + 1 <= model->max_tokens();
    };
    if (!fits(pairs.sources[i]) || !fits(pairs.targets[i])) continue;
    sources.push_back(pairs.sources[i]);
    targets.push_back(pairs.targets[i]);
  }
  TranslateOptions options;
  options.beam = args.beam;
  TranslationScores out;
  MOE_ASSIGN_OR_RETURN(
      const std::vector<std::string> hyps,
      translate_sentences(*model, tokenizer, sources, options, args.data, &out.stats));
  out.bleu = corpus_bleu(hyps, targets);
  out.chrf = corpus_chrf(hyps, targets);
  return out;
}

std::string scores_text(const TranslationScores& t, int64_t beam) {
  const BleuScore& b = t.bleu;
  return fmt::format(
      "bleu        {:.2f}  ({:.1f}/{:.1f}/{:.1f}/{:.1f}, brevity penalty {:.3f}, {} / {} tokens; "
      "13a, exp smoothing)\n"
      "chrf        {:.2f}  (character 6-grams, beta 2)\n"
      "translated  {} sentences with beam {} in {:.1f} s\n",
      b.score, b.precision[0], b.precision[1], b.precision[2], b.precision[3], b.brevity_penalty,
      b.stats.hyp_len, b.stats.ref_len, t.chrf, t.stats.sentences, beam, t.stats.seconds);
}

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
  const bool tokens = in->data.kind == FeatureKind::kTokens || in->data.kind == FeatureKind::kPairs;
  Result<EvalMetrics> m =
      evaluate(*ck.model, in->data, ck.schema.labels, options, tokens ? nullptr : &predictions);
  if (!m) return fail(m.status());
  std::optional<TranslationScores> scores;
  if (in->data.kind == FeatureKind::kPairs) {
    Result<TranslationScores> t = score_translations(ck, args);
    if (!t) return fail(t.status());
    scores = *t;
  }
  const std::vector<std::string>& names = output_names(ck.schema);
  if (args.json) {
    nlohmann::ordered_json j = m->to_json(names);
    if (scores) {
      const BleuScore& b = scores->bleu;
      j["bleu"] = {{"score", b.score},
                   {"precisions", b.precision},
                   {"brevity_penalty", b.brevity_penalty},
                   {"hyp_len", b.stats.hyp_len},
                   {"ref_len", b.stats.ref_len},
                   {"signature", "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp"}};
      j["chrf"] = {{"score", scores->chrf}, {"signature", "nrefs:1|case:mixed|nc:6|nw:0|space:no"}};
      j["beam"] = args.beam;
    }
    j["checkpoint"] = args.checkpoint;
    j["data"] = args.data;
    if (!report.empty()) j["note"] = report;
    if (Status s = write_stdout(j.dump(2) + "\n"); !s) return fail(s);
  } else {
    std::string text = report.empty() ? "" : "note: " + report + "\n";
    text += args.checkpoint + " on " + args.data + "\n" + m->to_text(names);
    if (scores) text += scores_text(*scores, args.beam);
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
  cmd->add_option("DATA", args->data,
                  "CSV/TSV file, IDX images, a text file (language model) or a TSV of sentence "
                  "pairs (translation model)")
      ->required();
  cmd->add_option("--labels", args->labels, "IDX labels file (image models)")->type_name("FILE");
  cmd->add_flag("--json", args->json, "Print the metrics as JSON");
  cmd->add_option("--batch-size", args->batch_size, "Rows per forward pass")
      ->check(positive_integer());
  cmd->add_option("--beam", args->beam, "Translation models: hypotheses per sentence (1: greedy)")
      ->check(CLI::Range(int64_t{1}, int64_t{64}));
  cmd->callback([args, run] { *run = [args] { return run_eval(*args); }; });
}

}  // namespace moe::cli
