#include "moe/data/tabular.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <unordered_map>
#include <unordered_set>

#include "core/json_fields.h"
#include "data/cells.h"
#include "data/file_bytes.h"

namespace moe {

namespace {

using data_detail::all_rows;
using data_detail::is_missing;
using json = nlohmann::json;
using data_detail::NumberKind;
using data_detail::parse_number;
using data_detail::trim_blanks;

constexpr double kNumericShare = 0.9;  // a column this numeric but not wholly is a typo

const std::string& column_name(const CsvTable& t, int64_t c) {
  return t.header()[static_cast<size_t>(c)];
}

void add_count(std::vector<std::pair<std::string, int64_t>>* counts, const std::string& name,
               int64_t n) {
  if (n == 0) return;
  for (auto& [k, v] : *counts)
    if (k == name) {
      v += n;
      return;
    }
  counts->emplace_back(name, n);
}

struct Columns {
  std::vector<int64_t> labels;    // table column of each label
  std::vector<int64_t> features;  // table columns that are features, in table order
};

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

Result<Columns> resolve_columns(const CsvTable& t, const TabularOptions& o) {
  if (o.label_columns.empty())
    return Status::error("{}: no label column given (the columns are {})", t.source(),
                         t.column_list());
  if (o.task == TaskKind::kClassification && o.label_columns.size() != 1)
    return Status::error("{}: classification takes one label column, {} were given", t.source(),
                         o.label_columns.size());
  if (o.max_categories < 1)
    return Status::error("max_categories must be at least 1, not {}", o.max_categories);
  Columns c;
  for (const std::string& name : o.label_columns) {
    MOE_ASSIGN_OR_RETURN(int64_t col, data_detail::require_column(t, name, "label column"));
    c.labels.push_back(col);
  }
  for (const std::string& name : o.ignore_columns) {
    // A contradiction in the configuration: say so rather than pick one reading of it.
    if (contains(o.label_columns, name))
      return Status::error(
          "{}: data.ignore_columns lists '{}', which is a label column (data.label); a label is "
          "never a feature, so remove it from ignore_columns",
          t.source(), name);
    const Result<int64_t> col = data_detail::require_column(t, name, "column to ignore");
    if (!col.is_ok()) return col.status();
  }
  for (const std::string& name : o.categorical_columns) {
    if (contains(o.label_columns, name) || contains(o.ignore_columns, name))
      return Status::error(
          "{}: column '{}' is listed as categorical and also as a label or "
          "ignored column",
          t.source(), name);
    const Result<int64_t> col = data_detail::require_column(t, name, "categorical column");
    if (!col.is_ok()) return col.status();
  }
  for (int64_t col = 0; col < t.n_cols(); ++col) {
    const std::string& name = column_name(t, col);
    if (!contains(o.label_columns, name) && !contains(o.ignore_columns, name))
      c.features.push_back(col);
  }
  if (c.features.empty())
    return Status::error(
        "{}: no feature columns are left once the label and ignored columns "
        "are set aside (the columns are {})",
        t.source(), t.column_list());
  return c;
}

// The error for missing feature values, one entry per column with its count and first line.
Status check_missing(const CsvTable& t, std::span<const int64_t> rows,
                     const std::vector<int64_t>& cols) {
  std::string detail;
  int64_t n_cols_missing = 0;
  for (int64_t col : cols) {
    int64_t count = 0, first = -1;
    for (int64_t r : rows)
      if (is_missing(t.cell(r, col))) {
        if (count++ == 0) first = t.line(r);
      }
    if (count == 0) continue;
    if (n_cols_missing++ > 0) detail += ", ";
    detail += fmt::format("'{}' in {} row{} (first on line {})", column_name(t, col), count,
                          count == 1 ? "" : "s", first);
  }
  if (n_cols_missing == 0) return Status::ok();
  return Status::error(
      "{}: missing values (empty, NA, NaN or ?) in {} column{}: {}; set data.missing = \"impute\" "
      "to fill them (numeric: the training mean, categorical: a '<missing>' category)",
      t.source(), n_cols_missing, n_cols_missing == 1 ? "" : "s", detail);
}

// Mean and population standard deviation (two passes, in double); std 1 when it is 0.
void mean_std(const std::vector<double>& v, double* mean, double* stddev) {
  double s = 0;
  for (double x : v) s += x;
  *mean = v.empty() ? 0.0 : s / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - *mean) * (x - *mean);
  const double sd = v.empty() ? 0.0 : std::sqrt(ss / static_cast<double>(v.size()));
  *stddev = sd > 0 && std::isfinite(sd) ? sd : 1.0;
}

Result<FeatureColumn> fit_column(const CsvTable& t, std::span<const int64_t> rows, int64_t col,
                                 const TabularOptions& o) {
  FeatureColumn fc;
  fc.name = column_name(t, col);
  int64_t present = 0, numbers = 0, missing = 0;
  int64_t first_text = -1, first_nonfinite = -1;
  std::vector<double> values;
  for (int64_t r : rows) {
    const std::string_view v = t.cell(r, col);
    if (is_missing(v)) {
      ++missing;
      continue;
    }
    ++present;
    double x = 0;
    switch (parse_number(v, &x)) {
      case NumberKind::kFinite:
        ++numbers;
        values.push_back(x);
        break;
      case NumberKind::kNonFinite:
      case NumberKind::kTooLarge:
        ++numbers;
        if (first_nonfinite < 0) first_nonfinite = r;
        break;
      case NumberKind::kNotANumber:
        if (first_text < 0) first_text = r;
        break;
    }
  }
  if (present == 0)
    return Status::error(
        "{}: column '{}' has no values in the training rows; list it in "
        "ignore_columns",
        t.source(), fc.name);
  const bool forced = contains(o.categorical_columns, fc.name);
  if (!forced && numbers == present) {
    if (first_nonfinite >= 0) {
      const std::string_view v = trim_blanks(t.cell(first_nonfinite, col));
      double x = 0;
      return Status::error("{} line {}, column '{}': '{}' {}", t.source(), t.line(first_nonfinite),
                           fc.name, v, data_detail::number_problem(parse_number(v, &x)));
    }
    fc.kind = ColumnKind::kNumeric;
    mean_std(values, &fc.mean, &fc.stddev);
    return fc;
  }
  if (!forced && static_cast<double>(numbers) >= kNumericShare * static_cast<double>(present))
    return Status::error(
        "{} line {}, column '{}': '{}' is not a number, though {} of the column's {} values are; "
        "correct the value or list the column in categorical_columns",
        t.source(), t.line(first_text), fc.name, trim_blanks(t.cell(first_text, col)), numbers,
        present);
  fc.kind = ColumnKind::kCategorical;
  std::unordered_set<std::string_view> seen;
  for (int64_t r : rows) {
    const std::string_view v = t.cell(r, col);
    if (is_missing(v)) continue;
    if (seen.insert(trim_blanks(v)).second && static_cast<int64_t>(seen.size()) > o.max_categories)
      return Status::error(
          "{}: column '{}' has more than {} distinct values in the training "
          "rows (max_categories); list it in ignore_columns or raise the limit",
          t.source(), fc.name, o.max_categories);
  }
  fc.categories.assign(seen.begin(), seen.end());
  std::sort(fc.categories.begin(), fc.categories.end());
  fc.missing_category = o.impute_missing && missing > 0;
  return fc;
}

Status parse_targets(const CsvTable& t, std::span<const int64_t> rows,
                     const std::vector<int64_t>& cols, std::vector<double>* out) {
  out->clear();
  out->reserve(rows.size() * cols.size());
  for (int64_t r : rows)
    for (int64_t col : cols) {
      const std::string_view v = t.cell(r, col);
      if (is_missing(v))
        return Status::error("{} line {}, column '{}': missing target value", t.source(), t.line(r),
                             column_name(t, col));
      double x = 0;
      const NumberKind k = parse_number(v, &x);
      if (k != NumberKind::kFinite)
        return Status::error("{} line {}, column '{}': target '{}' {}", t.source(), t.line(r),
                             column_name(t, col), trim_blanks(v), data_detail::number_problem(k));
      out->push_back(x);
    }
  return Status::ok();
}

// The schema from training rows `rows`; class names from `class_rows` (the whole table when
// one table is split, so that every class has an id before stratification).
Result<TabularSchema> fit_schema(const CsvTable& t, std::span<const int64_t> rows,
                                 std::span<const int64_t> class_rows, const TabularOptions& o) {
  if (rows.empty()) return Status::error("{}: no training rows", t.source());
  MOE_ASSIGN_OR_RETURN(Columns cols, resolve_columns(t, o));
  TabularSchema s;
  s.labels.task = o.task;
  s.labels.columns = o.label_columns;
  if (o.task == TaskKind::kClassification) {
    MOE_ASSIGN_OR_RETURN(s.labels.class_names,
                         data_detail::collect_class_names(t, cols.labels[0], class_rows));
  } else {
    std::vector<double> y;
    MOE_TRY(parse_targets(t, rows, cols.labels, &y));
    const size_t c = cols.labels.size();
    for (size_t j = 0; j < c; ++j) {
      std::vector<double> yj;
      for (size_t i = j; i < y.size(); i += c) yj.push_back(y[i]);
      double m = 0, sd = 1;
      mean_std(yj, &m, &sd);
      s.labels.target_mean.push_back(m);
      s.labels.target_std.push_back(sd);
    }
    s.labels.standardized = o.standardize_targets;
  }
  if (!o.impute_missing) MOE_TRY(check_missing(t, rows, cols.features));
  FeatureStats& f = s.features;
  f.impute_missing = o.impute_missing;
  for (int64_t col : cols.features) {
    MOE_ASSIGN_OR_RETURN(FeatureColumn fc, fit_column(t, rows, col, o));
    fc.offset = f.n_features;
    f.n_features += fc.width();
    f.columns.push_back(std::move(fc));
  }
  return s;
}

}  // namespace

