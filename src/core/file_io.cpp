// Writing files atomically and reading them whole; see moe/core/file_io.h.
#include "moe/core/file_io.h"

#include "core/fd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace moe {

namespace {

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// Where the bytes go: `path` itself, or the file a symbolic link at `path` points to. *mode
// receives the existing file's permission bits (0 when there is none).
Result<std::string> destination(const std::string& path, mode_t* mode) {
  *mode = 0;
  if (path.empty()) return Status::error("an empty file name");
  struct stat ls {};
  if (::lstat(path.c_str(), &ls) != 0) {
    if (errno == ENOENT) return path;
    return Status::error("{}: cannot write there: {}", path, std::strerror(errno));
  }
  struct stat st = ls;
  if (S_ISLNK(ls.st_mode) && ::stat(path.c_str(), &st) != 0)
    return Status::error(
        "{}: a symbolic link to a file that does not exist; refusing to replace "
        "the link",
        path);
  if (!S_ISREG(st.st_mode))
    return Status::error(
        "{}: {}, not a regular file; moe writes only regular files and will not "
        "replace it",
        path, file_kind(st.st_mode));
  *mode = st.st_mode & 07777;
  if (!S_ISLNK(ls.st_mode)) return path;
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr)
    return Status::error("{}: cannot resolve the symbolic link: {}", path, std::strerror(errno));
  return std::string(resolved);
}

// Ok when a file of this mode may be read as `source` says.
Status check_readable(const std::string& path, mode_t mode, FileSource source) {
  if (source == FileSource::kSaved) {
    if (!S_ISREG(mode)) return Status::error("{}: not a regular file", path);
    return Status::ok();
  }
  if (S_ISDIR(mode)) return Status::error("{}: is a directory, not a file", path);
  // Pipes are read to their end (within the cap); devices are refused: /dev/zero never ends and
  // a terminal waits for typing.
  if (!S_ISREG(mode) && !S_ISFIFO(mode))
    return Status::error("{}: is a {}, not a file (give a regular file or a pipe)", path,
                         S_ISCHR(mode)    ? "character device"
                         : S_ISBLK(mode)  ? "block device"
                         : S_ISSOCK(mode) ? "socket"
                                          : "special file");
  return Status::ok();
}

Status too_large(const std::string& path, uint64_t size, uint64_t max_bytes, FileSource source,
                 const char* what) {
  return Status::error("{}: {}{} is more than the {} limit for {}", path, what, human_bytes(size),
                       human_bytes(max_bytes),
                       source == FileSource::kUser ? "a data file" : "this file");
}

std::string parent_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Status check_output_file(const std::string& path) {
  mode_t mode = 0;
  return destination(path, &mode).status();
}

Status write_all(int fd, const void* data, size_t size, const std::string& what) {
  const char* p = static_cast<const char*>(data);
  size_t left = size;
  while (left > 0) {
    const ssize_t w = ::write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int e = w < 0 ? errno : ENOSPC;  // a write of 0 bytes: no room
      return Status::error("{}: write failed: {}", what, std::strerror(e));
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  return Status::ok();
}

void fsync_directory(const std::string& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return;
  ::fsync(dfd);
  ::close(dfd);
}

Status write_file_atomic(const std::string& path, const void* data, size_t size) {
  mode_t mode = 0;
  Result<std::string> dest = destination(path, &mode);
  if (!dest) return dest.status();
  const std::string& target = dest.value();
  const std::string dir = parent_of(target);
  // pid and a per-process counter: concurrent writers of one path never share a temporary.
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = fmt::format("{}.tmp.{}.{}", target, ::getpid(),
                                      counter.fetch_add(1, std::memory_order_relaxed));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Status::error("{}: cannot create the file: {}", tmp, std::strerror(errno));
  // Whatever fails from here, the temporary goes: no empty or partial *.tmp is left behind.
  const auto failed = [&](Status s, bool open) {
    if (open) ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  if (Status s = write_all(fd, data, size, tmp); !s) return failed(s, true);
  if (mode != 0) ::fchmod(fd, mode);  // a replaced file keeps its permissions
  if (::fsync(fd) != 0) {
    const int e = errno;
    if (e != EINVAL && e != EROFS)  // a file system without fsync: the data is written anyway
      return failed(Status::error("{}: fsync failed: {}", tmp, std::strerror(e)), true);
  }
  if (::close(fd) != 0)
    return failed(Status::error("{}: close failed: {}", tmp, std::strerror(errno)), false);
  if (::rename(tmp.c_str(), target.c_str()) != 0)
    return failed(Status::error("{}: cannot rename into place: {}", target, std::strerror(errno)),
                  false);
  fsync_directory(dir);
  return Status::ok();
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

void advise_huge_pages(const void* p, size_t bytes) {
  constexpr size_t kHugePage = size_t{2} << 20;
  constexpr size_t kPage = 4096;
  if (p == nullptr || bytes < kHugePage) return;
  // From the start of p's page to the end of the range.
  const size_t into_page = reinterpret_cast<uintptr_t>(p) & (kPage - 1);
  void* begin = const_cast<char*>(static_cast<const char*>(p) - into_page);
  // Advice only: a kernel without transparent huge pages refuses it, which changes nothing.
  (void)madvise(begin, bytes + into_page, MADV_HUGEPAGE);
}

template <typename Bytes>
Result<Bytes> read_file_bytes(const std::string& path, uint64_t max_bytes, FileSource source) {
  // stat before open: opening a FIFO waits for a writer, and a saved file must not be one.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (source == FileSource::kSaved && errno == ENOENT)
      return Status::error("{}: missing (no such file)", path);
    return Status::error("{}: cannot open ({})", path, std::strerror(errno));
  }
  MOE_TRY(check_readable(path, st.st_mode, source));
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Status::error("{}: cannot open ({})", path, std::strerror(errno));
  if (::fstat(fd.get(), &st) != 0)
    return Status::error("{}: cannot stat ({})", path, std::strerror(errno));
  MOE_TRY(check_readable(path, st.st_mode, source));  // the path may have been replaced
  const uint64_t declared = S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
  if (declared > max_bytes) return too_large(path, declared, max_bytes, source, "");

  Bytes bytes;
  size_t have = 0;
  try {
    bytes.reserve(static_cast<size_t>(declared));
    advise_huge_pages(bytes.data(), static_cast<size_t>(declared));
    bytes.resize(static_cast<size_t>(declared));
    for (;;) {
      if (have == bytes.size()) {
        // Regular files end here; pipes and files that grew keep going, within the cap.
        if (have >= max_bytes) {
          char probe;
          const ssize_t r = ::read(fd.get(), &probe, 1);
          if (r == 0) break;
          if (r > 0) return too_large(path, have + 1, max_bytes, source, "more than ");
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
  return bytes;
}

template Result<std::string> read_file_bytes(const std::string&, uint64_t, FileSource);
template Result<std::vector<uint8_t>> read_file_bytes(const std::string&, uint64_t, FileSource);

}  // namespace moe
