// IDX files, the layout of MNIST and Fashion-MNIST: bytes 0–1 are zero, byte 2 is the element
// type code, byte 3 the rank R; then R big-endian uint32 dimension sizes, then the elements in
// row-major order. Image files are [N, H, W], label files [N], both unsigned bytes (0x08).
// A file starting with the gzip magic 1f 8b is decompressed first, whatever its name.
//
// Dims: N images · H, W image height and width · D = H·W.
//
// The reader trusts nothing: each kind of damage has its own message naming the file — too
// short for a header, bad magic bytes, an unknown or unsupported type code, a rank outside
// 1..4, dimension sizes whose product overflows, data shorter or longer than the dimensions
// say, a corrupt or truncated gzip stream, label and image counts that differ, and a label
// outside [0, n_classes) (naming its record and byte offset).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "moe/core/status.h"
#include "moe/data/dataset.h"

namespace moe {

struct IdxArray {
  std::vector<int64_t> dims;  // [R]
  std::vector<uint8_t> data;  // [dims[0] · ... · dims[R-1]]
};

struct IdxLimits {
  uint64_t max_file_bytes = uint64_t{4} << 30;  // after decompression
};

Result<IdxArray> read_idx(const std::string& path, const IdxLimits& limits = {});
// Parses bytes already in memory (already decompressed); `source` names them in messages.
Result<IdxArray> parse_idx(std::string_view bytes, const std::string& source);
// Encodes an unsigned-byte IDX file; gzipped when `gzip`. (Tests and tools make data with it.)
Status write_idx(const std::string& path, const IdxArray& array, bool gzip);

struct IdxImageOptions {
  int64_t n_classes = 10;
};

// Images [N, ...] scaled from 0..255 to [0, 1] as dense features [N, D], with labels [N] when
// `labels_path` is not empty.
Result<Dataset> load_idx_images(const std::string& images_path, const std::string& labels_path,
                                const IdxImageOptions& options = {});

// Class names for integer labels 0..n_classes−1: their decimal digits, zero-padded to one width
// so that bytewise order is numeric order ("0".."9"; "00".."11").
LabelSpec integer_label_spec(int64_t n_classes, const std::string& column = "label");

}  // namespace moe
