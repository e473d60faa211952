#include "moe/train/threads.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>

namespace moe {

ThreadChoice choose_threads(int configured, int cores, int online, int others) {
  if (configured > 0) return {configured, "training.threads"};
  cores = std::max(cores, 1);
  if (cores == 1) return {1, "auto: 1 core"};
  if (others <= 0) return {cores, fmt::format("auto: {} cores, none busy", cores)};
  // Cores outside this process's reach may be the busy ones; count them first.
  const int free = std::max(online, cores) - others;
  const int threads = std::clamp(free, 1, cores);
  return {threads, fmt::format("auto: {} cores, {} other process{} running", cores, others,
                               others == 1 ? "" : "es")};
}

int parse_procs_running(std::string_view text) {
  constexpr std::string_view kKey = "procs_running ";
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = std::min(text.find('\n', at), text.size());
    const std::string_view line = text.substr(at, end - at);
    if (line.substr(0, kKey.size()) == kKey) {
      int n = 0;
      const std::string_view digits = line.substr(kKey.size());
      if (digits.empty() || digits.size() > 9) return -1;
      for (char c : digits) {
        if (c < '0' || c > '9') return -1;
        n = n * 10 + (c - '0');
      }
      return n;
    }
    at = end + 1;
  }
  return -1;
}

namespace {

// Threads of this process in state R (running or runnable) other than the caller: OpenMP
// workers still spinning after the data was loaded are this process's, not another's.
int own_running_threads() {
  std::error_code ec;
  int running = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(task.path() / "stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    const size_t close = line.rfind(')');  // the name may hold spaces and parentheses
    if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'R') ++running;
  }
  return std::max(running - 1, 0);
}

}  // namespace

int other_running_processes(const std::string& proc_stat_path, int samples) {
  std::vector<int> seen;
  for (int i = 0; i < samples; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::ifstream in(proc_stat_path);
    if (!in) return -1;
    std::ostringstream text;
    text << in.rdbuf();
    const int n = parse_procs_running(text.str());
    if (n < 0) return -1;
    seen.push_back(n - own_running_threads());
  }
  if (seen.empty()) return -1;
  std::nth_element(seen.begin(), seen.begin() + static_cast<long>(seen.size() / 2), seen.end());
  return std::max(seen[seen.size() / 2] - 1, 0);  // the reader itself is running
}

ThreadChoice choose_threads_now(int configured) {
  if (configured > 0) return choose_threads(configured, 0, 0, 0);
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  const int cores = omp_get_max_threads();
  const int others = cores > 1 ? other_running_processes() : 0;
  return choose_threads(0, cores, online > 0 ? static_cast<int>(online) : cores,
                        std::max(others, 0));
}

}  // namespace moe
