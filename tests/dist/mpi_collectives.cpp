// The collectives over MPI, run by every rank of `mpirun -np N` (label mpi; tests/CMakeLists.txt
// runs it at 2 and 3 ranks). Each rank runs every test; a failure on any rank fails the job.
#include <gtest/gtest.h>

#include <cstdio>

#include "dist/collectives.h"

namespace moe {
namespace {

Communicator* world = nullptr;

TEST(MpiCommunicator, EveryCollective) {
  ASSERT_TRUE(launched_by_mpi());
  EXPECT_EQ(world->describe(), fmt::format("MPI, {} ranks", world->size()));
  testing::check_collectives(*world);
}

TEST(MpiCommunicator, LengthsThatDifferBetweenRanksAreRefusedOnEveryRank) {
  testing::check_length_mismatch(*world);
}

TEST(MpiCommunicator, SumsHaveTheSameBitsOnEveryRank) {
  // Order-dependent float sums: whatever order MPI takes, rank 0's bits go to every rank.
  std::vector<float> x(40000);  // the ring
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = (world->rank() % 2 == 0 ? 1e8f : 1.0f) * static_cast<float>(i % 7 + 1) *
           (world->rank() == 1 ? -1.0f : 1.0f);
  ASSERT_TRUE(world->all_reduce_sum(std::span<float>(x)).is_ok());
  std::vector<float> root = x;
  ASSERT_TRUE(world->broadcast(std::as_writable_bytes(std::span<float>(root)), 0).is_ok());
  EXPECT_EQ(0, std::memcmp(root.data(), x.data(), x.size() * sizeof(float)));
}

}  // namespace
}  // namespace moe

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto comm = moe::mpi_communicator();
  if (!comm.is_ok()) {
    std::fprintf(stderr, "%s\n", comm.status().message().c_str());
    return 1;
  }
  moe::world = comm->get();
  const int failed = RUN_ALL_TESTS();
  // Every rank's verdict, so that no rank leaves while another still waits in a collective.
  double any[1] = {static_cast<double>(failed)};
  if (!moe::world->all_reduce_max(any).is_ok()) return 1;
  return any[0] != 0 ? 1 : 0;
}
