// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON mapping each
// tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the byte
// after the header) plus an optional "__metadata__" string map, then the raw little-endian data.
//
// The reader trusts nothing: the header length is checked against the file size and a cap, the
// JSON must be well formed, every dtype known, every size computed without overflow, every
// offset range in bounds, and the ranges must tile the data exactly (no overlap, no gap). Each
// failure is one message naming the file and, where there is one, the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "moe/core/file_io.h"
#include "moe/core/status.h"
#include "moe/core/tensor.h"

namespace moe {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t begin = 0;  // data_offsets, relative to the start of the data section
  uint64_t end = 0;
};

struct SafetensorsLimits {
  uint64_t max_header_bytes = uint64_t{100} << 20;  // 100 MiB of JSON is already absurd
  uint64_t max_file_bytes = uint64_t{1} << 40;
};

class SafetensorsFile {
 public:
  // Reads and validates the whole file; the header is read and checked against the file's size
  // first.
  static Result<SafetensorsFile> open(const std::string& path, SafetensorsLimits limits = {});
  // Validates bytes already in memory; `source` names them in messages.
  static Result<SafetensorsFile> parse(std::vector<uint8_t> bytes, const std::string& source,
                                       SafetensorsLimits limits = {});

  const std::string& source() const { return source_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // in file order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const;
  const SafetensorsEntry* find(const std::string& name) const;

  // Copies a tensor into an owned buffer, converted to nothing: dtype as stored.
  Result<TensorBuffer> load(const std::string& name) const;
  // Copies a tensor into dst, which must have the stored shape and dtype (message otherwise).
  Status read_into(const std::string& name, Tensor dst) const;

 private:
  // Checks the header in `prefix` (at least the 8-byte length and the header) against a file of
  // `file_size` bytes, filling everything but bytes_: open() calls it before reading the data,
  // so a file whose size the header does not account for is refused without reading it.
  static Result<SafetensorsFile> parse_layout(const std::vector<uint8_t>& prefix,
                                              uint64_t file_size, const std::string& source,
                                              SafetensorsLimits limits);

  std::string source_;
  std::vector<uint8_t> bytes_;
  uint64_t data_start_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Serialises tensors (written in the given order, 8-byte aligned data) and metadata. Names must be
// unique and not "__metadata__": write_safetensors returns an error otherwise, and
// encode_safetensors treats it as a programmer error (MOE_CHECK).
std::vector<uint8_t> encode_safetensors(const std::vector<NamedTensor>& tensors,
                                        const std::map<std::string, std::string>& metadata = {});

// Writes atomically with write_file_atomic (moe/core/file_io.h): a temporary file in the same
// directory, fsync, rename over `path`, fsync of the directory. A crash at any instant leaves
// either the old file or the new one.
Status write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace moe
