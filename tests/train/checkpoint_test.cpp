// Model checkpoints: a round trip gives identical predictions and gate states, and a table of
// corrupted checkpoints (weights, JSON, config, schema, gate states) is rejected with a message
// naming the file and the tensor or field.
//
// Dims: T documents · V text ids · D = 8 model width · C = 2 classes · E = 4 experts.
#include "moe/train/checkpoint.h"

#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "moe/io/safetensors.h"
#include "moe/layers/loss.h"
#include "moe/optim/optimizer.h"
#include "moe/train/evaluate.h"
#include "moe/train/train_state.h"
#include "train/checkpoint_testing.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace checkpoint_testing;

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

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

// A safetensors file's parts: the header length, the header JSON and the data section.
struct RawFile {
  uint64_t header_len = 0;
  json header;
  std::vector<uint8_t> data;

  static RawFile split(const std::vector<uint8_t>& f) {
    RawFile r;
    for (int i = 7; i >= 0; --i) r.header_len = (r.header_len << 8) | f[static_cast<size_t>(i)];
    r.header = json::parse(f.begin() + 8, f.begin() + 8 + static_cast<long>(r.header_len));
    r.data.assign(f.begin() + 8 + static_cast<long>(r.header_len), f.end());
    return r;
  }
  // The file again, with `header_len` as stored (recomputed from the header unless `keep_len`).
  std::vector<uint8_t> join(bool keep_len = false) const {
    const std::string text = header.dump();
    const uint64_t n = keep_len ? header_len : text.size();
    std::vector<uint8_t> f(8);
    for (int i = 0; i < 8; ++i) f[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
    f.insert(f.end(), text.begin(), text.end());
    f.insert(f.end(), data.begin(), data.end());
    return f;
  }
};

// Rewrites `file` of the checkpoint byte for byte through `edit` and records the new size and
// hash where `json_file` binds it (`key`), so loading gets past the hash check to the parser.
void rewrite_raw(const TempDir& dir, const char* file, const char* json_file, const char* key,
                 const std::function<void(std::vector<uint8_t>&)>& edit) {
  std::vector<uint8_t> bytes = read_all(dir.file(file));
  edit(bytes);
  write_text(dir.file(file), std::string(bytes.begin(), bytes.end()));
  json j = read_json(dir.file(json_file));
  j[key]["bytes"] = bytes.size();
  j[key]["fnv1a64"] = fnv1a64_hex(bytes.data(), bytes.size());
  write_text(dir.file(json_file), j.dump());
}

void rewrite_weights_raw(const TempDir& dir,
                         const std::function<void(std::vector<uint8_t>&)>& edit) {
  rewrite_raw(dir, "model.safetensors", "model.json", "weights", edit);
}

// Rewrites the weights file's header as text through `edit` (the data section kept).
void rewrite_header_text(const TempDir& dir, const std::function<void(std::string&)>& edit) {
  rewrite_weights_raw(dir, [&](std::vector<uint8_t>& b) {
    RawFile r = RawFile::split(b);
    std::string text = r.header.dump();
    edit(text);
    b.assign(8, 0);
    for (int i = 0; i < 8; ++i)
      b[static_cast<size_t>(i)] = static_cast<uint8_t>(text.size() >> (8 * i));
    b.insert(b.end(), text.begin(), text.end());
    b.insert(b.end(), r.data.begin(), r.data.end());
  });
}

// `depth` nested arrays, innermost empty: [[[...]]].
std::string nested_arrays(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

// Replaces the first occurrence of `from` in `text` (which must hold it).
void replace_once(std::string& text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  text.replace(at, from.size(), to);
}

// model.json as text with `edit` applied (for what a json value cannot hold).
void edit_json_text(const TempDir& dir, const std::function<void(std::string&)>& edit) {
  std::string text = read_json(dir.file("model.json")).dump();
  edit(text);
  write_text(dir.file("model.json"), text);
}

// Edits the header of model.safetensors (head.b is the last tensor, 2 F32 values).
void edit_header(const TempDir& dir, const std::function<void(RawFile&)>& edit) {
  rewrite_weights_raw(dir, [&](std::vector<uint8_t>& bytes) {
    RawFile r = RawFile::split(bytes);
    edit(r);
    bytes = r.join();
  });
}

TEST(CheckpointTest, CorruptionsAreRejectedWithTheirOwnMessages) {
  Fixture f;
  struct Case {
    const char* name;
    std::function<void(const TempDir&)> corrupt;
    std::string message;  // after "<dir>/"
    std::string also;     // a further part the message must contain ("" for none)
    Case(const char* n, std::function<void(const TempDir&)> c, std::string m, std::string a = "")
        : name(n), corrupt(std::move(c)), message(std::move(m)), also(std::move(a)) {}
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
       "model.json line 1 column ", "invalid JSON (syntax error"},
      // A value nested 100,000 deep parsed, then overflowed the stack when a message printed it.
      {"config value nested 100,000 deep",
       [](const TempDir& d) {
         edit_json_text(d, [](std::string& t) {
           replace_once(t, "\"label\":\"label\"", "\"label\":" + nested_arrays(100000));
         });
       },
       "model.json line 1 column ", "arrays and objects nested more than 64 deep"},
      {"key twice in one object",
       [](const TempDir& d) {
         edit_json_text(d, [](std::string& t) { t.insert(1, "\"format_version\":1,"); });
       },
       "model.json: the key \"format_version\" appears twice in one object"},
      {"NUL then garbage after the JSON",
       [](const TempDir& d) {
         edit_json_text(d, [](std::string& t) { t += std::string("\0{\"x\": ", 7); });
       },
       "model.json line 1 column ", "a NUL byte"},
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
       "model.safetensors: missing (no such file)"},
      // The safetensors layer's own checks, reached through a checkpoint whose model.json records
      // the damaged file's size and hash (a writer that got the layout wrong).
      {"header length larger than the file",
       [](const TempDir& d) {
         rewrite_weights_raw(d, [](std::vector<uint8_t>& b) {
           const uint64_t n = b.size() + 100;
           for (int i = 0; i < 8; ++i)
             b[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
         });
       },
       "model.safetensors: header length", "is larger than the whole file"},
      {"header length over the cap",
       [](const TempDir& d) {
         rewrite_weights_raw(d, [](std::vector<uint8_t>& b) { b[5] = 1; });  // 2^40 + …
       },
       "model.safetensors: header length 1099511", "exceeds the limit of"},
      {"truncated header",
       [](const TempDir& d) {
         rewrite_weights_raw(d, [](std::vector<uint8_t>& b) {
           RawFile r = RawFile::split(b);
           b.resize(8 + r.header_len - 5);  // the last bytes of the JSON missing
         });
       },
       "model.safetensors: the header is truncated"},
      {"truncated data (a torn write)",
       [](const TempDir& d) {
         std::vector<uint8_t> b = read_all(d.file("model.safetensors"));
         b.resize(b.size() > 6 ? b.size() - 6 : 0);  // (a bound GCC can see at -O1)
         write_text(d.file("model.safetensors"), std::string(b.begin(), b.end()));
       },
       "model.safetensors: ", "(the two files are from different saves)"},
      {"header not valid JSON",
       [](const TempDir& d) {
         rewrite_weights_raw(d, [](std::vector<uint8_t>& b) {
           b[8] = '[';
           b[9] = ',';
         });
       },
       "model.safetensors: header line 1 column 2: invalid JSON (syntax error"},
      {"header with a NUL then garbage",
       [](const TempDir& d) {
         rewrite_header_text(d, [](std::string& t) { t += std::string("\0garbage", 8); });
       },
       "model.safetensors: header line 1 column ", "a NUL byte"},
      {"header metadata nested 100,000 deep",
       [](const TempDir& d) {
         rewrite_header_text(d, [](std::string& t) {
           replace_once(t, "\"__metadata__\":{",
                        "\"__metadata__\":{\"x\":" + nested_arrays(100000) + ",");
         });
       },
       "model.safetensors: header line 1 column ", "nested more than 64 deep"},
      {"shape nested 100,000 deep",
       [](const TempDir& d) {
         rewrite_header_text(d, [](std::string& t) {
           replace_once(t, "\"shape\":[", "\"shape\":[" + nested_arrays(100000) + ",");
         });
       },
       "model.safetensors: header line 1 column ", "nested more than 64 deep"},
      {"tensor named twice",
       [](const TempDir& d) {
         rewrite_header_text(d, [](std::string& t) {
           t.insert(1, "\"head.b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},");
         });
       },
       "model.safetensors: header: the key \"head.b\" appears twice in one object"},
      {"offset out of bounds",
       [](const TempDir& d) {
         edit_header(d, [](RawFile& r) {
           const uint64_t end = r.data.size();
           r.header["head.b"]["data_offsets"] = {end, end + 8};
         });
       },
       "model.safetensors: tensor 'head.b': data_offsets", "run past the end of the data section"},
      {"overlapping offsets",
       [](const TempDir& d) {
         edit_header(d, [](RawFile& r) {
           const uint64_t begin = r.header["head.w"]["data_offsets"][0].get<uint64_t>();
           r.header["head.b"]["data_offsets"] = {begin, begin + 8};
         });
       },
       "model.safetensors: tensor 'head.w'", "overlaps tensor 'head.b'"},
      {"gap in the data",
       [](const TempDir& d) {
         edit_header(d, [](RawFile& r) {
           json& off = r.header["head.b"]["data_offsets"];
           off = {off[0].get<uint64_t>() + 8, off[1].get<uint64_t>() + 8};
           r.data.insert(r.data.end(), 8, 0);
         });
       },
       "model.safetensors: 8 unused bytes in the data section before tensor 'head.b'"},
      {"unknown dtype",
       [](const TempDir& d) {
         edit_header(d, [](RawFile& r) { r.header["head.b"]["dtype"] = "F16"; });
       },
       "model.safetensors: tensor 'head.b': unknown dtype 'F16'"},
      {"dimension product overflowing 64 bits",
       [](const TempDir& d) {
         edit_header(d, [](RawFile& r) {
           r.header["head.b"]["shape"] = {uint64_t{1} << 32, uint64_t{1} << 32};
         });
       },
       "model.safetensors: tensor 'head.b': the product of shape", "overflows 64 bits"},
  };
  std::set<std::string> messages;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    ASSERT_TRUE(save_checkpoint(dir.path(), *f.model, f.config, f.schema).is_ok());
    c.corrupt(dir);
    Result<Checkpoint> ck = load_checkpoint(dir.path());
    ASSERT_FALSE(ck.is_ok());
    const std::string expected = dir.path() + "/" + c.message;
    const std::string& got = ck.status().message();
    EXPECT_EQ(got.rfind(expected, 0), 0u) << "got:      " << got << "\nexpected: " << expected;
    EXPECT_NE(got.find(c.also), std::string::npos) << got;
    messages.insert(got.substr(dir.path().size()));
  }
  EXPECT_EQ(messages.size(), cases.size());  // each corruption has its own message
  Result<Checkpoint> none = load_checkpoint("/nonexistent/moe/checkpoint");
  ASSERT_FALSE(none.is_ok());
  EXPECT_EQ(none.status().message(), "/nonexistent/moe/checkpoint: no such checkpoint directory");
}

