// Model checkpoints: model.safetensors + model.json in a directory, written atomically and
// validated fully on load. See include/moe/train/checkpoint.h and docs/formats.md.
//
// Dims: E experts (a gate's bias has E values).
#include "moe/train/checkpoint.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "checkpoint_internal.h"
#include "core/json_fields.h"
#include "core/json_read.h"
#include "moe/core/file_io.h"
#include "moe/io/safetensors.h"
#include "moe/kernels/bf16.h"
#include "moe/kernels/quantize.h"
#include "moe/train/config_budget.h"

namespace moe {

namespace {

using json = nlohmann::json;
using namespace checkpoint_detail;

constexpr const char* kFormatName = "moe-checkpoint";
constexpr uint64_t kMaxJsonBytes = uint64_t{1} << 30;  // a vocabulary can be large
constexpr uint64_t kMaxWeightsBytes = uint64_t{1} << 40;
constexpr uint64_t kMaxTokenizerBytes = uint64_t{1} << 30;

// A matrix parameter (rank 2 or more) is what bf16 and int8 store in fewer bits.
bool stored_reduced(const Tensor& t, WeightFormat format) {
  return format != WeightFormat::kF32 && t.rank() >= 2;
}

// The entry `name` of `file`, which must be `dtype` and `shape`.
Result<const SafetensorsEntry*> find_entry(const SafetensorsFile& file, const std::string& name,
                                           DType dtype, const Shape& shape, const char* what) {
  const SafetensorsEntry* e = file.find(name);
  if (e == nullptr) return Status::error("{}: missing tensor {}", file.source(), name);
  if (e->dtype != dtype)
    return Status::error("{}: tensor {} is {}, expected {}", file.source(), name,
                         dtype_name(e->dtype), dtype_name(dtype));
  if (e->shape != shape)
    return Status::error("{}: tensor {} has shape {}, {} {}", file.source(), name, e->shape.str(),
                         what, shape.str());
  return e;
}

Status check_finite(const Tensor& t, const std::string& source, const std::string& name) {
  const float* v = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(v[i]))
      return Status::error("{}: tensor {} element {} is {}", source, name, i,
                           std::isnan(v[i]) ? "NaN" : "infinite");
  return Status::ok();
}

// A BF16 matrix into the fp32 parameter dst.
Status read_bf16(const SafetensorsFile& file, const std::string& name, Tensor dst) {
  MOE_TRY(find_entry(file, name, DType::kBF16, dst.shape(), "the config gives").status());
  MOE_ASSIGN_OR_RETURN(TensorBuffer b, file.load(name));
  const auto* h = Tensor(b).data<bf16>();
  float* v = dst.f32();
  for (int64_t i = 0; i < dst.numel(); ++i) v[i] = bf16_to_f32(h[i]);
  return check_finite(dst, file.source(), name);
}

// An I8 matrix and its scales into the fp32 parameter dst. The scales must be finite and not
// negative, and so must every decoded value: anything else is a damaged file, not a weight.
Status read_int8(const SafetensorsFile& file, const std::string& name, Tensor dst) {
  MOE_TRY(find_entry(file, name, DType::kI8, dst.shape(), "the config gives").status());
  const std::string scales_name = name + kQ8ScalesSuffix;
  const int64_t cols = dst.cols(), rows = dst.numel() / cols;
  MOE_TRY(find_entry(file, scales_name, DType::kF32, Shape{rows, q8_blocks(cols)},
                     "its I8 matrix needs")
              .status());
  MOE_ASSIGN_OR_RETURN(TensorBuffer q, file.load(name));
  MOE_ASSIGN_OR_RETURN(TensorBuffer scales, file.load(scales_name));
  const Tensor s = scales;
  const float* sv = s.f32();
  for (int64_t i = 0; i < s.numel(); ++i)
    if (!std::isfinite(sv[i]) || sv[i] < 0.0f)
      return Status::error("{}: tensor {} element {} is {}, not a scale (finite, at least 0)",
                           file.source(), scales_name, i, sv[i]);
  dequantize_q8(Tensor(q).data<int8_t>(), sv, rows, cols, dst.f32());
  return check_finite(dst, file.source(), name);  // a huge scale times 127 overflows
}

// Loads every parameter the model declares from the weights file, exactly: present, in the
// dtype `format` gives it, the shape the config gives, finite; and no tensor the model does not
// have.
Status load_weights(const SafetensorsFile& file, Model& model, WeightFormat format) {
  const ParamStore& store = model.params();
  std::set<std::string> expected;
  for (ParamId id = 0; id < store.size(); ++id) {
    const ParamInfo& info = store.info(id);
    const Tensor dst = store.value(id);
    expected.insert(info.name);
    if (!stored_reduced(dst, format)) {
      MOE_TRY(read_tensor_strict(file, info.name, dst, "the config gives"));
    } else if (format == WeightFormat::kBF16) {
      MOE_TRY(read_bf16(file, info.name, dst));
    } else {
      expected.insert(info.name + kQ8ScalesSuffix);
      MOE_TRY(read_int8(file, info.name, dst));
    }
  }
  for (const SafetensorsEntry& e : file.entries())
    if (expected.count(e.name) == 0)
      return Status::error("{}: unexpected tensor {} (the config has no such parameter)",
                           file.source(), e.name);
  return Status::ok();
}

// model.safetensors' bytes: the model's parameters stored as `format` says.
std::vector<uint8_t> encode_weights(const Model& model, WeightFormat format) {
  const std::map<std::string, std::string> metadata = {
      {"format", kFormatName},
      {"format_version", std::to_string(kCheckpointFormatVersion)},
      {"weights_format", enum_name(kWeightFormatNames, format)}};
  std::vector<NamedTensor> named = model.named_parameters();
  if (format == WeightFormat::kF32) return encode_safetensors(named, metadata);
  std::vector<TensorBuffer> owned;  // the reduced copies the list points into
  owned.reserve(2 * named.size());
  std::vector<NamedTensor> out;
  for (NamedTensor& t : named) {
    if (!stored_reduced(t.tensor, format)) {
      out.push_back(t);
      continue;
    }
    const int64_t n = t.tensor.numel(), cols = t.tensor.cols(), rows = n / cols;
    if (format == WeightFormat::kBF16) {
      owned.emplace_back(t.tensor.shape(), DType::kBF16);
      convert_to_bf16(n, t.tensor.f32(), Tensor(owned.back()).data<bf16>());
      out.push_back({t.name, owned.back()});
      continue;
    }
    owned.emplace_back(t.tensor.shape(), DType::kI8);
    const Tensor q = owned.back();
    owned.emplace_back(Shape{rows, q8_blocks(cols)}, DType::kF32);
    const Tensor scales = owned.back();
    quantize_q8(t.tensor.f32(), rows, cols, q.data<int8_t>(), scales.f32());
    MOE_CHECK(model.params().find(t.name + kQ8ScalesSuffix) < 0,
              "parameter {} and the scales of {} share a name", t.name + kQ8ScalesSuffix, t.name);
    out.push_back({t.name, q});
    out.push_back({t.name + kQ8ScalesSuffix, scales});
  }
  return encode_safetensors(out, metadata);
}

}  // namespace

