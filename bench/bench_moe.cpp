// MoE layer speed: forward and forward+backward of a top-k softmax MoE layer with SwiGLU experts
// against a dense SwiGLU FFN of the same active FLOPs (hidden width K·F) on the same rows, timed
// alternately in one process so that their ratio shares the machine's conditions.
//
// Dims: T tokens · D model width · F expert hidden width · E experts · K experts per token.
//
// Useful FLOPs: T·K·6·D·F forward (three GEMMs of 2·D·F per routed row), three times that for
// forward+backward; the router, sort, permute and combine count as overhead, not useful work.
// Each configuration reports, per implementation and mode: the best time over the repetitions,
// tokens/s, useful GFLOP/s, MoE/dense, the share of the forward spent in router + sort +
// permute + combine (the layer's own stage timers), the step's working memory (the Arena's
// high-water mark) and parameter + gradient memory; the process's peak RSS is printed at the end.
//
// --precision bf16 runs the experts' GEMMs in bf16 (fp32 accumulation and master weights, the
// per-step weight rounding included in the time; experts.h); --precision both runs each layer in
// fp32 and in bf16, switching the same layer's precision step by step, and gives every bf16 row
// its speed-up over the fp32 row of the same implementation (vs_fp32, fp32 time / bf16 time).
// Working memory of a bf16 row includes the bf16 weight copies. A forward+backward step clears
// the parameter gradients first and settles them after the backward, as a training step does
// (ParamStore::clear_grads / settle_grads: the experts' first contributions write their
// gradients); --eager-zero zeroes every gradient first instead (zero_grads), a pass over the
// whole gradient arena, which the experts' backward then reads back.
//
// Usage (every flag optional; no flags = the full grid of issue 7 plus the fine-grained case):
//   bench_moe [--experts 8,64,256] [--topk 1,2] [--tokens 512,2048,8192] [--hidden 2048]
//             [--d-model 512] [--fine | --no-fine | --only-fine] [--modes fwd,fwdbwd]
//             [--reps 3] [--min-time 0.3] [--threading auto|across|inside] [--no-dense]
//             [--stages] [--jsonl FILE] [--precision fp32|bf16|both] [--eager-zero]
//             [--cpu-time]
// --cpu-time times each step by the CPU time of the whole process (all threads) instead of the
// wall clock: a thread the scheduler sets aside does not count, so on a loaded machine this is
// the work done (at one thread; at two it also counts OpenMP's spinning at barriers).
// --stages prints the layer's stage times of one more step after each MoE row.
// One configuration in seconds: bench_moe --experts 64 --topk 2 --tokens 2048 --no-fine
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/moe/moe_layer.h"