TEST(CheckpointTest, PredictionsThatOverflowAreAnErrorNotNaN) {
  // Finite weights can still overflow: predict used to print "-nan" probabilities, exit 0.
  Fixture f;
  const Tensor values = f.model->params().values();
  for (int64_t i = 0; i < values.numel(); ++i) values.f32()[i] = (i % 3 ? -3e38f : 3e38f);
  Dataset d;
  d.kind = FeatureKind::kSparse;
  d.task = TaskKind::kClassification;
  d.n_rows = static_cast<int64_t>(kDocs.size());
  d.n_features = f.schema.shape().n_features;
  d.ids = f.ids;
  d.weights = f.weights;
  d.offsets = f.offsets;
  for (int64_t i = 0; i < d.n_rows; ++i) d.source_rows.push_back(i + 2);
  Predictions p;
  Result<EvalMetrics> m = evaluate(*f.model, d, f.schema.labels, EvalOptions{}, &p);
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().message().rfind("row ", 0), 0u) << m.status().message();
  EXPECT_NE(m.status().message().find("): the model's output "), std::string::npos)
      << m.status().message();
  EXPECT_EQ(p.n_rows, 0);
}

TEST(CheckpointTest, WeightsOfTheWrongSizeAreRefusedBeforeBeingRead) {
  // model.safetensors grown by 1 GiB (sparse: no disk used). model.json records the size it was
  // written with, so the file is refused from its size alone; it used to be read whole first (a
  // 5 GB file took 15 s and 5.2 GB of memory).
  Fixture f;
  TempDir dir;
  ASSERT_TRUE(save_checkpoint(dir.path(), *f.model, f.config, f.schema).is_ok());
  const std::string weights = dir.file("model.safetensors");
  const uint64_t size = fs::file_size(weights), grown = size + (uint64_t{1} << 30);
  fs::resize_file(weights, grown);
  struct rusage before {
  }, after{};
  ::getrusage(RUSAGE_SELF, &before);
  Result<Checkpoint> ck = load_checkpoint(dir.path());
  ::getrusage(RUSAGE_SELF, &after);
  ASSERT_FALSE(ck.is_ok());
  EXPECT_EQ(ck.status().message(),
            fmt::format("{}: {} bytes, but {}/model.json says {} (the two files are from different "
                        "saves)",
                        weights, grown, dir.path(), size));
  EXPECT_LT(after.ru_maxrss, before.ru_maxrss + 256 * 1024) << "the file was read (KiB)";
}