namespace checkpoint_detail {

Result<json> parse_json_object(const std::vector<uint8_t>& bytes, const std::string& where,
                               const std::vector<std::string>& known) {
  MOE_ASSIGN_OR_RETURN(
      json j,
      parse_json(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                 where));
  if (!j.is_object()) return Status::error("{}: expected a JSON object", where);
  for (const auto& [k, v] : j.items()) {
    bool is_known = false;
    for (const std::string& name : known) is_known = is_known || k == name;
    if (!is_known) return Status::error("{}: unexpected field '{}'", where, k);
  }
  return j;
}

Status check_format(const json& format, const json& format_version, const std::string& where,
                    const char* name, int64_t version) {
  if (!format.is_string() || format.get<std::string>() != name)
    return Status::error("{}: field 'format' must be \"{}\"", where, name);
  MOE_TRY(json_expect(format_version.is_number_integer(), where, "format_version", "an integer"));
  if (format_version.get<int64_t>() != version)
    return Status::error("{}: format_version {} is not supported (this moe reads version {})",
                         where, format_version.get<int64_t>(), version);
  return Status::ok();
}

Result<std::vector<uint8_t>> read_bound_file(const json& binding, const std::string& json_path,
                                             const std::string& dir, const char* file_name,
                                             const char* key, uint64_t max_bytes) {
  const std::string where = fmt::format("{}: {}", json_path, key);
  const std::string path = dir + "/" + file_name;
  MOE_TRY(json_expect(binding.is_object(), json_path, key, "an object"));
  Status st;
  const json* file = json_require(binding, "file", where, &st);
  const json* bytes = json_require(binding, "bytes", where, &st);
  const json* hash = json_require(binding, "fnv1a64", where, &st);
  MOE_TRY(st);
  if (!file->is_string() || file->get<std::string>() != file_name)
    return Status::error("{}: field 'file' must be \"{}\"", where, file_name);
  MOE_TRY(json_expect(bytes->is_number_unsigned(), where, "bytes", "an integer ≥ 0"));
  MOE_TRY(json_expect(hash->is_string(), where, "fnv1a64", "a string of 16 hex digits"));
  // The size first, from the directory entry: a file of the wrong size is refused before it is
  // read (a multi-gigabyte one would otherwise be read whole just to be found wrong).
  std::error_code ec;
  const uintmax_t on_disk = std::filesystem::file_size(path, ec);
  if (!ec && on_disk != bytes->get<uint64_t>())
    return Status::error("{}: {} bytes, but {} says {} (the two files are from different saves)",
                         path, on_disk, json_path, bytes->get<uint64_t>());
  MOE_ASSIGN_OR_RETURN(std::vector<uint8_t> data,
                       read_file_bytes<std::vector<uint8_t>>(path, max_bytes, FileSource::kSaved));
  if (data.size() != bytes->get<uint64_t>())
    return Status::error("{}: {} bytes, but {} says {} (the two files are from different saves)",
                         path, data.size(), json_path, bytes->get<uint64_t>());
  if (fnv1a64_hex(data.data(), data.size()) != hash->get<std::string>())
    return Status::error(
        "{}: content hash differs from the one {} records (the file is damaged "
        "or from a different save)",
        path, json_path);
  return data;
}

json bind_file(const char* file_name, const std::vector<uint8_t>& bytes) {
  return {{"file", file_name},
          {"bytes", bytes.size()},
          {"fnv1a64", fnv1a64_hex(bytes.data(), bytes.size())}};
}

Result<std::vector<GateState>> parse_gates(const json& j, const std::string& where,
                                           const char* key) {
  if (!j.is_array()) return Status::error("{}: field '{}' must be an array", where, key);
  std::vector<GateState> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const json& g = j[i];
    const std::string at = fmt::format("{}: {}.{}", where, key, i);
    if (!g.is_object()) return Status::error("{}: must be an object", at);
    for (const auto& [k, v] : g.items())
      if (k != "name" && k != "step" && k != "bias")
        return Status::error("{}: unexpected field '{}'", at, k);
    Status st;
    const json* name = json_require(g, "name", at, &st);
    const json* step = json_require(g, "step", at, &st);
    const json* bias = json_require(g, "bias", at, &st);
    MOE_TRY(st);
    MOE_TRY(json_expect(name->is_string(), at, "name", "a string"));
    MOE_TRY(json_expect(step->is_number_integer() && step->get<int64_t>() >= 0, at, "step",
                        "an integer ≥ 0"));
    MOE_TRY(json_expect(bias->is_array(), at, "bias", "an array of finite numbers"));
    GateState s;
    s.name = name->get<std::string>();
    s.step = step->get<int64_t>();
    for (const json& v : *bias) {
      const bool finite =
          v.is_number() && std::isfinite(v.get<double>()) && std::fabs(v.get<double>()) <= 3.4e38;
      MOE_TRY(json_expect(finite, at, "bias", "an array of finite numbers"));
      s.bias.push_back(static_cast<float>(v.get<double>()));
    }
    out.push_back(std::move(s));
  }
  return out;
}

