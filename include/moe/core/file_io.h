// Writing files: the one way moe puts a file on disk (checkpoints, run files, --out files).
//
// write_file_atomic writes the bytes under a temporary name in the destination's directory,
// checks every write, fsyncs and closes it, renames it over the destination and fsyncs the
// directory: a crash at any instant leaves either the old file or the new one, and a failure at
// any step (a full disk, a quota, an I/O error) returns a message and removes the temporary.
//
// The destination must be a regular file or not exist. Anything else at the path (a device, a
// FIFO, a socket, a directory) is refused with a message saying what it is: renaming over it
// would replace a device node with a regular file. A symbolic link is written through: the file
// it points to is replaced (atomically, in that file's directory) and the link stays; a link to
// nothing is refused.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "moe/core/status.h"

namespace moe {

// Ok when write_file_atomic may write `path`: it does not exist, or it is a regular file or a
// symbolic link to one. Otherwise a message naming the path and what it is. Commands call it
// before long work so a bad --out fails at once.
Status check_output_file(const std::string& path);

Status write_file_atomic(const std::string& path, const void* data, size_t size);
inline Status write_file_atomic(const std::string& path, std::string_view text) {
  return write_file_atomic(path, text.data(), text.size());
}

// Writes all `size` bytes to the file descriptor, through short writes and EINTR; the message
// names `what` (a path, "standard output") and the system's reason.
Status write_all(int fd, const void* data, size_t size, const std::string& what);

// fsync(2) of a directory, so the renames and unlinks in it are on disk. Best effort: a file
// system that cannot fsync a directory is not an error.
void fsync_directory(const std::string& dir);

}  // namespace moe
