// Translating sentences in batches (see translate.h).
//
// Dims: N sentences · B sentences per batch.
#include "moe/train/translate.h"

#include <algorithm>
#include <chrono>

namespace moe {

Result<std::vector<std::string>> translate_sentences(
    TranslationModel& model, const Tokenizer& tokenizer, std::span<const std::string> sentences,
    const TranslateOptions& options, const std::string& where, TranslateStats* stats) {
  if (options.beam < 1 || options.batch_size < 1 || options.max_tokens < 0 ||
      !(options.length_penalty >= 0.0 && options.length_penalty <= 10.0))
    return Status::error(
        "translate: beam {} and batch size {} must be ≥ 1, max tokens {} ≥ 0, "
        "length penalty {} in [0, 10]",
        options.beam, options.batch_size, options.max_tokens, options.length_penalty);
  std::vector<std::vector<int32_t>> sources(sentences.size());  // [N]
  TranslateStats st;
  for (size_t i = 0; i < sentences.size(); ++i) {
    int64_t bad = 0;
    if (!valid_utf8(sentences[i], &bad))
      return Status::error("{}: line {}: invalid UTF-8 at byte {} of the line", where, i + 1,
                           bad + 1);
    tokenizer.encode(sentences[i], &sources[i]);
    const auto len = static_cast<int64_t>(sources[i].size()) + 1;
    if (len > model.max_tokens())
      return Status::error(
          "{}: line {}: {} tokens with eos, more than the model's max_tokens {}; split the "
          "sentence",
          where, i + 1, len, model.max_tokens());
    st.source_tokens += len;
  }
  TranslationModel::DecodeOptions decode;
  decode.bos = tokenizer.bos_id();
  decode.eos = tokenizer.eos_id();
  decode.beam = options.beam;
  decode.length_penalty = options.length_penalty;
  decode.max_tokens = options.max_tokens;
  std::vector<std::string> out;
  out.reserve(sentences.size());
  const auto t0 = std::chrono::steady_clock::now();
  const auto b = static_cast<size_t>(options.batch_size);
  for (size_t start = 0; start < sources.size(); start += b) {
    const size_t n = std::min(b, sources.size() - start);
    const std::vector<TranslationModel::Hypothesis> best =
        model.translate(std::span(sources).subspan(start, n), decode);
    for (const TranslationModel::Hypothesis& h : best) {
      out.push_back(tokenizer.decode(h.tokens));
      st.output_tokens += static_cast<int64_t>(h.tokens.size());
    }
  }
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  st.sentences = static_cast<int64_t>(sentences.size());
  if (stats != nullptr) *stats = st;
  return out;
}

}  // namespace moe