json gates_to_json(const std::vector<GateState>& gates) {
  json out = json::array();
  for (const GateState& g : gates)
    out.push_back({{"name", g.name}, {"step", g.step}, {"bias", g.bias}});
  return out;
}

Status read_tensor_strict(const SafetensorsFile& file, const std::string& name, Tensor dst,
                          const char* what) {
  MOE_TRY(find_entry(file, name, DType::kF32, dst.shape(), what).status());
  MOE_TRY(file.read_into(name, dst));
  return check_finite(dst, file.source(), name);
}

}  // namespace checkpoint_detail

std::string fnv1a64_hex(const void* data, size_t size) {
  uint64_t h = 14695981039346656037ull;
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

Status save_checkpoint(const std::string& dir, const Model& model, const Config& config,
                       const DataSchema& schema, const json& info, WeightFormat format) {
  if (!info.is_null() && !info.is_object())
    return Status::error("save_checkpoint: info must be a JSON object");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::error("{}: cannot create the directory: {}", dir, ec.message());

  const std::string weights_path = dir + "/" + kCheckpointWeightsFile;
  const std::string json_path = dir + "/" + kCheckpointJsonFile;
  const std::vector<uint8_t> weights = encode_weights(model, format);
  MOE_TRY(write_file_atomic(weights_path, weights.data(), weights.size()));
  if (schema.tokenizer) {
    const std::string& model_bytes = schema.tokenizer->to_bytes();
    MOE_TRY(write_file_atomic(dir + "/" + kTokenizerFile, model_bytes.data(), model_bytes.size()));
  }

  json j;
  j["format"] = kFormatName;
  j["format_version"] = kCheckpointFormatVersion;
  j["moe_version"] = MOE_VERSION;
  j["weights"] = bind_file(kCheckpointWeightsFile, weights);
  j["weights_format"] = enum_name(kWeightFormatNames, format);
  j["config"] = config_to_json(config);
  j["data"] = schema.to_json();
  j["params"] = {{"total", model.n_params()}, {"active_per_row", model.n_active_params()}};
  j["gates"] = gates_to_json(model.gate_states());
  j["info"] = info.is_null() ? json::object() : info;
  // Strings that are not UTF-8 are written as U+FFFD rather than thrown out of the dump (the
  // data readers refuse them, so none should reach here): a save never fails half done.
  const std::string text = j.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
  return write_file_atomic(json_path, text.data(), text.size());
}

namespace {

// What identifies the directory a name points to, and whether its entries changed: a writer
// that swaps a new checkpoint in (commit_directory) changes the inode the name refers to, one
// that replaces files inside it changes its mtime.
struct DirIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  timespec mtime{};
  bool operator==(const DirIdentity& o) const {
    return dev == o.dev && ino == o.ino && mtime.tv_sec == o.mtime.tv_sec &&
           mtime.tv_nsec == o.mtime.tv_nsec;
  }
};

// The directory's identity, or a message saying why `dir` is not a directory one can read.
Result<DirIdentity> checkpoint_dir_identity(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return Status::error("{}: no such checkpoint directory", dir);
    return Status::error("{}: cannot read the checkpoint directory: {}", dir, std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode))
    return Status::error(
        "{}: not a checkpoint directory (it is a file; a checkpoint is a "
        "directory holding {} and {})",
        dir, kCheckpointJsonFile, kCheckpointWeightsFile);
  if (::access(dir.c_str(), R_OK | X_OK) != 0)
    return Status::error("{}: cannot read the checkpoint directory: {}", dir, std::strerror(errno));
  return DirIdentity{st.st_dev, st.st_ino, st.st_mtim};
}

