// moe generate CHECKPOINT [--prompt TEXT | --prompt-file FILE] [--max-tokens N]
//              [--temperature T] [--top-k K] [--top-p P] [--seed S] [--quiet]
//
// Continues a prompt with a language model's checkpoint, streaming the text to stdout as it is
// sampled, then prints the prefill and decode speeds on stderr. The prompt is encoded with the
// checkpoint's tokenizer after a <s> (as every training document starts); the model keeps every
// block's keys and values (LmModel::extend), so each new token costs one position's work. When
// the context is full, generation goes on from the last half of it (re-encoded at once).
//
// Sampling: logits / T, then the K most probable tokens (--top-k, 0: all), then the smallest set
// of those whose probability reaches P (--top-p, nucleus sampling, Holtzman et al. 2020),
// renormalised; T = 0 is greedy (the most probable token). The same checkpoint, prompt, options
// and seed give the same text, whatever the thread count.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "commands.h"
#include "moe/core/arena.h"
#include "moe/core/file_io.h"
#include "moe/core/rng.h"
#include "moe/data/tokenizer.h"
#include "moe/model/lm_model.h"

namespace moe::cli {

namespace {

constexpr int64_t kMaxTokensLimit = int64_t{1} << 24;
constexpr uint64_t kMaxPromptBytes = uint64_t{64} << 20;

struct GenerateArgs {
  std::string checkpoint;
  std::string prompt;
  std::string prompt_file;
  int64_t max_tokens = 200;
  double temperature = 0.8;
  int64_t top_k = 50;
  double top_p = 0.95;
  uint64_t seed = 0;
  bool quiet = false;  // no speeds on stderr
};

struct Sampling {
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
};

// The next token from logits [V] (sampling above), `u` a uniform draw in [0, 1).
int32_t sample(const float* logits, int64_t v, const Sampling& s, double u,
               std::vector<int32_t>* order, std::vector<double>* probs) {
  if (s.temperature <= 0.0)
    return static_cast<int32_t>(std::max_element(logits, logits + v) - logits);
  order->resize(static_cast<size_t>(v));
  std::iota(order->begin(), order->end(), 0);
  // Most probable first, ties to the lower id, so the draw does not depend on the sort.
  const auto better = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  const int64_t keep = s.top_k > 0 ? std::min(s.top_k, v) : v;
  std::partial_sort(order->begin(), order->begin() + keep, order->end(), better);
  probs->resize(static_cast<size_t>(keep));
  const double top = logits[(*order)[0]];
  double sum = 0.0;
  for (int64_t i = 0; i < keep; ++i) {
    (*probs)[static_cast<size_t>(i)] =
        std::exp((logits[(*order)[static_cast<size_t>(i)]] - top) / s.temperature);
    sum += (*probs)[static_cast<size_t>(i)];
  }
  // Nucleus: the shortest prefix whose mass reaches top_p.
  int64_t n = keep;
  double mass = 0.0;
  for (int64_t i = 0; i < keep; ++i) {
    mass += (*probs)[static_cast<size_t>(i)] / sum;
    if (mass >= s.top_p) {
      n = i + 1;
      break;
    }
  }
  double kept = 0.0;
  for (int64_t i = 0; i < n; ++i) kept += (*probs)[static_cast<size_t>(i)];
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    acc += (*probs)[static_cast<size_t>(i)] / kept;
    if (u < acc) return (*order)[static_cast<size_t>(i)];
  }
  return (*order)[static_cast<size_t>(n - 1)];
}

// Writes the text of the sampled tokens as they come. SentencePiece decodes a sequence as the
// concatenation of its pieces' texts (no normalisation, no dummy prefix: tokenizer.cpp), except
// that a character spelled as byte pieces decodes to U+FFFD until its last byte is there; so the
// tokens since the last write are held while their text ends in U+FFFD, up to kMaxHeld of them
// (a UTF-8 character has at most 4 bytes; a longer run is broken bytes, written as they are).
// Each token is decoded a bounded number of times, so a long generation stays linear.
class TextStream {
 public:
  explicit TextStream(const Tokenizer& t) : tok_(t) {}
  Status push(int32_t id) {
    held_.push_back(id);
    const std::string text = tok_.decode(held_);
    constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
    if (held_.size() < kMaxHeld && text.size() >= 3 &&
        text.compare(text.size() - 3, 3, kReplacement) == 0)
      return Status::ok();
    held_.clear();
    return write_stdout(text);
  }
  Status finish() {
    const std::string text = held_.empty() ? std::string() : tok_.decode(held_);
    held_.clear();
    return write_stdout(text + "\n");
  }

