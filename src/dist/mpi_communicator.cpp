// The communicator over MPI's world (OpenMPI in the default build; MOE_USE_MPI=OFF leaves it
// out). Collectives run on the calling thread (MPI_THREAD_FUNNELED); a watchdog thread ends the
// process when one waits longer than the timeout, so a rank that stalls stops the job with a
// message instead of hanging it (mpirun then ends the other ranks).
#include "moe/dist/communicator.h"

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>

#ifdef MOE_HAVE_MPI
#include <mpi.h>
#endif

namespace moe {

#ifndef MOE_HAVE_MPI

bool built_with_mpi() {
  return false;
}

Result<std::unique_ptr<Communicator>> mpi_communicator() {
  return Status::error(
      "this moe was built without MPI (cmake -DMOE_USE_MPI=OFF); rebuild with MOE_USE_MPI=ON "
      "to run under mpirun");
}

#else

bool built_with_mpi() {
  return true;
}

namespace {

// Seconds a collective may wait: MOE_DIST_TIMEOUT, else 600.
int dist_timeout_seconds() {
  const char* v = std::getenv("MOE_DIST_TIMEOUT");
  if (v == nullptr) return 600;
  char* end = nullptr;
  const long s = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || s <= 0 || s > 86400) {
    std::fprintf(stderr,
                 "moe: MOE_DIST_TIMEOUT=%s is not a number of seconds in 1..86400; "
                 "using 600\n",
                 v);
    return 600;
  }
  return static_cast<int>(s);
}

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, static_cast<size_t>(len));
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(int rank, int size) : rank_(rank), size_(size), timeout_(dist_timeout_seconds()) {
    watchdog_ = std::thread([this] { watch(); });
  }
  ~MpiCommunicator() override {
    stop_ = true;
    watchdog_.join();
    MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string describe() const override { return fmt::format("MPI, {} ranks", size_); }

  Status all_reduce_sum(std::span<float> data) override {
    return reduce(data.data(), static_cast<int64_t>(data.size()), MPI_FLOAT, MPI_SUM,
                  "all_reduce_sum");
  }
  Status all_reduce_sum(std::span<double> data) override {
    return reduce(data.data(), static_cast<int64_t>(data.size()), MPI_DOUBLE, MPI_SUM,
                  "all_reduce_sum");
  }
  Status all_reduce_max(std::span<double> data) override {
    return reduce(data.data(), static_cast<int64_t>(data.size()), MPI_DOUBLE, MPI_MAX,
                  "all_reduce_max");
  }

  Status broadcast(std::span<std::byte> data, int root) override {
    if (root < 0 || root >= size_)
      return Status::error("broadcast: root rank {} of a job of {}", root, size_);
    MOE_TRY(same_length("broadcast", static_cast<int64_t>(data.size())));
    for (size_t at = 0; at < data.size(); at += kMaxCount) {
      const int n = static_cast<int>(std::min<size_t>(kMaxCount, data.size() - at));
      MOE_TRY(check("broadcast", [&] {
        return MPI_Bcast(data.data() + at, n, MPI_BYTE, root, MPI_COMM_WORLD);
      }));
    }
    return Status::ok();
  }

  Status barrier() override {
    return check("barrier", [] { return MPI_Barrier(MPI_COMM_WORLD); });
  }

  Status all_to_all(std::span<const int64_t> send, std::span<int64_t> recv) override {
    const auto n = static_cast<size_t>(size_);
    if (send.size() != n || recv.size() != n)
      return Status::error("all_to_all: {} and {} counts for a job of {}", send.size(), recv.size(),
                           n);
    return check("all_to_all", [&] {
      return MPI_Alltoall(send.data(), 1, MPI_INT64_T, recv.data(), 1, MPI_INT64_T, MPI_COMM_WORLD);
    });
  }

  Status all_to_all_v(std::span<const float> send, std::span<const int64_t> send_counts,
                      std::span<float> recv, std::span<const int64_t> recv_counts) override {
    const auto n = static_cast<size_t>(size_);
    if (send_counts.size() != n || recv_counts.size() != n)
      return Status::error("all_to_all_v: {} and {} counts for a job of {}", send_counts.size(),
                           recv_counts.size(), n);
    std::vector<int> sc(n), sd(n), rc(n), rd(n);
    int64_t s_at = 0, r_at = 0;
    for (size_t q = 0; q < n; ++q) {
      if (send_counts[q] < 0 || recv_counts[q] < 0)
        return Status::error("all_to_all_v: a negative count");
      if (s_at + send_counts[q] > INT_MAX || r_at + recv_counts[q] > INT_MAX)
        return Status::error("all_to_all_v: more than {} values in one exchange", INT_MAX);
      sc[q] = static_cast<int>(send_counts[q]);
      sd[q] = static_cast<int>(s_at);
      rc[q] = static_cast<int>(recv_counts[q]);
      rd[q] = static_cast<int>(r_at);
      s_at += send_counts[q];
      r_at += recv_counts[q];
    }
    if (s_at != static_cast<int64_t>(send.size()) || r_at != static_cast<int64_t>(recv.size()))
      return Status::error("all_to_all_v: counts sum to {} and {}, buffers hold {} and {}", s_at,
                           r_at, send.size(), recv.size());
    // The receivers' expectations against what is sent: MPI would truncate silently.
    std::vector<int64_t> told(n);
    MOE_TRY(all_to_all(send_counts, told));
    Status wrong = Status::ok();
    for (size_t q = 0; q < n && wrong.is_ok(); ++q)
      if (told[q] != recv_counts[q])
        wrong = Status::error("all_to_all_v: rank {} sends {} values to rank {}, which expects {}",
                              q, told[q], rank_, recv_counts[q]);
    // Every rank stops if one does (a rank that went on alone would wait for the others).
    int64_t any_wrong = wrong.is_ok() ? 0 : 1;
    MOE_TRY(check("all_to_all_v", [&] {
      return MPI_Allreduce(MPI_IN_PLACE, &any_wrong, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    }));
    if (!wrong.is_ok()) return wrong;
    if (any_wrong != 0)
      return Status::error("all_to_all_v: another rank's counts do not match what it is sent");
    return check("all_to_all_v", [&] {
      return MPI_Alltoallv(send.data(), sc.data(), sd.data(), MPI_FLOAT, recv.data(), rc.data(),
                           rd.data(), MPI_FLOAT, MPI_COMM_WORLD);
    });
  }

 private:
  static constexpr size_t kMaxCount = size_t{1} << 28;

  // Runs one MPI call under the watchdog and turns its error code into a Status.
  template <typename Call>
  Status check(const char* op, Call call) {
    waiting_op_ = op;
    waiting_since_ = std::chrono::steady_clock::now().time_since_epoch().count();
    const int code = call();
    waiting_since_ = 0;
    if (code != MPI_SUCCESS)
      return Status::error("{} on rank {}: MPI: {}", op, rank_, mpi_error(code));
    return Status::ok();
  }

  // A length that differs between ranks would make MPI read past a buffer or hang: compare
  // first (the max and the min of the lengths must agree).
  Status same_length(const char* op, int64_t len) {
    int64_t both[2] = {len, -len};
    MOE_TRY(check(op, [&] {
      return MPI_Allreduce(MPI_IN_PLACE, both, 2, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    }));
    if (both[0] != -both[1])
      return Status::error("{}: the ranks passed different lengths ({} values here, from {} to {})",
                           op, len, -both[1], both[0]);
    return Status::ok();
  }

  // Reduce-scatter then all-gather: each element is combined once, by the rank that owns its
  // slice, so every rank gets the same bits, with the bandwidth of a ring all-reduce.
  Status reduce(void* data, int64_t len, MPI_Datatype type, MPI_Op op, const char* name) {
    MOE_TRY(same_length(name, len));
    if (len == 0) return Status::ok();
    int elem = 0;
    MPI_Type_size(type, &elem);
    auto* bytes = static_cast<char*>(data);
    const auto n = static_cast<size_t>(size_);
    std::vector<int> counts(n), displs(n);
    const int64_t piece = static_cast<int64_t>(kMaxCount);
    for (int64_t at = 0; at < len; at += piece) {
      const int64_t m = std::min(piece, len - at);
      for (size_t q = 0; q < n; ++q) {
        const int64_t lo = m * static_cast<int64_t>(q) / size_;
        const int64_t hi = m * static_cast<int64_t>(q + 1) / size_;
        counts[q] = static_cast<int>(hi - lo);
        displs[q] = static_cast<int>(lo);
      }
      char* base = bytes + at * elem;
      char* mine = base + static_cast<int64_t>(displs[static_cast<size_t>(rank_)]) * elem;
      part_.resize(static_cast<size_t>(counts[static_cast<size_t>(rank_)]) *
                   static_cast<size_t>(elem));
      MOE_TRY(check(name, [&] {
        return MPI_Reduce_scatter(base, part_.data(), counts.data(), type, op, MPI_COMM_WORLD);
      }));
      std::copy(part_.begin(), part_.end(), mine);
      MOE_TRY(check(name, [&] {
        return MPI_Allgatherv(MPI_IN_PLACE, 0, type, base, counts.data(), displs.data(), type,
                              MPI_COMM_WORLD);
      }));
    }
    return Status::ok();
  }

  void watch() {
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const int64_t since = waiting_since_;
      if (since == 0) continue;
      const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
      const double waited =
          std::chrono::duration<double>(std::chrono::steady_clock::duration(now - since)).count();
      if (waited > timeout_) {
        std::fprintf(stderr,
                     "moe: rank %d of %d waited %d s in %s for the other ranks (one stalled or "
                     "left); stopping the job (MOE_DIST_TIMEOUT sets the wait)\n",
                     rank_, size_, timeout_, waiting_op_.load());
        std::fflush(stderr);
        std::_Exit(1);
      }
    }
  }

  int rank_;
  int size_;
  int timeout_;
  std::vector<char> part_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> waiting_since_{0};
  std::atomic<const char*> waiting_op_{""};
  std::thread watchdog_;
};

}  // namespace

Result<std::unique_ptr<Communicator>> mpi_communicator() {
  static bool started = false;
  if (started) return Status::error("internal: MPI's world was opened twice in one process");
  started = true;
  int provided = 0;
  int code = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  if (code != MPI_SUCCESS) return Status::error("starting MPI: {}", mpi_error(code));
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return std::unique_ptr<Communicator>(std::make_unique<MpiCommunicator>(rank, size));
}

#endif

}  // namespace moe
