// The run configuration: what `moe train` reads from a JSON file, as plain structs.
//
// Dims: D model width · F expert hidden width · E experts · K experts per token · G groups.
//
// Every key is validated when parsing: an unknown key, a value of the wrong type or out of range
// is one error naming the key's full path and what was expected, e.g.
//   config.json: model.moe.k: expected a positive integer, got "two"
// Every optional key has a default (docs/config.md lists them all). Overrides (`--set
// model.moe.k=2`) are applied to the JSON before parsing: the value is parsed as JSON when it
// parses and taken as a string otherwise; the key must be one the configuration knows.
// config_to_json gives the resolved configuration, every default filled in, which parses back to
// the same Config (it is saved with every run and in every checkpoint).
//
// Relative paths in data.* are relative to the working directory of the process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/core/status.h"
#include "moe/data/csv.h"
#include "moe/data/dataset.h"
#include "moe/data/tokenizer.h"
#include "moe/kernels/ops.h"
#include "moe/model/model_config.h"
#include "moe/moe/experts.h"
#include "moe/moe/gate.h"
#include "moe/moe/moe_layer.h"
#include "moe/optim/optimizer.h"
#include "moe/optim/schedule.h"

namespace moe {

// ---------------------------------------------------------------------------------------------
// data

enum class DataFormat {
  kCsv,     // tabular, comma-separated
  kTsv,     // tabular, tab-separated
  kText,    // text classification: a text column and a label column in a CSV or TSV file
  kIdx,     // images and labels in IDX files (MNIST, Fashion-MNIST)
  kCorpus,  // language modelling: plain UTF-8 text files, a subword tokenizer, token windows
  kPairs,   // translation: a TSV of source<TAB>target sentence pairs, a subword tokenizer shared
            // by both sides
};
const char* data_format_name(DataFormat f);  // "csv", "tsv", "text", "idx", "corpus", "pairs"
bool parse_data_format(const std::string& s, DataFormat* out);

struct SplitConfig {  // data.split: used for the parts that have no file of their own
  double validation = 0.1;
  double test = 0.0;
  uint64_t seed = 0;
  bool stratify = true;  // classification only
};

struct TextConfig {  // data.text (format "text")
  std::string column = "text";
  bool lowercase = true;
  bool strip_html = true;
  bool stop_words = false;      // the built-in English list
  std::string stop_words_file;  // added to the built-in list when both are set
  int64_t min_count = 2;
  int64_t max_vocab = 20000;  // 0: no limit
  bool bigrams = false;       // word bigrams in the vocabulary
  int64_t bigram_buckets = 0;
  bool sublinear_tf = true;
};

struct IdxConfig {  // data.idx (format "idx"); empty validation/test paths mean none
  std::string train_images, train_labels;
  std::string validation_images, validation_labels;
  std::string test_images, test_labels;
  int64_t n_classes = 10;
};

// data.corpus (formats "corpus" and "pairs"): the subword tokenizer trained on data.train (for
// pairs, on both sides of its sentences), SentencePiece's options (data/tokenizer.h), or one given
// as a file.
struct CorpusConfig {
  SubwordOptions tokenizer;
  // A SentencePiece model file to use instead of training one (a checkpoint's tokenizer.model,
  // so a warm start keeps the token ids its embeddings were trained on); "" trains one.
  std::string tokenizer_model;
};

// data.pairs (format "pairs").
struct PairsConfig {
  // A pair with a side longer than model.translation.max_tokens tokens: an error naming its file
  // and line when false; when true the pair is dropped, and the drops are counted and reported.
  bool drop_long = false;
};

enum class MissingPolicy { kError, kImpute };

struct DataConfig {
  DataFormat format = DataFormat::kCsv;
  // CSV/TSV files (formats csv, tsv, text), text files (corpus) or TSV files of sentence pairs
  // (pairs). validation and test may be empty: then the split ratios carve them out of `train`.
  std::string train, validation, test;
  char delimiter = '\0';  // format text: '\0' picks by extension (.tsv: tab, else comma)
  // How quotes in those files are read. When the key is not given, parsing sets the default of
  // the training file's delimiter: none for a tab (format tsv, or text reading a tab), RFC 4180
  // otherwise.
  CsvQuoting quoting = CsvQuoting::kRfc4180;
  SplitConfig split;
  TaskKind task = TaskKind::kClassification;
  // One column for classification, one or more for regression.
  std::vector<std::string> label = {"label"};
  std::vector<std::string> ignore_columns;
  std::vector<std::string> categorical_columns;
  MissingPolicy missing = MissingPolicy::kError;
  bool standardize_targets = true;  // regression: train on (y − mean) / std
  int64_t max_categories = 1000;
  TextConfig text;
  IdxConfig idx;
  CorpusConfig corpus;  // formats corpus and pairs
  PairsConfig pairs;
};

// ---------------------------------------------------------------------------------------------
// model (the structs are in model/model_config.h)

const char* norm_choice_name(NormChoice n);  // "rms", "layer", "none"

// ---------------------------------------------------------------------------------------------
// training

// The metric early stopping watches and the best checkpoint is chosen by (on validation).
enum class MetricKind { kLoss, kAccuracy, kF1, kRocAuc, kMse, kMae, kR2 };
// "loss", "accuracy", "f1", "roc_auc", "mse", "mae", "r2"
const char* metric_kind_name(MetricKind m);
// Also takes "auc", an alias of "roc_auc".
bool parse_metric_kind(const std::string& s, MetricKind* out);
bool metric_higher_is_better(MetricKind m);

enum class RegressionLoss { kMse, kHuber };
enum class ClassWeights { kNone, kBalanced };

struct TrainingConfig {
  OptimizerConfig optimizer;  // kind, weight_decay, momentum, nesterov, beta1, beta2, eps
  double lr = 1e-3;
  ScheduleKind schedule = ScheduleKind::kCosine;
  int64_t warmup_steps = 0;
  double min_lr = 0.0;       // cosine floor
  int64_t step_size = 1000;  // step schedule: N
  double gamma = 0.1;        // step schedule: γ
  int64_t batch_size = 64;
  int64_t epochs = 10;
  // Budgets that end training before the last epoch (0: none). max_steps caps the optimizer
  // steps, and the learning-rate schedule is planned over min(epochs · batches, max_steps), so a
  // cosine decays fully inside it. max_minutes stops after the step that crosses that much
  // training time (validation excluded), which gives two models the same wall time; the
  // schedule is still planned over the steps, so set max_steps or epochs to what fits.
  int64_t max_steps = 0;
  double max_minutes = 0.0;
  uint64_t seed = 0;
  int threads = 0;       // 0: every core
  int64_t patience = 0;  // epochs without improvement before stopping; 0: never stop early
  MetricKind metric = MetricKind::kLoss;  // validation metric for early stopping and "best"
  double clip_norm = 0.0;                 // global gradient norm cap; 0: no clipping
  double label_smoothing = 0.0;           // classification
  ClassWeights class_weights = ClassWeights::kNone;  // classification
  RegressionLoss loss = RegressionLoss::kMse;        // regression
  double huber_delta = 1.0;
  // A checkpoint directory whose parameters the model starts from (warm_start.h); "" for none.
  // Only a fresh run reads it: a resumed one continues from its own last checkpoint.
  std::string init;
  // Parameters a warm start leaves at their fresh initialisation: name patterns with * and ?
  // (shell globs, "head.*"); each must match a parameter of the model.
  std::vector<std::string> init_exclude;
  // Which parameters train (freeze.h): patterns of the names to freeze, and, when not empty, of
  // the only names to train.
  std::vector<std::string> frozen;
  std::vector<std::string> trainable;

