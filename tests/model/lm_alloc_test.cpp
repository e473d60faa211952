// No heap allocation in a steady-state training step of the language model (model/lm_model.h):
// forward, cross-entropy, backward and AdamW, as bench_lm and the trainer run them. The arena must
// stop growing after the first steps (no overflow block, a constant high-water mark), and no
// allocation may come from moe's own code. As in tests/moe/moe_alloc_test.cpp, every allocation
// of this test binary is seen by a malloc hook and attributed by walking the stack to the first
// frame outside the C and C++ runtimes; oneDNN's and libgomp's small per-call blocks are counted
// and printed, not failed (that file says why they are harmless).
//
// Dims: B windows · S context · T = B·S tokens · V vocabulary · D width.
#include <dlfcn.h>
#include <execinfo.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "moe/core/arena.h"
#include "moe/core/rng.h"
#include "moe/model/lm_model.h"
#include "moe/optim/optimizer.h"

namespace {

std::atomic<bool> g_watching{false};
std::atomic<int64_t> g_own{0};      // allocations from moe's code
std::atomic<int64_t> g_foreign{0};  // allocations from oneDNN or libgomp
thread_local bool t_in_hook = false;

bool in_runtime(const char* file) {
  return std::strstr(file, "libc.so") != nullptr || std::strstr(file, "libstdc++") != nullptr ||
         std::strstr(file, "libasan") != nullptr || std::strstr(file, "libubsan") != nullptr;
}

[[maybe_unused]] void note_allocation() {
  if (!g_watching.load(std::memory_order_relaxed) || t_in_hook) return;
  t_in_hook = true;
  void* frames[16];
  const int n = backtrace(frames, 16);
  bool own = true;
  for (int i = 2; i < n; ++i) {  // frames[0] is this function, frames[1] the hook
    Dl_info info{};
    if (dladdr(frames[i], &info) == 0 || info.dli_fname == nullptr) continue;
    if (in_runtime(info.dli_fname)) continue;
    own = std::strstr(info.dli_fname, "libdnnl") == nullptr &&
          std::strstr(info.dli_fname, "libgomp") == nullptr;
    break;
  }
  (own ? g_own : g_foreign).fetch_add(1, std::memory_order_relaxed);
  t_in_hook = false;
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer owns malloc: no hook, and the test skips (tests/moe/moe_alloc_test.cpp).
#define MOE_LM_ALLOC_TEST_SKIP() GTEST_SKIP() << "allocation counting runs in builds without ASan"
#else
#define MOE_LM_ALLOC_TEST_SKIP() static_cast<void>(0)
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);

void* malloc(size_t n) {
  note_allocation();
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  note_allocation();
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  note_allocation();
  return __libc_realloc(p, n);
}
void* memalign(size_t align, size_t n) {
  note_allocation();
  return __libc_memalign(align, n);
}
void* aligned_alloc(size_t align, size_t n) {
  note_allocation();
  return __libc_memalign(align, n);
}
int posix_memalign(void** out, size_t align, size_t n) {
  note_allocation();
  *out = __libc_memalign(align, n);
  return *out != nullptr ? 0 : ENOMEM;
}
}  // extern "C"
#endif

namespace moe {
namespace {

// An MoE and a dense block over a context long enough for several attention blocks, a vocabulary
// wide enough for the head's and the loss's parallel paths.
ModelConfig lm_config() {
  ModelConfig c;
  c.language_model = true;
  c.width = 64;
  c.lm.layers = 2;
  c.lm.heads = 4;
  c.lm.kv_heads = 2;
  c.lm.context = 96;
  c.lm.tie_embeddings = true;
  MoeBlockConfig m;
  m.n_experts = 4;
  m.expert = {ExpertKind::kSwiglu, 48, 1, Activation::kGelu, false};
  m.gate.kind = GateKind::kTopKSoftmax;
  m.gate.k = 2;
  m.gate.switch_loss = 0.01f;
  c.moe = {m};
  return c;
}

TEST(LmModelAllocation, TrainingStepAllocatesNothing) {
  MOE_LM_ALLOC_TEST_SKIP();
  DataShape shape;
  shape.input = FeatureKind::kTokens;
  shape.n_features = 512;
  shape.n_outputs = 512;
  Result<std::unique_ptr<Model>> made = Model::create(lm_config(), shape);
  ASSERT_TRUE(made.is_ok()) << made.status().message();
  Model& model = *made.value();
  model.init(1);
  OptimizerConfig oc;
  oc.kind = OptimizerKind::kAdamW;
  oc.weight_decay = 0.1;
  std::unique_ptr<Optimizer> opt = make_optimizer(model.params(), oc);
  const int64_t b = 4, s = 96;
  TensorBuffer windows(Shape{b, s + 1}, DType::kI32), dlogits(Shape{b * s, 512});
  Rng rng(7);
  Arena arena;
  Batch batch;
  batch.n_rows = b;
  batch.tokens = windows.view();
  int step_index = 0;
  auto step = [&] {
    int32_t* w = windows.view().data<int32_t>();
    for (int64_t i = 0; i < b * (s + 1); ++i) w[i] = static_cast<int32_t>(rng.below(512));
    arena.reset();
    model.params().clear_grads();
    Tensor logits = model.forward(batch, /*training=*/true, Rng(3).fork(step_index++), arena);
    model.task_loss(batch, logits, dlogits.view(), TaskLossOptions());
    model.backward(dlogits.view(), arena);
    model.params().settle_grads();
    opt->step(1e-3);
    model.after_step();
  };
  // Warm-up: the arena learns its size, oneDNN compiles its kernels, OpenMP builds its team.
  for (int i = 0; i < 4; ++i) step();
  const int overflow_before = arena.overflow_allocations();
  const size_t high_water_before = arena.high_water();
  void* warm[4];
  backtrace(warm, 4);  // loads the unwinder now, not inside the hook
  g_own = 0;
  g_foreign = 0;
  g_watching = true;
  for (int i = 0; i < 3; ++i) step();
  g_watching = false;
  std::printf(
      "  3 LM steps: %lld allocations by moe, %lld inside oneDNN / libgomp; arena %zu "
      "bytes\n",
      static_cast<long long>(g_own.load()), static_cast<long long>(g_foreign.load()),
      arena.high_water());
  EXPECT_EQ(g_own.load(), 0) << "heap allocations by moe in steady-state LM steps";
  EXPECT_EQ(arena.overflow_allocations(), overflow_before) << "the arena grew after warm-up";
  EXPECT_EQ(arena.high_water(), high_water_before) << "the arena's high-water mark moved";
}

}  // namespace
}  // namespace moe
