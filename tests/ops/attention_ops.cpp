// Rotary position embedding, causal grouped-query attention and packed (cross-)attention over
// sequences of different lengths as op cases. Each op is bound once
// (`<op>_op`); the gradient checks draw small inputs (B = 2, S = 5, H = 4, G = 2, Dh = 4), the
// naive references are the RoPE formula in double and ref::attention_forward, and the goldens read
// tests/golden/gen_attention.py's fixtures (float64 autograd on the stored float32 inputs).
//
// Dims: B sequences · S positions · H query heads · G kv heads · Dh head width; rows b·S + s.
#include <omp.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "moe/core/rng.h"
#include "moe/layers/attention.h"
#include "moe/layers/rope.h"
#include "op_cases.h"
#include "testing/tensors.h"

namespace moe::testing {
namespace {

// ---- RoPE: y = rotate(x) by (pos0 + s) · θ^(−2i/Dh); x [B·S, H·Dh]
// -------------------------------

struct RopeSetup {
  int64_t batch = 2, seq = 5, n_heads = 4, head_dim = 4, pos0 = 3;
  double theta = 10000.0;
};

OpRun rope_op(OpTensors t, const RopeSetup& r) {
  OpRun run;
  auto table = std::make_shared<RopeTable>(
      RopeTable::build(r.pos0 + r.seq + 2, r.head_dim, r.theta));  // a few rows to spare
  const Tensor x = t["x"], y = t.zeros_like("y", "x"), dx = t.zeros_like("dx", "x");
  const RopeTable* tab = table.get();
  run.forward = [tab, r, x, y] {
    copy(y, x);
    rope_forward(*tab, r.batch, r.seq, r.n_heads, r.pos0, y);
  };
  run.backward = [tab, r, dx](Tensor dy) {
    copy(dx, dy);
    rope_backward(*tab, r.batch, r.seq, r.n_heads, r.pos0, dx);
  };
  run.targets = {"x"};
  run.state = table;
  run.t = std::move(t);
  return run;
}

// x'[2i] = x[2i] cos − x[2i+1] sin, x'[2i+1] = x[2i] sin + x[2i+1] cos, angles in double.
TensorBuffer naive_rope(const OpTensors& t, const RopeSetup& r) {
  const Tensor x = t["x"];
  TensorBuffer y(x.shape());
  for (int64_t row = 0; row < x.rows(); ++row) {
    const double pos = static_cast<double>(r.pos0 + row % r.seq);
    for (int64_t h = 0; h < r.n_heads; ++h)
      for (int64_t i = 0; i < r.head_dim / 2; ++i) {
        const double angle = pos * std::pow(r.theta, -2.0 * static_cast<double>(i) /
                                                         static_cast<double>(r.head_dim));
        const int64_t c = row * x.cols() + h * r.head_dim + 2 * i;
        const double x0 = x.f32()[c], x1 = x.f32()[c + 1];
        y.f32()[c] = static_cast<float>(x0 * std::cos(angle) - x1 * std::sin(angle));
        y.f32()[c + 1] = static_cast<float>(x0 * std::sin(angle) + x1 * std::cos(angle));
      }
  }
  return y;
}

OpCase rope_case() {
  const RopeSetup drawn;
  OpCase c{.name = "rope"};
  c.gradcheck = GradcheckSpec{
      .make =
          [drawn] {
            OpTensors t;
            t.add("x",
                  random_uniform({drawn.batch * drawn.seq, drawn.n_heads * drawn.head_dim}, 31));
            return rope_op(std::move(t), drawn);
          },
      .projection_seed = 31};
  c.reference =
      ReferenceSpec{.output = [drawn](const OpTensors& t) { return naive_rope(t, drawn); }};
  c.golden = GoldenSpec{.fixture = "attention_rope",
                        .make =
                            [](const Fixture& f) {
                              const RopeSetup r{.batch = f.meta_int("batch"),
                                                .seq = f.meta_int("seq"),
                                                .n_heads = f.meta_int("n_heads"),
                                                .head_dim = f.meta_int("head_dim"),
                                                .pos0 = f.meta_int("pos0"),
                                                .theta = f.meta_double("theta")};
                              OpTensors t;
                              t.load(f, "x");
                              return rope_op(std::move(t), r);
                            },
                        .compare = {{"y"}, {"dx"}}};
  return c;
}

// ---- attention: o = softmax(q kᵀ/√Dh + mask) v per head; q [B·S, H·Dh], k, v [B·S, G·Dh]
// ----------

OpRun attention_op(OpTensors t, const AttentionDims& d) {
  OpRun run;
  const Tensor q = t["q"], k = t["k"], v = t["v"];
  const Tensor y = t.zeros_like("y", "q"), dq = t.zeros_like("dq", "q"),
               dk = t.zeros_like("dk", "k"), dv = t.zeros_like("dv", "v");
  const AttentionCache cache{t.zeros("lse", Shape{d.batch, d.n_heads, d.seq})};
  const Tensor workspace =
      t.zeros("workspace", Shape{attention_workspace_floats(d, omp_get_max_threads())});
  run.forward = [d, q, k, v, y, cache, workspace] {
    attention_forward(d, q, k, v, y, cache, workspace);
  };
  run.backward = [d, q, k, v, y, cache, dq, dk, dv, workspace](Tensor dy) {
    attention_backward(d, q, k, v, y, cache, dy, dq, dk, dv, workspace);
  };
  run.targets = {"q", "k", "v"};
  run.t = std::move(t);
  return run;
}

TensorBuffer naive_attention(const OpTensors& t, const AttentionDims& d) {
  TensorBuffer o(t["q"].shape()), lse(Shape{d.batch, d.n_heads, d.seq});
  ref::attention_forward(d, t["q"], t["k"], t["v"], o, AttentionCache{lse});
  return o;
}

OpRun attention_drawn(const AttentionDims& d) {
  Rng rng(32);
  OpTensors t;
  const int64_t tokens = d.batch * d.seq;
  t.add("q", random_uniform({tokens, d.n_heads * d.head_dim}, rng, -1.5f, 1.5f));
  t.add("k", random_uniform({tokens, d.n_kv_heads * d.head_dim}, rng, -1.5f, 1.5f));
  t.add("v", random_uniform({tokens, d.n_kv_heads * d.head_dim}, rng));
  return attention_op(std::move(t), d);
}

OpRun attention_from(const Fixture& f, bool causal) {
  const AttentionDims d{.batch = f.meta_int("batch"),
                        .seq = f.meta_int("seq"),
                        .n_heads = f.meta_int("n_heads"),
                        .n_kv_heads = f.meta_int("n_kv_heads"),
                        .head_dim = f.meta_int("head_dim"),
                        .causal = causal};
  OpTensors t;
  t.load(f, "q");
  t.load(f, "k");
  t.load(f, "v");
  return attention_op(std::move(t), d);
}

// The gradient-checked case (small drawn inputs) with the golden of fixture `fixture`.
OpCase attention_case(const std::string& fixture, bool causal, bool gradcheck) {
  const std::string s = causal ? "_causal" : "_full";
  OpCase c{.name = "attention_" + fixture + s};
  if (gradcheck) {
    const AttentionDims d{
        .batch = 2, .seq = 5, .n_heads = 4, .n_kv_heads = 2, .head_dim = 4, .causal = causal};
    c.gradcheck = GradcheckSpec{.make = [d] { return attention_drawn(d); },
                                .projection_seed = causal ? 33u : 34u};
    c.reference =
        ReferenceSpec{.output = [d](const OpTensors& t) { return naive_attention(t, d); }};
  }
  c.golden =
      GoldenSpec{.fixture = "attention_" + fixture,
                 .make = [causal](const Fixture& f) { return attention_from(f, causal); },
                 .compare = {{"y", "y" + s}, {"dq", "dq" + s}, {"dk", "dk" + s}, {"dv", "dv" + s}}};
  return c;
}

// ---- packed attention: sequences of different lengths, q [Tq, H·Dh], k, v [Tk, G·Dh]
// ----------

// The starts the dims' spans view, kept alive with the run.
struct PackedSetup {
  std::vector<int64_t> q_starts, k_starts;
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  bool causal = false;