// A training checkpoint: the fixture's model checkpoint plus a training state with AdamW moments
// of known values, mid-epoch, with a best epoch.
struct TrainStateFixture {
  Fixture f;
  std::unique_ptr<Optimizer> optimizer;
  TrainState state;

  TrainStateFixture() {
    OptimizerConfig oc;
    optimizer = make_optimizer(f.model->params(), oc);
    Rng rng(11);
    // Every parameter's moments (the arena's padding stays zero, as the optimizer keeps it).
    const ParamStore& store = f.model->params();
    for (const NamedTensor& t : optimizer->state()) {
      for (ParamId id = 0; id < store.size(); ++id) {
        const Tensor p = param_slice(t.tensor, store.info(id));
        for (int64_t i = 0; i < p.numel(); ++i) p.f32()[i] = std::fabs(rng.normal());
      }
    }
    optimizer->set_step_count(7);
    state.epochs_done = 1;
    state.batches_done = 2;
    state.batches_per_epoch = 5;
    state.step = 7;
    state.seed = 3;
    state.optimizer = "adamw";
    state.schedule = "cosine";
    state.schedule_total_steps = f.config.training.epochs * state.batches_per_epoch;
    state.metric = "accuracy (validation)";
    state.best_epoch = 1;
    state.best_value = 0.75;
    state.since_best = 0;
    const Tensor values = f.model->params().values();
    state.best_values.assign(values.f32(), values.f32() + values.numel());
    state.best_gates = f.model->gate_states();
    state.epoch_sums = {{"loss_sum", 1.25}, {"rows", 12}};
    state.train_seconds = 0.5;
    state.train_rows = 72;
  }

