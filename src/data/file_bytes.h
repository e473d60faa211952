// Whole-file reading for the data readers: core/file_io's reader (a size cap checked before
// anything is allocated) with transparent gzip (RFC 1952) decompression when a file starts with
// the gzip magic 1f 8b. Internal to src/data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "moe/core/file_io.h"
#include "moe/core/status.h"

namespace moe::data_detail {

inline bool is_gzip(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x1f &&
         static_cast<uint8_t>(bytes[1]) == 0x8b;
}

// Reads the data file `path` whole (a regular file or a pipe), decompressed when it is gzip.
// Files above `max_bytes` (compressed size, or decompressed size for gzip) are rejected with a
// message naming the file, its size and the limit. Missing files, directories and read errors
// get their own messages.
Result<std::string> read_data_file(const std::string& path, uint64_t max_bytes);

// Decompresses one or more concatenated gzip members; `source` names the data in messages.
Result<std::string> gunzip(std::string_view compressed, const std::string& source,
                           uint64_t max_bytes);

// Compresses to a single gzip member (level 6).
Result<std::string> gzip(std::string_view raw);

// Writes bytes to `path` (truncating), reporting failures with the path.
Status write_file_bytes(const std::string& path, std::string_view bytes);

// Reserves room for n elements in a vector and advises huge pages for it.
template <typename Vector>
void reserve_huge(Vector& v, size_t n) {
  v.reserve(n);
  advise_huge_pages(v.data(), n * sizeof(typename Vector::value_type));
}

// The offset of the first byte of `s` that is not part of well-formed UTF-8 (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or std::string_view::npos when all of
// it is. Text read from data files ends up in JSON (model.json, metrics), which must be UTF-8.
size_t invalid_utf8_at(std::string_view s);

// True when no byte of `s` is above 0x7f (then it is UTF-8, and per-field checks can be skipped).
bool is_ascii(std::string_view s);

}  // namespace moe::data_detail