std::vector<std::string> FeatureStats::feature_names() const {
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(n_features));
  for (const FeatureColumn& c : columns) {
    if (c.kind == ColumnKind::kNumeric) {
      names.push_back(c.name);
      continue;
    }
    for (const std::string& cat : c.categories) names.push_back(c.name + "=" + cat);
    if (c.missing_category) names.push_back(c.name + "=<missing>");
  }
  return names;
}

json FeatureStats::to_json() const {
  json cols = json::array();
  for (const FeatureColumn& c : columns) {
    json jc;
    jc["name"] = c.name;
    if (c.kind == ColumnKind::kNumeric) {
      jc["kind"] = "numeric";
      jc["mean"] = c.mean;
      jc["std"] = c.stddev;
    } else {
      jc["kind"] = "categorical";
      jc["categories"] = c.categories;
      jc["missing_category"] = c.missing_category;
    }
    cols.push_back(std::move(jc));
  }
  return json{
      {"columns", std::move(cols)}, {"impute_missing", impute_missing}, {"n_features", n_features}};
}

Result<FeatureStats> FeatureStats::from_json(const json& j, const std::string& source) {
  const std::string where = source + ": features";
  FeatureStats f;
  MOE_TRY(json_field(j, "impute_missing", where, &f.impute_missing));
  int64_t n_features = 0;
  MOE_TRY(json_field(j, "n_features", where, &n_features));
  if (!j.contains("columns") || !j["columns"].is_array())
    return Status::error("{}: field 'columns' must be an array", where);
  std::unordered_set<std::string> names;
  for (const json& jc : j["columns"]) {
    FeatureColumn c;
    const std::string at = fmt::format("{}: column {}", where, f.columns.size());
    MOE_TRY(json_field(jc, "name", at, &c.name));
    if (!names.insert(c.name).second)
      return Status::error("{}: column '{}' appears twice", where, c.name);
    const std::string at_name = where + ": column '" + c.name + "'";
    std::string kind;
    MOE_TRY(json_field(jc, "kind", at_name, &kind));
    if (kind == "numeric") {
      c.kind = ColumnKind::kNumeric;
      MOE_TRY(json_field(jc, "mean", at_name, &c.mean));
      MOE_TRY(json_field(jc, "std", at_name, &c.stddev));
      if (!(c.stddev > 0)) return Status::error("{}: 'std' must be positive", at_name);
    } else if (kind == "categorical") {
      c.kind = ColumnKind::kCategorical;
      MOE_TRY(json_field(jc, "categories", at_name, &c.categories));
      MOE_TRY(json_field(jc, "missing_category", at_name, &c.missing_category));
      for (size_t i = 1; i < c.categories.size(); ++i)
        if (!(c.categories[i - 1] < c.categories[i]))
          return Status::error("{}: 'categories' must be sorted and distinct", at_name);
    } else {
      return Status::error("{}: kind '{}' is neither 'numeric' nor 'categorical'", at_name, kind);
    }
    c.offset = f.n_features;
    f.n_features += c.width();
    f.columns.push_back(std::move(c));
  }
  if (f.columns.empty()) return Status::error("{}: no columns", where);
  if (n_features != f.n_features)
    return Status::error("{}: 'n_features' is {} but the columns encode to {}", where, n_features,
                         f.n_features);
  return f;
}

