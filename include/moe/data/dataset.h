// The in-memory data set every reader produces, its labels, splitting, and batches.
//
// Dims: N rows · D dense feature width · V id range of sparse features (vocabulary plus hashed
// bigram buckets) · NNZ ids over all rows · B rows in a batch · C regression targets.
//
// Features are either dense, [N, D] float (tabular, images), or sparse in CSR form (text):
// row i owns ids[offsets[i] .. offsets[i+1]) with one weight each, the form the weighted
// EmbeddingBag consumes. Labels are class ids [N] int32 for classification or targets [N, C]
// float for regression.
// A language model's data are token windows (kTokens): `ids` holds one token stream, and row i is
// the window ids[i·S .. i·S + S] of S + 1 tokens (the model reads the first S and predicts the
// last S), so consecutive windows share one token and no target is seen twice. Its labels are
// the tokens themselves (has_labels, classification over the V token ids).
//
// Translation data are sentence pairs (kPairs): `ids` and `offsets` hold the source sentences in
// CSR form (each sentence's tokens followed by eos), `target_ids` and `target_offsets` the target
// sentences' tokens (no bos or eos). A batch packs its rows' sentences one after another without
// padding: the source tokens, and for each target the decoder's input (bos + tokens) and labels
// (tokens + eos), with the starts of each sentence.
//
// Splitting is by ratio, stratified by class (each class is split in the same proportions),
// seeded, and deterministic: the same rows, labels, ratios and seed give the same split on any
// machine. A BatchIterator walks a data set in batches, reshuffled each epoch from (seed, epoch)
// alone, and fills buffers the caller sized once (BatchBuffers): no allocation per batch.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "moe/core/enum_names.h"
#include "moe/core/status.h"
#include "moe/core/tensor.h"

namespace moe {

enum class TaskKind { kClassification, kRegression };

inline constexpr EnumName<TaskKind> kTaskKindNames[] = {
    {"classification", TaskKind::kClassification}, {"regression", TaskKind::kRegression}};

const char* task_kind_name(TaskKind t);  // "classification", "regression"
bool parse_task_kind(std::string_view name, TaskKind* out);

// What the labels are and how to turn file values into them and back.
struct LabelSpec {
  TaskKind task = TaskKind::kClassification;
  std::vector<std::string> columns;      // one for classification, one or more for regression
  std::vector<std::string> class_names;  // classification: sorted bytewise; class id = index
  // Regression: training mean and (population) standard deviation per target. Targets in a
  // Dataset are (y - mean) / std when `standardized`, raw otherwise.
  std::vector<double> target_mean;
  std::vector<double> target_std;
  bool standardized = false;

  int64_t n_classes() const { return static_cast<int64_t>(class_names.size()); }
  int64_t n_targets() const { return static_cast<int64_t>(columns.size()); }
  // The class id of a (trimmed) label, or -1 if training never saw it.
  int32_t class_id(std::string_view name) const;
  // Undoes standardisation of model outputs: y = z * std + mean.  z [B, C] in place.
  void unstandardize(std::span<float> z) const;

  nlohmann::json to_json() const;
  // `source` names where the JSON came from in messages.
  static Result<LabelSpec> from_json(const nlohmann::json& j, const std::string& source);
};

// Whether encoding a file needs its label column(s): evaluation does, prediction may go without.
enum class LabelUse { kRequired, kIfPresent, kIgnore };

enum class FeatureKind { kDense, kSparse, kTokens, kPairs };

// What the model needs to know about its input and output.
struct DataShape {
  FeatureKind input = FeatureKind::kDense;  // dense features or sparse (text) ids
  int64_t n_features = 0;                   // D_in (dense) or V (sparse, tokens)
  TaskKind task = TaskKind::kClassification;
  int64_t n_outputs = 0;  // classes (classification) or targets (regression)
};

struct Dataset {
  std::string source;  // the file the rows came from, for messages
  FeatureKind kind = FeatureKind::kDense;
  int64_t n_rows = 0;
  int64_t n_features = 0;  // D for dense, V for sparse and tokens

  std::vector<float> dense;      // [N, D]
  std::vector<int32_t> ids;      // [NNZ], each in [0, V); tokens: the stream [N·S + 1]
  std::vector<int64_t> offsets;  // [N+1], offsets[0] = 0, non-decreasing, offsets[N] = NNZ
  std::vector<float> weights;    // [NNZ]

  TaskKind task = TaskKind::kClassification;
  bool has_labels = false;
  int64_t n_classes = 0;
  std::vector<int32_t> labels;  // [N] (classification)
  int64_t n_targets = 0;
  std::vector<float> targets;  // [N, C] (regression)

  // Where each row came from: its line in a CSV file, its record index in an IDX file.
  std::vector<int64_t> source_rows;  // [N]

  int64_t context = 0;  // tokens: S, the tokens a window predicts
  int64_t n_bytes = 0;  // tokens: UTF-8 bytes of the text the stream encodes
  // tokens: the bytes of ids[0 .. n_rows·S], the part the windows cover (n_bytes less the
  // dropped tail's), what bits per byte divides by
  int64_t window_bytes = 0;

