// training.threads = 0 (auto): every core not held by another running process, chosen once.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "moe/train/threads.h"

namespace moe {
namespace {

TEST(Threads, ConfiguredCountWins) {
  const ThreadChoice c = choose_threads(3, 2, 2, 5);
  EXPECT_EQ(c.threads, 3);
  EXPECT_EQ(c.reason, "training.threads");
}

TEST(Threads, AutoTakesTheCoresNoOtherProcessHolds) {
  EXPECT_EQ(choose_threads(0, 2, 2, 0).threads, 2);
  EXPECT_EQ(choose_threads(0, 2, 2, 0).reason, "auto: 2 cores, none busy");
  EXPECT_EQ(choose_threads(0, 2, 2, 1).threads, 1);
  EXPECT_EQ(choose_threads(0, 2, 2, 1).reason, "auto: 2 cores, 1 other process running");
  EXPECT_EQ(choose_threads(0, 2, 2, 18).threads, 1);  // never fewer than one
  EXPECT_EQ(choose_threads(0, 8, 8, 3).threads, 5);
  EXPECT_EQ(choose_threads(0, 8, 8, 3).reason, "auto: 8 cores, 3 other processes running");
  // Limited to 2 of 8 CPUs (OMP_NUM_THREADS or affinity): the busy ones may be the others.
  EXPECT_EQ(choose_threads(0, 2, 8, 3).threads, 2);
  EXPECT_EQ(choose_threads(0, 2, 8, 7).threads, 1);
  EXPECT_EQ(choose_threads(0, 1, 4, 0).threads, 1);
  EXPECT_EQ(choose_threads(0, 0, 0, 0).threads, 1);
}

TEST(Threads, ProcsRunningIsReadFromProcStat) {
  EXPECT_EQ(parse_procs_running("cpu  1 2 3\nctxt 99\nprocs_running 3\nprocs_blocked 0\n"), 3);
  EXPECT_EQ(parse_procs_running("procs_running 12"), 12);  // last line, no newline
  EXPECT_EQ(parse_procs_running(""), -1);
  EXPECT_EQ(parse_procs_running("procs_blocked 2\n"), -1);
  EXPECT_EQ(parse_procs_running("procs_running \n"), -1);
  EXPECT_EQ(parse_procs_running("procs_running x1\n"), -1);
  EXPECT_EQ(parse_procs_running("procs_running 99999999999999\n"), -1);
  EXPECT_EQ(parse_procs_running("xprocs_running 4\n"), -1);
}

TEST(Threads, OtherProcessesFromAFileExcludeTheReader) {
  const std::string path =
      ::testing::TempDir() + "/moe_threads_proc_stat_" + std::to_string(::getpid());
  {
    std::ofstream out(path);
    out << "cpu  1 2 3\nprocs_running 4\nprocs_blocked 0\n";
  }
  EXPECT_EQ(other_running_processes(path, 3), 3);
  {
    std::ofstream out(path);
    out << "cpu  1 2 3\n";
  }
  EXPECT_EQ(other_running_processes(path, 3), -1);
  std::filesystem::remove(path);
  EXPECT_EQ(other_running_processes(path, 3), -1);  // no such file: treated as unknown
  // This machine's own file reads (Linux): at least 0 others.
  if (std::filesystem::exists("/proc/stat")) {
    EXPECT_GE(other_running_processes(), 0);
  }
}

TEST(Threads, AutoNeverExceedsWhatOpenMpMayUse) {
  const ThreadChoice c = choose_threads_now(0);
  EXPECT_GE(c.threads, 1);
  EXPECT_NE(c.reason.find("auto: "), std::string::npos) << c.reason;
}

}  // namespace
}  // namespace moe
