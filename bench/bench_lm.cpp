// Language-model training step: forward, loss, backward and AdamW of the MoE Transformer LM
// (model/lm_model.h), or with --dense its twin with one SwiGLU FFN of width K·F per block, on
// random tokens: the same model and the same step ../shared/bench/torch_lm_baseline.py times in
// PyTorch (bench/compare_torch_lm.sh runs both in one go).
//
// Dims: L blocks · D width · H heads · E experts · K experts per token · F expert hidden width ·
// S context · B batch · V vocabulary.
//
// Useful FLOPs per step (torch_lm_baseline.py's formula, so the two compare):
//   matmuls   6 · B·S · (L · (4·D² + K·3·D·F) + V·D)
//   attention 6 · B · L · S² · D                      (causal not halved)
// Prints the median step time over --steps timed steps (after 2 warm-up steps), tokens/s, useful
// GFLOP/s, the step's working memory (the Arena's high-water mark), and the process's peak RSS.
// --stages adds where the timed steps' time went, by stage (moe/kernels/stage_timer.h), with each
// stage's share of the step and, for the GEMM and attention stages, their useful GFLOP/s.
//
// --decode N times generation instead (LmModel::extend at batch 1 over a KV cache, after a
// 16-token prompt): the median time per token of N tokens against the time to read every weight
// a token uses once (the blocks' attention and norms, the router, the K experts it is routed to
// in each block, the head; the embedding row is negligible) at the memory bandwidth measured in
// the same run (a 1 GiB buffer summed by every thread). The ratio is what issue 16 bounds by 1.5:
// decoding one token is a chain of matrix-vector products, so it can go no faster than the
// memory can deliver the weights. Pick a model larger than the caches (the default is 150 MB of
// active weights per token).
//
// Usage: bench_lm [--layers 8] [--d-model 512] [--heads 8] [--experts 8] [--topk 2] [--ffn 1024]
//                 [--context 512] [--batch 8] [--vocab 8192] [--steps 5] [--dense]
//                 [--precision fp32|bf16] [--stages] [--jsonl FILE] [--decode N]
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/rng.h"
#include "moe/kernels/stage_timer.h"
#include "moe/model/lm_model.h"
#include "moe/optim/optimizer.h"

namespace moe {
namespace {

struct Options {
  int64_t layers = 8, d_model = 512, heads = 8, experts = 8, topk = 2, ffn = 1024;
  int64_t context = 512, batch = 8, vocab = 8192;
  int steps = 5;
  int decode = 0;  // tokens to generate; 0: time training steps
  bool dense = false;
  bool stages = false;
  Precision precision = Precision::kF32;
  std::string jsonl;
};

int usage() {
  std::fprintf(stderr,
               "usage: bench_lm [--layers N] [--d-model N] [--heads N] [--experts N] [--topk N] "
               "[--ffn N] [--context N] [--batch N] [--vocab N] [--steps N] [--dense] "
               "[--precision fp32|bf16] [--stages] [--jsonl FILE] [--decode N]\n");
  return 2;
}

bool parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    int64_t* field = a == "--layers"    ? &o->layers
                     : a == "--d-model" ? &o->d_model
                     : a == "--heads"   ? &o->heads
                     : a == "--experts" ? &o->experts
                     : a == "--topk"    ? &o->topk
                     : a == "--ffn"     ? &o->ffn
                     : a == "--context" ? &o->context
                     : a == "--batch"   ? &o->batch
                     : a == "--vocab"   ? &o->vocab
                                        : nullptr;
    if (field != nullptr) {
      const char* v = next();
      if (v == nullptr) return false;
      *field = std::atoll(v);
    } else if (a == "--steps") {
      const char* v = next();
      if (v == nullptr) return false;
      o->steps = std::atoi(v);
    } else if (a == "--decode") {
      const char* v = next();
      if (v == nullptr) return false;
      o->decode = std::atoi(v);
      if (o->decode < 1) return false;
    } else if (a == "--dense") {
      o->dense = true;
    } else if (a == "--stages") {
      o->stages = true;
    } else if (a == "--precision") {
      const char* v = next();
      if (v == nullptr || !parse_enum_name(kPrecisionNames, v, &o->precision)) return false;
    } else if (a == "--jsonl") {
      const char* v = next();
      if (v == nullptr) return false;
      o->jsonl = v;
    } else {
      return false;
    }
  }
  return o->steps > 0;
}

