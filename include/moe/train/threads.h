// How many OpenMP threads a training run uses: training.threads when it is set, else chosen
// once at the start (auto_threads) from the cores this process may use and the processes
// already running on them.
//
// Why: a team of threads waits at every parallel region's barrier for its slowest member. When
// another process holds a core, the thread on it runs only when the scheduler lets it, and each
// barrier can cost a time slice (milliseconds) instead of microseconds. Measured on a 2-core
// machine with one other process spinning, all cores trained 2.7 to 4.2 times slower than one
// thread (docs/config.md, "threads"); on the quiet machine two threads were 1.2 times faster.
// The count is chosen once, not changed during the run: results then depend only on the
// config, the data and this count, which the run prints and records in summary.json.
#pragma once

#include <string>
#include <string_view>

namespace moe {

struct ThreadChoice {
  int threads = 1;
  std::string reason;  // e.g. "auto: 2 cores, 1 held by other processes"
};

// The decision alone (tested directly): `configured` > 0 wins; otherwise every core not held by
// another running process, at least one. `cores` is what OpenMP may use (OMP_NUM_THREADS or the
// CPUs of this process's affinity mask); `others` the processes other than this one that were
// running on the machine, `online` its CPUs.
ThreadChoice choose_threads(int configured, int cores, int online, int others);

// Processes other than the caller that are running now: the median of a few samples of
// procs_running in `proc_stat_path` (Linux's /proc/stat), minus this process's own running
// threads. Returns -1 when the
// file cannot be read or holds no such line (the caller then assumes an idle machine).
int other_running_processes(const std::string& proc_stat_path = "/proc/stat", int samples = 5);

// procs_running from the text of /proc/stat, or -1 when it has none or it is malformed.
int parse_procs_running(std::string_view proc_stat);

// choose_threads for this machine now, with omp_get_max_threads() and the online CPUs.
ThreadChoice choose_threads_now(int configured);

}  // namespace moe
