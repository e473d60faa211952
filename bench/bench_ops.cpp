// Elementwise kernels, activations, softmax and row reductions: fast (moe::) against reference
// (moe::ref::) on the shapes an MoE step feeds them.
//
// Dims: N elements of an activation (a [T, F] expert hidden state seen flat) · [R, C] rows and
// columns of a row op (router logits [T, E] with E = 64, or a vocabulary-wide softmax [T, V]).
//
// Run with OMP_NUM_THREADS=2; items/s counts elements (N, or R·C).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

#include "moe/core/rng.h"
#include "moe/kernels/ops.h"

namespace moe {
namespace {

constexpr int64_t kElems = int64_t{1} << 20;  // [T, F] = [512, 2048]

// With --benchmark_repetitions, the "min" and "max" aggregates of each column over the
// repetitions: the least time and the highest items/s are those of the least disturbed
// repetition on a shared machine.
void add_min_max(benchmark::internal::Benchmark* b) {
  b->UseRealTime();
  b->ComputeStatistics(
      "min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });
  b->ComputeStatistics(
      "max", [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); });
}

TensorBuffer random_tensor(Shape shape, float lo, float hi, uint64_t seed) {
  TensorBuffer t(shape);
  Rng(seed).fill_uniform(t, lo, hi);
  return t;
}

template <bool kFast>
void BM_ActivationForward(benchmark::State& state) {
  const auto act = static_cast<Activation>(state.range(0));
  TensorBuffer x = random_tensor(Shape{kElems}, -6, 6, 1);  // [N]
  TensorBuffer y(Shape{kElems});                            // [N]
  for (auto _ : state) {
    if constexpr (kFast) {
      activation_forward(act, x, y);
    } else {
      ref::activation_forward(act, x, y);
    }
    benchmark::DoNotOptimize(y.f32());
    benchmark::ClobberMemory();
  }
  state.SetLabel(activation_name(act));
  state.SetItemsProcessed(state.iterations() * kElems);
}

template <bool kFast>
void BM_ActivationBackward(benchmark::State& state) {
  const auto act = static_cast<Activation>(state.range(0));
  TensorBuffer x = random_tensor(Shape{kElems}, -6, 6, 1);   // [N]
  TensorBuffer dy = random_tensor(Shape{kElems}, -1, 1, 2);  // [N]
  TensorBuffer dx(Shape{kElems});                            // [N]
  for (auto _ : state) {
    if constexpr (kFast) {
      activation_backward(act, x, dy, dx);
    } else {
      ref::activation_backward(act, x, dy, dx);
    }
    benchmark::DoNotOptimize(dx.f32());
    benchmark::ClobberMemory();
  }
  state.SetLabel(activation_name(act));
  state.SetItemsProcessed(state.iterations() * kElems);
}

void activation_args(benchmark::internal::Benchmark* b) {
  for (Activation a : {Activation::kRelu, Activation::kGelu, Activation::kGeluTanh,
                       Activation::kSilu, Activation::kSigmoid, Activation::kTanh})
    b->Arg(static_cast<int64_t>(a));
}

BENCHMARK(BM_ActivationForward<true>)
    ->Name("act_fwd/fast")
    ->Apply(activation_args)
    ->Apply(add_min_max);
BENCHMARK(BM_ActivationForward<false>)
    ->Name("act_fwd/ref")
    ->Apply(activation_args)
    ->Apply(add_min_max);
BENCHMARK(BM_ActivationBackward<true>)
    ->Name("act_bwd/fast")
    ->Apply(activation_args)
    ->Apply(add_min_max);
BENCHMARK(BM_ActivationBackward<false>)
    ->Name("act_bwd/ref")
    ->Apply(activation_args)
    ->Apply(add_min_max);

enum class RowOp { kSoftmax, kLogSoftmax, kLogSumExp, kSoftmaxBackward };

template <RowOp kOp, bool kFast>
void BM_RowOp(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = state.range(1);
  TensorBuffer x = random_tensor(Shape{rows, cols}, -8, 8, 3);   // [R, C]
  TensorBuffer dy = random_tensor(Shape{rows, cols}, -1, 1, 4);  // [R, C]
  TensorBuffer y(Shape{rows, cols});                             // [R, C]
  TensorBuffer out(Shape{rows});                                 // [R]
  softmax_rows(x, y);
  for (auto _ : state) {
    if constexpr (kOp == RowOp::kSoftmax) {
      kFast ? softmax_rows(x, y) : ref::softmax_rows(x, y);
    } else if constexpr (kOp == RowOp::kLogSoftmax) {
      kFast ? log_softmax_rows(x, y) : ref::log_softmax_rows(x, y);
    } else if constexpr (kOp == RowOp::kLogSumExp) {
      kFast ? row_logsumexp(x, out) : ref::row_logsumexp(x, out);
    } else {
      kFast ? softmax_rows_backward(y, dy, x) : ref::softmax_rows_backward(y, dy, x);
    }
    benchmark::DoNotOptimize(y.f32());
    benchmark::DoNotOptimize(out.f32());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * rows * cols);
}

// Router logits [T, E] = [16384, 64] and a vocabulary softmax [T, V] = [128, 8192].
void row_args(benchmark::internal::Benchmark* b) {
  b->Args({16384, 64});
  b->Args({128, 8192});
}

BENCHMARK(BM_RowOp<RowOp::kSoftmax, true>)
    ->Name("softmax/fast")
    ->Apply(row_args)
    ->Apply(add_min_max);
BENCHMARK(BM_RowOp<RowOp::kSoftmax, false>)
    ->Name("softmax/ref")
    ->Apply(row_args)
    ->Apply(add_min_max);
BENCHMARK(BM_RowOp<RowOp::kLogSoftmax, true>)
    ->Name("log_softmax/fast")
    ->Apply(row_args)
    ->Apply(add_min_max);
BENCHMARK(BM_RowOp<RowOp::kLogSoftmax, false>)
    ->Name("log_softmax/ref")
    ->Apply(row_args)
    ->Apply(add_min_max);
BENCHMARK(BM_RowOp<RowOp::kLogSumExp, true>)
    ->Name("logsumexp/fast")
    ->Apply(row_args)
    ->Apply(add_min_max);
BENCHMARK(BM_RowOp<RowOp::kLogSumExp, false>)
    ->Name("logsumexp/ref")
    ->Apply(row_args)
    ->Apply(add_min_max);
BENCHMARK(BM_RowOp<RowOp::kSoftmaxBackward, true>)
    ->Name("softmax_bwd/fast")
    ->Apply(row_args)
    ->Apply(add_min_max);
BENCHMARK(BM_RowOp<RowOp::kSoftmaxBackward, false>)
    ->Name("softmax_bwd/ref")
    ->Apply(row_args)
    ->Apply(add_min_max);

// Memory-bound ops, for scale: what a pass over 4 MiB costs.
template <bool kFast>
void BM_Axpy(benchmark::State& state) {
  TensorBuffer x = random_tensor(Shape{kElems}, -1, 1, 5);  // [N]
  TensorBuffer y = random_tensor(Shape{kElems}, -1, 1, 6);  // [N]
  for (auto _ : state) {
    kFast ? axpy(1e-3f, x, y) : ref::axpy(1e-3f, x, y);
    benchmark::DoNotOptimize(y.f32());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kElems);
}
BENCHMARK(BM_Axpy<true>)->Name("axpy/fast")->Apply(add_min_max);
BENCHMARK(BM_Axpy<false>)->Name("axpy/ref")->Apply(add_min_max);

template <bool kFast>
void BM_SumRowsAccumulate(benchmark::State& state) {
  TensorBuffer dy = random_tensor(Shape{512, 2048}, -1, 1, 7);  // [T, F]
  TensorBuffer db(Shape{2048});                                 // [F]
  for (auto _ : state) {
    kFast ? sum_rows_accumulate(dy, db) : ref::sum_rows_accumulate(dy, db);
    benchmark::DoNotOptimize(db.f32());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * dy.numel());
}
BENCHMARK(BM_SumRowsAccumulate<true>)->Name("sum_rows_accumulate/fast")->Apply(add_min_max);
BENCHMARK(BM_SumRowsAccumulate<false>)->Name("sum_rows_accumulate/ref")->Apply(add_min_max);

}  // namespace
}  // namespace moe

BENCHMARK_MAIN();
