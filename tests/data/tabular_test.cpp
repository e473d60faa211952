#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data_testing.h"
#include "moe/data/tabular.h"

namespace moe {
namespace {

using testing::TempDir;

CsvTable table(const std::string& bytes, const std::string& name = "data.csv") {
  Result<CsvTable> t = CsvTable::parse(bytes, name, ',', CsvQuoting::kRfc4180);
  EXPECT_TRUE(t.is_ok()) << t.status().message();
  return std::move(t).value();
}

TabularOptions classify(const std::string& label) {
  TabularOptions o;
  o.label_columns = {label};
  return o;
}

bool has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

const char* kPeople =
    "age,city,income,label\n"
    "20,Paris,1.0,yes\n"
    "30,Lyon,2.0,no\n"
    "40, Paris ,3.0,yes\n"
    "100,Nice,4.0,no\n";

TEST(Tabular, StandardisesWithTrainingStatisticsOnlyAndOneHotEncodes) {
  const CsvTable t = table(kPeople);
  const std::vector<int64_t> train = {0, 1, 2};
  Result<TabularSchema> s = fit_tabular(t, train, classify("label"));
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  const FeatureStats& f = s->features;
  ASSERT_EQ(f.columns.size(), 3u);
  EXPECT_EQ(f.columns[0].kind, ColumnKind::kNumeric);
  EXPECT_DOUBLE_EQ(f.columns[0].mean, 30.0);  // row 3 (age 100) is not a training row
  EXPECT_DOUBLE_EQ(f.columns[0].stddev, std::sqrt(200.0 / 3.0));
  EXPECT_EQ(f.columns[1].kind, ColumnKind::kCategorical);
  EXPECT_EQ(f.columns[1].categories, (std::vector<std::string>{"Lyon", "Paris"}));
  EXPECT_EQ(f.n_features, 4);
  EXPECT_EQ(f.feature_names(),
            (std::vector<std::string>{"age", "city=Lyon", "city=Paris", "income"}));
  EXPECT_EQ(s->labels.class_names, (std::vector<std::string>{"no", "yes"}));

  TabularReport report;
  Result<Dataset> d = encode_tabular(t, *s, LabelUse::kRequired, &report);
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  ASSERT_EQ(d->n_rows, 4);
  ASSERT_EQ(d->n_features, 4);
  const float* x = d->dense.data();
  EXPECT_FLOAT_EQ(x[0 * 4 + 0], static_cast<float>(-10.0 / std::sqrt(200.0 / 3.0)));
  EXPECT_FLOAT_EQ(x[3 * 4 + 0], static_cast<float>(70.0 / std::sqrt(200.0 / 3.0)));
  EXPECT_FLOAT_EQ(x[3 * 4 + 3], static_cast<float>(2.0 / std::sqrt(2.0 / 3.0)));
  // One-hot: Paris (trimmed) -> slot 2; Nice was never seen -> all zeros, counted.
  EXPECT_EQ(x[2 * 4 + 1], 0.0f);
  EXPECT_EQ(x[2 * 4 + 2], 1.0f);
  EXPECT_EQ(x[3 * 4 + 1], 0.0f);
  EXPECT_EQ(x[3 * 4 + 2], 0.0f);
  EXPECT_EQ(d->labels, (std::vector<int32_t>{1, 0, 1, 0}));
  EXPECT_EQ(d->source_rows, (std::vector<int64_t>{2, 3, 4, 5}));
  ASSERT_EQ(report.unknown_categories.size(), 1u);
  EXPECT_EQ(report.unknown_categories[0], (std::pair<std::string, int64_t>{"city", 1}));
  EXPECT_EQ(report.summary("data.csv"),
            "data.csv: 1 unknown category in 'city' (encoded as zeros)");
}

const char* kHoles =
    "a,b,c,label\n"
    "1,x,NA,p\n"
    ",y,2,q\n"
    "3,?,4,p\n"
    "NaN,x, 5 ,q\n";

TEST(Tabular, MissingValuesAreReportedPerColumn) {
  const CsvTable t = table(kHoles);
  const std::vector<int64_t> rows = {0, 1, 2, 3};
  Result<TabularSchema> s = fit_tabular(t, rows, classify("label"));
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().message(),
            "data.csv: missing values (empty, NA, NaN or ?) in 3 columns: 'a' in 2 rows (first on "
            "line 3), 'b' in 1 row (first on line 4), 'c' in 1 row (first on line 2); set "
            "data.missing = \"impute\" to fill them (numeric: the training mean, categorical: a "
            "'<missing>' category)");
}

TEST(Tabular, ImputationUsesTrainingMeanAndAMissingCategory) {
  const CsvTable t = table(kHoles);
  TabularOptions o = classify("label");
  o.impute_missing = true;
  Result<TabularData> r = load_tabular(t, nullptr, nullptr, o);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const FeatureStats& f = r->schema.features;
  EXPECT_DOUBLE_EQ(f.columns[0].mean, 2.0);  // of 1 and 3
  EXPECT_DOUBLE_EQ(f.columns[2].mean, 11.0 / 3.0);
  EXPECT_TRUE(f.columns[1].missing_category);
  EXPECT_EQ(f.feature_names(), (std::vector<std::string>{"a", "b=x", "b=y", "b=<missing>", "c"}));
  const Dataset& d = r->train;
  ASSERT_EQ(d.n_features, 5);
  const float* x = d.dense.data();
  EXPECT_FLOAT_EQ(x[0 * 5 + 0], -1.0f);
  EXPECT_FLOAT_EQ(x[1 * 5 + 0], 0.0f);  // imputed: the mean, standardised
  EXPECT_FLOAT_EQ(x[0 * 5 + 4], 0.0f);
  EXPECT_EQ(std::vector<float>(x + 2 * 5 + 1, x + 2 * 5 + 4), (std::vector<float>{0, 0, 1}));
  EXPECT_EQ(r->report.imputed,
            (std::vector<std::pair<std::string, int64_t>>{{"a", 2}, {"b", 1}, {"c", 1}}));
  EXPECT_EQ(r->validation.n_rows, 0);
  EXPECT_EQ(r->validation.n_features, 5);

  // Missing at prediction time takes the same slot.
  const CsvTable later = table("a,b,c,label\n1,,2,p\n", "later.csv");
  Result<Dataset> e = encode_tabular(later, r->schema, LabelUse::kRequired, nullptr);
  ASSERT_TRUE(e.is_ok()) << e.status().message();
  EXPECT_EQ(std::vector<float>(e->dense.begin() + 1, e->dense.begin() + 4),
            (std::vector<float>{0, 0, 1}));

  // A categorical column with no missing values in training has no slot: zeros, counted.
  const CsvTable people = table(kPeople);
  Result<TabularData> p = load_tabular(people, nullptr, nullptr, o);
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  EXPECT_FALSE(p->schema.features.columns[1].missing_category);
  const CsvTable gap = table("age,city,income,label\n20,NA,1.0,yes\n", "gap.csv");
  TabularReport report;
  e = encode_tabular(gap, p->schema, LabelUse::kRequired, &report);
  ASSERT_TRUE(e.is_ok()) << e.status().message();
  EXPECT_EQ(std::vector<float>(e->dense.begin() + 1, e->dense.begin() + 4),
            (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(report.summary("gap.csv"), "gap.csv: 1 missing value imputed in 'city'");
}

TEST(Tabular, LabelsAndColumnsAreCheckedWithMessages) {
  const CsvTable t = table(kPeople);
  const std::vector<int64_t> rows = {0, 1, 2, 3};
  Result<TabularSchema> missing_label = fit_tabular(t, rows, classify("target"));
  ASSERT_FALSE(missing_label.is_ok());
  EXPECT_EQ(missing_label.status().message(),
            "data.csv: no label column 'target' (the columns are 'age', 'city', 'income', "
            "'label')");

  Result<TabularSchema> s = fit_tabular(t, rows, classify("label"));
  ASSERT_TRUE(s.is_ok());
  const CsvTable unseen = table("age,city,income,label\n20,Paris,1,maybe\n", "test.csv");
  Result<Dataset> e = encode_tabular(unseen, *s, LabelUse::kRequired, nullptr);
  ASSERT_FALSE(e.is_ok());
  EXPECT_EQ(e.status().message(),
            "test.csv line 2, column 'label': class 'maybe' does not occur in the training data "
            "(classes: 'no', 'yes')");

  const CsvTable bad_number = table("age,city,income,label\nold,Paris,1,yes\n", "test.csv");
  e = encode_tabular(bad_number, *s, LabelUse::kRequired, nullptr);
  ASSERT_FALSE(e.is_ok());
  EXPECT_EQ(e.status().message(),
            "test.csv line 2, column 'age': 'old' is not a number (the column is numeric in the "
            "training data)");

  const CsvTable no_city = table("age,income\n20,1\n", "predict.csv");
  e = encode_tabular(no_city, *s, LabelUse::kIfPresent, nullptr);
  ASSERT_FALSE(e.is_ok());
  EXPECT_TRUE(has(e.status().message(),
                  "predict.csv: no column 'city', which the model was "
                  "trained with (the columns are 'age', 'income')"));

  const CsvTable one_class = table("x,label\n1,a\n2,a\n");
  Result<TabularSchema> oc = fit_tabular(one_class, std::vector<int64_t>{0, 1}, classify("label"));
  ASSERT_FALSE(oc.is_ok());
  EXPECT_TRUE(has(oc.status().message(), "label column 'label' has a single class 'a'"));

  const CsvTable no_label_value = table("x,label\n1,a\n2,\n");
  oc = fit_tabular(no_label_value, std::vector<int64_t>{0, 1}, classify("label"));
  ASSERT_FALSE(oc.is_ok());
  EXPECT_EQ(oc.status().message(), "data.csv line 3, column 'label': missing label");
}

TEST(Tabular, PredictionFindsColumnsByNameAndMayLackLabels) {
  const CsvTable t = table(kPeople);
  Result<TabularSchema> s = fit_tabular(t, std::vector<int64_t>{0, 1, 2, 3}, classify("label"));
  ASSERT_TRUE(s.is_ok());
  const CsvTable reordered = table("income,extra,city,age\n2.0,zzz,Lyon,30\n", "predict.csv");
  Result<Dataset> d = encode_tabular(reordered, *s, LabelUse::kIfPresent, nullptr);
  ASSERT_TRUE(d.is_ok()) << d.status().message();
  EXPECT_FALSE(d->has_labels);
  EXPECT_EQ(d->n_classes, 2);
  Result<Dataset> same = encode_tabular(t, std::vector<int64_t>{1}, *s, LabelUse::kIgnore, nullptr);
  ASSERT_TRUE(same.is_ok());
  EXPECT_EQ(d->dense, same->dense);
  Result<Dataset> need = encode_tabular(reordered, *s, LabelUse::kRequired, nullptr);
  ASSERT_FALSE(need.is_ok());
  EXPECT_TRUE(has(need.status().message(), "predict.csv: no label column 'label'"));
}

TEST(Tabular, NumericLookingTyposAndInfinitiesAreRejected) {
  std::string bytes = "x,label\n";
  for (int i = 0; i < 12; ++i) bytes += std::to_string(i) + (i % 2 ? ",a\n" : ",b\n");
  bytes += "1O,a\n";  // letter O for a zero
  const CsvTable typo = table(bytes);
  Result<TabularSchema> s = fit_tabular(
      typo, std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, classify("label"));
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().message(),
            "data.csv line 14, column 'x': '1O' is not a number, though 12 of the column's 13 "
            "values are; correct the value or list the column in categorical_columns");
  // Listed as categorical, the same column is fine.
  TabularOptions o = classify("label");
  o.categorical_columns = {"x"};
  Result<TabularData> ok = load_tabular(typo, nullptr, nullptr, o);
  ASSERT_TRUE(ok.is_ok()) << ok.status().message();
  EXPECT_EQ(ok->schema.features.n_features, 13);

  const CsvTable inf = table("x,label\n1,a\ninf,b\n");
  s = fit_tabular(inf, std::vector<int64_t>{0, 1}, classify("label"));
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().message(), "data.csv line 3, column 'x': 'inf' is not a finite number");

  TabularOptions capped = classify("label");
  capped.max_categories = 2;
  const CsvTable many = table("c,label\nu,a\nv,b\nw,a\n");
  Result<TabularData> m = load_tabular(many, nullptr, nullptr, capped);
  ASSERT_FALSE(m.is_ok());
  EXPECT_TRUE(has(m.status().message(), "column 'c' has more than 2 distinct values"));
}

TEST(Tabular, RegressionWithSeveralStandardisedTargets) {
  const CsvTable t = table("x,y1,y2\n1,10,-1\n2,20,-3\n3,30,-5\n", "reg.csv");
  TabularOptions o;
  o.task = TaskKind::kRegression;
  o.label_columns = {"y1", "y2"};
  o.standardize_targets = true;
  Result<TabularData> r = load_tabular(t, nullptr, nullptr, o);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const LabelSpec& spec = r->schema.labels;
  EXPECT_EQ(spec.n_targets(), 2);
  EXPECT_DOUBLE_EQ(spec.target_mean[0], 20.0);
  EXPECT_DOUBLE_EQ(spec.target_mean[1], -3.0);
  const Dataset& d = r->train;
  ASSERT_EQ(d.n_targets, 2);
  ASSERT_EQ(d.targets.size(), 6u);
  EXPECT_FLOAT_EQ(d.targets[0], static_cast<float>(-10.0 / std::sqrt(200.0 / 3.0)));
  EXPECT_FLOAT_EQ(d.targets[3], 0.0f);
  std::vector<float> z = d.targets;
  spec.unstandardize(z);
  EXPECT_NEAR(z[4], 30.0f, 1e-4f);
  EXPECT_NEAR(z[5], -5.0f, 1e-5f);

  const CsvTable bad = table("x,y1,y2\n1,10,oops\n", "reg_test.csv");
  Result<Dataset> e = encode_tabular(bad, r->schema, LabelUse::kRequired, nullptr);
  ASSERT_FALSE(e.is_ok());
  EXPECT_EQ(e.status().message(),
            "reg_test.csv line 2, column 'y2': target 'oops' is not a number");
}

TEST(Tabular, SchemaRoundTripsThroughJsonAndBadJsonIsAnError) {
  const CsvTable t = table(kHoles);
  TabularOptions o = classify("label");
  o.impute_missing = true;
  Result<TabularData> r = load_tabular(t, nullptr, nullptr, o);
  ASSERT_TRUE(r.is_ok());
  const std::string text = r->schema.to_json().dump();
  Result<TabularSchema> back = TabularSchema::from_json(nlohmann::json::parse(text), "ckpt.json");
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(back->to_json().dump(), text);
  Result<Dataset> again = encode_tabular(t, *back, LabelUse::kRequired, nullptr);
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->dense, r->train.dense);

