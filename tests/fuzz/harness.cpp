// Fuzz harnesses for the safetensors reader, the config reader and the checkpoint loader; the
// contract and the invariants each checks are in harness.h.
//
// Dims: T rows predicted by an accepted checkpoint (3) · C outputs.
#include "harness.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_read.h"
#include "moe/data/text.h"
#include "moe/io/safetensors.h"
#include "moe/model/model.h"
#include "moe/optim/optimizer.h"
#include "moe/train/checkpoint.h"
#include "moe/train/config.h"
#include "moe/train/evaluate.h"
#include "moe/train/train_state.h"

namespace moe::fuzz {

namespace {

constexpr size_t kMaxOverrides = 4;
constexpr int64_t kPredictRows = 3;
// Weights no larger than this cannot overflow a fuzz-sized model (a few layers) on zero inputs.
constexpr float kSaneWeight = 1e4f;

// An invariant the parser promised does not hold: a bug, reported as a crash.
[[noreturn]] void violated(const std::string& what) {
  std::fprintf(stderr, "fuzz invariant violated: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// A directory of this process's own, removed when the process exits normally.
class ScratchDir {
 public:
  ScratchDir() {
    path_ = (std::filesystem::temp_directory_path() / ("moe-fuzz-" + std::to_string(::getpid())))
                .string();
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const std::string& scratch_dir() {
  static const ScratchDir dir;
  return dir.path();
}

void write_bytes(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) violated("cannot write the scratch file " + path);
}

// Splits at NUL bytes: the first part, then at most `max_rest` more (the last keeps any NULs).
// memchr, not a byte loop: the fuzz build instruments every comparison in this file, and a loop
// over each byte of a 200 KB input was most of an execution's time.
std::vector<std::string> split_nul(const uint8_t* data, size_t size, size_t max_rest) {
  std::vector<std::string> parts;
  const char* p = reinterpret_cast<const char*>(data);
  const char* end = p + size;
  while (parts.size() < max_rest) {
    const void* nul = std::memchr(p, 0, static_cast<size_t>(end - p));
    if (nul == nullptr) break;
    const char* at = static_cast<const char*>(nul);
    parts.emplace_back(p, at);
    p = at + 1;
  }
  parts.emplace_back(p, end);
  return parts;
}

// The train_state harness's fixed part: a small text model (two MoE layers), its checkpoint and
// a training state saved beside it (mid-epoch, with a best epoch) in a directory of its own.
struct TrainStateBase {
  std::string dir;
  Config config;
  DataSchema schema;
  std::unique_ptr<Model> model;
  std::string weights_fnv1a64;
  std::vector<uint8_t> tensors;  // train_state.safetensors as saved

  TrainStateBase() {
    dir = scratch_dir() + "/train_state";
    std::filesystem::create_directories(dir);
    const nlohmann::json c = nlohmann::json::parse(R"({
      "data": {"format": "text", "train": "t.tsv", "text": {"min_count": 1}},
      "model": {"width": 8, "moe": [{"experts": 4, "k": 1, "expert": {"hidden": 8}},
                                    {"experts": 4, "gate": {"kind": "sigmoid_bias"}}]}})");
    Result<Config> parsed = parse_config(c, "train_state base");
    if (!parsed) violated("base config: " + parsed.status().message());
    config = *parsed;
    const std::vector<std::string_view> docs = {"good tea", "bad tea", "good coffee"};
    TextOptions to;
    to.min_count = 1;
    Result<TextVectorizer> v = TextVectorizer::fit(docs, to);
    if (!v) violated("base vocabulary: " + v.status().message());
    schema.format = DataFormat::kText;
    schema.labels.task = TaskKind::kClassification;
    schema.labels.columns = {"label"};
    schema.labels.class_names = {"neg", "pos"};
    schema.text = std::move(v.value());
    Result<std::unique_ptr<Model>> m = Model::create(config.model, schema.shape());
    if (!m) violated("base model: " + m.status().message());
    model = std::move(m.value());
    model->init(5);
    const Status saved = save_checkpoint(dir, *model, config, schema);
    if (!saved) violated("base checkpoint: " + saved.message());
    Result<Checkpoint> ck = load_checkpoint(dir);
    if (!ck) violated("base checkpoint reload: " + ck.status().message());
    weights_fnv1a64 = ck->weights_fnv1a64;

    std::unique_ptr<Optimizer> optimizer = make_optimizer(model->params(), OptimizerConfig{});
    optimizer->set_step_count(7);
    TrainState state;
    state.epochs_done = 1;
    state.batches_done = 2;
    state.batches_per_epoch = 5;
    state.step = 7;
    state.seed = 3;
    state.optimizer = optimizer_kind_name(OptimizerConfig{}.kind);
    state.schedule = schedule_kind_name(config.training.schedule);
    state.schedule_total_steps = config.training.epochs * state.batches_per_epoch;
    state.metric = "accuracy (validation)";
    state.best_epoch = 1;
    state.best_value = 0.75;
    const Tensor values = model->params().values();
    state.best_values.assign(values.f32(), values.f32() + values.numel());
    state.best_gates = model->gate_states();
    state.epoch_sums = {{"loss_sum", 1.25}, {"rows", 12}};
    state.train_seconds = 0.5;
    state.train_rows = 72;
    const Status st = save_train_state(dir, state, *model, *optimizer);
    if (!st) violated("base training state: " + st.message());
    std::ifstream in(dir + "/" + kTrainStateTensorsFile, std::ios::binary);
    tensors.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
};

const TrainStateBase& train_state_base() {
  static const TrainStateBase base;
  return base;
}

}  // namespace

void safetensors_one(const uint8_t* data, size_t size) {
  Result<SafetensorsFile> file =
      SafetensorsFile::parse(std::vector<uint8_t>(data, data + size), "fuzz.safetensors");
  if (!file) {
    if (file.status().message().empty()) violated("a rejection without a message");
    return;
  }
  std::vector<TensorBuffer> buffers;
  std::vector<NamedTensor> tensors;
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | data[i];
  const uint64_t data_size = size - 8 - header_len;
  for (const SafetensorsEntry& e : file->entries()) {
    if (e.begin > e.end || e.end > data_size) violated("entry " + e.name + " out of bounds");
    Result<TensorBuffer> t = file->load(e.name);
    if (!t) violated("accepted entry " + e.name + " does not load: " + t.status().message());
    if (static_cast<uint64_t>(t->view().nbytes()) != e.end - e.begin)
      violated("entry " + e.name + " loads a different byte count than its offsets hold");
    buffers.push_back(std::move(t.value()));
    tensors.push_back({e.name, buffers.back().view()});
  }
  // What the writer makes of an accepted file must read back the same.
  const std::vector<uint8_t> again = encode_safetensors(tensors, file->metadata());
  Result<SafetensorsFile> back = SafetensorsFile::parse(again, "re-encoded");
  if (!back) violated("re-encoded file rejected: " + back.status().message());
  if (back->entries().size() != file->entries().size() || back->metadata() != file->metadata())
    violated("re-encoded file lists other entries or metadata");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SafetensorsEntry& a = file->entries()[i];
    const SafetensorsEntry* b = back->find(a.name);
    if (b == nullptr || b->dtype != a.dtype || b->shape != a.shape)
      violated("re-encoded entry " + a.name + " differs");
    Result<TensorBuffer> t = back->load(a.name);
    if (!t || t->view().nbytes() != tensors[i].tensor.nbytes() ||
        (tensors[i].tensor.nbytes() > 0 &&
         std::memcmp(t->view().raw(), tensors[i].tensor.raw(),
                     static_cast<size_t>(tensors[i].tensor.nbytes())) != 0))
      violated("re-encoded tensor " + a.name + " holds other bytes");
  }
}

void config_one(const uint8_t* data, size_t size) {
  const std::vector<std::string> parts = split_nul(data, size, kMaxOverrides);
  const std::string path = scratch_dir() + "/config.json";
  write_bytes(path, reinterpret_cast<const uint8_t*>(parts[0].data()), parts[0].size());
  const std::vector<std::string> overrides(parts.begin() + 1, parts.end());
  Result<Config> config = load_config(path, overrides);
  if (!config) {
    if (config.status().message().empty()) violated("a rejection without a message");
    return;
  }
  // config.h: the resolved form parses back to the same Config, hence the same resolved form.
  const nlohmann::json resolved = config_to_json(*config);
  Result<Config> again = parse_config(resolved, "resolved");
  if (!again) violated("the resolved config is rejected: " + again.status().message());
  if (config_to_json(*again) != resolved)
    violated("the resolved config does not parse back to itself: " + resolved.dump());
}

void write_checkpoint_dir(const uint8_t* data, size_t size, const std::string& dir) {
  const std::vector<std::string> parts = split_nul(data, size, 1);
  std::string weights = parts.size() > 1 ? parts[1] : std::string();
  std::string json_text = parts[0];
  // The reader's own parser (depth limit, duplicate keys): what it refuses is written unchanged,
  // and a value nested too deep is never dumped here (that recursion would overflow the stack).
  const Result<nlohmann::json> parsed = parse_json(json_text, "fuzz model.json");
  nlohmann::json j = parsed.is_ok() ? parsed.value() : nlohmann::json();
  // A language model: the last data.tokenizer.bytes bytes are its tokenizer.model.
  std::string tokenizer;
  bool has_tokenizer = false;
  if (j.is_object() && j.contains("data") && j["data"].is_object() &&
      j["data"].contains("tokenizer") && j["data"]["tokenizer"].is_object()) {
    nlohmann::json& t = j["data"]["tokenizer"];
    const auto bytes = t.find("bytes");
    if (bytes != t.end() && bytes->is_number_unsigned() &&
        bytes->get<uint64_t>() <= weights.size()) {
      const size_t n = static_cast<size_t>(bytes->get<uint64_t>());
      tokenizer = weights.substr(weights.size() - n);
      weights.resize(weights.size() - n);
      has_tokenizer = true;
      t["fnv1a64"] = fnv1a64_hex(tokenizer.data(), tokenizer.size());
      json_text = j.dump();
    }
  }
  if (j.is_object() && j.contains("weights") && j["weights"].is_object()) {
    j["weights"]["bytes"] = weights.size();
    j["weights"]["fnv1a64"] = fnv1a64_hex(weights.data(), weights.size());
    json_text = j.dump();
  }
  write_bytes(dir + "/" + kCheckpointWeightsFile, reinterpret_cast<const uint8_t*>(weights.data()),
              weights.size());
  write_bytes(dir + "/" + kCheckpointJsonFile, reinterpret_cast<const uint8_t*>(json_text.data()),
              json_text.size());
  // The directory is reused from input to input: a tokenizer.model only when this one has it.
  const std::string tokenizer_path = dir + "/" + kTokenizerFile;
  if (has_tokenizer) {
    write_bytes(tokenizer_path, reinterpret_cast<const uint8_t*>(tokenizer.data()),
                tokenizer.size());
  } else {
    std::error_code ec;
    std::filesystem::remove(tokenizer_path, ec);
  }
}

namespace {

// The largest magnitude among the model's parameters.
float largest_weight(const Model& model) {
  const ParamStore& store = model.params();
  float largest = 0.0f;
  for (ParamId id = 0; id < store.size(); ++id) {
    const Tensor t = store.value(id);
    const float* v = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i) largest = std::max(largest, std::abs(v[i]));
  }
  return largest;
}

// The refusal evaluate() gives for a NaN or infinite output.
bool is_overflow_refusal(const std::string& message) {
  return message.find("no predictions are given") != std::string::npos;
}

}  // namespace

void checkpoint_one(const uint8_t* data, size_t size) {
  const std::string dir = scratch_dir() + "/checkpoint";
  std::filesystem::create_directories(dir);
  write_checkpoint_dir(data, size, dir);
  Result<Checkpoint> ck = load_checkpoint(dir);
  if (!ck) {
    if (ck.status().message().empty()) violated("a rejection without a message");
    return;
  }
  // A loaded model runs: three rows of zero features, or three short documents, or three
  // windows of tokens.
  const DataShape shape = ck->schema.shape();
  Dataset rows;
  rows.kind = shape.input;
  rows.task = shape.task;
  rows.n_rows = kPredictRows;
  rows.n_features = shape.n_features;
  if (shape.input == FeatureKind::kTokens) {
    const int64_t s = ck->schema.context;
    rows.has_labels = true;
    rows.n_classes = shape.n_outputs;
    rows.context = s;
    rows.ids.resize(static_cast<size_t>(kPredictRows * s + 1));  // [3·S + 1] one token stream
    for (size_t i = 0; i < rows.ids.size(); ++i)
      rows.ids[i] = static_cast<int32_t>(i % static_cast<size_t>(shape.n_features));
    rows.n_bytes = rows.window_bytes = kPredictRows * s;
    rows.source_rows = {0, s, 2 * s};
    Result<EvalMetrics> m = evaluate(*ck->model, rows, ck->schema.labels, EvalOptions());
    if (!m) violated("a loaded language model cannot evaluate: " + m.status().message());
    if (m->language.n_tokens != kPredictRows * s)
      violated("a loaded language model evaluates another number of tokens");
    return;
  }
  if (shape.input == FeatureKind::kDense) {
    rows.dense.assign(static_cast<size_t>(kPredictRows * shape.n_features), 0.0f);
  } else {
    rows.ids = {0, static_cast<int32_t>(shape.n_features - 1)};
    rows.weights = {0.6f, 0.8f};
    rows.offsets = {0, 0, 1, 2};
  }
  rows.source_rows = {0, 1, 2};
  EvalOptions options;
  options.keep_routing = true;
  Predictions p;
  Result<EvalMetrics> m = evaluate(*ck->model, rows, ck->schema.labels, options, &p);
  if (!m) {
    // The loader promises finite weights, not sane ones: bytes of a damaged file can be finite
    // and near the float limit, and the forward pass then overflows. That is refused (the
    // outputs are checked), and only then: weights within kSaneWeight must predict.
    if (largest_weight(*ck->model) > kSaneWeight && is_overflow_refusal(m.status().message()))
      return;
    violated("a loaded checkpoint cannot predict: " + m.status().message());
  }
  if (p.n_rows != kPredictRows) violated("a loaded checkpoint predicts another number of rows");
}

namespace {

// Writes the input as the base directory's train_state.json (bindings rewritten as harness.h
// says) and loads it into `optimizer`, a fresh one.
Result<TrainState> load_train_state_input(const uint8_t* data, size_t size,
                                          std::unique_ptr<Optimizer>* optimizer) {
  const TrainStateBase& base = train_state_base();
  std::string text(reinterpret_cast<const char*>(data), size);
  const Result<nlohmann::json> parsed = parse_json(text, "fuzz train_state.json");
  if (parsed.is_ok() && parsed->is_object()) {
    nlohmann::json j = parsed.value();
    if (j.contains("model_weights_fnv1a64")) j["model_weights_fnv1a64"] = base.weights_fnv1a64;
    if (j.contains("tensors") && j["tensors"].is_object()) {
      j["tensors"]["bytes"] = base.tensors.size();
      j["tensors"]["fnv1a64"] = fnv1a64_hex(base.tensors.data(), base.tensors.size());
    }
    text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  write_bytes(base.dir + "/" + kTrainStateJsonFile, reinterpret_cast<const uint8_t*>(text.data()),
              text.size());
  *optimizer = make_optimizer(base.model->params(), OptimizerConfig{});
  return load_train_state(base.dir, *base.model, base.weights_fnv1a64, **optimizer,
                          base.config.training);
}

}  // namespace

std::string train_state_rejection(const uint8_t* data, size_t size) {
  std::unique_ptr<Optimizer> optimizer;
  const Result<TrainState> state = load_train_state_input(data, size, &optimizer);
  return state.is_ok() ? std::string() : state.status().message();
}

void train_state_one(const uint8_t* data, size_t size) {
  const TrainStateBase& base = train_state_base();
  std::unique_ptr<Optimizer> optimizer;
  Result<TrainState> state = load_train_state_input(data, size, &optimizer);
  if (!state) {
    if (state.status().message().empty()) violated("a rejection without a message");
    return;
  }
  const TrainState& s = *state;
  if (s.batches_done >= s.batches_per_epoch ||
      s.step != s.epochs_done * s.batches_per_epoch + s.batches_done)
    violated("an accepted state's position is inconsistent");
  if (s.schedule_total_steps != base.config.training.epochs * s.batches_per_epoch)
    violated("an accepted state's schedule horizon is not the config's");
  if (s.best_epoch > s.epochs_done || s.since_best > s.epochs_done - s.best_epoch)
    violated("an accepted state's best epoch or early-stopping counter is impossible");
  if (optimizer->step_count() != s.step) violated("the optimizer's step is not the state's");
  for (const NamedTensor& t : optimizer->state())
    if (t.name == "adam.v")
      for (int64_t i = 0; i < t.tensor.numel(); ++i)
        if (!(t.tensor.f32()[i] >= 0.0f)) violated("an accepted second moment is negative");

  // Saved again (in a directory of its own, beside the same model), it loads back the same.
  const std::string again = scratch_dir() + "/train_state_again";
  std::filesystem::create_directories(again);
  const Status saved = save_checkpoint(again, *base.model, base.config, base.schema);
  if (!saved) violated("cannot save the base checkpoint again: " + saved.message());
  Result<Checkpoint> ck = load_checkpoint(again);
  if (!ck) violated("the base checkpoint does not load again: " + ck.status().message());
  const Status st = save_train_state(again, s, *base.model, *optimizer);
  if (!st) violated("an accepted state cannot be saved: " + st.message());
  std::unique_ptr<Optimizer> back_optimizer =
      make_optimizer(base.model->params(), OptimizerConfig{});
  Result<TrainState> back = load_train_state(again, *base.model, ck->weights_fnv1a64,
                                             *back_optimizer, base.config.training);
  if (!back) violated("an accepted state, saved, is rejected: " + back.status().message());
  if (back->step != s.step || back->epochs_done != s.epochs_done ||
      back->since_best != s.since_best || back->best_epoch != s.best_epoch ||
      back->epoch_sums != s.epoch_sums || back->best_values != s.best_values)
    violated("an accepted state does not load back the same");
}

}  // namespace moe::fuzz