ModelConfig model_config(const Options& o) {
  ModelConfig c;
  c.language_model = true;
  c.width = o.d_model;
  c.lm.layers = o.layers;
  c.lm.heads = o.heads;
  c.lm.context = o.context;
  c.lm.tie_embeddings = true;
  c.dense = o.dense;
  MoeBlockConfig m;
  m.n_experts = o.experts;
  m.expert = {ExpertKind::kSwiglu, o.ffn, 1, Activation::kGelu, false};
  m.gate.kind = GateKind::kTopKSoftmax;
  m.gate.k = o.topk;
  m.gate.switch_loss = 0.0f;  // the peer has no balancing loss
  m.precision = o.precision;
  c.moe = {m};
  return c;
}

// Each stage's mean time per timed step, its share of the mean step, and for the stages that
// are matmuls (or attention) their useful GFLOP/s by the same formula as the step's.
void print_stages(const Options& o, const std::vector<double>& times) {
  StageTimes::enable(false);
  double step = 0.0;
  for (double t : times) step += t;
  const double n = static_cast<double>(times.size());
  step /= n;
  const double d = static_cast<double>(o.d_model), l = static_cast<double>(o.layers),
               f = static_cast<double>(o.ffn), v = static_cast<double>(o.vocab),
               k = static_cast<double>(o.topk), s = static_cast<double>(o.context),
               tk = static_cast<double>(o.batch) * s;
  const auto flops = [&](Stage st) {
    switch (st) {
      case Stage::kQkvGemm:
        return 6 * tk * l * 3 * d * d;
      case Stage::kOutGemm:
        return 6 * tk * l * d * d;
      case Stage::kFfn:
        return 6 * tk * l * k * 3 * d * f;
      case Stage::kHeadGemm:
        return 6 * tk * v * d;
      case Stage::kAttentionForward:
        return 2 * static_cast<double>(o.batch) * l * s * s * d;
      case Stage::kAttentionBackward:
        return 4 * static_cast<double>(o.batch) * l * s * s * d;
      default:
        return 0.0;
    }
  };
  double accounted = 0.0;
  std::printf("  %-14s %9s %6s %8s\n", "stage", "ms/step", "share", "GFLOP/s");
  for (int i = 0; i < static_cast<int>(Stage::kCount); ++i) {
    const auto st = static_cast<Stage>(i);
    const double t = StageTimes::seconds(st) / n;
    accounted += t;
    const double fl = flops(st);
    if (fl > 0)
      std::printf("  %-14s %9.1f %5.1f%% %8.1f\n", kStageNames[static_cast<size_t>(i)], t * 1e3,
                  100 * t / step, fl / t / 1e9);
    else
      std::printf("  %-14s %9.1f %5.1f%%\n", kStageNames[static_cast<size_t>(i)], t * 1e3,
                  100 * t / step);
  }
  std::printf("  %-14s %9.1f %5.1f%%\n", "other", (step - accounted) * 1e3,
              100 * (step - accounted) / step);
}

// Read bandwidth in bytes/s: the best of 5 passes summing a 1 GiB buffer over every thread
// (written first so that its pages exist).
double read_bandwidth() {
  const size_t n = size_t{1} << 28;  // floats: 1 GiB
  std::vector<float> buf(n, 1.0f);
  double best = 0.0, total = 0.0;
  for (int pass = 0; pass < 5; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (int64_t c = 0; c < static_cast<int64_t>(n / 4096); ++c) {
      const float* p = buf.data() + c * 4096;
      float acc[16] = {};
      for (int i = 0; i < 4096; i += 16)
        for (int j = 0; j < 16; ++j) acc[j] += p[i + j];
      for (float a : acc) sum += a;
    }
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    total += sum;
    best = std::max(best, static_cast<double>(n * sizeof(float)) / t);
  }
  if (total != 5.0 * static_cast<double>(n)) std::fprintf(stderr, "bench_lm: bandwidth sum off\n");
  return best;
}