 private:
  static constexpr size_t kMaxHeld = 8;
  const Tokenizer& tok_;
  std::vector<int32_t> held_;  // sampled, not written yet
};

Result<std::string> read_prompt(const GenerateArgs& args) {
  if (!args.prompt_file.empty()) {
    if (!args.prompt.empty())
      return Status::error("give the prompt with --prompt or --prompt-file, not both");
    return read_file_bytes<std::string>(args.prompt_file, kMaxPromptBytes, FileSource::kUser);
  }
  return args.prompt;
}

int run_generate(const GenerateArgs& args) {
  Result<Checkpoint> ck = load_checkpoint(args.checkpoint);
  if (!ck) return fail(ck.status());
  auto* lm = dynamic_cast<LmModel*>(ck->model.get());
  if (lm == nullptr || !ck->schema.tokenizer)
    return fail(
        Status::error("{}: not a language model (data.format is {}); moe generate needs "
                      "a checkpoint trained on a corpus",
                      args.checkpoint, data_format_name(ck->config.data.format)));
  const Tokenizer& tok = *ck->schema.tokenizer;
  Result<std::string> prompt = read_prompt(args);
  if (!prompt) return fail(prompt.status());
  int64_t bad = 0;
  if (!valid_utf8(*prompt, &bad))
    return fail(Status::error("{}: the prompt is not valid UTF-8 (byte {})",
                              args.prompt_file.empty() ? "--prompt" : args.prompt_file, bad));
  std::vector<int32_t> ids = {tok.bos_id()};
  tok.encode(*prompt, &ids);
  const int64_t context = lm->context();
  if (static_cast<int64_t>(ids.size()) > context)
    return fail(Status::error(
        "{}: the prompt is {} tokens (with <s>), longer than the model's "
        "context of {}; shorten it",
        args.prompt_file.empty() ? "--prompt" : args.prompt_file, ids.size(), context));

  Sampling sampling{args.temperature, args.top_k, args.top_p};
  Rng rng(args.seed, 0x47454e);  // "GEN"
  Arena arena;
  std::vector<int32_t> order;
  std::vector<double> probs;
  const auto t0 = std::chrono::steady_clock::now();
  lm->start_generation();
  Tensor logits = lm->extend(ids, arena);
  const double prefill_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t prompt_tokens = static_cast<int64_t>(ids.size());

  if (Status s = write_stdout(*prompt); !s) return fail(s);
  int64_t n_generated = 0;
  TextStream stream(tok);
  const auto t1 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < args.max_tokens; ++i) {
    const int32_t next = sample(logits.f32(), lm->vocab(), sampling, rng.uniform(), &order, &probs);
    ++n_generated;
    ids.push_back(next);
    if (Status s = stream.push(next); !s) return fail(s);
    if (i + 1 == args.max_tokens) break;
    arena.reset();
    if (lm->cached_positions() == context) {
      // The context is full: start again from its last half.
      ids.erase(ids.begin(), ids.end() - context / 2);
      lm->start_generation();
      logits = lm->extend(ids, arena);
    } else {
      logits = lm->extend(std::span<const int32_t>(&ids.back(), 1), arena);
    }
  }
  if (Status s = stream.finish(); !s) return fail(s);
  const double decode_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  if (!args.quiet)
    std::fprintf(stderr,
                 "moe: prefill %lld tokens at %.0f tokens/s; decode %lld tokens at %.1f "
                 "tokens/s\n",
                 static_cast<long long>(prompt_tokens),
                 prefill_s > 0 ? static_cast<double>(prompt_tokens) / prefill_s : 0.0,
                 static_cast<long long>(n_generated),
                 decode_s > 0 ? static_cast<double>(n_generated) / decode_s : 0.0);
  return kExitOk;
}

// (0, 1]: CLI::Range would print its open lower end as "0.000000" and read like a closed one.
CLI::Validator probability_mass() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        double v = 0.0;
        const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || end != s.data() + s.size() || !(v > 0.0 && v <= 1.0))
          return fmt::format("must be a number in (0, 1], got '{}'", s);
        return "";
      },
      "(0, 1]");
}

}  // namespace

void add_generate_command(CLI::App& app, Run* run) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd =
      app.add_subcommand("generate", "Continue a prompt with a language model's checkpoint");
  cmd->add_option("CHECKPOINT", args->checkpoint, "A checkpoint directory (<out>/best)")
      ->required();
  cmd->add_option("--prompt", args->prompt, "The text to continue (default: none)");
  cmd->add_option("--prompt-file", args->prompt_file, "Read the prompt from a UTF-8 file")
      ->type_name("FILE");
  cmd->add_option("--max-tokens", args->max_tokens, "Tokens to generate (default 200)")
      ->check(CLI::Range(int64_t{1}, kMaxTokensLimit));
  cmd->add_option("--temperature", args->temperature, "Sampling temperature; 0: greedy (0.8)")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", args->top_k, "Sample among the K most probable tokens; 0: all (50)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--top-p", args->top_p, "Nucleus sampling mass in (0, 1] (0.95)")
      ->check(probability_mass());
  cmd->add_option("--seed", args->seed, "Sampling seed (0)");
  cmd->add_flag("--quiet", args->quiet, "Do not print the speeds on stderr");
  cmd->callback([args, run] { *run = [args] { return run_generate(*args); }; });
}

}  // namespace moe::cli
