// The safetensors reader and writer: round trips of every dtype and rank, the atomic write, and a
// table of handcrafted corrupt files, each rejected with its own message naming the file and,
// where there is one, the tensor.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "moe/io/safetensors.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSource = "bad.safetensors";

// A scratch directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            fmt::format("moe_safetensors_{}_{}_{}", info->name(), ::getpid(), counter_++);
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path_)) names.push_back(e.path().filename());
    return names;
  }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

// 8-byte little-endian length, the header text, then `data_bytes` bytes of data.
std::vector<uint8_t> make_file(const std::string& header, size_t data_bytes,
                               uint64_t declared_len) {
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<uint8_t>(declared_len >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  for (size_t i = 0; i < data_bytes; ++i) out[8 + header.size() + i] = static_cast<uint8_t>(i * 7);
  return out;
}

std::vector<uint8_t> make_file(const std::string& header, size_t data_bytes) {
  return make_file(header, data_bytes, header.size());
}

// Tensors of every dtype and rank 0 to 4, two of them empty, with recognisable contents.
struct Sample {
  std::vector<TensorBuffer> buffers;
  std::vector<NamedTensor> named;
};

Sample make_sample() {
  struct Spec {
    const char* name;
    DType dtype;
    Shape shape;
  };
  const Spec specs[] = {
      {"scalar_f32", DType::kF32, Shape{}},          {"layer.weight", DType::kF32, Shape{3, 5}},
      {"bf16_vec", DType::kBF16, Shape{7}},          {"f64_cube", DType::kF64, Shape{2, 3, 4}},
      {"i64_rank4", DType::kI64, Shape{2, 1, 3, 2}}, {"i32_ids", DType::kI32, Shape{9}},
      {"i8_codes", DType::kI8, Shape{4, 4}},         {"u8_mask", DType::kU8, Shape{1, 13}},
      {"empty_rows", DType::kF32, Shape{0, 8}},      {"empty_middle", DType::kI32, Shape{3, 0, 2}},
  };
  Sample s;
  for (const Spec& spec : specs) {
    TensorBuffer b(spec.shape, spec.dtype);
    auto* bytes = static_cast<uint8_t*>(b.view().raw());
    for (size_t i = 0; i < b.view().nbytes(); ++i)
      bytes[i] = static_cast<uint8_t>(i * 31 + spec.shape.rank * 7 + 1);
    s.named.push_back({spec.name, b.view()});
    s.buffers.push_back(std::move(b));
  }
  return s;
}

bool same_bytes(Tensor a, Tensor b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

void expect_matches(const SafetensorsFile& f, const Sample& s) {
  ASSERT_EQ(f.entries().size(), s.named.size());
  for (size_t i = 0; i < s.named.size(); ++i) {
    const NamedTensor& want = s.named[i];
    EXPECT_EQ(f.entries()[i].name, want.name) << "file order";
    ASSERT_TRUE(f.contains(want.name));
    EXPECT_EQ(f.find(want.name)->dtype, want.tensor.dtype()) << want.name;
    EXPECT_EQ(f.find(want.name)->shape, want.tensor.shape()) << want.name;
    auto loaded = f.load(want.name);
    ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
    EXPECT_TRUE(same_bytes(loaded->view(), want.tensor)) << want.name;
    TensorBuffer into(want.tensor.shape(), want.tensor.dtype());
    ASSERT_TRUE(f.read_into(want.name, into).is_ok());
    EXPECT_TRUE(same_bytes(into.view(), want.tensor)) << want.name;
  }
}

TEST(Safetensors, RoundTripEveryDtypeAndRank) {
  const Sample s = make_sample();
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"step", "1200"}, {"note", "ünïcode \"quoted\""}};
  std::vector<uint8_t> bytes = encode_safetensors(s.named, metadata);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | bytes[static_cast<size_t>(i)];
  EXPECT_EQ((8 + header_len) % 8, 0u) << "data starts 8-byte aligned";
  auto f = SafetensorsFile::parse(std::move(bytes), "memory");
  ASSERT_TRUE(f.is_ok()) << f.status().message();
  EXPECT_EQ(f->source(), "memory");
  EXPECT_EQ(f->metadata(), metadata);
  expect_matches(*f, s);
  EXPECT_EQ(f->find("scalar_f32")->shape.rank, 0);
  EXPECT_EQ(f->find("scalar_f32")->end - f->find("scalar_f32")->begin, 4u);
  EXPECT_EQ(f->find("empty_middle")->begin, f->find("empty_middle")->end);
}