json TabularSchema::to_json() const {
  return json{{"features", features.to_json()}, {"labels", labels.to_json()}};
}

Result<TabularSchema> TabularSchema::from_json(const json& j, const std::string& source) {
  if (!j.is_object() || !j.contains("features") || !j.contains("labels"))
    return Status::error("{}: a tabular schema needs 'features' and 'labels'", source);
  TabularSchema s;
  MOE_ASSIGN_OR_RETURN(s.features, FeatureStats::from_json(j["features"], source));
  MOE_ASSIGN_OR_RETURN(s.labels, LabelSpec::from_json(j["labels"], source));
  return s;
}

std::string TabularReport::summary(const std::string& source) const {
  std::string out;
  for (const auto& [name, n] : unknown_categories)
    out += fmt::format("{}{} unknown categor{} in '{}' (encoded as zeros)", out.empty() ? "" : "; ",
                       n, n == 1 ? "y" : "ies", name);
  for (const auto& [name, n] : imputed)
    out += fmt::format("{}{} missing value{} imputed in '{}'", out.empty() ? "" : "; ", n,
                       n == 1 ? "" : "s", name);
  return out.empty() ? out : source + ": " + out;
}

Result<TabularSchema> fit_tabular(const CsvTable& table, std::span<const int64_t> rows,
                                  const TabularOptions& options) {
  return fit_schema(table, rows, rows, options);
}

