// Checkpoints whose matrices are stored in bf16 or block int8 (WeightFormat): the values that
// come back, the file's layout, and the damaged files a loader must refuse (scales negative, NaN,
// of the wrong shape or missing; a dtype the format does not use; an unknown format).
//
// Dims: as checkpoint_testing.h (D = 8, E = 4, C = 2).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "moe/kernels/bf16.h"
#include "moe/kernels/quantize.h"
#include "train/checkpoint_testing.h"

namespace moe {
namespace {

using namespace checkpoint_testing;

Checkpoint save_and_load(const Fixture& f, const TempDir& dir, WeightFormat format) {
  EXPECT_TRUE(save_checkpoint(dir.path(), *f.model, f.config, f.schema, nullptr, format).is_ok());
  Result<Checkpoint> ck = load_checkpoint(dir.path());
  EXPECT_TRUE(ck.is_ok()) << ck.status().message();
  return std::move(*ck);
}

TEST(QuantizedCheckpointTest, Bf16StoresMatricesRoundedAndVectorsExact) {
  Fixture f;
  TempDir dir;
  const Checkpoint ck = save_and_load(f, dir, WeightFormat::kBF16);
  EXPECT_EQ(ck.weights_format, WeightFormat::kBF16);
  EXPECT_EQ(read_json(dir.file("model.json"))["weights_format"], "bf16");
  const ParamStore& a = f.model->params();
  const ParamStore& b = ck.model->params();
  Result<SafetensorsFile> st = SafetensorsFile::open(dir.file("model.safetensors"));
  ASSERT_TRUE(st.is_ok());
  for (ParamId id = 0; id < a.size(); ++id) {
    const Tensor x = a.value(id), y = b.value(id);
    const bool matrix = x.rank() >= 2;
    EXPECT_EQ(st->find(a.info(id).name)->dtype, matrix ? DType::kBF16 : DType::kF32);
    for (int64_t i = 0; i < x.numel(); ++i)
      ASSERT_EQ(y.f32()[i], matrix ? bf16_to_f32(f32_to_bf16(x.f32()[i])) : x.f32()[i])
          << a.info(id).name << " element " << i;
  }
  const std::vector<float> p = f.predict(*f.model), q = f.predict(*ck.model);
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(p[i], q[i], 0.02f * (1.0f + std::abs(p[i])));
}

TEST(QuantizedCheckpointTest, Int8StoresBlocksWithScalesWithinHalfAStep) {
  Fixture f;
  TempDir dir;
  const Checkpoint ck = save_and_load(f, dir, WeightFormat::kInt8);
  EXPECT_EQ(read_json(dir.file("model.json"))["weights_format"], "int8");
  Result<SafetensorsFile> st = SafetensorsFile::open(dir.file("model.safetensors"));
  ASSERT_TRUE(st.is_ok());
  const ParamStore& a = f.model->params();
  size_t matrices = 0;
  uint64_t want_bytes = 0;  // one byte a matrix value, four a scale or a vector value
  for (ParamId id = 0; id < a.size(); ++id) {
    const std::string& name = a.info(id).name;
    const Tensor x = a.value(id), y = ck.model->params().value(id);
    if (x.rank() < 2) {
      EXPECT_EQ(st->find(name)->dtype, DType::kF32) << name;
      for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(y.f32()[i], x.f32()[i]) << name;
      want_bytes += 4 * static_cast<uint64_t>(x.numel());
      continue;
    }
    ++matrices;
    EXPECT_EQ(st->find(name)->dtype, DType::kI8) << name;
    const SafetensorsEntry* s = st->find(name + kQ8ScalesSuffix);
    ASSERT_NE(s, nullptr) << name;
    const int64_t cols = x.cols();
    EXPECT_EQ(s->shape, (Shape{x.numel() / cols, q8_blocks(cols)})) << name;
    want_bytes += static_cast<uint64_t>(x.numel() + 4 * s->shape.numel());
    for (int64_t i = 0; i < x.numel(); ++i) {
      // Half a step of the value's block: its largest magnitude / 254.
      const int64_t row = i / cols, block = (i % cols) / kQ8Block;
      float amax = 0.0f;
      for (int64_t c = block * kQ8Block; c < std::min(cols, (block + 1) * kQ8Block); ++c)
        amax = std::max(amax, std::abs(x.f32()[row * cols + c]));
      ASSERT_LE(std::abs(y.f32()[i] - x.f32()[i]), amax / 254.0f * 1.0001f) << name << " " << i;
    }
  }
  EXPECT_EQ(st->entries().size(), static_cast<size_t>(a.size()) + matrices);
  EXPECT_GT(matrices, 4u);
  uint64_t data_bytes = 0;  // each tensor's range, its alignment padding included
  for (const SafetensorsEntry& e : st->entries()) data_bytes += e.end - e.begin;
  EXPECT_GE(data_bytes, want_bytes);
  EXPECT_LT(data_bytes, want_bytes + 8 * st->entries().size());
  const std::vector<float> p = f.predict(*f.model), q = f.predict(*ck.model);
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(p[i], q[i], 0.05f * (1.0f + std::abs(p[i])));
}

TEST(QuantizedCheckpointTest, DamagedScalesAndFormatsAreRefused) {
  Fixture f;
  const std::string w = "blocks.0.moe.experts.1.w2";
  const std::string scales = w + kQ8ScalesSuffix;
  const auto set_scale = [&](float v) {
    return [=](std::vector<NamedTensor>& t, std::vector<TensorBuffer>&) {
      find(t, scales)->tensor.f32()[1] = v;
    };
  };
  struct Case {
    const char* name;
    WeightFormat format;
    std::function<void(const TempDir&)> corrupt;
    std::string message;    // after "<dir>/"
    std::string also = "";  // a further part the message must contain
  };
  const std::vector<Case> cases = {
      {"negative scale", WeightFormat::kInt8,
       [&](const TempDir& d) { rewrite_weights(d, set_scale(-0.5f)); },
       "model.safetensors: tensor " + scales + " element 1 is -0.5, not a scale"},
      {"NaN scale", WeightFormat::kInt8,
       [&](const TempDir& d) {
         rewrite_weights(d, set_scale(std::numeric_limits<float>::quiet_NaN()));
       },
       "model.safetensors: tensor " + scales + " element 1 is nan, not a scale"},
      {"a finite scale that decodes to infinity", WeightFormat::kInt8,
       [&](const TempDir& d) { rewrite_weights(d, set_scale(std::numeric_limits<float>::max())); },
       "model.safetensors: tensor " + w + " element ", "is infinite"},
      {"scales of the wrong shape", WeightFormat::kInt8,
       [&](const TempDir& d) {
         rewrite_weights(d, [&](std::vector<NamedTensor>& t, std::vector<TensorBuffer>&) {
           NamedTensor* s = find(t, scales);
           s->tensor = s->tensor.reshape(Shape{s->tensor.numel()});
         });
       },
       "model.safetensors: tensor " + scales + " has shape"},
      {"scales missing", WeightFormat::kInt8,
       [&](const TempDir& d) {
         rewrite_weights(d, [&](std::vector<NamedTensor>& t, std::vector<TensorBuffer>&) {
           t.erase(std::find_if(t.begin(), t.end(),
                                [&](const NamedTensor& n) { return n.name == scales; }));
         });
       },
       "model.safetensors: missing tensor " + scales},
      {"an F32 matrix in an int8 checkpoint", WeightFormat::kInt8,
       [&](const TempDir& d) {
         rewrite_weights(d, [&](std::vector<NamedTensor>& t, std::vector<TensorBuffer>& keep) {
           NamedTensor* m = find(t, w);
           keep.emplace_back(m->tensor.shape());
           m->tensor = keep.back();
         });
       },
       "model.safetensors: tensor " + w + " is F32, expected I8"},
      {"an I8 matrix in an f32 checkpoint", WeightFormat::kInt8,
       [&](const TempDir& d) { edit_json(d, [](json& j) { j["weights_format"] = "f32"; }); },
       "model.safetensors: tensor ", "is I8, expected F32"},
      {"BF16 matrices called int8", WeightFormat::kBF16,
       [&](const TempDir& d) { edit_json(d, [](json& j) { j["weights_format"] = "int8"; }); },
       "model.safetensors: tensor ", "is BF16, expected I8"},
      {"an infinite bf16 weight", WeightFormat::kBF16,
       [&](const TempDir& d) {
         rewrite_weights(d, [&](std::vector<NamedTensor>& t, std::vector<TensorBuffer>&) {
           find(t, w)->tensor.data<bf16>()[2] = 0x7f80;
         });
       },
       "model.safetensors: tensor " + w + " element 2 is infinite"},
      {"unknown format", WeightFormat::kF32,
       [&](const TempDir& d) { edit_json(d, [](json& j) { j["weights_format"] = "int4"; }); },
       "model.json: field 'weights_format' must be \"f32\", \"bf16\" or \"int8\""},
      {"format not a string", WeightFormat::kF32,
       [&](const TempDir& d) { edit_json(d, [](json& j) { j["weights_format"] = 8; }); },
       "model.json: field 'weights_format' must be"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir dir;
    ASSERT_TRUE(
        save_checkpoint(dir.path(), *f.model, f.config, f.schema, nullptr, c.format).is_ok());
    c.corrupt(dir);
    Result<Checkpoint> ck = load_checkpoint(dir.path());
    ASSERT_FALSE(ck.is_ok());
    EXPECT_NE(ck.status().message().find(dir.path() + "/" + c.message), std::string::npos)
        << ck.status().message();
    EXPECT_NE(ck.status().message().find(c.also), std::string::npos) << ck.status().message();
  }
}

}  // namespace
}  // namespace moe
