// Fuzz harnesses for the safetensors reader, the config reader and the checkpoint loader; the
// contract and the invariants each checks are in harness.h.
//
// Dims: T rows predicted by an accepted checkpoint (3) · C outputs.
#include "harness.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/json_read.h"
#include "moe/io/checkpoint.h"
#include "moe/io/safetensors.h"
#include "moe/train/config.h"
#include "moe/train/evaluate.h"

namespace moe::fuzz {

namespace {

constexpr size_t kMaxOverrides = 4;
constexpr int64_t kPredictRows = 3;

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
std::vector<std::string> split_nul(const uint8_t* data, size_t size, size_t max_rest) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0 && parts.size() <= max_rest) {
      parts.emplace_back();
    } else {
      parts.back().push_back(static_cast<char>(data[i]));
    }
  }
  return parts;
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
  const std::string weights = parts.size() > 1 ? parts[1] : std::string();
  write_bytes(dir + "/" + kCheckpointWeightsFile, reinterpret_cast<const uint8_t*>(weights.data()),
              weights.size());
  std::string json_text = parts[0];
  // The reader's own parser (depth limit, duplicate keys): what it refuses is written unchanged,
  // and a value nested too deep is never dumped here (that recursion would overflow the stack).
  const Result<nlohmann::json> parsed = parse_json(json_text, "fuzz model.json");
  nlohmann::json j = parsed.is_ok() ? parsed.value() : nlohmann::json();
  if (j.is_object() && j.contains("weights") && j["weights"].is_object()) {
    j["weights"]["bytes"] = weights.size();
    j["weights"]["fnv1a64"] = fnv1a64_hex(weights.data(), weights.size());
    json_text = j.dump();
  }
  write_bytes(dir + "/" + kCheckpointJsonFile, reinterpret_cast<const uint8_t*>(json_text.data()),
              json_text.size());
}

void checkpoint_one(const uint8_t* data, size_t size) {
  const std::string dir = scratch_dir() + "/checkpoint";
  std::filesystem::create_directories(dir);
  write_checkpoint_dir(data, size, dir);
  Result<Checkpoint> ck = load_checkpoint(dir);
  if (!ck) {
    if (ck.status().message().empty()) violated("a rejection without a message");
    return;
  }
  // A loaded model runs: three rows of zero features, or three short documents.
  const DataShape shape = ck->schema.shape();
  Dataset rows;
  rows.kind = shape.input;
  rows.task = shape.task;
  rows.n_rows = kPredictRows;
  rows.n_features = shape.n_features;
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
  if (!m) violated("a loaded checkpoint cannot predict: " + m.status().message());
  if (p.n_rows != kPredictRows) violated("a loaded checkpoint predicts another number of rows");
}

}  // namespace moe::fuzz
