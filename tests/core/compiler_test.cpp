// A check on the compiler rather than on moe: GCC 12 (Debian 12's 12.2.0) with AVX-512 enabled
// (-march=native on this machine) miscompiles a constant initialiser list whose first half is one
// repeated value and whose second half is zeros: its SLP vectoriser stores the broadcast value
// over the whole vector, so std::vector<double>{0.5, 0.5, 0.0, 0.0} holds four 0.5s. The root
// CMakeLists.txt turns that vectoriser off for GCC < 13 (the loop vectoriser the kernels rely on
// is a separate pass); these cases fail if a build ever loses that guard.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace {

TEST(Compiler, HalfSplatHalfZeroInitialiserListsKeepTheirZeros) {
  const std::vector<double> d = {0.5, 0.5, 0.0, 0.0};
  ASSERT_EQ(d.size(), 4U);
  EXPECT_EQ(d[0], 0.5);
  EXPECT_EQ(d[1], 0.5);
  EXPECT_EQ(d[2], 0.0);
  EXPECT_EQ(d[3], 0.0);

  const std::vector<float> f = {0.5F, 0.5F, 0.5F, 0.5F, 0.0F, 0.0F, 0.0F, 0.0F};
  ASSERT_EQ(f.size(), 8U);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(f[i], i < 4 ? 0.5F : 0.0F) << "element " << i;

  const std::vector<int64_t> l = {7, 7, 0, 0};
  ASSERT_EQ(l.size(), 4U);
  EXPECT_EQ(l[2], 0);
  EXPECT_EQ(l[3], 0);
}

}  // namespace
