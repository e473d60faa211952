// Helpers for the trainer and resume tests: small dense data sets held in memory with the schema
// the CSV reader would give them, configs parsed from inline JSON, fresh run directories, and
// training without a log.
//
// Dims: N rows · F features.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "moe/core/rng.h"
#include "moe/train/trainer.h"

namespace moe::testing {

// N labelled rows x ~ N(0, 1)^F drawn from Rng(seed), row i from source line i + 2 (after a
// header); label_row(x, d) appends the row's class or targets to d. The caller sets the task.
template <class LabelRow>
Dataset dense_rows(int64_t n, int64_t n_features, uint64_t seed, LabelRow label_row) {
  Dataset d;
  d.source = "memory";
  d.kind = FeatureKind::kDense;
  d.n_rows = n;
  d.n_features = n_features;
  d.has_labels = true;
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(n_features));  // [F]
  for (int64_t i = 0; i < n; ++i) {
    for (float& v : x) v = rng.normal();
    d.dense.insert(d.dense.end(), x.begin(), x.end());
    label_row(x.data(), d);
    d.source_rows.push_back(i + 2);
  }
  return d;
}

// A comma-separated schema of F numeric features f0 … f{F−1}; the caller fills in the labels.
inline DataSchema dense_schema(int64_t n_features) {
  DataSchema s;
  s.format = DataFormat::kCsv;
  s.delimiter = ',';
  FeatureStats f;
  for (int64_t j = 0; j < n_features; ++j) {
    FeatureColumn c;
    c.name = fmt::format("f{}", j);
    c.offset = j;
    f.columns.push_back(c);
  }
  f.n_features = n_features;
  s.features = f;
  return s;
}

// The config `j` with output.dir = out and the keys of `training` (a JSON object's text)
// replacing training's; a config that does not parse fails the test.
inline Config parse_test_config(nlohmann::json j, const std::string& out,
                                const std::string& training) {
  j["output"]["dir"] = out;
  j["training"].update(nlohmann::json::parse(training));
  Result<Config> c = parse_config(j, "test config");
  EXPECT_TRUE(c.is_ok()) << c.status().message();
  return c.is_ok() ? c.value() : Config();
}

// A run directory of the system's temporary directory, removed if a previous run left it.
inline std::string fresh_run_dir(const std::string& name) {
  const std::filesystem::path p =
      std::filesystem::temp_directory_path() / fmt::format("moe_{}_{}", name, ::getpid());
  std::filesystem::remove_all(p);
  return p.string();
}

// Two classes, "neg" and "pos", of kFeatures = 4 numeric features: n_train training rows from
// Rng(1) and n_validation validation rows from Rng(2), each labelled pos when rule(x) is true.
template <class Rule>
LoadedData two_class_data(int64_t n_train, int64_t n_validation, Rule rule) {
  constexpr int64_t kFeatures = 4;
  LoadedData data;
  data.schema = dense_schema(kFeatures);
  data.schema.labels.columns = {"y"};
  data.schema.labels.class_names = {"neg", "pos"};
  const auto label = [rule](const float* x, Dataset& r) { r.labels.push_back(rule(x) ? 1 : 0); };
  data.train = dense_rows(n_train, kFeatures, 1, label);
  data.validation = dense_rows(n_validation, kFeatures, 2, label);
  for (Dataset* d : {&data.train, &data.validation}) {
    d->task = TaskKind::kClassification;
    d->n_classes = 2;
  }
  return data;
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The per-epoch figures of a run's metrics.jsonl that do not depend on timing, one per line.
inline std::vector<std::string> metric_lines(const std::filesystem::path& run) {
  std::vector<std::string> out;
  std::ifstream in(run / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    j.erase("seconds");
    j.erase("rows_per_second");
    out.push_back(j.dump());
  }
  return out;
}

inline TrainOptions quiet() {
  TrainOptions o;
  o.log = nullptr;
  return o;
}

// Trains `config` on `data`, first resuming from the checkpoint `resume_from` unless empty.
inline Result<TrainResult> train(const Config& config, const LoadedData& data,
                                 const TrainOptions& options = quiet(),
                                 const std::string& resume_from = "") {
  MOE_ASSIGN_OR_RETURN(std::unique_ptr<Trainer> t, Trainer::create(config, data, options));
  if (!resume_from.empty()) MOE_TRY(t->resume(resume_from));
  return t->run();
}

}  // namespace moe::testing
