// Model checkpoints: a round trip gives identical predictions and gate states, and a table of
// corrupted checkpoints (weights, JSON, config, schema, gate states) is rejected with a message
// naming the file and the tensor or field.
//
// Dims: T documents · V text ids · D = 8 model width · C = 2 classes · E = 4 experts.
#include "moe/io/checkpoint.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "moe/io/safetensors.h"
#include "moe/layers/loss.h"
#include "moe/optim/optimizer.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::vector<std::string> kDocs = {"great coffee, would buy again", "terrible taste and stale",
                                        "the best tea I have had",       "stale crackers, not good",
                                        "great value and great taste",   "awful, not worth it"};
const int32_t kLabels[] = {1, 0, 1, 0, 1, 0};

Config test_config() {
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

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

TEST(CheckpointTest, RoundTripGivesIdenticalPredictionsAndState) {
  Fixture f;
  TempDir dir;
  const json info = {{"epoch", 3}, {"validation", {{"accuracy", 0.5}}}};
  ASSERT_TRUE(save_checkpoint(dir.path(), *f.model, f.config, f.schema, info).is_ok());
  EXPECT_TRUE(fs::exists(dir.file("model.safetensors")));
  EXPECT_TRUE(fs::exists(dir.file("model.json")));

  Result<Checkpoint> ck = load_checkpoint(dir.path());
  ASSERT_TRUE(ck.is_ok()) << ck.status().message();
  EXPECT_EQ(f.predict(*f.model), f.predict(*ck->model));  // bit-identical
  EXPECT_EQ(config_to_json(ck->config), config_to_json(f.config));
  EXPECT_EQ(ck->schema.to_json(), f.schema.to_json());
  EXPECT_EQ(ck->info, info);
  const std::vector<GateState> a = f.model->gate_states(), b = ck->model->gate_states();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].step, b[i].step);
    EXPECT_EQ(a[i].bias, b[i].bias);  // exact: floats survive JSON
  }
  EXPECT_EQ(b[0].step, 5);
  EXPECT_NE(b[0].bias, std::vector<float>(4, 0.0f));

  // The weights file is plain safetensors, every tensor under the model's own name.
  Result<SafetensorsFile> st = SafetensorsFile::open(dir.file("model.safetensors"));
  ASSERT_TRUE(st.is_ok());
  EXPECT_EQ(st->entries().size(), static_cast<size_t>(f.model->params().size()));
  EXPECT_NE(st->find("blocks.1.moe.experts.3.w2"), nullptr);

  // Saving again over the same directory replaces both files.
  ASSERT_TRUE(save_checkpoint(dir.path(), *ck->model, ck->config, ck->schema).is_ok());
  Result<Checkpoint> again = load_checkpoint(dir.path());
  ASSERT_TRUE(again.is_ok()) << again.status().message();
  EXPECT_EQ(again->info, json::object());
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path())) names.push_back(e.path().filename());
  EXPECT_EQ(names.size(), 2u);  // no temporary left behind
}

