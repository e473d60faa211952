// The communicators without a launcher: one rank, and threads standing in for N ranks.
#include <thread>

#include "dist/collectives.h"

namespace moe {
namespace {

// Runs `body` on every rank of a thread group of n.
template <typename Body>
void on_ranks(int n, Body body) {
  std::vector<std::unique_ptr<Communicator>> ranks = thread_group(n);
  std::vector<std::thread> threads;
  for (auto& c : ranks) threads.emplace_back([&body, &c] { body(*c); });
  for (auto& t : threads) t.join();
}

TEST(Communicator, OneRankIsTheIdentity) {
  std::unique_ptr<Communicator> c = solo_communicator();
  EXPECT_EQ(c->size(), 1);
  testing::check_collectives(*c);
}

TEST(Communicator, ThreadGroupsOfTwoThreeAndFiveRanks) {
  for (int n : {1, 2, 3, 5}) on_ranks(n, [](Communicator& c) { testing::check_collectives(c); });
}

TEST(Communicator, LengthsThatDifferBetweenRanksAreRefusedOnEveryRank) {
  on_ranks(3, [](Communicator& c) { testing::check_length_mismatch(c); });
}

TEST(Communicator, SumsHaveTheSameBitsOnEveryRankInRankOrder) {
  // Values whose float sum depends on the order: rank order, ((a + b) + c), on every rank.
  const float v[3] = {1e8f, 1.0f, -1e8f};
  std::vector<float> got(3);
  on_ranks(3, [&](Communicator& c) {
    std::vector<float> x = {v[c.rank()]};
    ASSERT_TRUE(c.all_reduce_sum(std::span<float>(x)).is_ok());
    got[static_cast<size_t>(c.rank())] = x[0];
  });
  const float want = (v[0] + v[1]) + v[2];
  for (float g : got) EXPECT_EQ(g, want);
}

TEST(Communicator, AllToAllVRefusesCountsTheSendersDoNotSend) {
  on_ranks(2, [](Communicator& c) {
    std::vector<int64_t> send_counts = {1, 1}, recv_counts = {1, 2};  // expects 2 from rank 1
    std::vector<float> send = {1, 2}, recv(3);
    const Status st = c.all_to_all_v(send, send_counts, recv, recv_counts);
    if (c.rank() == 0 || c.rank() == 1) {
      ASSERT_FALSE(st.is_ok());
      EXPECT_NE(st.message().find("expects"), std::string::npos) << st.message();
    }
  });
}

TEST(Communicator, BuffersThatDoNotMatchTheirCountsAreRefusedBeforeAnyExchange) {
  std::unique_ptr<Communicator> c = solo_communicator();
  std::vector<int64_t> counts = {3};
  std::vector<float> send(2), recv(3);
  EXPECT_FALSE(c->all_to_all_v(send, counts, recv, counts).is_ok());
  int64_t x = 0;
  EXPECT_FALSE(c->broadcast(std::as_writable_bytes(std::span<int64_t>(&x, 1)), 1).is_ok());
}

}  // namespace
}  // namespace moe
