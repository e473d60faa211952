// Reading and writing files: the one way moe puts a file on disk (checkpoints, run files, --out
// files), and the one way it reads a file whole (data files, a checkpoint's parts).
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
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

// Whose file is read decides what it may be and how its problems are worded.
enum class FileSource {
  // A file the user names (a data file): a regular file, or a pipe read to its end (data given
  // as <(zcat big.csv.gz)); a directory or a device is refused. "<path>: cannot open (<reason>)"
  // when it cannot be opened.
  kUser,
  // A file moe saved (a part of a checkpoint): a regular file only, "<path>: missing (no such
  // file)" when it is not there and "<path>: not a regular file" when it is something else.
  kSaved,
};

// Reads `path` whole into a std::string or a std::vector<uint8_t>. A file above max_bytes is
// refused before anything is allocated (a pipe once it has sent more), with a message naming the
// file, its size and the limit; read errors and running out of memory get their own messages.
template <typename Bytes>
Result<Bytes> read_file_bytes(const std::string& path, uint64_t max_bytes, FileSource source);
extern template Result<std::string> read_file_bytes(const std::string&, uint64_t, FileSource);
extern template Result<std::vector<uint8_t>> read_file_bytes(const std::string&, uint64_t,
                                                             FileSource);

// "1.5 GiB", "12 KiB", "87 bytes": sizes in messages.
std::string human_bytes(uint64_t n);

// Asks the kernel to back [p, p + bytes) with transparent huge pages when the range is large
// (a first touch of a 4 KiB page costs ~11 us on this machine, ~0.23 us per 4 KiB with huge
// pages). Call it on freshly reserved memory before writing to it; small ranges are left alone.
void advise_huge_pages(const void* p, size_t bytes);

}  // namespace moe