// The tokenizer file of a corpus schema: the one model.json names (size and hash), a model
// SentencePiece loads, of the vocabulary size the schema records.
Status load_tokenizer(const json& data_j, const std::string& json_path, const std::string& dir,
                      DataSchema* schema) {
  const json& binding = data_j["tokenizer"];
  const json copy = {
      {"file", binding["file"]}, {"bytes", binding["bytes"]}, {"fnv1a64", binding["fnv1a64"]}};
  MOE_ASSIGN_OR_RETURN(
      std::vector<uint8_t> bytes,
      read_bound_file(copy, json_path, dir, kTokenizerFile, "data.tokenizer", kMaxTokenizerBytes));
  const std::string path = dir + "/" + kTokenizerFile;
  MOE_ASSIGN_OR_RETURN(
      Tokenizer t,
      Tokenizer::from_bytes(
          std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path));
  const auto v = binding.find("vocab_size");
  if (v == binding.end() || !v->is_number_integer() || v->get<int64_t>() != t.vocab_size())
    return Status::error("{}: data.tokenizer.vocab_size must be {}, the pieces {} holds", json_path,
                         t.vocab_size(), path);
  schema->tokenizer = std::make_shared<const Tokenizer>(std::move(t));
  return Status::ok();
}

Result<Checkpoint> load_checkpoint_once(const std::string& dir) {
  const std::string json_path = dir + "/" + kCheckpointJsonFile;

  MOE_ASSIGN_OR_RETURN(
      std::vector<uint8_t> json_bytes,
      read_file_bytes<std::vector<uint8_t>>(json_path, kMaxJsonBytes, FileSource::kSaved));
  MOE_ASSIGN_OR_RETURN(
      json j, parse_json_object(json_bytes, json_path,
                                {"format", "format_version", "moe_version", "weights",
                                 "weights_format", "config", "data", "params", "gates", "info"}));
  Status st;
  const json* format = json_require(j, "format", json_path, &st);
  const json* version = json_require(j, "format_version", json_path, &st);
  const json* weights = json_require(j, "weights", json_path, &st);
  const json* config_j = json_require(j, "config", json_path, &st);
  const json* data_j = json_require(j, "data", json_path, &st);
  const json* gates_j = json_require(j, "gates", json_path, &st);
  MOE_TRY(st);
  MOE_TRY(check_format(*format, *version, json_path, kFormatName, kCheckpointFormatVersion));
  if (j.contains("info") && !j["info"].is_object())
    return Status::error("{}: field 'info' must be an object", json_path);
  // Absent in the checkpoints written before weights could be stored in fewer bits: f32.
  WeightFormat weights_format = WeightFormat::kF32;
  if (j.contains("weights_format") &&
      (!j["weights_format"].is_string() ||
       !parse_enum_name(kWeightFormatNames, j["weights_format"].get<std::string>(),
                        &weights_format)))
    return Status::error("{}: field 'weights_format' must be \"f32\", \"bf16\" or \"int8\"",
                         json_path);

  // The weights file must be the one this model.json was written with.
  MOE_ASSIGN_OR_RETURN(std::vector<uint8_t> wdata,
                       read_bound_file(*weights, json_path, dir, kCheckpointWeightsFile, "weights",
                                       kMaxWeightsBytes));

  Checkpoint out;
  MOE_ASSIGN_OR_RETURN(out.config, parse_config(*config_j, json_path + ": config"));
  MOE_ASSIGN_OR_RETURN(out.schema, DataSchema::from_json(*data_j, json_path + ": data"));
  if (out.schema.format == DataFormat::kCorpus || out.schema.format == DataFormat::kPairs)
    MOE_TRY(load_tokenizer(*data_j, json_path, dir, &out.schema));
  MOE_ASSIGN_OR_RETURN(std::vector<GateState> gates, parse_gates(*gates_j, json_path, "gates"));
  if (out.config.data.format != out.schema.format)
    return Status::error("{}: the config's data.format \"{}\" and the data schema's \"{}\" differ",
                         json_path, data_format_name(out.config.data.format),
                         data_format_name(out.schema.format));
  // A language model reads windows of the schema's context: it must be the model's.
  if (out.schema.format == DataFormat::kCorpus && out.schema.context != out.config.model.lm.context)
    return Status::error("{}: data.context {} and the config's model.lm.context {} differ",
                         json_path, out.schema.context, out.config.model.lm.context);
  if (out.schema.format == DataFormat::kPairs &&
      out.schema.context != out.config.model.translation.max_tokens)
    return Status::error(
        "{}: data.max_tokens {} and the config's model.translation.max_tokens {} "
        "differ",
        json_path, out.schema.context, out.config.model.translation.max_tokens);
  // The weights file's own structure is checked first (its sizes are bounded by the file), so
  // a damaged file is reported as such rather than as a config that does not fit it.
  const size_t weights_bytes = wdata.size();
  const std::string weights_path = dir + "/" + kCheckpointWeightsFile;
  MOE_ASSIGN_OR_RETURN(SafetensorsFile file,
                       SafetensorsFile::parse(std::move(wdata), weights_path));
  // model.json is user input: a config that asks for more weights than the weights file holds
  // is refused before the model is allocated (moe/train/config_budget.h).
  const DataShape shape = out.schema.shape();
  const int64_t n_matrix =
      model_matrix_elements(out.config.model, shape.n_features, shape.n_outputs);
  const size_t matrix_bytes = weights_format == WeightFormat::kF32    ? sizeof(float)
                              : weights_format == WeightFormat::kBF16 ? sizeof(bf16)
                                                                      : sizeof(int8_t);
  if (n_matrix > static_cast<int64_t>(weights_bytes / matrix_bytes))
    return Status::error(
        "{}: the config describes at least {} weights, more than {} ({} bytes) holds", json_path,
        n_matrix, kCheckpointWeightsFile, weights_bytes);
  Result<std::unique_ptr<Model>> model = Model::create(out.config.model, shape);
  if (!model.is_ok()) return model.status().with_context(json_path);
  out.model = std::move(model.value());

  out.weights_fnv1a64 = (*weights)["fnv1a64"].get<std::string>();
  out.weights_format = weights_format;
  MOE_TRY(load_weights(file, *out.model, weights_format));
  MOE_TRY(out.model->set_gate_states(gates).with_context(json_path));
  out.info = j.contains("info") ? j["info"] : json::object();
  return out;
}

}  // namespace