namespace moe {
namespace {

struct BenchConfig {
  int64_t e = 0, k = 0, t = 0, f = 0;
};

struct Options {
  std::vector<int64_t> experts{8, 64, 256};
  std::vector<int64_t> topk{1, 2};
  std::vector<int64_t> tokens{512, 2048, 8192};
  int64_t hidden = 2048;
  int64_t d_model = 512;
  bool grid = true;
  bool fine = true;
  bool fwd = true, fwdbwd = true;
  int reps = 3;
  double min_time = 0.3;  // seconds per implementation and mode, at least `reps` runs
  ExpertThreading threading = ExpertThreading::kAuto;
  bool dense = true;
  bool stages = false;
  bool eager_zero = false;
  bool cpu_time = false;
  std::string jsonl;
  std::vector<Precision> precisions{Precision::kF32};
};

std::vector<int64_t> parse_list(const char* s) {
  std::vector<int64_t> out;
  for (const char* p = s; *p != '\0';) {
    char* end = nullptr;
    const long long v = std::strtoll(p, &end, 10);
    if (end == p || v <= 0) {
      std::fprintf(stderr, "bench_moe: bad list '%s'\n", s);
      std::exit(2);
    }
    out.push_back(v);
    p = *end == ',' ? end + 1 : end;
  }
  return out;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_moe: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--experts") {
      o.experts = parse_list(value());
    } else if (a == "--topk") {
      o.topk = parse_list(value());
    } else if (a == "--tokens") {
      o.tokens = parse_list(value());
    } else if (a == "--hidden") {
      o.hidden = parse_list(value())[0];
    } else if (a == "--d-model") {
      o.d_model = parse_list(value())[0];
    } else if (a == "--fine") {
      o.fine = true;
    } else if (a == "--no-fine") {
      o.fine = false;
    } else if (a == "--only-fine") {
      o.fine = true;
      o.grid = false;
    } else if (a == "--modes") {
      // Built with append: GCC 12 reports a false -Wrestrict on "," + std::string(...).
      std::string m = ",";
      m.append(value()).append(",");
      o.fwd = m.find(",fwd,") != std::string::npos;
      o.fwdbwd = m.find(",fwdbwd,") != std::string::npos;
    } else if (a == "--reps") {
      o.reps = static_cast<int>(parse_list(value())[0]);
    } else if (a == "--min-time") {
      o.min_time = std::atof(value());
    } else if (a == "--threading") {
      const std::string m = value();
      o.threading = m == "across"   ? ExpertThreading::kAcrossExperts
                    : m == "inside" ? ExpertThreading::kInsideGemm
                                    : ExpertThreading::kAuto;
    } else if (a == "--stages") {
      o.stages = true;
    } else if (a == "--no-dense") {
      o.dense = false;
    } else if (a == "--eager-zero") {
      o.eager_zero = true;
    } else if (a == "--cpu-time") {
      o.cpu_time = true;
    } else if (a == "--jsonl") {
      o.jsonl = value();
    } else if (a == "--precision") {
      const std::string m = value();
      Precision p = Precision::kF32;
      if (m == "both") {
        o.precisions = {Precision::kF32, Precision::kBF16};
      } else if (parse_enum_name(kPrecisionNames, m, &p)) {
        o.precisions = {p};
      } else {
        std::fprintf(stderr, "bench_moe: --precision takes fp32, bf16 or both, not %s\n",
                     m.c_str());
        std::exit(2);
      }
    } else {
      std::fprintf(stderr, "bench_moe: unknown flag %s (see the head of bench/bench_moe.cpp)\n",
                   a.c_str());
      std::exit(2);
    }
  }
  return o;
}

