// Translating sentences with a translation model's checkpoint: what `moe translate` and
// `moe eval` on sentence pairs share.
//
// Dims: N sentences · B sentences per batch · K beam.
//
// Each sentence is encoded with the checkpoint's tokenizer (eos appended by the model), the
// sentences decoded in batches of B (TranslationModel::translate: beam search, greedy at K = 1),
// and the best hypothesis of each decoded back to text. A sentence that is not valid UTF-8, or
// whose tokens and eos do not fit max_tokens, is an error naming `where` and its line (from 1).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "moe/core/status.h"
#include "moe/data/tokenizer.h"
#include "moe/model/translation_model.h"

namespace moe {

struct TranslateOptions {
  int64_t beam = 4;             // K
  double length_penalty = 1.0;  // a finished hypothesis scores log p / len^α
  int64_t max_tokens = 0;       // decoder positions; 0: the model's max_tokens
  int64_t batch_size = 32;      // B
};

struct TranslateStats {
  int64_t sentences = 0;
  int64_t source_tokens = 0;  // with eos
  int64_t output_tokens = 0;  // without eos
  double seconds = 0.0;       // encoding and decoding, not tokenizing
};

Result<std::vector<std::string>> translate_sentences(
    TranslationModel& model, const Tokenizer& tokenizer, std::span<const std::string> sentences,
    const TranslateOptions& options, const std::string& where, TranslateStats* stats);

}  // namespace moe