  void save(const TempDir& dir) const {
    ASSERT_TRUE(save_checkpoint(dir.path(), *f.model, f.config, f.schema).is_ok());
    const Status st = save_train_state(dir.path(), state, *f.model, *optimizer);
    ASSERT_TRUE(st.is_ok()) << st.message();
  }

  // Loads into a fresh optimizer of the same kind.
  Result<TrainState> load(const TempDir& dir, std::unique_ptr<Optimizer>* fresh) const {
    MOE_ASSIGN_OR_RETURN(Checkpoint ck, load_checkpoint(dir.path()));
    *fresh = make_optimizer(f.model->params(), OptimizerConfig{});
    return load_train_state(dir.path(), *f.model, ck.weights_fnv1a64, **fresh, ck.config.training);
  }
};

TEST(TrainStateTest, RoundTripRestoresEveryField) {
  TrainStateFixture t;
  TempDir dir;
  t.save(dir);
  std::unique_ptr<Optimizer> fresh;
  Result<TrainState> back = t.load(dir, &fresh);
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(fresh->step_count(), 7);
  const std::vector<NamedTensor> a = t.optimizer->state(), b = fresh->state();
  ASSERT_EQ(a.size(), 2u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(std::memcmp(a[i].tensor.f32(), b[i].tensor.f32(),
                          static_cast<size_t>(a[i].tensor.numel()) * sizeof(float)),
              0)
        << a[i].name;
  }
  EXPECT_EQ(back->epochs_done, 1);
  EXPECT_EQ(back->batches_done, 2);
  EXPECT_EQ(back->step, 7);
  EXPECT_EQ(back->seed, 3u);
  EXPECT_EQ(back->schedule_total_steps, t.state.schedule_total_steps);
  EXPECT_EQ(back->best_value, 0.75);
  EXPECT_EQ(back->best_values, t.state.best_values);
  ASSERT_EQ(back->best_gates.size(), t.state.best_gates.size());
  EXPECT_EQ(back->best_gates[0].bias, t.state.best_gates[0].bias);
  EXPECT_EQ(back->epoch_sums, t.state.epoch_sums);
  EXPECT_EQ(back->train_rows, 72);

  // Per-parameter names, readable by any safetensors reader.
  Result<SafetensorsFile> st = SafetensorsFile::open(dir.file("train_state.safetensors"));
  ASSERT_TRUE(st.is_ok());
  EXPECT_NE(st->find("adam.m.head.w"), nullptr);
  EXPECT_NE(st->find("adam.v.blocks.1.moe.experts.3.w2"), nullptr);
  EXPECT_NE(st->find("best.input.w"), nullptr);
  EXPECT_EQ(st->entries().size(), 3u * static_cast<size_t>(t.f.model->params().size()));
}