Result<Dataset> encode_tabular(const CsvTable& t, std::span<const int64_t> rows,
                               const TabularSchema& schema, LabelUse label_use,
                               TabularReport* report) {
  const FeatureStats& f = schema.features;
  const LabelSpec& spec = schema.labels;
  std::vector<int64_t> feature_cols;
  for (const FeatureColumn& c : f.columns) {
    const int64_t col = t.find_column(c.name);
    if (col < 0)
      return Status::error(
          "{}: no column '{}', which the model was trained with (the columns "
          "are {})",
          t.source(), c.name, t.column_list());
    feature_cols.push_back(col);
  }
  std::vector<int64_t> label_cols;
  if (label_use != LabelUse::kIgnore) {
    for (const std::string& name : spec.columns) {
      const int64_t col = t.find_column(name);
      if (col >= 0) {
        label_cols.push_back(col);
      } else if (label_use == LabelUse::kRequired) {
        return Status::error("{}: no label column '{}' (the columns are {})", t.source(), name,
                             t.column_list());
      }
    }
    // Partly present regression targets are treated as absent only when not required.
    if (label_cols.size() != spec.columns.size()) label_cols.clear();
  }
  if (!f.impute_missing) MOE_TRY(check_missing(t, rows, feature_cols));

  Dataset d;
  d.source = t.source();
  d.kind = FeatureKind::kDense;
  d.n_rows = static_cast<int64_t>(rows.size());
  d.n_features = f.n_features;
  d.task = spec.task;
  try {
    data_detail::reserve_huge(d.dense, rows.size() * static_cast<size_t>(f.n_features));
    d.dense.assign(rows.size() * static_cast<size_t>(f.n_features), 0.0f);
  } catch (const std::bad_alloc&) {
    return Status::error("{}: {} rows of {} features do not fit in memory", t.source(), rows.size(),
                         f.n_features);
  }
  d.source_rows.reserve(rows.size());
  for (int64_t r : rows) d.source_rows.push_back(t.line(r));

  const auto dim = static_cast<size_t>(f.n_features);
  for (size_t k = 0; k < f.columns.size(); ++k) {
    const FeatureColumn& c = f.columns[k];
    const int64_t col = feature_cols[k];
    int64_t unknown = 0, imputed = 0;
    if (c.kind == ColumnKind::kNumeric) {
      for (size_t i = 0; i < rows.size(); ++i) {
        const std::string_view v = t.cell(rows[i], col);
        float& out = d.dense[i * dim + static_cast<size_t>(c.offset)];
        if (is_missing(v)) {  // only reachable with imputation: the mean, standardised
          ++imputed;
          out = 0.0f;
          continue;
        }
        double x = 0;
        const NumberKind kind = parse_number(v, &x);
        if (kind != NumberKind::kFinite)
          return Status::error(
              "{} line {}, column '{}': '{}' {} (the column is numeric in the training data)",
              t.source(), t.line(rows[i]), c.name, trim_blanks(v),
              data_detail::number_problem(kind));
        // Both terms are within ±3.4e38, so the difference is finite in double; the quotient
        // must fit the float it is stored in (a column of nearly equal values has a tiny std).
        const double z = (x - c.mean) / c.stddev;
        if (!(std::fabs(z) <= data_detail::kMaxDataMagnitude))
          return Status::error(
              "{} line {}, column '{}': '{}' is {:.3g} standard deviations from the training "
              "mean, beyond the range of the 32-bit floats moe computes in",
              t.source(), t.line(rows[i]), c.name, trim_blanks(v), z);
        out = static_cast<float>(z);
      }
    } else {
      std::unordered_map<std::string_view, int64_t> slot;
      for (size_t j = 0; j < c.categories.size(); ++j)
        slot.emplace(c.categories[j], static_cast<int64_t>(j));
      for (size_t i = 0; i < rows.size(); ++i) {
        const std::string_view v = t.cell(rows[i], col);
        float* out = d.dense.data() + i * dim + static_cast<size_t>(c.offset);
        if (is_missing(v)) {
          ++imputed;
          if (c.missing_category) out[c.width() - 1] = 1.0f;
          continue;
        }
        const auto it = slot.find(trim_blanks(v));
        if (it == slot.end()) {
          ++unknown;
          continue;
        }
        out[it->second] = 1.0f;
      }
    }
    if (report != nullptr) {
      add_count(&report->unknown_categories, c.name, unknown);
      add_count(&report->imputed, c.name, imputed);
    }
  }

  if (!label_cols.empty()) {
    d.has_labels = true;
    if (spec.task == TaskKind::kClassification) {
      d.n_classes = spec.n_classes();
      MOE_TRY(data_detail::encode_class_ids(t, label_cols[0], rows, spec, &d.labels));
    } else {
      d.n_targets = spec.n_targets();
      std::vector<double> y;
      MOE_TRY(parse_targets(t, rows, label_cols, &y));
      d.targets.resize(y.size());
      const size_t c = label_cols.size();
      for (size_t i = 0; i < y.size(); ++i)
        d.targets[i] = static_cast<float>(
            spec.standardized ? (y[i] - spec.target_mean[i % c]) / spec.target_std[i % c] : y[i]);
    }
  } else {
    d.n_classes = spec.task == TaskKind::kClassification ? spec.n_classes() : 0;
    d.n_targets = spec.task == TaskKind::kRegression ? spec.n_targets() : 0;
  }
  return d;
}

