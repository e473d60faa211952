// Translation data (format "pairs"): TSV files of source<TAB>target sentence pairs
// (data/pairs.h) -> one subword tokenizer for both sides -> sentence-pair data sets
// (data/dataset.h, FeatureKind::kPairs).
//
// Dims: N pairs · V vocabulary · M max_tokens.
//
// The tokenizer (data.corpus's options, or data.corpus.tokenizer_model) is trained on both sides
// of the training pairs alone, seeded by data.split.seed. Each source is encoded with eos after
// it, each target bare (batches add bos and eos); a side longer than M tokens with its eos or bos
// (model.translation.max_tokens) is an error naming the file and line, or, with
// data.pairs.drop_long, is dropped and counted in the report. Validation comes from
// data.validation when given, else from data.split.validation of the training pairs (drawn by
// data.split.seed); test from data.test only.
#pragma once

#include <cstdint>
#include <string>

#include "moe/core/status.h"
#include "moe/data/dataset.h"
#include "moe/train/config.h"
#include "moe/train/data_source.h"

namespace moe::pairs_detail {

Result<LoadedData> load_pairs_data(const DataConfig& config, int64_t max_tokens);

// A TSV of pairs encoded with the schema's tokenizer; its sides must fit schema.context (the
// max_tokens the model was trained with) unless `drop_long`. *dropped (may be null) receives the
// number of pairs dropped.
Result<Dataset> load_pairs_file(const DataSchema& schema, const std::string& path, bool drop_long,
                                int64_t* dropped);

}  // namespace moe::pairs_detail