Result<Checkpoint> load_checkpoint(const std::string& dir) {
  // A training run swaps a new checkpoint in while a reader may be between model.json and the
  // weights: the reader then sees one file of each save ("content hash differs") or a file
  // removed under it, though nothing is damaged. When the directory changed during a failed
  // read, the read is retried (a run checkpointing every step may swap twice in one read).
  constexpr int kAttempts = 3;
  for (int attempt = 1;; ++attempt) {
    MOE_ASSIGN_OR_RETURN(const DirIdentity before, checkpoint_dir_identity(dir));
    Result<Checkpoint> loaded = load_checkpoint_once(dir);
    if (loaded.is_ok() || attempt == kAttempts) return loaded;
    const Result<DirIdentity> after = checkpoint_dir_identity(dir);
    if (after.is_ok() && after.value() == before) return loaded;  // damaged, not swapped
  }
}

Status remove_directory(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) return Status::ok();
  // First out of sight under a name no loader reads, in one rename; only then deleted file by
  // file. A kill during the deletion leaves a partial directory under that name alone.
  static std::atomic<uint64_t> counter{0};
  const fs::path path(dir);
  const fs::path parent = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  const fs::path trash =
      parent / fmt::format("{}{}.{}.{}", kTrashPrefix, path.filename().string(), ::getpid(),
                           counter.fetch_add(1, std::memory_order_relaxed));
  if (::rename(dir.c_str(), trash.c_str()) != 0)
    return Status::error("{}: cannot remove the directory: {}", dir, std::strerror(errno));
  fsync_directory(parent.string());
  fs::remove_all(trash, ec);
  return Status::ok();
}