void edit_state_json(const TempDir& dir, const std::function<void(json&)>& edit) {
  json j = read_json(dir.file("train_state.json"));
  edit(j);
  write_text(dir.file("train_state.json"), j.dump());
}

// Rewrites train_state.safetensors with `edit` applied and rebinds it in train_state.json.
void rewrite_state_tensors(
    const TempDir& dir,
    const std::function<void(std::vector<NamedTensor>&, std::vector<TensorBuffer>&)>& edit) {
  Result<SafetensorsFile> file = SafetensorsFile::open(dir.file("train_state.safetensors"));
  ASSERT_TRUE(file.is_ok());
  std::vector<TensorBuffer> keep;
  for (const SafetensorsEntry& e : file->entries()) keep.push_back(file->load(e.name).value());
  std::vector<NamedTensor> tensors;
  for (size_t i = 0; i < keep.size(); ++i)
    tensors.push_back({file->entries()[i].name, keep[i].view()});
  edit(tensors, keep);
  const std::vector<uint8_t> bytes = encode_safetensors(tensors);
  rewrite_raw(dir, "train_state.safetensors", "train_state.json", "tensors",
              [&](std::vector<uint8_t>& b) { b = bytes; });
}

TEST(TrainStateTest, CorruptionsAreRejectedWithTheirOwnMessages) {
  TrainStateFixture t;
  struct Case {
    const char* name;
    std::function<void(const TempDir&)> corrupt;
    std::string message;  // after "<dir>/"
  };
  const std::vector<Case> cases = {
      {"missing tensor",
       [](const TempDir& d) {
         rewrite_state_tensors(d, [](std::vector<NamedTensor>& ts, std::vector<TensorBuffer>&) {
           ts.erase(ts.begin());
         });
       },
       "train_state.safetensors: missing tensor adam.m.input.w"},
      {"unexpected tensor",
       [](const TempDir& d) {
         rewrite_state_tensors(d, [](std::vector<NamedTensor>& ts, std::vector<TensorBuffer>& k) {
           k.emplace_back(Shape{2});
           ts.push_back({"sgd.momentum.head.b", k.back().view()});
         });
       },
       "train_state.safetensors: unexpected tensor sgd.momentum.head.b (neither the optimizer "
       "nor the best model has it)"},
      {"moment of a wrong shape",
       [](const TempDir& d) {
         rewrite_state_tensors(d, [](std::vector<NamedTensor>& ts, std::vector<TensorBuffer>&) {
           NamedTensor* h = find(ts, "adam.v.head.w");
           h->tensor = h->tensor.reshape(Shape{16});
         });
       },
       "train_state.safetensors: tensor adam.v.head.w has shape [16], the config gives [2, 8]"},
      {"NaN in a moment",
       [](const TempDir& d) {
         rewrite_state_tensors(d, [](std::vector<NamedTensor>& ts, std::vector<TensorBuffer>&) {
           find(ts, "adam.v.head.b")->tensor.f32()[1] = std::nanf("");
         });
       },
       "train_state.safetensors: tensor adam.v.head.b element 1 is NaN"},
      {"infinite best weight",
       [](const TempDir& d) {
         rewrite_state_tensors(d, [](std::vector<NamedTensor>& ts, std::vector<TensorBuffer>&) {
           find(ts, "best.head.b")->tensor.f32()[0] = INFINITY;
         });
       },
       "train_state.safetensors: tensor best.head.b element 0 is infinite"},
      {"tensors from another save",
       [](const TempDir& d) {
         std::fstream io(d.file("train_state.safetensors"),
                         std::ios::in | std::ios::out | std::ios::binary);
         io.seekp(-2, std::ios::end);
         io.put('\x7f');
       },
       "train_state.safetensors: content hash differs from the one"},
      {"state from another model save",
       [](const TempDir& d) {
         edit_state_json(d, [](json& j) { j["model_weights_fnv1a64"] = "0123456789abcdef"; });
       },
       "train_state.json: written for model weights with hash 0123456789abcdef"},
      {"invalid JSON",
       [](const TempDir& d) { write_text(d.file("train_state.json"), "{\"format\": "); },
       "train_state.json line 1 column 12: invalid JSON"},
      {"key twice in one object",
       [](const TempDir& d) {
         std::string text = read_json(d.file("train_state.json")).dump();
         text.insert(1, "\"seed\":4,");
         write_text(d.file("train_state.json"), text);
       },
       "train_state.json: the key \"seed\" appears twice in one object"},
      {"epoch_sums nested 100,000 deep",
       [](const TempDir& d) {
         std::string text = read_json(d.file("train_state.json")).dump();
         text.insert(1,
                     "\"epoch_sums\":" + std::string(100000, '[') + std::string(100000, ']') + ",");
         write_text(d.file("train_state.json"), text);
       },
       "train_state.json line 1 column 78: arrays and objects nested more than 64 deep"},
      {"schedule horizon not the config's",
       [](const TempDir& d) {
         edit_state_json(d, [](json& j) { j["schedule"]["total_steps"] = 7; });
       },
       "train_state.json: schedule: total_steps 7 is not the config's training.epochs × "
       "position.batches_per_epoch"},
      {"schedule kind not the config's",
       [](const TempDir& d) {
         edit_state_json(d, [](json& j) { j["schedule"]["kind"] = "constant"; });
       },
       "train_state.json: schedule: kind \"constant\", but the config's training.schedule is "
       "\"cosine\""},
      {"early-stopping counter beyond the epochs done",
       [](const TempDir& d) {
         edit_state_json(d, [](json& j) { j["best"]["since_best"] = 1000000000; });
       },
       "train_state.json: best: since_best 1000000000 is more than the 0 epochs done since epoch "
       "1"},
      {"negative rows in the epoch's sums",
       [](const TempDir& d) { edit_state_json(d, [](json& j) { j["epoch_sums"]["rows"] = -12; }); },
       "train_state.json: epoch_sums: field 'rows' must be an integer ≥ 0"},
      {"negative loss sum",
       [](const TempDir& d) {
         edit_state_json(d, [](json& j) { j["epoch_sums"]["loss_sum"] = -1.0; });
       },
       "train_state.json: epoch_sums: field 'loss_sum' must be a finite number ≥ 0"},
      {"negative second moment",
       [](const TempDir& d) {
         rewrite_state_tensors(d, [](std::vector<NamedTensor>& ts, std::vector<TensorBuffer>&) {
           find(ts, "adam.v.head.b")->tensor.f32()[1] = -0.5f;
         });
       },
       "train_state.safetensors: tensor adam.v.head.b element 1 is -0.5, but a second moment"},
      {"missing field",
       [](const TempDir& d) { edit_state_json(d, [](json& j) { j.erase("best"); }); },
       "train_state.json: missing field 'best'"},
      {"unexpected field",
       [](const TempDir& d) { edit_state_json(d, [](json& j) { j["rng"] = 1; }); },
       "train_state.json: unexpected field 'rng'"},
      {"newer format",
       [](const TempDir& d) { edit_state_json(d, [](json& j) { j["format_version"] = 2; }); },
       "train_state.json: format_version 2 is not supported (this moe reads version 1)"},
      {"step not matching the position",
       [](const TempDir& d) { edit_state_json(d, [](json& j) { j["position"]["step"] = 8; }); },
       "train_state.json: position: step 8 is not epochs_done × batches_per_epoch + "
       "batches_done = 7"},
      {"batch beyond the epoch",
       [](const TempDir& d) {
         edit_state_json(d, [](json& j) { j["position"]["batches_done"] = 5; });
       },
       "train_state.json: position: batches_done 5 must be below batches_per_epoch 5"},
      {"negative count",
       [](const TempDir& d) {
         edit_state_json(d, [](json& j) { j["position"]["epochs_done"] = -1; });
       },
       "train_state.json: position: field 'epochs_done' must be an integer ≥ 0"},
      {"another optimizer",
       [](const TempDir& d) {
         edit_state_json(d, [](json& j) { j["optimizer"]["kind"] = "sgd"; });
       },
       "train_state.json: optimizer: kind \"sgd\", but the config's optimizer is \"adamw\""},
      {"best value missing its number",
       [](const TempDir& d) { edit_state_json(d, [](json& j) { j["best"]["value"] = nullptr; }); },
       "train_state.json: best: field 'value' must be a finite number"},
      {"best epoch in the future",
       [](const TempDir& d) { edit_state_json(d, [](json& j) { j["best"]["epoch"] = 4; }); },
       "train_state.json: best: epoch 4 is after the epochs done (1)"},
      {"missing state file", [](const TempDir& d) { fs::remove(d.file("train_state.json")); },
       "train_state.json: missing (no such file)"},
  };
  std::set<std::string> messages;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    t.save(dir);
    c.corrupt(dir);
    std::unique_ptr<Optimizer> fresh;
    Result<TrainState> r = t.load(dir, &fresh);
    ASSERT_FALSE(r.is_ok());
    const std::string expected = dir.path() + "/" + c.message;
    const std::string& got = r.status().message();
    EXPECT_EQ(got.rfind(expected, 0), 0u) << "got:      " << got << "\nexpected: " << expected;
    messages.insert(got.substr(dir.path().size()));
  }
  EXPECT_EQ(messages.size(), cases.size());
}

