// Writing files atomically; see moe/core/file_io.h.
#include "moe/core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

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

}  // namespace moe
