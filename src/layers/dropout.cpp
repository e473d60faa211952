#include "moe/layers/dropout.h"

#include <cstring>

namespace moe {

namespace {

constexpr int64_t kParallelMin = 1
                                 << 15;  // elements below which threading costs more than it saves

void check_shapes(float p, Tensor mask, Tensor x, Tensor y, const char* op) {
  MOE_CHECK(p >= 0.0f && p <= 1.0f, "{}: probability {} outside [0, 1]", op, p);
  MOE_CHECK(mask.dtype() == DType::kU8 && mask.numel() == x.numel() && y.numel() == x.numel(),
            "{}: mask {} {} x {} y {}", op, dtype_name(mask.dtype()), mask.shape().str(),
            x.shape().str(), y.shape().str());
}

// 1/(1 − p), and 0 for p = 1, where every element is dropped (PyTorch returns zeros too).
float keep_scale(float p) {
  return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
}

}  // namespace

void dropout_forward(float p, Rng& rng, Tensor x, Tensor y, const DropoutCache& cache) {
  check_shapes(p, cache.mask, x, y, "dropout");
  uint8_t* mask = cache.mask.data<uint8_t>();
  const int64_t n = x.numel();
  const int64_t n_blocks = (n + 3) / 4;
  const uint64_t base = rng.offset();
  const uint64_t stream = rng.stream(), seed = rng.seed();
  // The same counter and key layout as Rng's own draws, four elements per Philox block.
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const uint64_t counter = base + static_cast<uint64_t>(blk);
    const auto bits =
        philox4x32({static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32),
                    static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32)},
                   {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
    for (int64_t lane = 0; lane < 4 && blk * 4 + lane < n; ++lane)
      mask[blk * 4 + lane] = u32_to_open_unit(bits[static_cast<size_t>(lane)]) >= p ? 1 : 0;
  }
  rng.set_offset(base + static_cast<uint64_t>(n_blocks));
  dropout_apply_mask(p, cache, x, y);
}

void dropout_forward_eval(Tensor x, Tensor y) {
  MOE_CHECK(x.numel() == y.numel(), "dropout eval: x {} y {}", x.shape().str(), y.shape().str());
  if (x.raw() != y.raw() && x.numel() > 0) std::memcpy(y.raw(), x.raw(), x.nbytes());
}

void dropout_apply_mask(float p, const DropoutCache& cache, Tensor x, Tensor y) {
  check_shapes(p, cache.mask, x, y, "dropout");
  const uint8_t* mask = cache.mask.data<uint8_t>();
  const float* in = x.f32();
  float* out = y.f32();
  const float s = keep_scale(p);
  const int64_t n = x.numel();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) out[i] = mask[i] != 0 ? in[i] * s : 0.0f;
}

void dropout_backward(float p, const DropoutCache& cache, Tensor dy, Tensor dx) {
  // Inverted dropout is linear with a diagonal Jacobian, so its adjoint is the same map.
  dropout_apply_mask(p, cache, dy, dx);
}

}  // namespace moe
