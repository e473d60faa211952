// The one file writer (moe/core/file_io.h): it replaces a regular file whole, writes through a
// symbolic link, refuses a device, a FIFO, a directory or a dangling link (and leaves them as
// they were), keeps a replaced file's permissions, and leaves no temporary behind when a write
// fails.
#include "moe/core/file_io.h"
#include "testing/temp_dir.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace moe {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(FileIo, ReplacesARegularFileWhole) {
  TempDir dir;
  const std::string path = dir.file("out.txt");
  ASSERT_TRUE(write_file_atomic(path, std::string_view("first version\n")).is_ok());
  ASSERT_TRUE(write_file_atomic(path, std::string_view("second\n")).is_ok());
  EXPECT_EQ(read_all(path), "second\n");
  EXPECT_TRUE(dir.others({"out.txt"}).empty());
}

TEST(FileIo, KeepsTheReplacedFilesPermissions) {
  TempDir dir;
  const std::string path = dir.file("private.txt");
  ASSERT_TRUE(write_file_atomic(path, std::string_view("a")).is_ok());
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  ASSERT_TRUE(write_file_atomic(path, std::string_view("b")).is_ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(FileIo, WritesThroughASymbolicLink) {
  TempDir dir;
  const std::string target = dir.file("target.csv"), link = dir.file("link.csv");
  ASSERT_TRUE(write_file_atomic(target, std::string_view("old")).is_ok());
  fs::create_symlink(target, link);
  const Status s = write_file_atomic(link, std::string_view("new"));
  ASSERT_TRUE(s.is_ok()) << s.message();
  EXPECT_TRUE(fs::is_symlink(link));  // the link stays a link
  EXPECT_EQ(read_all(target), "new");
  EXPECT_TRUE(dir.others({"target.csv", "link.csv"}).empty());
}

TEST(FileIo, RefusesWhatIsNotARegularFile) {
  TempDir dir;
  const std::string fifo = dir.file("fifo"), sub = dir.file("sub"), dangling = dir.file("dangling");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  fs::create_directories(sub);
  fs::create_symlink(dir.file("nothing"), dangling);
  struct Case {
    std::string path;
    std::string message;
  };
  const Case cases[] = {
      {"/dev/null",
       "/dev/null: a character device, not a regular file; moe writes only regular "
       "files and will not replace it"},
      {fifo, fifo + ": a FIFO, not a regular file"},
      {sub, sub + ": a directory, not a regular file"},
      {dangling, dangling + ": a symbolic link to a file that does not exist"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    for (const Status& s : {check_output_file(c.path), write_file_atomic(c.path, "x", 1)}) {
      ASSERT_FALSE(s.is_ok());
      EXPECT_EQ(s.message().rfind(c.message, 0), 0u) << s.message();
    }
  }
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));  // still the device
  ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_TRUE(fs::is_symlink(dangling));
  EXPECT_TRUE(dir.others({"fifo", "sub", "dangling"}).empty());
}

// A write the file system refuses halfway (here the file size limit, as a full disk would):
// the message says so, the old file stays, and no temporary is left.
TEST(FileIo, AFailedWriteLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("big.bin");
  ASSERT_TRUE(write_file_atomic(path, std::string_view("old")).is_ok());
  rlimit old_limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  const auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old_limit;
  small.rlim_cur = 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string big(1 << 20, 'x');
  const Status s = write_file_atomic(path, big);
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::signal(SIGXFSZ, old_handler);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("write failed: File too large"), std::string::npos) << s.message();
  EXPECT_EQ(read_all(path), "old");
  EXPECT_TRUE(dir.others({"big.bin"}).empty());
}

TEST(FileIo, WriteAllNamesTheTargetAndTheReason) {
  const int fd = ::open("/dev/full", O_WRONLY);
  if (fd < 0) GTEST_SKIP() << "no /dev/full";
  const Status s = write_all(fd, "abc", 3, "standard output");
  ::close(fd);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.message(), "standard output: write failed: No space left on device");
}

}  // namespace
}  // namespace moe
