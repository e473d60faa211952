// The one-rank communicator and the thread group that stands in for N ranks in the tests.
#include "moe/dist/communicator.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace moe {

namespace {

// ---------------------------------------------------------------------------------------------
// One rank.

class SoloCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "one process"; }
  Status all_reduce_sum(std::span<float>) override { return Status::ok(); }
  Status all_reduce_sum(std::span<double>) override { return Status::ok(); }
  Status all_reduce_max(std::span<double>) override { return Status::ok(); }
  Status broadcast(std::span<std::byte>, int root) override {
    if (root != 0) return Status::error("broadcast: root rank {} of a job of 1", root);
    return Status::ok();
  }
  Status barrier() override { return Status::ok(); }
  Status all_to_all(std::span<const int64_t> send, std::span<int64_t> recv) override {
    if (send.size() != 1 || recv.size() != 1)
      return Status::error("all_to_all: {} and {} counts for a job of 1", send.size(), recv.size());
    recv[0] = send[0];
    return Status::ok();
  }
  Status all_to_all_v(std::span<const float> send, std::span<const int64_t> send_counts,
                      std::span<float> recv, std::span<const int64_t> recv_counts) override {
    if (send_counts.size() != 1 || recv_counts.size() != 1 || send_counts[0] != recv_counts[0] ||
        static_cast<int64_t>(send.size()) != send_counts[0] ||
        static_cast<int64_t>(recv.size()) != recv_counts[0])
      return Status::error("all_to_all_v: counts do not match the buffers (job of 1)");
    std::copy(send.begin(), send.end(), recv.begin());
    return Status::ok();
  }
};

// ---------------------------------------------------------------------------------------------
// N threads of one process. Each collective publishes its rank's pointers in the hub, meets the
// others at a barrier, works on the published buffers, and meets them again before returning
// (so no rank leaves while another still reads its buffers).

struct Hub {
  explicit Hub(int n) : n(n), in(n), out(n), len(n), counts(n), op(n) {}

  // Blocks until all n ranks arrive; false after `timeout` (the group is then broken for good:
  // a rank that stalls or left makes every later collective fail too, never hang).
  bool meet(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(mu);
    if (broken) return false;
    const uint64_t gen = generation;
    if (++arrived == n) {
      arrived = 0;
      ++generation;
      cv.notify_all();
      return true;
    }
    if (!cv.wait_for(lock, timeout, [&] { return generation != gen || broken; }) || broken) {
      broken = true;
      cv.notify_all();
      return false;
    }
    return true;
  }

