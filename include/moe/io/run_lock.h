// One writer per run directory: `moe train` holds an exclusive flock(2) on <dir>/.lock for as
// long as it writes the directory, with its pid in the file so a second run can say whose it is.
//
// The lock is advisory and dies with the process (the kernel drops it when the descriptor
// closes, a SIGKILL included), so a crashed run never leaves a directory locked; the file itself
// stays and is reused.
#pragma once

#include <string>

#include "moe/core/status.h"

namespace moe {

inline constexpr const char* kRunLockFile = ".lock";

class RunLock {
 public:
  RunLock() = default;
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock();

  // Takes the lock of `dir` (created with its parents if missing) without waiting; refused with
  // a message naming the directory and the pid of the process that holds it.
  static Result<RunLock> acquire(const std::string& dir);

  bool held() const { return fd_ >= 0; }
  void release();

 private:
  int fd_ = -1;
};

}  // namespace moe
