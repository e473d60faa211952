// From a DataConfig to data sets, and the data schema a model is trained against.
//
// Dims: N rows · D dense feature width (tabular encoded width, or image pixels H·W) · V text id
// range (vocabulary plus bigram buckets) · C classes or regression targets.
//
// The schema holds everything needed to encode new files exactly as training did — the tabular
// feature statistics, or the text vocabulary with its document frequencies, or the image shape —
// plus the label names and task. It is saved in every checkpoint (model.json, "data"), so
// `moe eval` and `moe predict` read a file with the schema alone, without the training data.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/core/status.h"
#include "moe/data/dataset.h"
#include "moe/data/tabular.h"
#include "moe/data/text.h"
#include "moe/data/tokenizer.h"
#include "moe/train/config.h"

namespace moe {

// The tokenizer's file in a checkpoint directory (format corpus): SentencePiece's serialized
// model, readable by its own tools (spm_encode --model=…/tokenizer.model).
inline constexpr const char* kTokenizerFile = "tokenizer.model";

struct DataSchema {
  DataFormat format = DataFormat::kCsv;
  LabelSpec labels;
  char delimiter = '\0';                 // csv, tsv, text: the training files' delimiter
  std::optional<FeatureStats> features;  // csv, tsv
  std::optional<TextVectorizer> text;    // text
  int64_t image_size = 0;                // idx: pixels per image (H·W)
  // csv, tsv, text: how the training files' quotes were read; every file given to the schema is
  // read the same way, whatever its delimiter.
  CsvQuoting quoting = CsvQuoting::kRfc4180;
  // corpus, pairs: the subword tokenizer trained on the training text, and the window length
  // (corpus) or the most tokens of a sentence with its eos or bos (pairs). The
  // tokenizer's model travels as its own file in a checkpoint (checkpoint.h); to_json records
  // its size and FNV-1a 64 hash, from_json leaves `tokenizer` empty for the checkpoint to load.
  std::shared_ptr<const Tokenizer> tokenizer;
  int64_t tokenizer_bytes = 0;
  std::string tokenizer_fnv1a64;
  int64_t context = 0;

  DataShape shape() const;
  nlohmann::json to_json() const;
  // `source` names where the JSON came from in messages ("model.json: data").
  static Result<DataSchema> from_json(const nlohmann::json& j, const std::string& source);
};

struct LoadedData {
  DataSchema schema;
  Dataset train;
  Dataset validation;  // n_rows 0 when there is none
  Dataset test;        // n_rows 0 when there is none
  std::string report;  // one line of what encoding did quietly (unknown categories, imputed
                       // values), empty when there is nothing to say
};

// Reads the files the config names, splits what has no file of its own, fits the schema on the
// training part and encodes every part with it. A corpus (language modelling) is cut into
// windows of `context` tokens (model.lm.context), which must then be positive; sentence pairs
// (translation) take `context` as the most tokens of a side (model.translation.max_tokens).
Result<LoadedData> load_data(const DataConfig& config, int64_t context = 0);

// The fingerprint of the data a run trains on: FNV-1a 64 (as 16 hex digits) over every encoded
// value of the training, validation and test parts (features or token ids and weights, labels
// or targets, source rows). Files whose content changed give another one, though the schema
// fitted on them may stay the same (an edited text, labels swapped between rows); a resumed run
// compares it with its checkpoint's (trainer.h).
std::string data_fingerprint(const LoadedData& data);

// Encodes a file with a saved schema (evaluation, prediction). For csv/tsv/text, `path` is a
// CSV/TSV file and `labels_path` must be empty; for corpus a UTF-8 text file (windows of the
// schema's context); for pairs a TSV of sentence pairs; for idx, `path` holds the images and
// `labels_path` the labels (empty: no labels). `report` may be null.
Result<Dataset> load_with_schema(const DataSchema& schema, const std::string& path,
                                 const std::string& labels_path, LabelUse labels,
                                 std::string* report);

}  // namespace moe