  PackedAttentionDims dims() const {
    return PackedAttentionDims{.q_starts = q_starts,
                               .k_starts = k_starts,
                               .n_heads = n_heads,
                               .n_kv_heads = n_kv_heads,
                               .head_dim = head_dim,
                               .causal = causal};
  }
};

OpRun packed_attention_op(OpTensors t, const std::shared_ptr<PackedSetup>& setup) {
  OpRun run;
  const PackedAttentionDims d = setup->dims();
  const Tensor q = t["q"], k = t["k"], v = t["v"];
  const Tensor y = t.zeros_like("y", "q"), dq = t.zeros_like("dq", "q"),
               dk = t.zeros_like("dk", "k"), dv = t.zeros_like("dv", "v");
  const AttentionCache cache{t.zeros("lse", Shape{d.n_heads, d.query_rows()})};
  const Tensor workspace =
      t.zeros("workspace", Shape{attention_workspace_floats(d, omp_get_max_threads())});
  run.forward = [d, q, k, v, y, cache, workspace] {
    attention_forward(d, q, k, v, y, cache, workspace);
  };
  run.backward = [d, q, k, v, y, cache, dq, dk, dv, workspace](Tensor dy) {
    attention_backward(d, q, k, v, y, cache, dy, dq, dk, dv, workspace);
  };
  run.targets = {"q", "k", "v"};
  run.state = setup;
  run.t = std::move(t);
  return run;
}

std::vector<int64_t> starts_of(const std::vector<int64_t>& lengths) {
  std::vector<int64_t> starts = {0};
  for (const int64_t n : lengths) starts.push_back(starts.back() + n);
  return starts;
}

// "0,3,3,8": the starts a fixture's metadata lists.
std::vector<int64_t> parse_starts(const std::string& text) {
  std::vector<int64_t> starts;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t end = std::min(text.find(',', at), text.size());
    starts.push_back(std::stoll(text.substr(at, end - at)));
    at = end + 1;
  }
  return starts;
}

// Cross-attention (a sentence without queries among them) or causal self-attention over
// sentences of 2, 1 and 3 tokens, H = 4, G = 2, Dh = 4, with the fixture's golden.
OpCase packed_attention_case(bool causal) {
  const std::vector<int64_t> q_lens =
      causal ? std::vector<int64_t>{2, 1, 3} : std::vector<int64_t>{2, 0, 3, 1};
  const std::vector<int64_t> k_lens = causal ? q_lens : std::vector<int64_t>{3, 2, 1, 4};
  const auto drawn = std::make_shared<PackedSetup>(PackedSetup{.q_starts = starts_of(q_lens),
                                                               .k_starts = starts_of(k_lens),
                                                               .n_heads = 4,
                                                               .n_kv_heads = 2,
                                                               .head_dim = 4,
                                                               .causal = causal});
  const std::string fixture = causal ? "attention_packed_causal" : "attention_packed_cross";
  OpCase c{.name = fixture};
  c.gradcheck = GradcheckSpec{
      .make =
          [drawn] {
            const PackedAttentionDims d = drawn->dims();
            Rng rng(35);
            OpTensors t;
            t.add("q", random_uniform({d.query_rows(), d.n_heads * d.head_dim}, rng, -1.5f, 1.5f));
            t.add("k", random_uniform({d.key_rows(), d.n_kv_heads * d.head_dim}, rng, -1.5f, 1.5f));
            t.add("v", random_uniform({d.key_rows(), d.n_kv_heads * d.head_dim}, rng));
            return packed_attention_op(std::move(t), drawn);
          },
      .projection_seed = causal ? 36u : 37u};
  c.reference = ReferenceSpec{.output = [drawn](const OpTensors& t) {
    const PackedAttentionDims d = drawn->dims();
    TensorBuffer o(t["q"].shape()), lse(Shape{d.n_heads, d.query_rows()});
    ref::attention_forward(d, t["q"], t["k"], t["v"], o, AttentionCache{lse});
    return o;
  }};
  c.golden = GoldenSpec{.fixture = fixture,
                        .make =
                            [](const Fixture& f) {
                              const auto setup = std::make_shared<PackedSetup>(
                                  PackedSetup{.q_starts = parse_starts(f.meta("q_starts")),
                                              .k_starts = parse_starts(f.meta("k_starts")),
                                              .n_heads = f.meta_int("n_heads"),
                                              .n_kv_heads = f.meta_int("n_kv_heads"),
                                              .head_dim = f.meta_int("head_dim"),
                                              .causal = f.meta_int("causal") != 0});
                              OpTensors t;
                              t.load(f, "q");
                              t.load(f, "k");
                              t.load(f, "v");
                              return packed_attention_op(std::move(t), setup);
                            },
                        .compare = {{"y"}, {"dq"}, {"dk"}, {"dv"}}};
  return c;
}

}  // namespace

std::vector<OpCase> attention_op_cases() {
  std::vector<OpCase> cases = {rope_case()};
  for (bool causal : {true, false}) {
    cases.push_back(attention_case("gqa", causal, true));
    cases.push_back(attention_case("mha", causal, false));
    cases.push_back(attention_case("blocks", causal, false));
    cases.push_back(packed_attention_case(causal));
  }
  return cases;
}

}  // namespace moe::testing
