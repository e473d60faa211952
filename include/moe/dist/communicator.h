// The ranks of one training job and the collective operations among them.
//
// A run on one machine has one rank (`solo_communicator`). `mpirun -np N moe ...` gives N ranks
// over MPI (`mpi_communicator`, OpenMPI in the default build). The tests stand N threads of one
// process in for N ranks (`thread_group`), so they need no launcher.
//
// Every operation is collective: every rank calls it, in the same order, with the same lengths
// (a length that differs between ranks is reported as an error on every rank, not a hang, where
// the implementation can see it). Floating-point sums give the same bits on every rank (each
// element is summed once, by one rank, and the result sent to all), so replicated parameters stay
// identical; the thread group sums in rank order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "moe/core/status.h"

namespace moe {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "one process", "2 threads", "MPI, 2 ranks": for messages and summary.json.
  virtual std::string describe() const = 0;

  // Element-wise sums (max) over the ranks, in place; the same length on every rank.
  virtual Status all_reduce_sum(std::span<float> data) = 0;
  virtual Status all_reduce_sum(std::span<double> data) = 0;
  virtual Status all_reduce_max(std::span<double> data) = 0;
  // `root`'s bytes to every rank.
  virtual Status broadcast(std::span<std::byte> data, int root) = 0;
  virtual Status barrier() = 0;
  // One count to and from each rank: recv[q] = what rank q put at send[rank()]. Both hold size().
  virtual Status all_to_all(std::span<const int64_t> send, std::span<int64_t> recv) = 0;
  // Variable parts: `send` holds send_counts[0] values for rank 0, then send_counts[1] for rank
  // 1, ...; `recv` receives recv_counts[q] values from each rank q in rank order. recv_counts
  // must equal what the senders send (the counts of an all_to_all first): checked by exchanging
  // them again.
  virtual Status all_to_all_v(std::span<const float> send, std::span<const int64_t> send_counts,
                              std::span<float> recv, std::span<const int64_t> recv_counts) = 0;
  // The same when every rank derived its counts from one table every rank holds (the
  // expert-parallel exchange does): MPI then skips the check's two small collectives.
  virtual Status all_to_all_v_agreed(std::span<const float> send,
                                     std::span<const int64_t> send_counts, std::span<float> recv,
                                     std::span<const int64_t> recv_counts) {
    return all_to_all_v(send, send_counts, recv, recv_counts);
  }

  bool is_root() const { return rank() == 0; }
};

// One rank: every collective is the identity.
std::unique_ptr<Communicator> solo_communicator();

// `n` ranks as threads of this process: element r is rank r's, to be used from its own thread
// (they block until every rank reaches the same collective).
std::vector<std::unique_ptr<Communicator>> thread_group(int n);

// True when this process was started by an MPI launcher (mpirun sets OMPI_COMM_WORLD_SIZE, PMIx
// launchers PMIX_RANK), so the command joins its job instead of running alone.
bool launched_by_mpi();

// Whether this build has MPI (cmake -DMOE_USE_MPI=OFF leaves it out).
bool built_with_mpi();

// MPI's world, initialised on the first call and finalised when the returned object is
// destroyed (once per process). An error names what MPI reported, or that this build lacks MPI.
Result<std::unique_ptr<Communicator>> mpi_communicator();

}  // namespace moe
