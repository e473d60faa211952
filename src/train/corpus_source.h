// Language-model data (format "corpus"): text files -> a trained subword tokenizer -> token
// streams -> windows of S + 1 tokens (data/dataset.h, FeatureKind::kTokens).
//
// Dims: S context · V vocabulary.
//
// The tokenizer is trained on the training text alone (data.corpus), seeded by data.split.seed.
// Validation comes from data.validation when given, else from the end of the training stream
// (data.split.validation of its tokens, cut at a document boundary when there are several, else
// at a line), so no text is on both sides; test from data.test only.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "moe/core/status.h"
#include "moe/data/dataset.h"
#include "moe/data/tokenizer.h"
#include "moe/train/config.h"
#include "moe/train/data_source.h"

namespace moe::corpus_detail {

// The tokenizer data.corpus.tokenizer_model names, or one trained on `documents` (the training
// text alone: validation and test stay unseen) with data.corpus's options, seeded by
// data.split.seed. Errors name the training file (c.train).
Result<Tokenizer> subword_tokenizer(const DataConfig& c, std::span<const std::string> documents);

Result<LoadedData> load_corpus_data(const DataConfig& config, int64_t context);

// A text file encoded with the schema's tokenizer into windows of the schema's context.
Result<Dataset> load_corpus_file(const DataSchema& schema, const std::string& path);

}  // namespace moe::corpus_detail