// Rewrites the weights with `edit` applied to the tensor list and records the new file's size
// and hash in model.json, so loading gets past the hash check to the tensor checks.
void rewrite_weights(
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

void edit_json(const TempDir& dir, const std::function<void(json&)>& edit) {
  json j = read_json(dir.file("model.json"));
  edit(j);
  write_text(dir.file("model.json"), j.dump());
}

NamedTensor* find(std::vector<NamedTensor>& t, const std::string& name) {
  for (NamedTensor& n : t)
    if (n.name == name) return &n;
  return nullptr;
}

TEST(CheckpointTest, CorruptionsAreRejectedWithTheirOwnMessages) {
  Fixture f;
  struct Case {
    const char* name;
    std::function<void(const TempDir&)> corrupt;
    std::string message;  // after "<dir>/"
  };
  const std::vector<Case> cases = {
      {"missing tensor",
       [](const TempDir& d) {
         rewrite_weights(d, [](std::vector<NamedTensor>& t, std::vector<TensorBuffer>&) {
           t.erase(t.begin() + static_cast<long>(t.size()) - 1);
         });
       },
       "model.safetensors: missing tensor head.b"},
      {"unexpected tensor",
       [](const TempDir& d) {
         rewrite_weights(d, [](std::vector<NamedTensor>& t, std::vector<TensorBuffer>& keep) {
           keep.emplace_back(Shape{2});
           t.push_back({"blocks.9.moe.router.w", keep.back().view()});
         });
       },
       "model.safetensors: unexpected tensor blocks.9.moe.router.w (the config has no such "
       "parameter)"},
      {"wrong shape",
       [](const TempDir& d) {
         rewrite_weights(d, [](std::vector<NamedTensor>& t, std::vector<TensorBuffer>&) {
           NamedTensor* h = find(t, "head.w");
           h->tensor = h->tensor.reshape(Shape{4, 4});
         });
       },
       "model.safetensors: tensor head.w has shape [4, 4], the config gives [2, 8]"},
      {"wrong dtype",
       [](const TempDir& d) {
         rewrite_weights(d, [](std::vector<NamedTensor>& t, std::vector<TensorBuffer>& keep) {
           keep.emplace_back(Shape{2}, DType::kF64);
           find(t, "head.b")->tensor = keep.back().view();
         });
       },
       "model.safetensors: tensor head.b is F64, expected F32"},
      {"NaN weight",
       [](const TempDir& d) {
         rewrite_weights(d, [](std::vector<NamedTensor>& t, std::vector<TensorBuffer>&) {
           find(t, "blocks.0.moe.experts.1.w1")->tensor.f32()[5] = std::nanf("");
         });
       },
       "model.safetensors: tensor blocks.0.moe.experts.1.w1 element 5 is NaN"},
      {"weights from another save",
       [](const TempDir& d) {
         std::fstream io(d.file("model.safetensors"),
                         std::ios::in | std::ios::out | std::ios::binary);
         io.seekp(-3, std::ios::end);
         io.put('\x7f');
       },
       "model.safetensors: content hash differs from the one"},
      {"truncated JSON",
       [](const TempDir& d) {
         std::string text = read_json(d.file("model.json")).dump();
         write_text(d.file("model.json"), text.substr(0, text.size() / 2));
       },
       "model.json: invalid JSON"},
      {"config value of a wrong type",
       [](const TempDir& d) {
         edit_json(d, [](json& j) { j["config"]["model"]["moe"][0]["k"] = "two"; });
       },
       "model.json: config: model.moe.0.k: expected a positive integer, got \"two\""},
      {"newer format",
       [](const TempDir& d) { edit_json(d, [](json& j) { j["format_version"] = 2; }); },
       "model.json: format_version 2 is not supported (this moe reads version 1)"},
      {"schema without its vocabulary",
       [](const TempDir& d) { edit_json(d, [](json& j) { j["data"].erase("text"); }); },
       "model.json: data: missing field 'text'"},
      {"idf not matching the vocabulary",
       [](const TempDir& d) { edit_json(d, [](json& j) { j["data"]["idf"][0] = 99; }); },
       "model.json: data: idf 0 is 99, the vocabulary's document frequencies give"},
      {"gate bias of a wrong size",
       [](const TempDir& d) { edit_json(d, [](json& j) { j["gates"][0]["bias"].erase(0); }); },
       "model.json: gate state blocks.0.moe.router: bias of 3 values, the gate has 4"},
      {"gate missing", [](const TempDir& d) { edit_json(d, [](json& j) { j["gates"].erase(1); }); },
       "model.json: gate state blocks.1.moe.router: missing"},
      {"unknown field", [](const TempDir& d) { edit_json(d, [](json& j) { j["weigths"] = 1; }); },
       "model.json: unexpected field 'weigths'"},
      {"missing weights file", [](const TempDir& d) { fs::remove(d.file("model.safetensors")); },
       "model.safetensors: missing (not a regular file)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    ASSERT_TRUE(save_checkpoint(dir.path(), *f.model, f.config, f.schema).is_ok());
    c.corrupt(dir);
    Result<Checkpoint> ck = load_checkpoint(dir.path());
    ASSERT_FALSE(ck.is_ok());
    const std::string expected = dir.path() + "/" + c.message;
    EXPECT_EQ(ck.status().message().rfind(expected, 0), 0u)
        << "got:      " << ck.status().message() << "\nexpected: " << expected;
  }
  Result<Checkpoint> none = load_checkpoint("/nonexistent/moe/checkpoint");
  ASSERT_FALSE(none.is_ok());
  EXPECT_EQ(none.status().message(),
            "/nonexistent/moe/checkpoint: not a checkpoint directory (it does not exist)");
}

TEST(CheckpointTest, HashIsFnv1a64) {
  EXPECT_EQ(fnv1a64_hex("", 0), "cbf29ce484222325");
  EXPECT_EQ(fnv1a64_hex("a", 1), "af63dc4c8601ec8c");
}

}  // namespace
}  // namespace moe