// --decode: generation at batch 1 (see the header).
int run_decode(const Options& o, LmModel& lm) {
  const int64_t prompt = 16;
  if (prompt + o.decode > o.context) {
    std::fprintf(stderr, "bench_lm: --decode %d needs a context of at least %lld\n", o.decode,
                 static_cast<long long>(prompt + o.decode));
    return 2;
  }
  Rng rng(11);
  std::vector<int32_t> ids(static_cast<size_t>(prompt + o.decode));
  for (int32_t& id : ids) id = static_cast<int32_t>(rng.below(static_cast<uint64_t>(o.vocab)));
  Arena arena;
  std::vector<double> times;
  for (int pass = 0; pass < 2; ++pass) {  // the first pass warms the caches and the arena
    lm.start_generation();
    arena.reset();
    lm.extend(std::span<const int32_t>(ids.data(), prompt), arena);
    times.clear();
    for (int64_t i = prompt; i < prompt + o.decode; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      arena.reset();
      lm.extend(std::span<const int32_t>(ids.data() + i, 1), arena);
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  std::sort(times.begin(), times.end());
  const double t = times[times.size() / 2];
  const double d = static_cast<double>(o.d_model), l = static_cast<double>(o.layers),
               f = static_cast<double>(o.ffn), v = static_cast<double>(o.vocab),
               e = static_cast<double>(o.experts);
  const double k = o.dense ? 1.0 : static_cast<double>(o.topk);
  const double ffn = o.dense ? 3 * d * f * static_cast<double>(o.topk) : k * 3 * d * f + e * d;
  const double bytes = 4 * (l * (4 * d * d + ffn + 2 * d) + v * d + d);
  const double bw = read_bandwidth();
  std::printf(
      "%-10s decode L=%lld D=%lld E=%lld k=%lld F=%lld V=%lld threads=%d: %8.3f ms/token "
      "(median of %d)  %8.1f tokens/s  active weights %.1f MB/token  read bandwidth %.1f GB/s "
      "-> %.3f ms/token  ratio %.2f\n",
      o.dense ? "moe-dense" : "moe-lm", static_cast<long long>(o.layers),
      static_cast<long long>(o.d_model), static_cast<long long>(o.dense ? 0 : o.experts),
      static_cast<long long>(o.topk), static_cast<long long>(o.ffn),
      static_cast<long long>(o.vocab), omp_get_max_threads(), t * 1e3, o.decode, 1 / t, bytes / 1e6,
      bw / 1e9, bytes / bw * 1e3, t / (bytes / bw));
  return 0;
}

int run(const Options& o) {
  DataShape shape;
  shape.input = FeatureKind::kTokens;
  shape.n_features = o.vocab;
  shape.n_outputs = o.vocab;
  Result<std::unique_ptr<Model>> created = Model::create(model_config(o), shape);
  if (!created.is_ok()) {
    std::fprintf(stderr, "bench_lm: %s\n", created.status().message().c_str());
    return 1;
  }
  Model& model = *created.value();
  model.init(1);
  if (o.decode > 0) {
    auto* lm = dynamic_cast<LmModel*>(&model);
    if (lm == nullptr) return 1;
    return run_decode(o, *lm);
  }
  OptimizerConfig oc;
  oc.kind = OptimizerKind::kAdamW;
  oc.weight_decay = 0.1;
  oc.beta2 = 0.95;
  std::unique_ptr<Optimizer> opt = make_optimizer(model.params(), oc);

  const int64_t b = o.batch, s = o.context, tokens = b * s;
  TensorBuffer windows(Shape{b, s + 1}, DType::kI32);
  TensorBuffer dlogits(Shape{tokens, o.vocab});
  Rng rng(7);
  Arena arena;
  std::vector<double> times;
  double loss = 0.0;
  for (int step = 0; step < o.steps + 2; ++step) {
    if (o.stages && step == 2) {
      StageTimes::reset();
      StageTimes::enable(true);
    }
    int32_t* w = windows.view().data<int32_t>();
    for (int64_t i = 0; i < b * (s + 1); ++i)
      w[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(o.vocab)));
    Batch batch;
    batch.n_rows = b;
    batch.tokens = windows.view();
    const auto t0 = std::chrono::steady_clock::now();
    arena.reset();
    model.params().clear_grads();
    Tensor logits = model.forward(batch, true, Rng(3).fork(step), arena);
    loss = model.task_loss(batch, logits, dlogits.view(), TaskLossOptions());
    model.backward(dlogits.view(), arena);
    {
      const StageScope timed(Stage::kOptimizer);
      model.params().settle_grads();
      opt->step(3e-4);
      model.after_step();
    }
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (step >= 2) times.push_back(t);
  }
  std::sort(times.begin(), times.end());
  const double t = times[times.size() / 2];
  const double d = static_cast<double>(o.d_model), l = static_cast<double>(o.layers),
               f = static_cast<double>(o.ffn), v = static_cast<double>(o.vocab),
               k = static_cast<double>(o.topk), tk = static_cast<double>(tokens);
  const double mm = 6 * tk * (l * (4 * d * d + k * 3 * d * f) + v * d);
  const double attn = 6 * static_cast<double>(b) * l * static_cast<double>(s * s) * d;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const char* impl = o.dense ? "moe-dense" : "moe-lm";
  std::printf(
      "%-10s L=%lld D=%lld E=%lld k=%lld F=%lld S=%lld B=%lld V=%lld %s threads=%d: "
      "%8.1f ms/step %8.0f tok/s %6.1f useful GFLOP/s  work %.0f MiB  peak RSS %.0f MiB  "
      "loss %.3f\n",
      impl, static_cast<long long>(o.layers), static_cast<long long>(o.d_model),
      static_cast<long long>(o.dense ? 0 : o.experts), static_cast<long long>(o.topk),
      static_cast<long long>(o.ffn), static_cast<long long>(s), static_cast<long long>(b),
      static_cast<long long>(o.vocab), enum_name(kPrecisionNames, o.precision),
      omp_get_max_threads(), t * 1e3, tk / t, (mm + attn) / t / 1e9,
      static_cast<double>(arena.high_water()) / (1 << 20), static_cast<double>(ru.ru_maxrss) / 1024,
      loss);
  if (o.stages) print_stages(o, times);
  if (!o.jsonl.empty()) {
    std::FILE* fp = std::fopen(o.jsonl.c_str(), "a");
    if (fp == nullptr) {
      std::fprintf(stderr, "bench_lm: cannot append to %s\n", o.jsonl.c_str());
      return 1;
    }
    std::fprintf(fp,
                 "{\"impl\": \"%s\", \"precision\": \"%s\", \"threads\": %d, \"layers\": %lld, "
                 "\"d_model\": %lld, \"experts\": %lld, \"topk\": %lld, \"ffn\": %lld, "
                 "\"context\": %lld, \"batch\": %lld, \"vocab\": %lld, \"step_s\": %.6f, "
                 "\"tokens_per_s\": %.1f, \"gflops\": %.2f}\n",
                 impl, enum_name(kPrecisionNames, o.precision), omp_get_max_threads(),
                 static_cast<long long>(o.layers), static_cast<long long>(o.d_model),
                 static_cast<long long>(o.dense ? 0 : o.experts), static_cast<long long>(o.topk),
                 static_cast<long long>(o.ffn), static_cast<long long>(s),
                 static_cast<long long>(b), static_cast<long long>(o.vocab), t, tk / t,
                 (mm + attn) / t / 1e9);
    std::fclose(fp);
  }
  return 0;
}

}  // namespace
}  // namespace moe

int main(int argc, char** argv) {
  moe::Options o;
  if (!moe::parse(argc, argv, &o)) return moe::usage();
  return moe::run(o);
}