TEST(Safetensors, RoundTripThroughAFile) {
  TempDir dir;
  const Sample s = make_sample();
  const std::string path = dir.file("model.safetensors");
  ASSERT_TRUE(write_safetensors(path, s.named, {{"k", "v"}}).is_ok());
  auto f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.is_ok()) << f.status().message();
  EXPECT_EQ(f->source(), path);
  EXPECT_EQ(f->metadata().at("k"), "v");
  expect_matches(*f, s);
}

TEST(Safetensors, EmptyFileHoldsNoTensors) {
  auto f = SafetensorsFile::parse(encode_safetensors({}), "empty");
  ASSERT_TRUE(f.is_ok()) << f.status().message();
  EXPECT_TRUE(f->entries().empty());
  EXPECT_TRUE(f->metadata().empty());
  EXPECT_FALSE(f->contains("anything"));
}

TEST(Safetensors, FileOrderIsKept) {
  TensorBuffer a(Shape{2}), b(Shape{3});
  auto f =
      SafetensorsFile::parse(encode_safetensors({{"zeta", a}, {"alpha", b}, {"mid", a}}), "order");
  ASSERT_TRUE(f.is_ok()) << f.status().message();
  ASSERT_EQ(f->entries().size(), 3u);
  EXPECT_EQ(f->entries()[0].name, "zeta");
  EXPECT_EQ(f->entries()[1].name, "alpha");
  EXPECT_EQ(f->entries()[2].name, "mid");
}

TEST(Safetensors, AtomicWriteReplacesAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  { std::ofstream(path) << "old contents that are not safetensors"; }
  TensorBuffer w(Shape{4, 4});
  for (int64_t i = 0; i < 16; ++i) w.f32()[i] = static_cast<float>(i);
  ASSERT_TRUE(write_safetensors(path, {{"w", w}}).is_ok());
  auto f = SafetensorsFile::open(path);
  ASSERT_TRUE(f.is_ok()) << f.status().message();
  EXPECT_TRUE(same_bytes(f->load("w")->view(), w));
  // Overwrite again with other contents.
  w.f32()[0] = 42.0f;
  ASSERT_TRUE(write_safetensors(path, {{"w", w}}).is_ok());
  EXPECT_EQ(SafetensorsFile::open(path)->load("w")->f32()[0], 42.0f);
  EXPECT_EQ(dir.listing(), std::vector<std::string>{"ckpt.safetensors"});
}

TEST(Safetensors, FailedWriteNamesThePathAndLeavesNothing) {
  TempDir dir;
  TensorBuffer w(Shape{2});
  const std::string path = dir.file("missing_dir/ckpt.safetensors");
  const Status st = write_safetensors(path, {{"w", w}});
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("missing_dir/ckpt.safetensors"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("cannot create"), std::string::npos) << st.message();
  EXPECT_TRUE(dir.listing().empty());
}

TEST(Safetensors, WriterRejectsDuplicateAndReservedNames) {
  TempDir dir;
  TensorBuffer w(Shape{2});
  const std::string path = dir.file("x.safetensors");
  Status st = write_safetensors(path, {{"w", w}, {"w", w}});
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("duplicate tensor name 'w'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(path), std::string::npos) << st.message();
  st = write_safetensors(path, {{"__metadata__", w}});
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("reserved"), std::string::npos) << st.message();
  EXPECT_TRUE(dir.listing().empty());
  EXPECT_DEATH(encode_safetensors({{"w", w}, {"w", w}}), "duplicate tensor name");
}

TEST(Safetensors, ReadIntoChecksShapeAndDtype) {
  TensorBuffer w(Shape{2, 3});
  auto f = SafetensorsFile::parse(encode_safetensors({{"w", w}}), "weights.safetensors");
  ASSERT_TRUE(f.is_ok());
  TensorBuffer wrong_shape(Shape{3, 2}), wrong_dtype(Shape{2, 3}, DType::kF64);
  Status st = f->read_into("w", wrong_shape);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message(), "weights.safetensors: tensor 'w' is F32 [2, 3], expected F32 [3, 2]");
  st = f->read_into("w", wrong_dtype);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message(), "weights.safetensors: tensor 'w' is F32 [2, 3], expected F64 [2, 3]");
  st = f->read_into("nope", wrong_shape);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message(), "weights.safetensors: no tensor named 'nope'");
  auto missing = f->load("nope");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().message(), "weights.safetensors: no tensor named 'nope'");
}

