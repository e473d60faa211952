#include "data/file_bytes.h"

#include "core/fd.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace moe::data_detail {

namespace {

// zlib counts in uInt (32 bits): feed and drain it in pieces no larger than this.
constexpr size_t kZlibChunk = size_t{1} << 30;

}  // namespace

size_t invalid_utf8_at(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // The sequence length and the range of the second byte (tighter than 80..BF where the
    // first byte alone would allow an overlong form, a surrogate or a value above U+10FFFF).
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return i;
    i += len;
  }
  return std::string_view::npos;
}

bool is_ascii(std::string_view s) {
  unsigned char any = 0;
  for (const char c : s) any |= static_cast<unsigned char>(c);
  return any < 0x80;
}

Result<std::string> read_data_file(const std::string& path, uint64_t max_bytes) {
  Result<std::string> bytes = read_file_bytes<std::string>(path, max_bytes, FileSource::kUser);
  if (bytes && is_gzip(bytes.value())) return gunzip(bytes.value(), path, max_bytes);
  return bytes;
}

Result<std::string> gunzip(std::string_view compressed, const std::string& source,
                           uint64_t max_bytes) {
  z_stream zs{};
  // 16 + MAX_WBITS: expect a gzip header and trailer (RFC 1952), not raw zlib.
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
    return Status::error("{}: cannot initialise zlib", source);
  std::string out;
  size_t in_pos = 0;
  Status status;
  try {
    // The gzip trailer ends with the member's size mod 2^32 (ISIZE, RFC 1952 section 2.3.1): a
    // good first guess for one member. It is only a hint, trusted up to a 64:1 ratio so that a
    // small file cannot make us reserve much; the buffer grows as needed either way.
    uint64_t guess = std::max<uint64_t>(compressed.size() * 4, 1 << 16);
    if (compressed.size() >= 18) {
      const auto* t =
          reinterpret_cast<const unsigned char*>(compressed.data() + compressed.size() - 4);
      const uint64_t isize =
          uint64_t{t[0]} | uint64_t{t[1]} << 8 | uint64_t{t[2]} << 16 | uint64_t{t[3]} << 24;
      if (isize > 0 && isize <= 64 * uint64_t{compressed.size()} + (1 << 20)) guess = isize + 1;
    }
    const auto first = static_cast<size_t>(std::min<uint64_t>(guess, max_bytes));
    reserve_huge(out, first);
    out.resize(first);
    size_t out_pos = 0;
    bool stream_ended = false;
    for (;;) {
      if (zs.avail_in == 0 && in_pos < compressed.size()) {
        const size_t n = std::min(kZlibChunk, compressed.size() - in_pos);
        zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data() + in_pos));
        zs.avail_in = static_cast<uInt>(n);
        in_pos += n;
      }
      if (out_pos == out.size()) {
        if (out.size() >= max_bytes) {
          status = Status::error("{}: decompresses to more than the {} limit for a data file",
                                 source, human_bytes(max_bytes));
          break;
        }
        const size_t grown = std::min<uint64_t>(out.size() * 2, max_bytes);
        reserve_huge(out, grown);
        out.resize(grown);
      }
      const size_t room = std::min(kZlibChunk, out.size() - out_pos);
      zs.next_out = reinterpret_cast<Bytef*>(out.data() + out_pos);
      zs.avail_out = static_cast<uInt>(room);
      const int rc = inflate(&zs, Z_NO_FLUSH);
      out_pos += room - zs.avail_out;
      if (rc == Z_STREAM_END) {
        stream_ended = true;
        const size_t left = zs.avail_in + (compressed.size() - in_pos);
        if (left == 0) break;
        // Another member follows (gzip allows concatenation), or trailing garbage.
        const size_t at = compressed.size() - left;
        if (!is_gzip(compressed.substr(at))) {
          status = Status::error("{}: {} unexpected byte{} after the gzip data at byte offset {}",
                                 source, left, left == 1 ? "" : "s", at);
          break;
        }
        inflateReset(&zs);
        stream_ended = false;
        continue;
      }
      if (rc == Z_BUF_ERROR && zs.avail_in == 0 && in_pos == compressed.size()) {
        status =
            Status::error("{}: truncated gzip data (the stream ends after {} compressed bytes)",
                          source, compressed.size());
        break;
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        status = Status::error("{}: corrupt gzip data ({})", source,
                               zs.msg != nullptr ? zs.msg : "zlib error");
        break;
      }
    }
    if (status.is_ok() && !stream_ended) status = Status::error("{}: truncated gzip data", source);
    out.resize(out_pos);
  } catch (const std::bad_alloc&) {
    status = Status::error("{}: cannot allocate memory to decompress the file", source);
  }
  inflateEnd(&zs);
  if (!status.is_ok()) return status;
  return out;
}

Result<std::string> gzip(std::string_view raw) {
  if (raw.size() > kZlibChunk)
    return Status::error("gzip: {} is too large to compress at once", human_bytes(raw.size()));
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return Status::error("cannot initialise zlib");
  std::string out(deflateBound(&zs, static_cast<uLong>(raw.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return Status::error("gzip compression failed");
  return out;
}

Status write_file_bytes(const std::string& path, std::string_view bytes) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return Status::error("{}: cannot create ({})", path, std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::error("{}: write failed ({})", path, std::strerror(errno));
    }
    done += static_cast<size_t>(w);
  }
  return Status::ok();
}

}  // namespace moe::data_detail