TEST(CheckpointTest, CommitDirectoryKeepsTheNameAtEveryStep) {
  TempDir dir;
  const fs::path root = dir.path();
  const auto make = [&](const char* name, const char* content) {
    fs::create_directories(root / name);
    write_text((root / name / "f").string(), content);
  };
  make("staged", "one");
  ASSERT_TRUE(commit_directory((root / "staged").string(), (root / "last").string(), "").is_ok());
  EXPECT_EQ(read_all((root / "last" / "f").string()).size(), 3u);
  EXPECT_FALSE(fs::exists(root / "staged"));
  make("staged", "second");
  ASSERT_TRUE(commit_directory((root / "staged").string(), (root / "last").string(),
                               (root / "last.1").string())
                  .is_ok());
  EXPECT_EQ(read_all((root / "last" / "f").string()).size(), 6u);
  EXPECT_EQ(read_all((root / "last.1" / "f").string()).size(), 3u);
  make("staged", "3");
  ASSERT_TRUE(commit_directory((root / "staged").string(), (root / "last").string(), "").is_ok());
  EXPECT_EQ(read_all((root / "last" / "f").string()).size(), 1u);
  EXPECT_FALSE(fs::exists(root / "staged"));
}

TEST(CheckpointTest, HashIsFnv1a64) {
  EXPECT_EQ(fnv1a64_hex("", 0), "cbf29ce484222325");
  EXPECT_EQ(fnv1a64_hex("a", 1), "af63dc4c8601ec8c");
}

}  // namespace
}  // namespace moe
