// The safetensors reader and writer (format and guarantees in safetensors.h).
#include "moe/io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <new>
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/json_read.h"

namespace moe {

namespace {

// ordered_json keeps the keys in file order, so entries() lists the tensors as they were written.
using json = nlohmann::ordered_json;

constexpr const char* kMetadataKey = "__metadata__";

bool parse_dtype(const std::string& s, DType* out) {
  for (DType t :
       {DType::kF32, DType::kBF16, DType::kF64, DType::kI64, DType::kI32, DType::kI8, DType::kU8}) {
    if (s == dtype_name(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

// a · b, false on uint64 overflow
bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

Status parse_entry(const std::string& source, const std::string& name, const json& v,
                   SafetensorsEntry* e) {
  auto err = [&](const std::string& what) {
    return Status::error("{}: tensor '{}': {}", source, name, what);
  };
  if (!v.is_object()) return err("entry is not a JSON object");
  for (const auto& [key, _] : v.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      return err("unexpected field '" + key + "'");
  if (!v.contains("dtype") || !v["dtype"].is_string()) return err("missing string field 'dtype'");
  const std::string dt = v["dtype"].get<std::string>();
  if (!parse_dtype(dt, &e->dtype)) return err("unknown dtype '" + dt + "'");
  if (!v.contains("shape") || !v["shape"].is_array()) return err("missing array field 'shape'");
  const json& shape = v["shape"];
  if (shape.size() > static_cast<size_t>(kMaxRank))
    return err(fmt::format("rank {} exceeds the supported maximum {}", shape.size(), kMaxRank));
  e->shape = Shape();
  // The product of the dimensions must fit in int64 even when one of them is zero: code that
  // multiplies a subset of the dimensions (rows(), strides) must not overflow either.
  uint64_t n = 1, n_nonzero = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const json& d = shape[i];
    if (d.is_number_integer() && !d.is_number_unsigned())
      return err(fmt::format("shape[{}] = {} is negative", i, json_excerpt(d)));
    if (!d.is_number_unsigned())
      return err(fmt::format("shape[{}] = {} is not an integer", i, json_excerpt(d)));
    const uint64_t dim = d.get<uint64_t>();
    if (mul_overflows(n_nonzero, std::max<uint64_t>(dim, 1), &n_nonzero) ||
        n_nonzero > static_cast<uint64_t>(INT64_MAX))
      return err("the product of shape " + json_excerpt(shape) + " overflows 64 bits");
    n *= dim;
    e->shape.dims[static_cast<size_t>(e->shape.rank++)] = static_cast<int64_t>(dim);
  }
  uint64_t bytes = 0;
  if (mul_overflows(n, dtype_size(e->dtype), &bytes) || bytes > static_cast<uint64_t>(INT64_MAX))
    return err("shape " + json_excerpt(shape) + " overflows 64 bits in bytes");
  if (!v.contains("data_offsets")) return err("missing field 'data_offsets'");
  const json& offsets = v["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    return err("'data_offsets' " + json_excerpt(offsets) + " is not two non-negative integers");
  e->begin = offsets[0].get<uint64_t>();
  e->end = offsets[1].get<uint64_t>();
  if (e->end < e->begin)
    return err(fmt::format("data_offsets [{}, {}] end before they begin", e->begin, e->end));
  if (e->end - e->begin != bytes)
    return err(fmt::format("data_offsets [{}, {}] hold {} bytes, but {} {} needs {}", e->begin,
                           e->end, e->end - e->begin, dt, e->shape.str(), bytes));
  e->name = name;
  return Status::ok();
}

// Checks what encode/write need of the names: unique, and not the metadata key.
Status check_names(const std::vector<NamedTensor>& tensors) {
  std::set<std::string> seen;
  for (const auto& t : tensors) {
    if (t.name == kMetadataKey)
      return Status::error("tensor name '{}' is reserved for the metadata", t.name);
    if (!seen.insert(t.name).second) return Status::error("duplicate tensor name '{}'", t.name);
  }
  return Status::ok();
}

}  // namespace

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path, SafetensorsLimits limits) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return Status::error("{}: cannot open: {}", path, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return Status::error("{}: not a regular file", path);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > limits.max_file_bytes)
    return Status::error("{}: {} bytes exceeds the limit of {}", path, size, limits.max_file_bytes);
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error("{}: cannot open: {}", path, std::strerror(errno));
  const auto read_more = [&](std::vector<uint8_t>* bytes, uint64_t n) -> Status {
    const size_t have = bytes->size();
    try {
      bytes->resize(have + static_cast<size_t>(n));
    } catch (const std::bad_alloc&) {
      return Status::error("{}: cannot allocate {} bytes to read it", path, have + n);
    }
    if (n > 0 &&
        !in.read(reinterpret_cast<char*>(bytes->data() + have), static_cast<std::streamsize>(n)))
      return Status::error("{}: read failed after {} of {} bytes", path, have + in.gcount(), size);
    return Status::ok();
  };
  // The header first: a file whose size it does not account for is refused before the data is
  // read (a multi-gigabyte file of the wrong size costs nothing).
  std::vector<uint8_t> bytes;
  MOE_TRY(read_more(&bytes, std::min<uint64_t>(size, 8)));
  uint64_t header_len = 0;
  if (bytes.size() == 8) {
    for (int i = 7; i >= 0; --i) header_len = header_len << 8 | bytes[static_cast<size_t>(i)];
    if (header_len <= limits.max_header_bytes && header_len <= size - 8)
      MOE_TRY(read_more(&bytes, header_len));
  }
  MOE_ASSIGN_OR_RETURN(SafetensorsFile f, parse_layout(bytes, size, path, limits));
  MOE_TRY(read_more(&bytes, size - bytes.size()));
  f.bytes_ = std::move(bytes);
  return f;
}

Result<SafetensorsFile> SafetensorsFile::parse(std::vector<uint8_t> bytes,
                                               const std::string& source,
                                               SafetensorsLimits limits) {
  MOE_ASSIGN_OR_RETURN(SafetensorsFile f, parse_layout(bytes, bytes.size(), source, limits));
  f.bytes_ = std::move(bytes);
  return f;
}

Result<SafetensorsFile> SafetensorsFile::parse_layout(const std::vector<uint8_t>& bytes,
                                                      uint64_t file_size, const std::string& source,
                                                      SafetensorsLimits limits) {
  if (file_size < 8)
    return Status::error(
        "{}: {} bytes is too short for a safetensors file (need the 8-byte header "
        "length)",
        source, file_size);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | bytes[static_cast<size_t>(i)];
  if (header_len > limits.max_header_bytes)
    return Status::error("{}: header length {} exceeds the limit of {} bytes", source, header_len,
                         limits.max_header_bytes);
  if (header_len > file_size)
    return Status::error("{}: header length {} is larger than the whole file ({} bytes)", source,
                         header_len, file_size);
  if (header_len > file_size - 8)
    return Status::error("{}: the header is truncated: {} bytes declared, {} present", source,
                         header_len, file_size - 8);
  MOE_CHECK(bytes.size() >= 8 + header_len, "parse_layout: {} bytes read of an {}-byte header",
            bytes.size(), 8 + header_len);
  // parse_ordered_json (core/json_read.h) also refuses a repeated tensor name, which would
  // silently replace the first entry, and a NUL byte (the format pads with spaces only).
  const std::string_view header_text(reinterpret_cast<const char*>(bytes.data() + 8),
                                     static_cast<size_t>(header_len));
  MOE_ASSIGN_OR_RETURN(json header, parse_ordered_json(header_text, source + ": header"));
  if (!header.is_object()) return Status::error("{}: the header is not a JSON object", source);

  SafetensorsFile f;
  f.source_ = source;
  f.data_start_ = 8 + header_len;
  const uint64_t data_size = file_size - f.data_start_;
  for (const auto& [name, v] : header.items()) {
    if (name == kMetadataKey) {
      if (!v.is_object()) return Status::error("{}: __metadata__ is not an object", source);
      for (const auto& [k, mv] : v.items()) {
        if (!mv.is_string())
          return Status::error("{}: __metadata__ value of '{}' is not a string: {}", source, k,
                               json_excerpt(mv));
        f.metadata_[k] = mv.get<std::string>();
      }
      continue;
    }
    SafetensorsEntry e;
    MOE_TRY(parse_entry(source, name, v, &e));
    if (e.end > data_size)
      return Status::error(
          "{}: tensor '{}': data_offsets [{}, {}] run past the end of the data "
          "section ({} bytes): out of bounds or truncated",
          source, name, e.begin, e.end, data_size);
    f.entries_.push_back(std::move(e));
  }
  // The ranges must tile [0, data_size) exactly: sorted by begin, each starts where the last ended.
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : f.entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t pos = 0;
  const SafetensorsEntry* prev = nullptr;
  for (const auto* e : by_offset) {
    if (e->begin < pos)
      return Status::error("{}: tensor '{}' [{}, {}] overlaps tensor '{}' [{}, {}]", source,
                           e->name, e->begin, e->end, prev->name, prev->begin, prev->end);
    if (e->begin > pos)
      return Status::error("{}: {} unused bytes in the data section before tensor '{}' (at {})",
                           source, e->begin - pos, e->name, pos);
    pos = e->end;
    prev = e;
  }
  if (pos != data_size)
    return Status::error(
        "{}: {} trailing bytes after the last tensor are not described by the "
        "header",
        source, data_size - pos);
  return f;
}

bool SafetensorsFile::contains(const std::string& name) const {
  return find(name) != nullptr;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

Result<TensorBuffer> SafetensorsFile::load(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  if (e == nullptr) return Status::error("{}: no tensor named '{}'", source_, name);
  TensorBuffer buf(e->shape, e->dtype);
  MOE_TRY(read_into(name, buf.view()));
  return buf;
}

Status SafetensorsFile::read_into(const std::string& name, Tensor dst) const {
  const SafetensorsEntry* e = find(name);
  if (e == nullptr) return Status::error("{}: no tensor named '{}'", source_, name);
  if (e->dtype != dst.dtype() || e->shape != dst.shape())
    return Status::error("{}: tensor '{}' is {} {}, expected {} {}", source_, name,
                         dtype_name(e->dtype), e->shape.str(), dtype_name(dst.dtype()),
                         dst.shape().str());
  if (e->end > e->begin)
    std::memcpy(dst.raw(), bytes_.data() + data_start_ + e->begin, e->end - e->begin);
  return Status::ok();
}

std::vector<uint8_t> encode_safetensors(const std::vector<NamedTensor>& tensors,
                                        const std::map<std::string, std::string>& metadata) {
  const Status names = check_names(tensors);
  MOE_CHECK(names.is_ok(), "encode_safetensors: {}", names.message());
  // nlohmann's ordered_json keeps the tensors in the order given, which keeps files diffable.
  json header = json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    std::vector<int64_t> shape(t.tensor.shape().dims.begin(),
                               t.tensor.shape().dims.begin() + t.tensor.rank());
    header[t.name] = {{"dtype", dtype_name(t.tensor.dtype())},
                      {"shape", shape},
                      {"data_offsets", {offset, offset + t.tensor.nbytes()}}};
    offset += t.tensor.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  std::vector<uint8_t> out(8 + text.size() + offset);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  uint8_t* p = out.data() + 8 + text.size();
  for (const auto& t : tensors) {
    if (t.tensor.nbytes() > 0) std::memcpy(p, t.tensor.raw(), t.tensor.nbytes());
    p += t.tensor.nbytes();
  }
  return out;
}

Status write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  MOE_TRY(check_names(tensors).with_context(path));
  const auto bytes = encode_safetensors(tensors, metadata);
  return write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace moe