// Seconds on the wall clock, or of CPU time used by the process (--cpu-time).
double clock_seconds(bool cpu_time) {
  if (!cpu_time) return omp_get_wtime();
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// One timed subject: a layer with its parameters, inputs and scratch, and one step function.
class Subject {
 public:
  virtual ~Subject() = default;
  virtual void forward() = 0;
  virtual void backward() = 0;
  virtual ParamStore& store() = 0;
  virtual double route_share() const { return 0.0; }
  virtual void print_stages() const {}
  virtual size_t param_bytes() const = 0;
  virtual size_t bf16_weight_bytes() const = 0;
  // Between steps; each precision has its own arena, so each one's high-water mark is its own.
  virtual void set_precision(Precision p) = 0;
  size_t working_bytes(Precision p) const {
    return arenas_[index(p)].high_water() + (p == Precision::kBF16 ? bf16_weight_bytes() : 0);
  }

  // One step in precision p; returns its time (wall or CPU). The arena is reset first and, with a
  // backward, the gradients cleared before and settled after, as a training step does.
  double step(bool with_backward, Precision p) {
    set_precision(p);
    arena_ = &arenas_[index(p)];
    arena_->reset();
    const double t0 = clock_seconds(cpu_time_);
    if (with_backward) eager_zero_ ? store().zero_grads() : store().clear_grads();
    forward();
    if (with_backward) {
      backward();
      store().settle_grads();
    }
    return clock_seconds(cpu_time_) - t0;
  }
  void set_eager_zero(bool on) { eager_zero_ = on; }
  void set_cpu_time(bool on) { cpu_time_ = on; }

 protected:
  static size_t index(Precision p) { return p == Precision::kBF16 ? 1 : 0; }
  Arena arenas_[2];
  Arena* arena_ = &arenas_[0];
  bool eager_zero_ = false;
  bool cpu_time_ = false;
};

TensorBuffer random_rows(int64_t t, int64_t d, uint64_t seed) {
  TensorBuffer x(Shape{t, d});
  Rng(seed).fill_normal(x, 0.0f, 1.0f);
  return x;
}

class MoeSubject : public Subject {
 public:
  MoeSubject(const BenchConfig& c, int64_t d, ExpertThreading threading)
      : layer_(make_config(c, d)),
        x_(random_rows(c.t, d, 1)),
        y_(Shape{c.t, d}),
        dy_(random_rows(c.t, d, 2)),
        dx_(Shape{c.t, d}) {
    layer_.declare(store_, "moe");
    store_.finalize();
    layer_.bind(store_);
    Rng rng(3);
    layer_.init(rng);
    layer_.set_expert_threading(threading);
  }
  void forward() override { layer_.forward(x_, y_, /*training=*/true, Rng(4), *arena_); }
  void backward() override { layer_.backward(dy_, dx_, *arena_); }
  ParamStore& store() override { return store_; }
  void set_precision(Precision p) override { layer_.set_precision(p); }
  size_t bf16_weight_bytes() const override {
    return static_cast<size_t>(layer_.bf16_weight_bytes());
  }
  double route_share() const override {
    const MoeStageTimes& s = layer_.stage_times();
    const double total = s.route + s.dispatch + s.experts + s.combine + s.shared;
    return total > 0.0 ? (s.route + s.dispatch + s.combine) / total : 0.0;
  }
  size_t param_bytes() const override {
    return 2 * static_cast<size_t>(store_.n_elements()) * sizeof(float);
  }
  void print_stages() const override {
    const MoeStageTimes& s = layer_.stage_times();
    std::printf(
        "      stages of the last step, ms: forward route %.2f dispatch %.2f experts %.2f combine "
        "%.2f | backward combine %.2f experts %.2f dispatch %.2f route %.2f\n",
        s.route * 1e3, s.dispatch * 1e3, s.experts * 1e3, s.combine * 1e3, s.combine_bwd * 1e3,
        s.experts_bwd * 1e3, s.dispatch_bwd * 1e3, s.route_bwd * 1e3);
  }

 private:
  static MoeConfig make_config(const BenchConfig& c, int64_t d) {
    MoeConfig m;
    m.d_model = d;
    m.gate.kind = GateKind::kTopKSoftmax;  // Mixtral: softmax, top-k, renormalised
    m.gate.d_model = d;
    m.gate.n_experts = c.e;
    m.gate.k = c.k;
    ExpertConfig ec;
    ec.kind = ExpertKind::kSwiglu;
    ec.hidden = c.f;
    m.experts = repeat_experts(ec, c.e);
    return m;
  }

  ParamStore store_;
  MoeLayer layer_;
  TensorBuffer x_, y_, dy_, dx_;
};

// The dense SwiGLU FFN of width K·F: the same expert code, one expert, every row.
class DenseSubject : public Subject {
 public:
  DenseSubject(const BenchConfig& c, int64_t d)
      : ffn_(d, ExpertConfig{ExpertKind::kSwiglu, c.k * c.f}),
        x_(random_rows(c.t, d, 1)),
        y_(Shape{c.t, d}),
        dy_(random_rows(c.t, d, 2)),
        dx_(Shape{c.t, d}) {
    ffn_.declare(store_, "ffn");
    store_.finalize();
    ffn_.bind(store_);
    Rng rng(3);
    ffn_.init(rng);
  }
  void forward() override { ffn_.forward(x_, y_, *arena_); }
  void backward() override { ffn_.backward(dy_, dx_, *arena_); }
  ParamStore& store() override { return store_; }
  void set_precision(Precision p) override { ffn_.set_precision(p); }
  size_t bf16_weight_bytes() const override {
    return static_cast<size_t>(ffn_.bf16_weight_bytes());
  }
  size_t param_bytes() const override {
    return 2 * static_cast<size_t>(store_.n_elements()) * sizeof(float);
  }

 private:
  ParamStore store_;
  Expert ffn_;
  TensorBuffer x_, y_, dy_, dx_;
};

struct Measure {
  double best = 1e30;        // seconds
  double route_share = 0.0;  // of the best forward
};

void record(Subject& s, bool with_backward, Precision p, Measure* m) {
  const double t = s.step(with_backward, p);
  if (t < m->best) {
    m->best = t;
    m->route_share = s.route_share();
  }
}

struct Result {
  const char* impl;
  const char* mode;
  double seconds, tokens_per_s, gflops, ratio, route_share;
  size_t working_bytes, param_bytes;
  Precision precision;
  double vs_fp32;  // fp32 time / this time, for bf16 rows measured beside fp32 (else 0)
};

void print_header() {
  std::printf("%-5s %-3s %-5s %-5s %-6s %-5s %-6s %10s %12s %9s %9s %9s %10s %10s %8s\n", "E", "K",
              "T", "F", "impl", "prec", "mode", "ms", "tokens/s", "GFLOP/s", "vs_dense", "route%",
              "work_MiB", "param_MiB", "vs_fp32");
}

void report(const BenchConfig& c, const Result& r, FILE* jsonl) {
  const double mib = 1024.0 * 1024.0;
  std::printf(
      "%-5lld %-3lld %-5lld %-5lld %-6s %-5s %-6s %10.2f %12.0f %9.1f %9.3f %9.2f %10.1f %10.1f "
      "%8.3f\n",
      static_cast<long long>(c.e), static_cast<long long>(c.k), static_cast<long long>(c.t),
      static_cast<long long>(c.f), r.impl, precision_name(r.precision), r.mode, r.seconds * 1e3,
      r.tokens_per_s, r.gflops, r.ratio, 100.0 * r.route_share,
      static_cast<double>(r.working_bytes) / mib, static_cast<double>(r.param_bytes) / mib,
      r.vs_fp32);
  std::fflush(stdout);
  if (jsonl == nullptr) return;
  std::fprintf(jsonl,
               "{\"impl\":\"%s\",\"mode\":\"%s\",\"experts\":%lld,\"topk\":%lld,\"tokens\":%lld,"
               "\"hidden\":%lld,\"threads\":%d,\"seconds\":%.6g,\"tokens_per_s\":%.6g,"
               "\"gflops\":%.6g,\"vs_dense\":%.6g,\"route_share\":%.6g,\"working_bytes\":%zu,"
               "\"param_bytes\":%zu,\"precision\":\"%s\",\"vs_fp32\":%.6g}\n",
               r.impl, r.mode, static_cast<long long>(c.e), static_cast<long long>(c.k),
               static_cast<long long>(c.t), static_cast<long long>(c.f), omp_get_max_threads(),
               r.seconds, r.tokens_per_s, r.gflops, r.ratio, r.route_share, r.working_bytes,
               r.param_bytes, precision_name(r.precision), r.vs_fp32);
  std::fflush(jsonl);
}

void run_config(const BenchConfig& c, const Options& o, FILE* jsonl) {
  MoeSubject moe_layer(c, o.d_model, o.threading);
  std::unique_ptr<DenseSubject> dense;
  if (o.dense) dense = std::make_unique<DenseSubject>(c, o.d_model);
  moe_layer.set_eager_zero(o.eager_zero);
  moe_layer.set_cpu_time(o.cpu_time);
  if (dense) {
    dense->set_eager_zero(o.eager_zero);
    dense->set_cpu_time(o.cpu_time);
  }
  const double useful_fwd = static_cast<double>(c.t * c.k) * 6.0 * static_cast<double>(o.d_model) *
                            static_cast<double>(c.f);
  const size_t n_prec = o.precisions.size();
  for (const bool with_backward : {false, true}) {
    if ((with_backward && !o.fwdbwd) || (!with_backward && !o.fwd)) continue;
    // Two warm-up steps per precision: the first sizes the arena, the second runs on the folded
    // block and compiles any GEMM primitive of a row count not seen yet.
    for (int w = 0; w < 2; ++w) {
      for (const Precision p : o.precisions) {
        moe_layer.step(with_backward, p);
        if (dense) dense->step(with_backward, p);
      }
    }
    std::vector<Measure> m_moe(n_prec), m_dense(n_prec);
    double spent = 0.0;
    for (int rep = 0; rep < o.reps || spent < o.min_time; ++rep) {
      // Alternate implementations and precisions, so that a burst of load elsewhere hits all.
      const double t0 = omp_get_wtime();
      for (size_t i = 0; i < n_prec; ++i) {
        record(moe_layer, with_backward, o.precisions[i], &m_moe[i]);
        if (dense) record(*dense, with_backward, o.precisions[i], &m_dense[i]);
      }
      spent += (omp_get_wtime() - t0) / static_cast<double>(n_prec * (dense ? 2 : 1));
      if (rep > 200) break;
    }
    const double flops = useful_fwd * (with_backward ? 3.0 : 1.0);
    const char* mode = with_backward ? "fwdbwd" : "fwd";
    for (size_t i = 0; i < n_prec; ++i) {
      const Precision p = o.precisions[i];
      const bool vs = n_prec > 1 && p == Precision::kBF16;
      const double ratio = dense ? m_dense[i].best / m_moe[i].best : 0.0;
      report(c,
             {"moe", mode, m_moe[i].best, static_cast<double>(c.t) / m_moe[i].best,
              flops / m_moe[i].best * 1e-9, ratio, m_moe[i].route_share, moe_layer.working_bytes(p),
              moe_layer.param_bytes(), p, vs ? m_moe[0].best / m_moe[i].best : 0.0},
             jsonl);
      if (o.stages) {
        moe_layer.step(with_backward, p);
        moe_layer.print_stages();
      }
      if (dense)
        report(c,
               {"dense", mode, m_dense[i].best, static_cast<double>(c.t) / m_dense[i].best,
                flops / m_dense[i].best * 1e-9, 1.0, 0.0, dense->working_bytes(p),
                dense->param_bytes(), p, vs ? m_dense[0].best / m_dense[i].best : 0.0},
               jsonl);
    }
  }
}

}  // namespace
}  // namespace moe

