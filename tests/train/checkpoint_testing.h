// What the checkpoint tests share: a trained two-layer text MoE (Fixture), a temporary
// directory, and rewriting a checkpoint's JSON or weights (keeping the weights' size and hash
// bound, so loading reaches the check under test).
//
// Dims: T documents · V text ids · D = 8 model width · C = 2 classes · E = 4 experts.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/io/safetensors.h"
#include "moe/layers/loss.h"
#include "moe/optim/optimizer.h"
#include "moe/train/checkpoint.h"

namespace moe::checkpoint_testing {

namespace fs = std::filesystem;
using json = nlohmann::json;

inline const std::vector<std::string> kDocs = {
    "great coffee, would buy again", "terrible taste and stale",    "the best tea I have had",
    "stale crackers, not good",      "great value and great taste", "awful, not worth it"};
inline const int32_t kLabels[] = {1, 0, 1, 0, 1, 0};

inline Config test_config() {
  const json j = json::parse(R"({
    "data": {"format": "text", "train": "reviews.tsv", "text": {"min_count": 1}},
    "model": {"width": 8, "moe": [
      {"experts": 4, "k": 1, "expert": {"hidden": 8},
       "gate": {"kind": "sigmoid_bias", "bias_update_rate": 0.01}},
      {"experts": 4, "expert": {"kind": "mlp", "hidden": 6},
       "gate": {"kind": "gumbel_softmax", "tau_decay": 0.1}}]}})");
  Result<Config> c = parse_config(j, "test");
  EXPECT_TRUE(c.is_ok()) << c.status().message();
  return *c;
}

// A trained text model, its schema, and the documents as one batch.
struct Fixture {
  Config config = test_config();
  DataSchema schema;
  std::unique_ptr<Model> model;
  std::vector<int32_t> ids;
  std::vector<float> weights;
  std::vector<int64_t> offsets{0};
  Batch batch;

  Fixture() {
    std::vector<std::string_view> views(kDocs.begin(), kDocs.end());
    TextOptions to;
    to.min_count = 1;
    Result<TextVectorizer> v = TextVectorizer::fit(views, to);
    EXPECT_TRUE(v.is_ok());
    schema.format = DataFormat::kText;
    schema.labels.task = TaskKind::kClassification;
    schema.labels.columns = {"label"};
    schema.labels.class_names = {"neg", "pos"};
    for (const std::string& d : kDocs) {
      v->transform(d, &ids, &weights);
      offsets.push_back(static_cast<int64_t>(ids.size()));
    }
    schema.text = std::move(v.value());
    Result<std::unique_ptr<Model>> m = Model::create(config.model, schema.shape());
    EXPECT_TRUE(m.is_ok()) << m.status().message();
    model = std::move(m.value());
    model->init(3);
    const auto n = static_cast<int64_t>(kDocs.size());
    batch.n_rows = n;
    batch.ids = Tensor(ids.data(), Shape{static_cast<int64_t>(ids.size())}, DType::kI32);
    batch.weights = Tensor(weights.data(), Shape{static_cast<int64_t>(weights.size())});
    batch.offsets = Tensor(offsets.data(), Shape{n + 1}, DType::kI64);
    // A few steps, so weights and gate states (sigmoid bias, Gumbel step) move off their start.
    TensorBuffer labels(Shape{n}, DType::kI32), dlogits(Shape{n, 2});
    std::copy(kLabels, kLabels + n, labels.view().data<int32_t>());
    std::unique_ptr<Optimizer> opt = make_optimizer(model->params(), OptimizerConfig{});
    Arena arena;
    for (int step = 0; step < 5; ++step) {
      arena.reset();
      model->params().zero_grads();
      const Tensor logits = model->forward(batch, true, Rng(7).fork(step), arena);
      cross_entropy_loss(logits, labels, dlogits);
      model->backward(dlogits, arena);
      opt->step(1e-2);
      model->after_step();
    }
  }

  std::vector<float> predict(Model& m) const {
    Arena arena;
    const Tensor logits = m.forward(batch, false, Rng(0), arena);
    return std::vector<float>(logits.f32(), logits.f32() + logits.numel());
  }
};

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ =
        fs::temp_directory_path() / fmt::format("moe_checkpoint_{}_{}", info->name(), ::getpid());
    fs::remove_all(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string path() const { return path_.string(); }
  std::string file(const char* name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

inline json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// Rewrites the weights with `edit` applied to the tensor list and records the new file's size
// and hash in model.json, so loading gets past the hash check to the tensor checks.
inline void rewrite_weights(
    const TempDir& dir,
    const std::function<void(std::vector<NamedTensor>&, std::vector<TensorBuffer>&)>& edit) {
  Result<SafetensorsFile> file = SafetensorsFile::open(dir.file("model.safetensors"));
  ASSERT_TRUE(file.is_ok());
  std::vector<TensorBuffer> keep;
  std::vector<NamedTensor> tensors;
  for (const SafetensorsEntry& e : file->entries()) {
    Result<TensorBuffer> t = file->load(e.name);
    ASSERT_TRUE(t.is_ok());
    keep.push_back(std::move(t.value()));
  }
  for (size_t i = 0; i < keep.size(); ++i)
    tensors.push_back({file->entries()[i].name, keep[i].view()});
  edit(tensors, keep);
  const std::vector<uint8_t> bytes = encode_safetensors(tensors);
  ASSERT_TRUE(write_file_atomic(dir.file("model.safetensors"), bytes.data(), bytes.size()).is_ok());
  json j = read_json(dir.file("model.json"));
  j["weights"]["bytes"] = bytes.size();
  j["weights"]["fnv1a64"] = fnv1a64_hex(bytes.data(), bytes.size());
  write_text(dir.file("model.json"), j.dump());
}

inline void edit_json(const TempDir& dir, const std::function<void(json&)>& edit) {
  json j = read_json(dir.file("model.json"));
  edit(j);
  write_text(dir.file("model.json"), j.dump());
}

inline NamedTensor* find(std::vector<NamedTensor>& t, const std::string& name) {
  for (NamedTensor& n : t)
    if (n.name == name) return &n;
  return nullptr;
}

}  // namespace moe::checkpoint_testing