Status rotate_directories(const std::string& parent, const std::string& name, int64_t keep) {
  namespace fs = std::filesystem;
  if (keep <= 1) return Status::ok();
  const auto numbered = [&](int64_t i) {
    return (fs::path(parent) / fmt::format("{}.{}", name, i)).string();
  };
  MOE_TRY(remove_directory(numbered(keep - 1)));
  std::error_code ec;
  for (int64_t i = keep - 2; i >= 1; --i) {
    if (!fs::exists(numbered(i), ec)) continue;
    if (::rename(numbered(i).c_str(), numbered(i + 1).c_str()) != 0)
      return Status::error("{}: cannot rename to {}: {}", numbered(i), numbered(i + 1),
                           std::strerror(errno));
  }
  fsync_directory(parent);
  return Status::ok();
}

Status repair_run_directory(const std::string& run_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> leftovers;
  for (const fs::directory_entry& e : fs::directory_iterator(run_dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(kTrashPrefix, 0) == 0 ||
        (n.size() > 8 && n.compare(n.size() - 8, 8, ".staging") == 0))
      leftovers.push_back(e.path());
  }
  if (ec) return Status::error("{}: cannot list the directory: {}", run_dir, ec.message());
  for (const fs::path& p : leftovers) {
    fs::remove_all(p, ec);
    if (ec) return Status::error("{}: cannot remove: {}", p.string(), ec.message());
  }
  // A file system without RENAME_EXCHANGE has an instant with last/ renamed away and the new one
  // not yet in place (commit_directory): the complete previous checkpoint is put back.
  const fs::path last = fs::path(run_dir) / "last";
  if (!fs::exists(last, ec)) {
    for (const char* older : {"last.old", "last.1"}) {
      const fs::path p = fs::path(run_dir) / older;
      if (fs::exists(p / kCheckpointJsonFile, ec)) {
        if (::rename(p.c_str(), last.c_str()) != 0)
          return Status::error("{}: cannot rename to {}: {}", p.string(), last.string(),
                               std::strerror(errno));
        break;
      }
    }
  }
  fsync_directory(run_dir);
  return Status::ok();
}

