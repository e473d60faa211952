// Causal attention of a small language model's step: forward, and forward plus backward, for
// B = 8 sequences of S = 512 positions, H = 8 heads (G = 8, and G = 2 grouped) of Dh = 64.
//
// Dims: B sequences · S positions · H query heads · G kv heads · Dh head width.
//
// Run with OMP_NUM_THREADS=2. The FLOP/s counters count useful work only, as FlashAttention
// reports it: the forward is two products (QKᵀ and PV) of 2·B·H·S²·Dh FLOPs each, halved when
// causal (the half of the scores above the diagonal is not work), so forward = 4·B·H·S²·Dh / 2;
// the backward is five such products (QKᵀ recomputed, dV, dP, dQ, dK), 2.5 times the forward.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "moe/core/rng.h"
#include "moe/layers/attention.h"

namespace moe {
namespace {

TensorBuffer random_tensor(Shape shape, uint64_t seed) {
  TensorBuffer t(shape);
  Rng(seed).fill_uniform(t, -1.0f, 1.0f);
  return t;
}

double forward_flops(const AttentionDims& d) {
  const auto s = static_cast<double>(d.seq);
  return 4.0 * static_cast<double>(d.batch * d.n_heads * d.head_dim) * s * s *
         (d.causal ? 0.5 : 1.0);
}

template <bool kBackward>
void BM_Attention(benchmark::State& state) {
  const AttentionDims d{.batch = 8,
                        .seq = 512,
                        .n_heads = 8,
                        .n_kv_heads = state.range(0),
                        .head_dim = 64,
                        .causal = true};
  const int64_t tokens = d.batch * d.seq, q_cols = d.n_heads * d.head_dim,
                kv_cols = d.n_kv_heads * d.head_dim;
  TensorBuffer q = random_tensor(Shape{tokens, q_cols}, 1);     // [B·S, H·Dh]
  TensorBuffer k = random_tensor(Shape{tokens, kv_cols}, 2);    // [B·S, G·Dh]
  TensorBuffer v = random_tensor(Shape{tokens, kv_cols}, 3);    // [B·S, G·Dh]
  TensorBuffer dout = random_tensor(Shape{tokens, q_cols}, 4);  // [B·S, H·Dh]
  TensorBuffer o(Shape{tokens, q_cols}), dq(Shape{tokens, q_cols});
  TensorBuffer dk(Shape{tokens, kv_cols}), dv(Shape{tokens, kv_cols});
  TensorBuffer lse(Shape{d.batch, d.n_heads, d.seq});  // [B, H, S]
  TensorBuffer workspace(Shape{attention_workspace_floats(d, omp_get_max_threads())});
  const AttentionCache cache{lse};
  for (auto _ : state) {
    attention_forward(d, q, k, v, o, cache, workspace);
    if constexpr (kBackward) attention_backward(d, q, k, v, o, cache, dout, dq, dk, dv, workspace);
    benchmark::DoNotOptimize(o.f32());
    benchmark::ClobberMemory();
  }
  const double flops = forward_flops(d) * (kBackward ? 3.5 : 1.0);
  state.counters["FLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

void add_min_max(benchmark::internal::Benchmark* b) {
  b->UseRealTime()->Unit(benchmark::kMillisecond)->Arg(8)->Arg(2);
  b->ComputeStatistics(
      "min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });
  b->ComputeStatistics(
      "max", [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); });
}

BENCHMARK(BM_Attention<false>)->Name("attention_causal/forward")->Apply(add_min_max);
BENCHMARK(BM_Attention<true>)->Name("attention_causal/forward_backward")->Apply(add_min_max);

}  // namespace
}  // namespace moe

BENCHMARK_MAIN();
