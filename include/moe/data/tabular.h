// Tabular data: a CSV/TSV table turned into dense features and labels.
//
// Dims: N rows · D encoded feature width · C regression targets.
//
// Every column that is not a label or ignored is a feature. Its kind is decided on the training
// rows: numeric when every non-missing value parses as a finite number (categorical_columns
// overrides this), categorical otherwise. A column whose values are nearly all (≥ 90%) numbers
// but not all is taken for a numeric column with a typo and rejected, naming the first bad value.
//
//   numeric      x' = (x − mean) / std with the training rows' mean and population standard
//                deviation (std 1 for a constant column, which then encodes as 0)
//   categorical  one-hot over the categories seen in training, sorted bytewise; a category
//                training never saw encodes as all zeros and is counted in the TabularReport
//
// Missing values are the cells that are empty, NA, NaN or ? (surrounding blanks ignored). They
// are an error naming each column with its count, unless imputation is asked for: a numeric
// column then takes the training mean (0 after standardisation); a categorical column that had
// missing values in training gets one more one-hot slot, "<missing>", and one that had none
// encodes a missing value as all zeros. Labels are never imputed.
//
// Values are compared after trimming blanks (spaces and tabs) at both ends. The statistics live
// in a TabularSchema that serialises to JSON, so prediction encodes new rows exactly as the
// training rows were.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "moe/core/status.h"
#include "moe/data/csv.h"
#include "moe/data/dataset.h"

namespace moe {

enum class ColumnKind { kNumeric, kCategorical };

struct FeatureColumn {
  std::string name;
  ColumnKind kind = ColumnKind::kNumeric;
  double mean = 0.0;                    // numeric
  double stddev = 1.0;                  // numeric, > 0
  std::vector<std::string> categories;  // categorical, sorted bytewise, distinct
  bool missing_category = false;        // categorical: a last slot for missing values
  int64_t offset = 0;                   // index of the column's first encoded feature

  int64_t width() const {
    return kind == ColumnKind::kNumeric
               ? 1
               : static_cast<int64_t>(categories.size()) + (missing_category ? 1 : 0);
  }
};

// Everything needed to encode feature columns the way training did.
struct FeatureStats {
  std::vector<FeatureColumn> columns;  // in the training file's column order
  bool impute_missing = false;
  int64_t n_features = 0;  // D, the sum of the columns' widths

  // One name per encoded feature: "age", "city=Paris", "city=<missing>".
  std::vector<std::string> feature_names() const;
  nlohmann::json to_json() const;
  static Result<FeatureStats> from_json(const nlohmann::json& j, const std::string& source);
};

struct TabularSchema {
  FeatureStats features;
  LabelSpec labels;

  nlohmann::json to_json() const;  // {"features": ..., "labels": ...}
  static Result<TabularSchema> from_json(const nlohmann::json& j, const std::string& source);
};

struct TabularOptions {
  TaskKind task = TaskKind::kClassification;
  std::vector<std::string> label_columns;        // one for classification, ≥ 1 for regression
  std::vector<std::string> ignore_columns;       // neither features nor labels (ids, notes)
  std::vector<std::string> categorical_columns;  // categorical even when they look numeric
  bool impute_missing = false;
  bool standardize_targets = false;  // regression: store (y − mean) / std, see LabelSpec
  int64_t max_categories = 1000;     // per categorical column; more is an error
};

// What encoding did quietly: unknown categories and imputed values, per column.
struct TabularReport {
  std::vector<std::pair<std::string, int64_t>> unknown_categories;
  std::vector<std::pair<std::string, int64_t>> imputed;
  // One line for a log ("data.csv: 3 unknown categories in 'city' (encoded as zeros); ..."),
  // empty when there is nothing to say.
  std::string summary(const std::string& source) const;
};

// Learns the schema from training rows `rows` of `table` (class names from those rows too).
Result<TabularSchema> fit_tabular(const CsvTable& table, std::span<const int64_t> rows,
                                  const TabularOptions& options);

// Encodes rows `rows` (all rows when called without them) with a schema. Columns are found by
// name, so their order may differ from training's and extra columns are ignored. `report`
// may be null.
Result<Dataset> encode_tabular(const CsvTable& table, std::span<const int64_t> rows,
                               const TabularSchema& schema, LabelUse labels, TabularReport* report);
Result<Dataset> encode_tabular(const CsvTable& table, const TabularSchema& schema, LabelUse labels,
                               TabularReport* report);

struct TabularData {
  TabularSchema schema;
  Dataset train;
  Dataset validation;  // empty (n_rows 0) when not asked for
  Dataset test;
  TabularReport report;  // over all parts
};

// One table split by ratio (stratified for classification; class names from the whole table,
// so a rare class is known even if all its rows land outside training), the schema fitted on
// the training part. Missing values are checked over the whole table.
Result<TabularData> load_tabular(const CsvTable& table, const TabularOptions& options,
                                 const SplitOptions& split);
// Separate files; validation and test may be null. The schema comes from `train` alone.
Result<TabularData> load_tabular(const CsvTable& train, const CsvTable* validation,
                                 const CsvTable* test, const TabularOptions& options);

}  // namespace moe
