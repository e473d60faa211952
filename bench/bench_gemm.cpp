// GEMM on MoE expert shapes: oneDNN's dnnl_sgemm, oneDNN's matmul primitive (one primitive for
// the whole exact shape, from moe's per-thread cache: matmul_exact in
// src/kernels/cpu/dnnl_matmul.h, an internal header) and moe::gemm (which picks between the two by
// layout, see gemm_dnnl.cpp), for the three products of a linear layer:
//   forward          Y[T, F]  = X[T, D] · W[F, D]ᵀ        (N T: m = T, n = F, k = D)
//   backward data    dX[T, D] = dY[T, F] · W[F, D]        (N N: m = T, n = D, k = F)
//   backward weights dW[F, D] += dY[T, F]ᵀ · X[T, D]      (T N: m = F, n = D, k = T, beta = 1)
// with T rows routed to one expert ∈ {32, 64, 71, 128, 512, 2048, 8192} (64 and 71: an expert's
// share at E = 256, K = 2, T = 8192, with and without a tail off a multiple of 32), F = 2048,
// D = 512; and two more forward products of the same (N T) layout: an expert's down projection
// Y[T, D] = H[T, F] · W2[D, F]ᵀ, and router logits [T, E] = X[T, D] · Wg[E, D]ᵀ with E = 64.
//
// Run with OMP_NUM_THREADS=2. GFLOP/s counts 2·m·n·k per call over wall time; the machine's fp32
// peak on 2 threads is ~430 GFLOP/s.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

#include <dnnl.hpp>

#include "../src/kernels/cpu/dnnl_matmul.h"
#include "moe/core/rng.h"
#include "moe/kernels/gemm.h"
#include "moe/kernels/quantize.h"