  nlohmann::json j = r->schema.to_json();
  j["features"]["columns"][0]["std"] = -1.0;
  EXPECT_EQ(TabularSchema::from_json(j, "ckpt.json").status().message(),
            "ckpt.json: features: column 'a': 'std' must be positive");
  j = r->schema.to_json();
  j["features"]["columns"][1]["categories"] = {"y", "x"};
  EXPECT_TRUE(has(TabularSchema::from_json(j, "ckpt.json").status().message(),
                  "'categories' must be sorted and distinct"));
  j = r->schema.to_json();
  j["features"]["n_features"] = 7;
  EXPECT_TRUE(has(TabularSchema::from_json(j, "ckpt.json").status().message(),
                  "'n_features' is 7 but the columns encode to 5"));
  j = r->schema.to_json();
  j["labels"]["class_names"] = "p";
  EXPECT_EQ(TabularSchema::from_json(j, "ckpt.json").status().message(),
            "ckpt.json: labels: field 'class_names' must be an array of strings");
  j = r->schema.to_json();
  j["labels"].erase("task");
  EXPECT_EQ(TabularSchema::from_json(j, "ckpt.json").status().message(),
            "ckpt.json: labels: missing field 'task'");
}

TEST(Tabular, OneFileSplitIsStratifiedAndFitsOnTrainingRowsOnly) {
  std::string bytes = "x,label\n";
  for (int i = 0; i < 100; ++i) bytes += std::to_string(i) + (i % 10 < 7 ? ",a\n" : ",b\n");
  const CsvTable t = table(bytes);
  SplitOptions split;
  split.validation = 0.2;
  split.test = 0.1;
  split.seed = 7;
  Result<TabularData> r = load_tabular(t, classify("label"), split);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  auto count = [](const Dataset& d, int32_t c) {
    return std::count(d.labels.begin(), d.labels.end(), c);
  };
  EXPECT_EQ(r->train.n_rows, 70);
  EXPECT_EQ(count(r->validation, 0), 14);
  EXPECT_EQ(count(r->validation, 1), 6);
  EXPECT_EQ(count(r->test, 0), 7);
  EXPECT_EQ(count(r->test, 1), 3);
  // The mean is that of the training rows' x values (x = line − 2).
  double sum = 0;
  for (int64_t line : r->train.source_rows) sum += static_cast<double>(line - 2);
  EXPECT_DOUBLE_EQ(r->schema.features.columns[0].mean, sum / 70.0);
  double train_mean = 0;
  for (float v : r->train.dense) train_mean += v;
  EXPECT_NEAR(train_mean / 70.0, 0.0, 1e-6);
}

TEST(Tabular, ReadsFromFiles) {
  TempDir dir;
  const std::string train = dir.write("train.csv", kPeople);
  const std::string test = dir.write("test.csv", "label,age,city,income\nno,50,Lyon,2\n");
  Result<CsvTable> a = CsvTable::read(train);
  Result<CsvTable> b = CsvTable::read(test);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  Result<TabularData> r = load_tabular(*a, nullptr, &b.value(), classify("label"));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_EQ(r->test.n_rows, 1);
  EXPECT_EQ(r->test.labels, (std::vector<int32_t>{0}));
  EXPECT_EQ(r->test.source, test);
}

}  // namespace
}  // namespace moe
