// moe translate CHECKPOINT [FILE|-] [--beam K] [--length-penalty A] [--max-tokens N]
//               [--batch-size B] [--quiet]
//
// Translates one sentence per line of FILE (or of standard input, "-" or no FILE) with a
// translation model's checkpoint (data.format pairs), printing one translation per line in the
// same order, then the speed on stderr. Decoding is beam search with K hypotheses per sentence
// (greedy at K = 1), a finished hypothesis scored log p / len^A (train/translate.h); B sentences
// are decoded together. Line ends may be LF or CRLF; a UTF-8 byte order mark is dropped.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "commands.h"
#include "moe/core/file_io.h"
#include "moe/model/translation_model.h"
#include "moe/train/translate.h"

namespace moe::cli {

namespace {

constexpr uint64_t kMaxInputBytes = uint64_t{1} << 30;

struct TranslateArgs {
  std::string checkpoint;
  std::string input = "-";
  int64_t beam = 4;
  double length_penalty = 1.0;
  int64_t max_tokens = 0;
  int64_t batch_size = 32;
  bool quiet = false;
};

Result<std::string> read_input(const std::string& path) {
  if (path != "-") return read_file_bytes<std::string>(path, kMaxInputBytes, FileSource::kUser);
  std::string text;
  char buf[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) {
    text.append(buf, n);
    if (text.size() > kMaxInputBytes)
      return Status::error("stdin: more than {} bytes of input", kMaxInputBytes);
  }
  if (std::ferror(stdin)) return Status::error("stdin: read failed");
  return text;
}

// The lines of `text`: LF or CRLF ends, a final line without one, a leading byte order mark
// dropped; no line for the end of the text after a final newline.
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t at = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    at = end + 1;
  }
  return lines;
}

int run_translate(const TranslateArgs& args) {
  Result<Checkpoint> ck = load_checkpoint(args.checkpoint);
  if (!ck) return fail(ck.status());
  auto* model = dynamic_cast<TranslationModel*>(ck->model.get());
  if (model == nullptr || !ck->schema.tokenizer)
    return fail(Status::error(
        "{}: not a translation model (data.format \"{}\"); moe translate needs one trained on "
        "sentence pairs (data.format pairs)",
        args.checkpoint, data_format_name(ck->schema.format)));
  Result<std::string> text = read_input(args.input);
  if (!text) return fail(text.status());
  const std::vector<std::string> lines = split_lines(*text);
  TranslateOptions options;
  options.beam = args.beam;
  options.length_penalty = args.length_penalty;
  options.max_tokens = args.max_tokens;
  options.batch_size = args.batch_size;
  TranslateStats stats;
  const std::string where = args.input == "-" ? "stdin" : args.input;
  Result<std::vector<std::string>> out =
      translate_sentences(*model, *ck->schema.tokenizer, lines, options, where, &stats);
  if (!out) return fail(out.status());
  std::string joined;
  for (const std::string& t : *out) joined.append(t).push_back('\n');
  if (Status s = write_stdout(joined); !s) return fail(s);
  if (!args.quiet) {
    const double secs = stats.seconds > 0 ? stats.seconds : 1e-9;
    std::fprintf(stderr, "translated %lld sentences in %.2f s: %.1f sentences/s, %.0f tokens/s\n",
                 static_cast<long long>(stats.sentences), stats.seconds,
                 static_cast<double>(stats.sentences) / secs,
                 static_cast<double>(stats.output_tokens) / secs);
  }
  return kExitOk;
}

}  // namespace

void add_translate_command(CLI::App& app, Run* run) {
  auto args = std::make_shared<TranslateArgs>();
  CLI::App* cmd = app.add_subcommand("translate",
                                     "Translate sentences, one per line, with a translation model");
  cmd->add_option("CHECKPOINT", args->checkpoint, "A checkpoint directory (<out>/best)")
      ->required();
  cmd->add_option("FILE", args->input, "Sentences, one per line (default -: standard input)");
  cmd->add_option("--beam", args->beam, "Hypotheses per sentence (1: greedy)")
      ->check(CLI::Range(int64_t{1}, int64_t{64}));
  cmd->add_option("--length-penalty", args->length_penalty,
                  "A finished hypothesis scores log p / length^A")
      ->check(CLI::Range(0.0, 10.0));
  cmd->add_option("--max-tokens", args->max_tokens,
                  "Longest translation in tokens with bos (0: the model's max_tokens)")
      ->check(non_negative_integer());
  cmd->add_option("--batch-size", args->batch_size, "Sentences decoded together")
      ->check(positive_integer());
  cmd->add_flag("--quiet", args->quiet, "No speed line on stderr");
  cmd->callback([args, run] { *run = [args] { return run_translate(*args); }; });
}

}  // namespace moe::cli