  // pairs: the target sentences [N] in CSR form (ids and offsets hold the sources), the
  // tokenizer's bos and eos, and the UTF-8 bytes of the target sentences
  std::vector<int32_t> target_ids;      // [target NNZ]
  std::vector<int64_t> target_offsets;  // [N+1]
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int64_t target_bytes = 0;

  // The rows `rows` in that order, as a new data set (not for token windows).
  Dataset subset(std::span<const int64_t> rows) const;
  // The first min(n, n_rows) rows, for every kind (token windows: a prefix of the stream, its
  // bytes in proportion to its tokens).
  Dataset head(int64_t n) const;
  int64_t row_ids(int64_t row) const { return offsets[row + 1] - offsets[row]; }
};

struct SplitOptions {
  double validation = 0.1;  // fractions of the rows; training gets the rest
  double test = 0.0;
  bool stratify = true;  // classification only
  uint64_t seed = 0;
};

// Row indices of each part, each list in increasing order.
struct SplitIndices {
  std::vector<int64_t> train;
  std::vector<int64_t> validation;
  std::vector<int64_t> test;
};

// Splits rows 0..n-1. With `labels` (size n, ids in [0, n_classes)) and options.stratify, each
// class is shuffled and cut on its own: of its n_c rows, round(validation · n_c) go to
// validation, round(test · n_c) to test, the rest (never fewer than one) to training.
// Otherwise all rows are shuffled and cut the same way. Ratios outside [0, 1) or adding up to
// 1 or more are errors, as is a split that leaves training empty.
Result<SplitIndices> split_rows(int64_t n, std::span<const int32_t> labels, int64_t n_classes,
                                const SplitOptions& options);

struct BatchOptions {
  int64_t batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;  // drop a final batch shorter than batch_size
  uint64_t seed = 0;
  // Data parallelism: each batch of batch_size rows (in the order every rank draws alike) is cut
  // into `shards` contiguous parts, and this iterator yields part `shard` (rows
  // [n·shard/shards, n·(shard+1)/shards) of a batch of n). One shard: the whole batch. A final
  // batch with fewer rows than shards is left out. batch_size must be at least `shards`.
  int shard = 0;
  int shards = 1;
};

// Memory for one batch, sized for a data set and batch size once and reused every step.
struct BatchBuffers {
  TensorBuffer features;    // [B, D] dense
  TensorBuffer ids;         // [max ids in any B rows] int32 sparse
  TensorBuffer offsets;     // [B+1] int64 sparse
  TensorBuffer weights;     // [max ids in any B rows] sparse
  TensorBuffer labels;      // [B] int32 classification
  TensorBuffer targets;     // [B, C] regression
  TensorBuffer rows;        // [B] int64 data set row of each batch row
  TensorBuffer tokens;      // [B, S+1] int32 token windows
  TensorBuffer src_tokens;  // [most source tokens of any B rows] int32 pairs
  TensorBuffer src_starts;  // [B+1] int64
  TensorBuffer tgt_in;      // [most target tokens of any B rows + B] int32
  TensorBuffer tgt_out;     // [same] int32
  TensorBuffer tgt_starts;  // [B+1] int64

  static BatchBuffers for_dataset(const Dataset& d, int64_t batch_size);
};

// One batch: views into BatchBuffers trimmed to this batch's size (the last may be short).
struct Batch {
  int64_t n_rows = 0;
  Tensor features;  // [n, D]
  Tensor ids;       // [n_ids] int32, offsets relative to this batch
  Tensor offsets;   // [n+1] int64
  Tensor weights;   // [n_ids]
  Tensor labels;    // [n] int32
  Tensor targets;   // [n, C]
  Tensor rows;      // [n] int64
  Tensor tokens;    // [n, S+1] int32 token windows: inputs [:, :S], targets [:, 1:]
  // Sentence pairs, packed: row i's source is src_tokens[src_starts[i] .. src_starts[i+1]),
  // eos included; its target positions tgt_starts[i] .. tgt_starts[i+1] hold the decoder's
  // input (bos, y_1 .. y_m) in tgt_in and the labels (y_1 .. y_m, eos) in tgt_out.
  Tensor src_tokens;  // [Ts] int32
  Tensor src_starts;  // [n+1] int64
  Tensor tgt_in;      // [Tt] int32
  Tensor tgt_out;     // [Tt] int32
  Tensor tgt_starts;  // [n+1] int64
};

class BatchIterator {
 public:
  BatchIterator(const Dataset& data, const BatchOptions& options);

  // Sets the row order for an epoch: a permutation drawn from Rng(seed).fork(epoch) when
  // shuffling, the data set's order otherwise. Call before the first next() of each epoch.
  void start_epoch(int64_t epoch);
  // Fills `buffers` with the next batch and points `out` at it; false when the epoch is done.
  bool next(const BatchBuffers& buffers, Batch* out);
  int64_t n_batches() const;

  // The most ids any `batch_size` rows can hold: the sum of the largest row lengths.
  static int64_t max_ids_per_batch(const Dataset& d, int64_t batch_size);

 private:
  void fill_pairs(const BatchBuffers& buffers, const int64_t* rows, int64_t n, Batch* out) const;

  const Dataset* data_;
  BatchOptions options_;
  std::vector<int64_t> order_;  // [N]
  int64_t cursor_ = 0;
};

}  // namespace moe