namespace moe {
namespace {

constexpr int64_t kF = 2048;  // expert hidden width
constexpr int64_t kD = 512;   // model width
constexpr int64_t kE = 64;    // experts (router logits)

enum class Pass : int64_t { kForward, kBackwardData, kBackwardWeights, kForwardDown, kRouter };

const char* pass_name(Pass p) {
  switch (p) {
    case Pass::kForward:
      return "fwd Y=X.Wt";
    case Pass::kBackwardData:
      return "bwd dX=dY.W";
    case Pass::kBackwardWeights:
      return "bwd dW+=dYt.X";
    case Pass::kForwardDown:
      return "fwd Y=H.W2t";
    case Pass::kRouter:
      return "router L=X.Wgt";
  }
  return "?";
}

struct Problem {
  GemmShape shape;
  GemmScale scale;
};

Problem make_problem(Pass pass, int64_t t) {
  Problem p;
  GemmShape& s = p.shape;
  switch (pass) {
    case Pass::kForward:  // A = X [T, D], B = W [F, D] transposed
      s = {.m = t,
           .n = kF,
           .k = kD,
           .trans_a = false,
           .trans_b = true,
           .lda = kD,
           .ldb = kD,
           .ldc = kF};
      break;
    case Pass::kBackwardData:  // A = dY [T, F], B = W [F, D]
      s = {.m = t,
           .n = kD,
           .k = kF,
           .trans_a = false,
           .trans_b = false,
           .lda = kF,
           .ldb = kD,
           .ldc = kD};
      break;
    case Pass::kBackwardWeights:  // A = dY [T, F] transposed, B = X [T, D]
      s = {.m = kF,
           .n = kD,
           .k = t,
           .trans_a = true,
           .trans_b = false,
           .lda = kF,
           .ldb = kD,
           .ldc = kD};
      p.scale.beta = 1.0f;
      break;
    case Pass::kForwardDown:  // A = H [T, F], B = W2 [D, F] transposed
      s = {.m = t,
           .n = kD,
           .k = kF,
           .trans_a = false,
           .trans_b = true,
           .lda = kF,
           .ldb = kF,
           .ldc = kD};
      break;
    case Pass::kRouter:  // A = X [T, D], B = Wg [E, D] transposed
      s = {.m = t,
           .n = kE,
           .k = kD,
           .trans_a = false,
           .trans_b = true,
           .lda = kD,
           .ldb = kD,
           .ldc = kE};
      break;
  }
  return p;
}

// With --benchmark_repetitions, the "min" and "max" aggregates of each column over the
// repetitions: the least time and the highest GFLOP/s are those of the least disturbed
// repetition on a shared machine.
void add_min_max(benchmark::internal::Benchmark* b) {
  b->ComputeStatistics(
      "min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });
  b->ComputeStatistics(
      "max", [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); });
}

enum class Impl : int64_t { kSgemm, kMatmul, kMoe };

const char* impl_name(Impl impl) {
  switch (impl) {
    case Impl::kSgemm:
      return "dnnl_sgemm";
    case Impl::kMatmul:
      return "matmul    ";
    case Impl::kMoe:
      return "moe::gemm ";
  }
  return "?";
}

void BM_Gemm(benchmark::State& state) {
  const auto pass = static_cast<Pass>(state.range(0));
  const int64_t t = state.range(1);
  const auto impl = static_cast<Impl>(state.range(2));
  const Problem p = make_problem(pass, t);
  const GemmShape& s = p.shape;
  // Buffers as stored: A is [m, k] or [k, m], B is [k, n] or [n, k].
  TensorBuffer a(Shape{s.trans_a ? s.k : s.m, s.lda});
  TensorBuffer b(Shape{s.trans_b ? s.n : s.k, s.ldb});
  TensorBuffer c(Shape{s.m, s.ldc});
  Rng rng(7);
  rng.fill_uniform(a, -1, 1);
  rng.fill_uniform(b, -1, 1);
  for (auto _ : state) {
    switch (impl) {
      case Impl::kSgemm:
        dnnl_sgemm(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.m, s.n, s.k, p.scale.alpha,
                   a.f32(), s.lda, b.f32(), s.ldb, p.scale.beta, c.f32(), s.ldc);
        break;
      case Impl::kMatmul:
        matmul_exact(s, p.scale, DType::kF32, a.f32(), b.f32(), c.f32());
        break;
      case Impl::kMoe:
        gemm(s, p.scale, a.f32(), b.f32(), c.f32());
        break;
    }
    benchmark::DoNotOptimize(c.f32());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * static_cast<double>(s.m * s.n * s.k);
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(
      fmt::format("{} {} m={} n={} k={}", impl_name(impl), pass_name(pass), s.m, s.n, s.k));
}

// The implementations of one shape run back to back, so that their ratio is measured under
// the same conditions on a shared machine.
void shapes(benchmark::internal::Benchmark* b) {
  for (Pass pass : {Pass::kForward, Pass::kBackwardData, Pass::kBackwardWeights, Pass::kForwardDown,
                    Pass::kRouter})
    for (int64_t t : {32, 64, 71, 128, 512, 2048, 8192})
      for (Impl impl : {Impl::kSgemm, Impl::kMatmul, Impl::kMoe})
        b->Args({static_cast<int64_t>(pass), t, static_cast<int64_t>(impl)});
  b->ArgNames({"pass", "T", "impl"});
  b->UseRealTime();
  b->Unit(benchmark::kMicrosecond);
  add_min_max(b);
}

BENCHMARK(BM_Gemm)->Name("gemm")->Apply(shapes);

// Batch-1 decoding's product over a matrix far larger than the caches, c[n] = a[k] · B[n, k]ᵀ with
// n = 16384, k = 4096: gemv_bt over fp32 weights (256 MiB), gemv_q8_bt over the same weights as
// Q8 blocks (64 MiB of int8 and 8 MiB of scales), and the machine's read bandwidth: a sum over a
// 256 MiB buffer on every thread, the roofline both products are bound by. GB/s counts the bytes
// of weights a call reads (for the read: the buffer's); the Q8 product's GB/s over the read's is
// its fraction of the roofline, and its time over the fp32 product's is what Q8 weights save.
enum class GemvImpl : int64_t { kF32, kQ8, kRead };

constexpr int64_t kGemvN = 16384, kGemvK = 4096;

void BM_Gemv(benchmark::State& state) {
  const auto impl = static_cast<GemvImpl>(state.range(0));
  const int64_t n = kGemvN, k = kGemvK;
  Rng rng(5);
  std::vector<float> a(static_cast<size_t>(k)), c(static_cast<size_t>(n));
  for (float& v : a) v = rng.normal();
  std::vector<float> w;
  std::vector<int8_t> q;
  std::vector<float> scales;
  if (impl != GemvImpl::kQ8) {
    w.resize(static_cast<size_t>(n * k));
    for (float& v : w) v = rng.normal();
  } else {
    std::vector<float> rows(static_cast<size_t>(1024 * k));  // quantised 1024 rows at a time
    q.resize(static_cast<size_t>(n * k));
    scales.resize(static_cast<size_t>(n * q8_blocks(k)));
    for (int64_t r = 0; r < n; r += 1024) {
      for (float& v : rows) v = rng.normal();
      quantize_q8(rows.data(), 1024, k, q.data() + r * k, scales.data() + r * q8_blocks(k));
    }
  }
  double bytes = 0.0;
  double sink = 0.0;
  for (auto _ : state) {
    switch (impl) {
      case GemvImpl::kF32:
        gemv_bt(n, k, {}, a.data(), w.data(), k, c.data());
        bytes = 4.0 * static_cast<double>(n * k);
        break;
      case GemvImpl::kQ8:
        gemv_q8_bt(n, k, {}, a.data(), q.data(), scales.data(), c.data());
        bytes = static_cast<double>(n * k) + 4.0 * static_cast<double>(scales.size());
        break;
      case GemvImpl::kRead: {
        const auto chunks = static_cast<int64_t>(w.size() / 4096);
        double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
        for (int64_t ch = 0; ch < chunks; ++ch) {
          const float* p = w.data() + ch * 4096;
          float acc[16] = {};
          for (int64_t i = 0; i < 4096; i += 16)
            for (int64_t j = 0; j < 16; ++j) acc[j] += p[i + j];
          for (float v : acc) sum += v;
        }
        sink += sum;
        bytes = 4.0 * static_cast<double>(w.size());
        break;
      }
    }
    benchmark::DoNotOptimize(c.data());
    benchmark::DoNotOptimize(sink);
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] = benchmark::Counter(bytes * static_cast<double>(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
  const char* names[] = {"gemv_bt fp32", "gemv_q8_bt", "read"};
  state.SetLabel(fmt::format("{} n={} k={}", names[state.range(0)], n, k));
}

BENCHMARK(BM_Gemv)
    ->Name("gemv")
    ->ArgName("impl")
    ->DenseRange(0, 2)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->Apply(add_min_max);

}  // namespace
}  // namespace moe

BENCHMARK_MAIN();
