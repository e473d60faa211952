#include "data/file_bytes.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Status too_large(const std::string& path, uint64_t size, uint64_t max_bytes, const char* what) {
  return Status::error("{}: {}{} is more than the {} limit for a data file", path, what,
                       human_bytes(size), human_bytes(max_bytes));
}

}  // namespace

void advise_huge_pages(const void* p, size_t bytes) {
  constexpr size_t kHugePage = size_t{2} << 20;
  constexpr size_t kPage = 4096;
  if (p == nullptr || bytes < kHugePage) return;
  const auto begin = reinterpret_cast<uintptr_t>(p) & ~(kPage - 1);
  const auto end = reinterpret_cast<uintptr_t>(p) + bytes;
  // Advice only: a kernel without transparent huge pages refuses it, which changes nothing.
  (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

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

std::string human_bytes(uint64_t n) {
  if (n < 1024) return fmt::format("{} bytes", n);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(n) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

Result<std::string> read_file_bytes(const std::string& path, uint64_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::error("{}: cannot open ({})", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return Status::error("{}: cannot stat ({})", path, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return Status::error("{}: is a directory, not a file", path);
  // Pipes are read to their end (within the cap); devices are refused: /dev/zero never ends and
  // a terminal waits for typing.
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
    return Status::error("{}: is a {}, not a file (give a regular file or a pipe)", path,
                         S_ISCHR(st.st_mode)    ? "character device"
                         : S_ISBLK(st.st_mode)  ? "block device"
                         : S_ISSOCK(st.st_mode) ? "socket"
                                                : "special file");
  const uint64_t declared = S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
  if (declared > max_bytes) return too_large(path, declared, max_bytes, "");

  std::string bytes;
  size_t have = 0;
  try {
    reserve_huge(bytes, static_cast<size_t>(declared));
    bytes.resize(static_cast<size_t>(declared));
    for (;;) {
      if (have == bytes.size()) {
        // Regular files end here; pipes and files that grew keep going, within the cap.
        if (have >= max_bytes) {
          char probe;
          const ssize_t r = ::read(fd.get(), &probe, 1);
          if (r == 0) break;
          if (r > 0) return too_large(path, have + 1, max_bytes, "more than ");
          if (errno == EINTR) continue;
          return Status::error("{}: read failed ({})", path, std::strerror(errno));
        }
        const size_t grow = std::max<size_t>(size_t{1} << 16, bytes.size());
        bytes.resize(static_cast<size_t>(std::min<uint64_t>(bytes.size() + grow, max_bytes)));
      }
      const ssize_t r = ::read(fd.get(), bytes.data() + have, bytes.size() - have);
      if (r < 0) {
        if (errno == EINTR) continue;
        return Status::error("{}: read failed ({})", path, std::strerror(errno));
      }
      if (r == 0) break;
      have += static_cast<size_t>(r);
    }
    bytes.resize(have);
  } catch (const std::bad_alloc&) {
    return Status::error("{}: out of memory reading the file ({} of {} read)", path,
                         human_bytes(have),
                         declared > 0 ? human_bytes(declared) : std::string("an unknown size"));
  }
  if (is_gzip(bytes)) return gunzip(bytes, path, max_bytes);
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
