// The run directory's lock; see moe/io/run_lock.h.
#include "moe/io/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "moe/core/file_io.h"

namespace moe {

RunLock::RunLock(RunLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

RunLock::~RunLock() {
  release();
}

void RunLock::release() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor drops the flock
  fd_ = -1;
}

Result<RunLock> RunLock::acquire(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::error("{}: cannot create the output directory: {}", dir, ec.message());
  if (!std::filesystem::is_directory(dir, ec))
    return Status::error("{}: not a directory; the output of a run must be a directory", dir);
  const std::string path = dir + "/" + kRunLockFile;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::error("{}: cannot open the lock file: {}", path, std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    // The holder wrote its pid after taking the lock.
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    if (e != EWOULDBLOCK)
      return Status::error("{}: cannot lock the run directory: {}", path, std::strerror(e));
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return Status::error(
        "{}: another moe train (pid {}) is writing this run directory; wait for it to finish or "
        "use another --out",
        dir, pid.empty() ? "unknown" : pid);
  }
  RunLock lock;
  lock.fd_ = fd;
  const std::string pid = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd, 0) != 0)
    return Status::error("{}: cannot write the lock file: {}", path, std::strerror(errno));
  MOE_TRY(write_all(fd, pid.data(), pid.size(), path));
  return lock;
}

}  // namespace moe