Status write_new_directory(const std::string& out,
                           const std::function<Status(const std::string& staging)>& write) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(out, ec)) return Status::error("{}: already exists; choose a new --out", out);
  const std::string staging = out + ".staging";
  fs::remove_all(staging, ec);
  if (ec) return Status::error("{}: cannot clear it: {}", staging, ec.message());
  if (Status st = write(staging); !st.is_ok()) {
    fs::remove_all(staging, ec);
    return st;
  }
  fs::rename(staging, out, ec);
  if (ec) return Status::error("{}: cannot rename it to {}: {}", staging, out, ec.message());
  return Status::ok();
}

Status commit_directory(const std::string& staged, const std::string& dir,
                        const std::string& previous) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string parent = fs::path(dir).parent_path().string();
  if (!fs::exists(dir, ec)) {
    if (::rename(staged.c_str(), dir.c_str()) != 0)
      return Status::error("{}: cannot rename into place: {}", dir, std::strerror(errno));
  } else {
    // One atomic step swaps the two names: `dir` is the old directory before it and the new one
    // after it, never missing (renameat2(2), Linux 3.15; ext4, xfs, btrfs and tmpfs have it).
    if (::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
      // `staged` now names the old checkpoint.
      if (previous.empty()) {
        MOE_TRY(remove_directory(staged));
      } else {
        MOE_TRY(remove_directory(previous));
        if (::rename(staged.c_str(), previous.c_str()) != 0)
          return Status::error("{}: cannot rename to {}: {}", staged, previous,
                               std::strerror(errno));
      }
    } else if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) {
      // A file system without the exchange (some network and overlay ones): two renames, with
      // an instant in which `dir` is missing but the old checkpoint complete under `old`
      // (repair_run_directory puts it back after a kill in that instant).
      const std::string old = previous.empty() ? dir + ".old" : previous;
      MOE_TRY(remove_directory(old));
      if (::rename(dir.c_str(), old.c_str()) != 0 || ::rename(staged.c_str(), dir.c_str()) != 0)
        return Status::error("{}: cannot put the new checkpoint in place: {}", dir,
                             std::strerror(errno));
      if (previous.empty()) MOE_TRY(remove_directory(old));
    } else {
      return Status::error("{}: cannot swap in the new checkpoint: {}", dir, std::strerror(errno));
    }
  }
  fsync_directory(parent.empty() ? "." : parent);
  return Status::ok();
}

}  // namespace moe