int main(int argc, char** argv) {
  using moe::BenchConfig;
  const moe::Options o = moe::parse_options(argc, argv);
  std::vector<BenchConfig> configs;
  if (o.grid)
    for (int64_t e : o.experts)
      for (int64_t k : o.topk)
        for (int64_t t : o.tokens)
          if (k <= e) configs.push_back({e, k, t, o.hidden});
  if (o.fine)  // fine-grained experts: E = 64, F = 256, K = 8
    for (int64_t t : o.tokens) configs.push_back({64, 8, t, 256});
  FILE* jsonl = nullptr;
  if (!o.jsonl.empty()) {
    jsonl = std::fopen(o.jsonl.c_str(), "a");
    if (jsonl == nullptr) {
      std::fprintf(stderr, "bench_moe: cannot open %s\n", o.jsonl.c_str());
      return 1;
    }
  }
  std::printf("bench_moe: D=%lld, %d threads; best of >= %d steps (and >= %.2f s) per row%s\n",
              static_cast<long long>(o.d_model), omp_get_max_threads(), o.reps, o.min_time,
              o.cpu_time ? ", process CPU time" : "");
  if (o.precisions.size() > 1) {
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) == 3)
      std::printf("load average %.2f %.2f %.2f (1, 5, 15 min)\n", load[0], load[1], load[2]);
  }
  moe::print_header();
  for (const BenchConfig& c : configs) moe::run_config(c, o, jsonl);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("peak RSS %.1f MiB\n", static_cast<double>(usage.ru_maxrss) / 1024.0);
  if (jsonl != nullptr) std::fclose(jsonl);
  return 0;
}