Result<Dataset> encode_tabular(const CsvTable& table, const TabularSchema& schema, LabelUse labels,
                               TabularReport* report) {
  const std::vector<int64_t> rows = all_rows(table.n_rows());
  return encode_tabular(table, rows, schema, labels, report);
}

Result<TabularData> load_tabular(const CsvTable& table, const TabularOptions& options,
                                 const SplitOptions& split) {
  MOE_ASSIGN_OR_RETURN(Columns cols, resolve_columns(table, options));
  const std::vector<int64_t> every = all_rows(table.n_rows());
  if (!options.impute_missing) MOE_TRY(check_missing(table, every, cols.features));

  LabelSpec classes;
  std::vector<int32_t> ids;
  if (options.task == TaskKind::kClassification) {
    MOE_ASSIGN_OR_RETURN(classes.class_names,
                         data_detail::collect_class_names(table, cols.labels[0], every));
    MOE_TRY(data_detail::encode_class_ids(table, cols.labels[0], every, classes, &ids));
  }
  MOE_ASSIGN_OR_RETURN(SplitIndices parts,
                       split_rows(table.n_rows(), ids, classes.n_classes(), split));
  TabularData out;
  MOE_ASSIGN_OR_RETURN(out.schema, fit_schema(table, parts.train, every, options));
  MOE_ASSIGN_OR_RETURN(
      out.train, encode_tabular(table, parts.train, out.schema, LabelUse::kRequired, &out.report));
  MOE_ASSIGN_OR_RETURN(out.validation, encode_tabular(table, parts.validation, out.schema,
                                                      LabelUse::kRequired, &out.report));
  MOE_ASSIGN_OR_RETURN(
      out.test, encode_tabular(table, parts.test, out.schema, LabelUse::kRequired, &out.report));
  return out;
}

Result<TabularData> load_tabular(const CsvTable& train, const CsvTable* validation,
                                 const CsvTable* test, const TabularOptions& options) {
  TabularData out;
  const std::vector<int64_t> rows = all_rows(train.n_rows());
  MOE_ASSIGN_OR_RETURN(out.schema, fit_tabular(train, rows, options));
  MOE_ASSIGN_OR_RETURN(out.train,
                       encode_tabular(train, out.schema, LabelUse::kRequired, &out.report));
  if (validation != nullptr) {
    MOE_ASSIGN_OR_RETURN(out.validation,
                         encode_tabular(*validation, out.schema, LabelUse::kRequired, &out.report));
  } else {
    out.validation = out.train.subset({});
  }
  if (test != nullptr) {
    MOE_ASSIGN_OR_RETURN(out.test,
                         encode_tabular(*test, out.schema, LabelUse::kRequired, &out.report));
  } else {
    out.test = out.train.subset({});
  }
  return out;
}

}  // namespace moe