TEST(Safetensors, OpenReportsUnreadablePaths) {
  TempDir dir;
  auto missing = SafetensorsFile::open(dir.file("absent.safetensors"));
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("absent.safetensors: cannot open"), std::string::npos)
      << missing.status().message();
  auto directory = SafetensorsFile::open(dir.file(""));
  ASSERT_FALSE(directory.is_ok());
  EXPECT_NE(directory.status().message().find("not a regular file"), std::string::npos)
      << directory.status().message();
  const std::string path = dir.file("big.safetensors");
  TensorBuffer w(Shape{64});
  ASSERT_TRUE(write_safetensors(path, {{"w", w}}).is_ok());
  SafetensorsLimits small;
  small.max_file_bytes = 100;
  auto too_big = SafetensorsFile::open(path, small);
  ASSERT_FALSE(too_big.is_ok());
  EXPECT_NE(too_big.status().message().find("exceeds the limit of 100"), std::string::npos)
      << too_big.status().message();
}

struct Corruption {
  const char* what;
  std::vector<uint8_t> bytes;
  const char* message;  // a distinctive substring of the error
  const char* tensor;   // named in the message, or nullptr
};

std::vector<Corruption> corruptions() {
  // A valid 12-byte F32 [3] tensor "t" at [0, 12), for the cases that change one thing.
  auto one = [](const std::string& entry, size_t data = 12) {
    return make_file("{\"t\":" + entry + "}", data);
  };
  const std::string valid_header = R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})";
  std::vector<uint8_t> truncated_header = make_file(valid_header, 0);
  truncated_header.resize(truncated_header.size() - 5);  // cut inside the JSON; length unchanged
  return {
      {"shorter than 8 bytes", {1, 2, 3}, "too short for a safetensors file", nullptr},
      {"header length beyond the file", make_file("{}", 0, 1000), "larger than the whole file",
       nullptr},
      {"header length over the cap", make_file("{}", 0, uint64_t{1} << 40),
       "exceeds the limit of 104857600 bytes", nullptr},
      {"truncated header", truncated_header, "the header is truncated", nullptr},
      {"invalid JSON", make_file(R"({"t": {"dtype": )", 0),
       "header line 1 column 17: invalid JSON (syntax error", nullptr},
      // nlohmann stops reading at a NUL: the garbage after it was never looked at.
      {"NUL then garbage after the header",
       make_file(valid_header + std::string("\0garbage", 8), 12),
       "header line 1 column 56: a NUL byte", nullptr},
      // Nested 100,000 deep, a value parsed and then overflowed the stack when a message
      // printed it.
      {"shape nested 100,000 deep",
       one(R"({"dtype":"F32","shape":)" + std::string(100000, '[') + std::string(100000, ']') +
           R"(,"data_offsets":[0,12]})"),
       "header line 1 column 91: arrays and objects nested more than 64 deep", nullptr},
      {"metadata value nested 100,000 deep",
       make_file(
           R"({"__metadata__":{"x":)" + std::string(100000, '[') + std::string(100000, ']') + "}}",
           0),
       "header line 1 column 84: arrays and objects nested more than 64 deep", nullptr},
      {"header not an object", make_file("[1, 2, 3]", 0), "not a JSON object", nullptr},
      {"entry not an object", one("[1]"), "entry is not a JSON object", "t"},
      {"unknown dtype", one(R"({"dtype":"F16","shape":[3],"data_offsets":[0,12]})"),
       "unknown dtype 'F16'", "t"},
      {"missing dtype", one(R"({"shape":[3],"data_offsets":[0,12]})"),
       "missing string field 'dtype'", "t"},
      {"missing shape", one(R"({"dtype":"F32","data_offsets":[0,12]})"),
       "missing array field 'shape'", "t"},
      {"missing data_offsets", one(R"({"dtype":"F32","shape":[3]})"),
       "missing field 'data_offsets'", "t"},
      {"malformed data_offsets", one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,-12]})"),
       "is not two non-negative integers", "t"},
      {"negative dimension", one(R"({"dtype":"F32","shape":[-3],"data_offsets":[0,12]})"),
       "shape[0] = -3 is negative", "t"},
      {"fractional dimension", one(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,12]})"),
       "shape[0] = 1.5 is not an integer", "t"},
      {"string dimension", one(R"({"dtype":"F32","shape":["3"],"data_offsets":[0,12]})"),
       "shape[0] = \"3\" is not an integer", "t"},
      {"rank 5", one(R"({"dtype":"F32","shape":[3,1,1,1,1],"data_offsets":[0,12]})"),
       "rank 5 exceeds the supported maximum 4", "t"},
      {"end before begin", one(R"({"dtype":"F32","shape":[3],"data_offsets":[12,0]})"),
       "end before they begin", "t"},
      {"size not dtype x shape", one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,12]})"),
       "hold 12 bytes, but F32 [2] needs 8", "t"},
      {"data out of bounds", one(R"({"dtype":"F32","shape":[3],"data_offsets":[4,16]})"),
       "run past the end of the data section (12 bytes)", "t"},
      {"truncated data", one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,12]})", 7),
       "out of bounds or truncated", "t"},
      {"overlapping tensors",
       make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                 12),
       "overlaps tensor 'a'", "b"},
      {"gap between tensors",
       make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                 12),
       "4 unused bytes in the data section before tensor 'b'", "b"},
      {"trailing bytes", one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,12]})", 20),
       "8 trailing bytes after the last tensor", nullptr},
      {"dimension product overflows",
       one(R"({"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,12]})"),
       "the product of shape [4294967296,4294967296] overflows 64 bits", "t"},
      {"overflow hidden behind a zero",
       one(R"({"dtype":"U8","shape":[4294967296,0,4294967296],"data_offsets":[0,0]})"),
       "the product of shape [4294967296,0,4294967296] overflows", "t"},
      {"byte size overflows",
       one(R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,12]})"),
       "overflows 64 bits in bytes", "t"},
      {"unexpected field", one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,12],"offset":0})"),
       "unexpected field 'offset'", "t"},
      {"metadata not an object", make_file(R"({"__metadata__":["a"]})", 0),
       "__metadata__ is not an object", nullptr},
      {"non-string metadata value", make_file(R"({"__metadata__":{"step":12}})", 0),
       "__metadata__ value of 'step' is not a string: 12", nullptr},
      {"duplicate tensor name",
       make_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                 8),
       "header: the key \"t\" appears twice in one object", nullptr},
  };
}

