// The collectives' cost on this machine, for the cost model of docs/distributed.md: each size's
// all-reduce (the gradient's) and all-to-all-v (an expert-parallel dispatch, every rank sending
// an equal part to every other), as time per call and bus bandwidth, on rank 0.
//
// Usage: mpirun -np N build/release/bench/bench_collectives [--repeat R]
// (one process without mpirun measures the one-rank identity.)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "moe/dist/communicator.h"

namespace {

using moe::Communicator;

// The median of `repeat` timed calls of `op` (after one untimed call), in seconds, agreed by
// every rank (the slowest rank's median).
template <typename Op>
double median_seconds(Communicator& c, int repeat, Op op) {
  op();
  std::vector<double> t;
  for (int i = 0; i < repeat; ++i) {
    (void)c.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    op();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(t.begin(), t.begin() + repeat / 2, t.end());
  double m[1] = {t[static_cast<size_t>(repeat / 2)]};
  (void)c.all_reduce_max(m);
  return m[0];
}

}  // namespace

int main(int argc, char** argv) {
  int repeat = 20;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--repeat") == 0) repeat = std::max(1, std::atoi(argv[i + 1]));
  std::unique_ptr<Communicator> comm;
  if (moe::launched_by_mpi()) {
    auto r = moe::mpi_communicator();
    if (!r) {
      std::fprintf(stderr, "%s\n", r.status().message().c_str());
      return 1;
    }
    comm = std::move(r.value());
  } else {
    comm = moe::solo_communicator();
  }
  Communicator& c = *comm;
  const int n = c.size();
  if (c.is_root())
    std::printf("%s; median of %d calls\n%12s %14s %14s %14s %14s\n", c.describe().c_str(), repeat,
                "bytes", "all-reduce us", "bus GB/s", "all-to-all us", "bus GB/s");
  for (int64_t bytes = 1024; bytes <= (int64_t{64} << 20); bytes *= 4) {
    const int64_t floats = bytes / 4;
    std::vector<float> grad(static_cast<size_t>(floats), 1.0f);
    const double t_ar = median_seconds(c, repeat, [&] { (void)c.all_reduce_sum(grad); });
    // Every rank sends bytes/n to each rank (itself included) and receives as much.
    std::vector<int64_t> counts(static_cast<size_t>(n), floats / n);
    std::vector<float> send(static_cast<size_t>(floats / n * n), 1.0f), recv(send.size());
    const double t_a2a =
        median_seconds(c, repeat, [&] { (void)c.all_to_all_v(send, counts, recv, counts); });
    // Bus bandwidth: what each rank's link carries, 2(n−1)/n of the bytes for an all-reduce,
    // (n−1)/n for an all-to-all (the part for itself stays).
    const double ar_bus = 2.0 * (n - 1) / n * static_cast<double>(bytes) / t_ar / 1e9;
    const double a2a_bus =
        static_cast<double>(n - 1) / n * static_cast<double>(bytes) / t_a2a / 1e9;
    if (c.is_root())
      std::printf("%12lld %14.1f %14.2f %14.1f %14.2f\n", static_cast<long long>(bytes), t_ar * 1e6,
                  ar_bus, t_a2a * 1e6, a2a_bus);
  }
  return 0;
}
