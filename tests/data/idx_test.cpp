#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "data_testing.h"
#include "moe/data/idx.h"

namespace moe {
namespace {

using testing::TempDir;

// An IDX header: magic (0, 0, type, rank) and big-endian dimension sizes.
std::string header(uint8_t type, uint8_t rank, const std::vector<uint32_t>& dims) {
  std::string h = {0, 0, static_cast<char>(type), static_cast<char>(rank)};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) h.push_back(static_cast<char>((d >> s) & 0xFF));
  return h;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

IdxArray images_2x2() {
  return IdxArray{{3, 2, 2}, {0, 255, 51, 102, 1, 2, 3, 4, 255, 255, 0, 0}};
}

TEST(Idx, PlainAndGzippedRoundTrip) {
  TempDir dir;
  const IdxArray images = images_2x2();
  const IdxArray labels{{3}, {7, 0, 9}};
  for (bool gz : {false, true}) {
    // The gzipped pair has no .gz in its names: gzip is detected by its magic bytes.
    const std::string img = dir.path(gz ? "img_z" : "img");
    const std::string lab = dir.path(gz ? "lab_z" : "lab");
    ASSERT_TRUE(write_idx(img, images, gz).is_ok());
    ASSERT_TRUE(write_idx(lab, labels, gz).is_ok());
    EXPECT_EQ(static_cast<unsigned char>(slurp(img)[0]), gz ? 0x1f : 0x00);

    Result<IdxArray> back = read_idx(img);
    ASSERT_TRUE(back.is_ok()) << back.status().message();
    EXPECT_EQ(back->dims, images.dims);
    EXPECT_EQ(back->data, images.data);

    Result<Dataset> d = load_idx_images(img, lab);
    ASSERT_TRUE(d.is_ok()) << d.status().message();
    EXPECT_EQ(d->n_rows, 3);
    EXPECT_EQ(d->n_features, 4);
    EXPECT_EQ(d->kind, FeatureKind::kDense);
    EXPECT_FLOAT_EQ(d->dense[0], 0.0f);
    EXPECT_FLOAT_EQ(d->dense[1], 1.0f);
    EXPECT_FLOAT_EQ(d->dense[2], 0.2f);
    EXPECT_EQ(d->labels, (std::vector<int32_t>{7, 0, 9}));
    EXPECT_EQ(d->n_classes, 10);
    EXPECT_EQ(d->source_rows, (std::vector<int64_t>{0, 1, 2}));
  }
  Result<Dataset> unlabelled = load_idx_images(dir.path("img"), "");
  ASSERT_TRUE(unlabelled.is_ok());
  EXPECT_FALSE(unlabelled->has_labels);
}

TEST(Idx, EachCorruptionHasItsOwnMessage) {
  TempDir dir;
  struct Case {
    const char* name;
    std::string bytes;
    std::string expected;
  };
  const uint32_t big = 0xFFFFFFFFu;
  std::string bad_magic = header(0x08, 1, {1}) + "x";
  bad_magic[0] = '\x01';
  const std::vector<Case> cases = {
      {"short", std::string(2, '\0'), "truncated: 2 bytes, an IDX header needs at least 4"},
      {"magic", bad_magic, "bad magic number 0x01000801"},
      {"type", header(0x05, 1, {1}) + "x", "unknown IDX type code 0x05"},
      {"float", header(0x0D, 1, {1}) + "abcd",
       "IDX type code 0x0d (float32) is not supported, only 0x08"},
      {"rank0", header(0x08, 0, {}), "IDX rank 0 is outside 1..4"},
      {"rank5", header(0x08, 5, {1, 1, 1, 1, 1}) + "x", "IDX rank 5 is outside 1..4"},
      {"header", header(0x08, 3, {2}), "truncated header: rank 3 needs 16 bytes, the file has 8"},
      {"short_data", header(0x08, 3, {2, 2, 2}) + std::string(7, 'x'),
       "truncated: dimensions [2, 2, 2] need 8 data bytes after the 16-byte header, "
       "the file has 7"},
      {"long_data", header(0x08, 1, {2}) + "xyz",
       "1 unexpected byte after the data (dimensions [2] end at byte offset 10)"},
      {"overflow", header(0x08, 4, {big, big, big, big}),
       "dimensions [4294967295, 4294967295, 4294967295, 4294967295] hold more elements "
       "than 64 bits count"},
      {"not_gzip", "\x1f\x8b garbage that is not deflate data", "corrupt gzip data"},
  };
  for (const Case& c : cases) {
    const std::string path = dir.write(c.name, c.bytes);
    Result<IdxArray> r = read_idx(path);
    ASSERT_FALSE(r.is_ok()) << c.name;
    EXPECT_NE(r.status().message().find(path + ": " + c.expected), std::string::npos)
        << c.name << ": " << r.status().message();
  }

  // A gzip stream cut short, and one with trailing garbage.
  const std::string whole = dir.path("whole.gz");
  ASSERT_TRUE(write_idx(whole, images_2x2(), true).is_ok());
  const std::string packed = slurp(whole);
  const std::string cut = dir.write("cut.gz", packed.substr(0, packed.size() / 2));
  EXPECT_NE(read_idx(cut).status().message().find("cut.gz: truncated gzip data"), std::string::npos)
      << read_idx(cut).status().message();
  const std::string tail = dir.write("tail.gz", packed + "zz");
  EXPECT_NE(read_idx(tail).status().message().find("tail.gz: 2 unexpected bytes after the gzip"),
            std::string::npos)
      << read_idx(tail).status().message();
  EXPECT_NE(read_idx(dir.path("absent")).status().message().find("absent: cannot open"),
            std::string::npos);
  // The size limit holds for the decompressed bytes.
  const std::string zeros = dir.path("zeros.gz");
  ASSERT_TRUE(write_idx(zeros, IdxArray{{10, 10, 10}, std::vector<uint8_t>(1000)}, true).is_ok());
  IdxLimits limit;
  limit.max_file_bytes = 500;
  EXPECT_NE(read_idx(zeros, limit)
                .status()
                .message()
                .find("zeros.gz: decompresses to more than the 500 bytes limit"),
            std::string::npos)
      << read_idx(zeros, limit).status().message();
}

TEST(Idx, ImageAndLabelFilesMustAgree) {
  TempDir dir;
  const std::string img = dir.path("img");
  ASSERT_TRUE(write_idx(img, images_2x2(), false).is_ok());
  const std::string few = dir.path("few");
  ASSERT_TRUE(write_idx(few, IdxArray{{2}, {1, 2}}, false).is_ok());
  EXPECT_EQ(load_idx_images(img, few).status().message(),
            few + ": 2 labels, but " + img + " holds 3 images");
  const std::string out_of_range = dir.path("range");
  ASSERT_TRUE(write_idx(out_of_range, IdxArray{{3}, {1, 12, 2}}, false).is_ok());
  EXPECT_EQ(load_idx_images(img, out_of_range).status().message(),
            out_of_range + ": label 12 of record 1 (byte offset 9) is outside [0, 10)");
  const std::string matrix = dir.path("matrix");
  ASSERT_TRUE(write_idx(matrix, IdxArray{{3, 1}, {1, 2, 3}}, false).is_ok());
  EXPECT_EQ(load_idx_images(img, matrix).status().message(),
            matrix + ": labels need rank 1 ([N]), the file has rank 2");
  EXPECT_EQ(load_idx_images(few, "").status().message(),
            few + ": images need rank 2 or more ([N, H, W]), the file has rank 1");
}

TEST(Idx, IntegerLabelNamesSortNumerically) {
  EXPECT_EQ(integer_label_spec(3).class_names, (std::vector<std::string>{"0", "1", "2"}));
  const LabelSpec twelve = integer_label_spec(12);
  EXPECT_EQ(twelve.class_names[2], "02");
  EXPECT_EQ(twelve.class_id("11"), 11);
  EXPECT_TRUE(std::is_sorted(twelve.class_names.begin(), twelve.class_names.end()));
}

}  // namespace
}  // namespace moe