TEST(Safetensors, EachCorruptionHasItsOwnMessage) {
  std::set<std::string> seen;
  for (Corruption& c : corruptions()) {
    SCOPED_TRACE(c.what);
    auto f = SafetensorsFile::parse(std::move(c.bytes), kSource);
    ASSERT_FALSE(f.is_ok()) << "accepted";
    const std::string& msg = f.status().message();
    EXPECT_EQ(msg.rfind(std::string(kSource) + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(c.message), std::string::npos) << msg;
    if (c.tensor != nullptr) {
      EXPECT_NE(msg.find(fmt::format("tensor '{}'", c.tensor)), std::string::npos) << msg;
    }
    EXPECT_TRUE(seen.insert(c.message).second) << "message shared with another case";
  }
}

TEST(Safetensors, EveryPrefixAndByteFlipIsHandled) {
  // No truncation of a valid file parses, and no single corrupted header byte crashes the
  // reader: each either parses or fails with a message naming the file.
  const Sample s = make_sample();
  const std::vector<uint8_t> good = encode_safetensors(s.named, {{"m", "v"}});
  for (size_t len = 0; len < good.size(); ++len) {
    auto f =
        SafetensorsFile::parse(std::vector<uint8_t>(good.begin(), good.begin() + len), kSource);
    ASSERT_FALSE(f.is_ok()) << "prefix of " << len << " bytes accepted";
    EXPECT_EQ(f.status().message().rfind(kSource, 0), 0u) << f.status().message();
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | good[static_cast<size_t>(i)];
  for (size_t pos = 0; pos < 8 + header_len; ++pos) {
    for (uint8_t flip : {uint8_t{0x01}, uint8_t{0x20}, uint8_t{0x80}}) {
      std::vector<uint8_t> bad = good;
      bad[pos] ^= flip;
      auto f = SafetensorsFile::parse(std::move(bad), kSource);
      if (!f.is_ok()) {
        EXPECT_EQ(f.status().message().rfind(kSource, 0), 0u) << f.status().message();
      }
    }
  }
}

// Peak resident memory of this process so far, in bytes.
uint64_t peak_rss_bytes() {
  struct rusage u {};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<uint64_t>(u.ru_maxrss) * 1024;
}

TEST(Safetensors, FileOfTheWrongSizeIsRefusedBeforeItsDataIsRead) {
  // A valid file with 1 GiB more behind its data (a sparse file: no disk used). The header
  // accounts for 12 bytes of data, so the file is refused from its size alone; it used to be
  // read whole first (a 5 GB file took 15 s and 5.2 GB of memory).
  TempDir dir;
  const std::vector<uint8_t> bytes =
      make_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})", 12);
  const std::string path = dir.file("big.safetensors");
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  }
  const uint64_t extra = uint64_t{1} << 30;
  fs::resize_file(path, bytes.size() + extra);
  const uint64_t rss_before = peak_rss_bytes();
  auto f = SafetensorsFile::open(path);
  ASSERT_FALSE(f.is_ok());
  EXPECT_NE(
      f.status().message().find(fmt::format("{} trailing bytes after the last tensor", extra)),
      std::string::npos)
      << f.status().message();
  EXPECT_LT(peak_rss_bytes(), rss_before + (uint64_t{256} << 20)) << "the file was read";
}

}  // namespace
}  // namespace moe
