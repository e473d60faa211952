#include "moe/layers/embedding.h"

namespace moe {

namespace {

constexpr int64_t kEmbedParallelMin =
    1 << 15;  // elements below which threading costs more than it saves
constexpr int64_t kEmbedColumnBlock = 16;  // one cache line of floats per thread-owned column block

void check_ids(Tensor ids, int64_t vocab, const char* op) {
  const int32_t* id = ids.data<int32_t>();
  for (int64_t n = 0; n < ids.numel(); ++n)
    MOE_CHECK(id[n] >= 0 && id[n] < vocab, "{}: id {} at position {} outside [0, {})", op, id[n], n,
              vocab);
}

void check_bags(const EmbeddingBagInput& in, BagMode mode, int64_t vocab, const char* op) {
  MOE_CHECK(in.offsets.numel() >= 1, "{}: offsets needs B+1 entries, got {}", op,
            in.offsets.shape().str());
  const int64_t* off = in.offsets.data<int64_t>();
  const int64_t n_ids = in.ids.numel();
  MOE_CHECK(off[0] == 0 && off[in.n_bags()] == n_ids, "{}: offsets run {} .. {} for {} ids", op,
            off[0], off[in.n_bags()], n_ids);
  for (int64_t b = 0; b < in.n_bags(); ++b)
    MOE_CHECK(off[b] <= off[b + 1], "{}: offsets decrease at bag {} ({} > {})", op, b, off[b],
              off[b + 1]);
  if (mode == BagMode::kWeightedSum) {
    MOE_CHECK(in.weights.numel() == n_ids, "{}: weighted sum needs weights [{}], got {}", op, n_ids,
              in.weights.shape().str());
  } else {
    MOE_CHECK(in.weights.empty(), "{}: per-token weights given in mode {}", op,
              bag_mode_name(mode));
  }
  check_ids(in.ids, vocab, op);
}

// Runs body(c0, c1) over column blocks of [0, cols), threaded when rows · cols is large. Each
// block belongs to one thread, so accumulation into a column keeps one fixed order.
template <typename F>
void for_column_blocks(int64_t rows, int64_t cols, F body) {
  const int64_t n_blocks = (cols + kEmbedColumnBlock - 1) / kEmbedColumnBlock;
#pragma omp parallel for schedule(static) if (rows * cols >= kEmbedParallelMin)
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t c0 = blk * kEmbedColumnBlock;
    body(c0, c0 + kEmbedColumnBlock < cols ? c0 + kEmbedColumnBlock : cols);
  }
}

}  // namespace

const char* bag_mode_name(BagMode m) {
  switch (m) {
    case BagMode::kSum:
      return "sum";
    case BagMode::kMean:
      return "mean";
    case BagMode::kWeightedSum:
      return "weighted_sum";
  }
  return "?";
}

void embedding_bag_forward(const EmbeddingParams& p, BagMode mode, const EmbeddingBagInput& in,
                           Tensor y) {
  const int64_t n_bags = in.n_bags(), d = p.w.dim(1);
  MOE_CHECK(y.rows() == n_bags && y.cols() == d, "embedding bag: {} bags, W {} y {}", n_bags,
            p.w.shape().str(), y.shape().str());
  check_bags(in, mode, p.w.dim(0), "embedding bag");
  const int32_t* id = in.ids.data<int32_t>();
  const int64_t* off = in.offsets.data<int64_t>();
  const float* tok_w = mode == BagMode::kWeightedSum ? in.weights.f32() : nullptr;
  const float* w = p.w.f32();
  float* out = y.f32();
#pragma omp parallel for schedule(static) if (in.ids.numel() * d >= kEmbedParallelMin)
  for (int64_t b = 0; b < n_bags; ++b) {
    float* yb = out + b * d;
    std::memset(yb, 0, static_cast<size_t>(d) * 4);
    for (int64_t n = off[b]; n < off[b + 1]; ++n) {
      const float s = tok_w != nullptr ? tok_w[n] : 1.0f;
      const float* row = w + static_cast<int64_t>(id[n]) * d;
#pragma omp simd
      for (int64_t c = 0; c < d; ++c) yb[c] += s * row[c];
    }
    if (mode == BagMode::kMean && off[b + 1] > off[b]) {
      const float inv = 1.0f / static_cast<float>(off[b + 1] - off[b]);
#pragma omp simd
      for (int64_t c = 0; c < d; ++c) yb[c] *= inv;
    }
  }
}

void embedding_bag_backward(const EmbeddingParams& p, const EmbeddingGrads& g, BagMode mode,
                            const EmbeddingBagInput& in, Tensor dy, Tensor dweights) {
  const int64_t n_bags = in.n_bags(), d = p.w.dim(1);
  MOE_CHECK(dy.rows() == n_bags && dy.cols() == d && g.w.shape() == p.w.shape(),
            "embedding bag backward: {} bags, W {} dW {} dy {}", n_bags, p.w.shape().str(),
            g.w.shape().str(), dy.shape().str());
  check_bags(in, mode, p.w.dim(0), "embedding bag backward");
  MOE_CHECK(
      dweights.empty() || (mode == BagMode::kWeightedSum && dweights.numel() == in.ids.numel()),
      "embedding bag backward: dweights {} in mode {} with {} ids", dweights.shape().str(),
      bag_mode_name(mode), in.ids.numel());
  const int32_t* id = in.ids.data<int32_t>();
  const int64_t* off = in.offsets.data<int64_t>();
  const float* tok_w = mode == BagMode::kWeightedSum ? in.weights.f32() : nullptr;
  const float* grad_out = dy.f32();
  float* dw = g.w.f32();
  for_column_blocks(in.ids.numel(), d, [&](int64_t c0, int64_t c1) {
    for (int64_t b = 0; b < n_bags; ++b) {
      const float* src = grad_out + b * d;
      const float bag_scale = mode == BagMode::kMean && off[b + 1] > off[b]
                                  ? 1.0f / static_cast<float>(off[b + 1] - off[b])
                                  : 1.0f;
      for (int64_t n = off[b]; n < off[b + 1]; ++n) {
        const float s = tok_w != nullptr ? tok_w[n] : bag_scale;
        float* row = dw + static_cast<int64_t>(id[n]) * d;
        for (int64_t c = c0; c < c1; ++c) row[c] += s * src[c];
      }
    }
  });
  if (dweights.empty()) return;
  // dL/dw_n = dy[bag(n)] · W[ids[n]]: each id's dot product is independent.
  const float* w = p.w.f32();
  float* dtok = dweights.f32();
#pragma omp parallel for schedule(static) if (in.ids.numel() * d >= kEmbedParallelMin)
  for (int64_t b = 0; b < n_bags; ++b) {
    const float* src = grad_out + b * d;
    for (int64_t n = off[b]; n < off[b + 1]; ++n) {
      const float* row = w + static_cast<int64_t>(id[n]) * d;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t c = 0; c < d; ++c) dot += src[c] * row[c];
      dtok[n] = dot;
    }
  }
}

}  // namespace moe