  const int n;
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  uint64_t generation = 0;
  bool broken = false;
  // Published by each rank for the collective in progress.
  std::vector<const void*> in;
  std::vector<void*> out;
  std::vector<int64_t> len;
  std::vector<const int64_t*> counts;
  std::vector<const char*> op;
};

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<Hub> hub, int rank, std::chrono::seconds timeout)
      : hub_(std::move(hub)), rank_(rank), timeout_(timeout) {}

  int rank() const override { return rank_; }
  int size() const override { return hub_->n; }
  std::string describe() const override { return fmt::format("{} threads", hub_->n); }

  Status all_reduce_sum(std::span<float> data) override {
    return reduce(data, "all_reduce_sum", Sum{});
  }
  Status all_reduce_sum(std::span<double> data) override {
    return reduce(data, "all_reduce_sum", Sum{});
  }
  Status all_reduce_max(std::span<double> data) override {
    return reduce(data, "all_reduce_max", Max{});
  }

  Status broadcast(std::span<std::byte> data, int root) override {
    if (root < 0 || root >= size())
      return Status::error("broadcast: root rank {} of a job of {}", root, size());
    MOE_TRY(publish("broadcast", data.data(), data.data(), static_cast<int64_t>(data.size())));
    if (rank_ != root && !data.empty())
      std::memcpy(data.data(), hub_->in[static_cast<size_t>(root)], data.size());
    return meet("broadcast");
  }

  Status barrier() override {
    MOE_TRY(publish("barrier", nullptr, nullptr, 0));
    return meet("barrier");  // no rank publishes the next collective while another checks this one
  }

  Status all_to_all(std::span<const int64_t> send, std::span<int64_t> recv) override {
    const auto n = static_cast<size_t>(size());
    if (send.size() != n || recv.size() != n)
      return Status::error("all_to_all: {} and {} counts for a job of {}", send.size(), recv.size(),
                           n);
    MOE_TRY(publish("all_to_all", send.data(), recv.data(), static_cast<int64_t>(n)));
    for (size_t q = 0; q < n; ++q)
      recv[q] = static_cast<const int64_t*>(hub_->in[q])[static_cast<size_t>(rank_)];
    return meet("all_to_all");
  }

  Status all_to_all_v(std::span<const float> send, std::span<const int64_t> send_counts,
                      std::span<float> recv, std::span<const int64_t> recv_counts) override {
    const auto n = static_cast<size_t>(size());
    if (send_counts.size() != n || recv_counts.size() != n)
      return Status::error("all_to_all_v: {} and {} counts for a job of {}", send_counts.size(),
                           recv_counts.size(), n);
    int64_t sent = 0, received = 0;
    for (size_t q = 0; q < n; ++q) {
      if (send_counts[q] < 0 || recv_counts[q] < 0)
        return Status::error("all_to_all_v: a negative count");
      sent += send_counts[q];
      received += recv_counts[q];
    }
    if (sent != static_cast<int64_t>(send.size()) || received != static_cast<int64_t>(recv.size()))
      return Status::error("all_to_all_v: counts sum to {} and {}, buffers hold {} and {}", sent,
                           received, send.size(), recv.size());
    hub_->counts[static_cast<size_t>(rank_)] = send_counts.data();
    MOE_TRY(publish("all_to_all_v", send.data(), recv.data(), sent));
    Status st = Status::ok();
    int64_t at = 0;
    for (size_t q = 0; q < n; ++q) {
      const int64_t* their = hub_->counts[q];
      int64_t from = 0;
      for (int j = 0; j < rank_; ++j) from += their[j];
      const int64_t count = their[rank_];
      if (count != recv_counts[q]) {
        st = Status::error("all_to_all_v: rank {} sends {} values to rank {}, which expects {}", q,
                           count, rank_, recv_counts[q]);
        break;
      }
      if (count > 0)  // an empty buffer's data() may be null, which memcpy may not be given
        std::memcpy(recv.data() + at, static_cast<const float*>(hub_->in[q]) + from,
                    static_cast<size_t>(count) * sizeof(float));
      at += count;
    }
    MOE_TRY(meet("all_to_all_v"));
    return st;
  }

 private:
  struct Sum {
    template <typename T>
    T operator()(T a, T b) const {
      return a + b;
    }
  };
  struct Max {
    template <typename T>
    T operator()(T a, T b) const {
      return std::max(a, b);
    }
  };

  Status meet(const char* op) {
    if (hub_->meet(timeout_)) return Status::ok();
    return Status::error("{}: rank {} waited {} s for the other ranks of {} (one stalled or left)",
                         op, rank_, timeout_.count(), hub_->n);
  }

  // Publishes this rank's buffers and meets the others; then checks they all run the same
  // collective with the same length.
  Status publish(const char* op, const void* in, void* out, int64_t len) {
    const auto r = static_cast<size_t>(rank_);
    hub_->in[r] = in;
    hub_->out[r] = out;
    hub_->len[r] = len;
    hub_->op[r] = op;
    MOE_TRY(meet(op));
    for (size_t q = 0; q < hub_->in.size(); ++q) {
      if (std::strcmp(hub_->op[q], op) != 0) {
        Status st = Status::error("{}: rank {} called {} at the same point", op, q, hub_->op[q]);
        (void)meet(op);
        return st;
      }
      if (std::strcmp(op, "all_to_all_v") != 0 && hub_->len[q] != len) {
        Status st = Status::error("{}: rank {} passed {} values, rank {} passed {}", op, q,
                                  hub_->len[q], rank_, len);
        (void)meet(op);
        return st;
      }
    }
    return Status::ok();
  }

  // Each rank sums its own slice of the elements over all ranks in rank order, then writes it
  // into every rank's buffer: one sum per element, the same bits everywhere.
  template <typename T, typename Op>
  Status reduce(std::span<T> data, const char* op, Op combine) {
    const auto len = static_cast<int64_t>(data.size());
    MOE_TRY(publish(op, data.data(), data.data(), len));
    const int64_t n = hub_->n;
    const int64_t lo = len * rank_ / n, hi = len * (rank_ + 1) / n;
    scratch_.resize(static_cast<size_t>(std::max<int64_t>(hi - lo, 0)) * sizeof(T));
    T* part = reinterpret_cast<T*>(scratch_.data());
    for (int64_t i = lo; i < hi; ++i) {
      T acc = static_cast<const T*>(hub_->in[0])[i];
      for (int64_t q = 1; q < n; ++q)
        acc = combine(acc, static_cast<const T*>(hub_->in[static_cast<size_t>(q)])[i]);
      part[i - lo] = acc;
    }
    MOE_TRY(meet(op));  // every rank has read every input
    if (hi > lo)
      for (int64_t q = 0; q < n; ++q)
        std::memcpy(static_cast<T*>(hub_->out[static_cast<size_t>(q)]) + lo, part,
                    static_cast<size_t>(hi - lo) * sizeof(T));
    return meet(op);
  }

  std::shared_ptr<Hub> hub_;
  int rank_;
  std::chrono::seconds timeout_;
  std::vector<std::byte> scratch_;
};

}  // namespace

std::unique_ptr<Communicator> solo_communicator() {
  return std::make_unique<SoloCommunicator>();
}

std::vector<std::unique_ptr<Communicator>> thread_group(int n) {
  auto hub = std::make_shared<Hub>(n);
  std::vector<std::unique_ptr<Communicator>> ranks;
  ranks.reserve(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r)
    ranks.push_back(std::make_unique<ThreadCommunicator>(hub, r, std::chrono::seconds(60)));
  return ranks;
}

bool launched_by_mpi() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr ||
         std::getenv("PMI_SIZE") != nullptr;
}

}  // namespace moe