  // The schedule for `total_steps` optimizer steps (epochs × batches per epoch).
  LrSchedule make_schedule(int64_t total_steps) const;
};

// ---------------------------------------------------------------------------------------------
// output

struct OutputConfig {
  std::string dir = "runs/run";
  int64_t checkpoint_every = 0;  // steps between training checkpoints; 0: at epoch ends only
  int64_t keep_last = 1;         // training checkpoints kept
  bool save_best = true;         // keep the best validation model in <dir>/best
};

struct Config {
  DataConfig data;
  ModelConfig model;
  TrainingConfig training;
  OutputConfig output;
};

// Parses and validates. `source` names the JSON in messages ("config.json").
Result<Config> parse_config(const nlohmann::json& j, const std::string& source);
// The resolved configuration, every default filled in; parse_config gives it back unchanged.
nlohmann::json config_to_json(const Config& c);

// Reads a JSON file (its size capped), with the file name and line of a syntax error.
Result<nlohmann::json> read_json_file(const std::string& path);

// Applies one "key.path=value" override to `j` (the configuration as written). The key must be
// one the configuration knows (present in the resolved form of `j`; array elements by index:
// "model.moe.1.k"); missing objects on the way are created.
Status apply_override(nlohmann::json* j, const std::string& assignment);

// The keys a configuration sets explicitly, as full dotted paths: the leaves of the JSON as
// written (objects are walked; an array of objects by index, "model.moe.1.k"; any other value,
// an array of strings or of widths included, is one key: "data.label", "model.trunk.hidden").
// `prefix` is the path of `written` itself ("" for the whole configuration).
std::vector<std::string> config_keys_set(const nlohmann::json& written,
                                         const std::string& prefix = "");

// What load_config read explicitly, apart from the defaults: the keys of the file and those of
// the --set overrides (an override's key, or the leaves of its value when that is an object).
struct ExplicitKeys {
  std::vector<std::string> file;
  std::vector<std::string> overrides;
};

// read_json_file + every override in order + parse_config. `explicit_keys`, when given,
// receives the keys the file and the overrides set.
Result<Config> load_config(const std::string& path, const std::vector<std::string>& overrides,
                           ExplicitKeys* explicit_keys = nullptr);

// ---------------------------------------------------------------------------------------------
// keys that do nothing

// A key that was set but has no effect in the configuration it belongs to: no value of it would
// change the run (a Gumbel option on a top-k gate, bf16 precision on MLP experts, a text option
// on tabular data, a gate option under model.dense, ...). docs/config.md lists the rules.
struct ConfigWarning {
  std::string key;     // full dotted path, as --set names it: "model.moe.gate.hard"
  std::string reason;  // why it does nothing: "only the gumbel_softmax gate uses it (...)"
  // "<key>: has no effect: <reason>"
  std::string message() const;
};

// Every key of `explicit_keys` (or with a key below it there, "data.label.0") that has no effect
// in `c`, once each, in the order of the configuration's sections. Keys left at their defaults
// are never named, so a resolved configuration (every key explicit) is for the caller to avoid.
std::vector<ConfigWarning> ineffective_config_keys(const Config& c,
                                                   const std::vector<std::string>& explicit_keys);

}  // namespace moe
