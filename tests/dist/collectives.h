// Checks of every collective that hold for any job size, run by each rank of a job: by threads
// standing in for ranks (communicator_test.cpp, label unit) and by MPI ranks under mpirun
// (mpi_collectives.cpp, label mpi). They use GoogleTest's EXPECT, which is thread-safe.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "moe/dist/communicator.h"

namespace moe::testing {

// A value rank r holds at element i: distinct per rank and element, exact in float.
inline float rank_value(int r, int64_t i) {
  return static_cast<float>(r * 1000 + i % 997) * 0.5f;
}

inline void check_collectives(Communicator& c) {
  const int n = c.size(), r = c.rank();
  // Sums over lengths that do and do not divide among the ranks (0, 1, fewer than n, many).
  // Past 64 KiB the MPI sums go round a ring (mpi_communicator.cpp).
  for (int64_t len :
       {int64_t{0}, int64_t{1}, int64_t{2}, int64_t{7}, int64_t{1000}, int64_t{40001}}) {
    std::vector<float> f(static_cast<size_t>(len));
    std::vector<double> d(static_cast<size_t>(len));
    for (int64_t i = 0; i < len; ++i) {
      f[static_cast<size_t>(i)] = rank_value(r, i);
      d[static_cast<size_t>(i)] = rank_value(r, i) + 0.25;
    }
    ASSERT_TRUE(c.all_reduce_sum(std::span<float>(f)).is_ok());
    ASSERT_TRUE(c.all_reduce_sum(std::span<double>(d)).is_ok());
    for (int64_t i = 0; i < len; ++i) {
      float want = 0;
      double want_d = 0;
      for (int q = 0; q < n; ++q) {
        want += rank_value(q, i);
        want_d += rank_value(q, i) + 0.25;
      }
      EXPECT_EQ(f[static_cast<size_t>(i)], want) << "len " << len << " element " << i;
      EXPECT_EQ(d[static_cast<size_t>(i)], want_d) << "len " << len << " element " << i;
    }
  }
  // Max.
  std::vector<double> m = {static_cast<double>(r), -static_cast<double>(r), r == n - 1 ? 9.0 : 1.0};
  ASSERT_TRUE(c.all_reduce_max(m).is_ok());
  EXPECT_EQ(m[0], n - 1);
  EXPECT_EQ(m[1], 0.0);
  EXPECT_EQ(m[2], 9.0);
  // Broadcast from every root.
  for (int root = 0; root < n; ++root) {
    int64_t v[2] = {r, 100 + r};
    ASSERT_TRUE(c.broadcast(std::as_writable_bytes(std::span<int64_t>(v)), root).is_ok());
    EXPECT_EQ(v[0], root);
    EXPECT_EQ(v[1], 100 + root);
  }
  EXPECT_TRUE(c.barrier().is_ok());
  // all_to_all then all_to_all_v: rank r sends q + r + 1 values to rank q, each naming (r, q, k).
  std::vector<int64_t> send_counts(static_cast<size_t>(n)), recv_counts(static_cast<size_t>(n));
  std::vector<float> send;
  for (int q = 0; q < n; ++q) {
    send_counts[static_cast<size_t>(q)] = q + r + 1;
    for (int k = 0; k < q + r + 1; ++k) send.push_back(static_cast<float>(r * 10000 + q * 100 + k));
  }
  ASSERT_TRUE(c.all_to_all(send_counts, recv_counts).is_ok());
  for (int q = 0; q < n; ++q) EXPECT_EQ(recv_counts[static_cast<size_t>(q)], r + q + 1);
  std::vector<float> recv(
      static_cast<size_t>(std::accumulate(recv_counts.begin(), recv_counts.end(), int64_t{0})));
  ASSERT_TRUE(c.all_to_all_v(send, send_counts, recv, recv_counts).is_ok());
  size_t at = 0;
  for (int q = 0; q < n; ++q)
    for (int k = 0; k < q + r + 1; ++k)
      EXPECT_EQ(recv[at++], static_cast<float>(q * 10000 + r * 100 + k)) << "from rank " << q;
  // The round trip: what came back out, sent back, is what went.
  std::vector<float> back(send.size());
  ASSERT_TRUE(c.all_to_all_v(recv, recv_counts, back, send_counts).is_ok());
  EXPECT_EQ(back, send);
  // The same with counts every rank agrees on (no check exchange).
  std::vector<float> again(send.size());
  ASSERT_TRUE(c.all_to_all_v_agreed(recv, recv_counts, again, send_counts).is_ok());
  EXPECT_EQ(again, send);
}

// Lengths that differ between ranks are an error on every rank, not a hang or an overrun.
inline void check_length_mismatch(Communicator& c) {
  std::vector<float> f(static_cast<size_t>(3 + c.rank()), 1.0f);
  const Status st = c.all_reduce_sum(std::span<float>(f));
  if (c.size() > 1) {
    ASSERT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find("all_reduce_sum"), std::string::npos) << st.message();
  }
  // The job goes on: a collective after the refused one works.
  std::vector<double> d = {1.0};
  ASSERT_TRUE(c.all_reduce_sum(std::span<double>(d)).is_ok());
  EXPECT_EQ(d[0], c.size());
}

}  // namespace moe::testing
