// An optional wall-clock breakdown of a training step by stage (bench_lm --stages): a model wraps
// each stage of its forward and backward in a StageScope, and the times add up per stage while
// StageTimes is enabled. Off by default, when a scope costs one relaxed load and a branch.
//
// Scopes are opened on the calling thread only, outside parallel regions, and do not nest: a
// stage's time is the wall time of its calls, threads and all.
#pragma once

#include <array>
#include <atomic>
#include <chrono>

namespace moe {

enum class Stage : int {
  kEmbed,              // embedding lookup and its gradient
  kNorm,               // RMSNorm forward and backward
  kQkvGemm,            // x·Wq/Wk/Wvᵀ and their backward
  kRope,               // rotary embedding forward and backward
  kAttentionForward,   // the blocked softmax(QKᵀ)V
  kAttentionBackward,  // its backward
  kOutGemm,            // a·Woᵀ and its backward
  kFfn,                // the MoE layer or the dense FFN, forward and backward
  kResidual,           // residual adds and copies
  kHeadGemm,           // the logits and their backward
  kLoss,               // cross-entropy and its gradient
  kOptimizer,          // gradient settling and the optimizer step
  kCount,
};

inline constexpr std::array<const char*, static_cast<int>(Stage::kCount)> kStageNames = {
    "embed",    "norms", "qkv gemms", "rope",       "attention fwd", "attention bwd",
    "wo gemms", "ffn",   "residual",  "head gemms", "loss",          "optimizer"};

class StageTimes {
 public:
  static void enable(bool on) { timing_on.store(on, std::memory_order_relaxed); }
  static bool enabled() { return timing_on.load(std::memory_order_relaxed); }
  static void reset() { seconds_by_stage.fill(0.0); }
  static void add(Stage s, double seconds) { seconds_by_stage[static_cast<int>(s)] += seconds; }
  static double seconds(Stage s) { return seconds_by_stage[static_cast<int>(s)]; }

 private:
  static inline std::atomic<bool> timing_on{false};
  static inline std::array<double, static_cast<int>(Stage::kCount)> seconds_by_stage{};
};

// Adds the wall time from construction to destruction to its stage, when timing is enabled.
class StageScope {
 public:
  explicit StageScope(Stage s) : stage_(s), on_(StageTimes::enabled()) {
    if (on_) start_ = std::chrono::steady_clock::now();
  }
  ~StageScope() {
    if (on_)
      StageTimes::add(
          stage_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }
  StageScope(const StageScope&) = delete;
  StageScope& operator=(const StageScope&) = delete;

 private:
  Stage stage_;
  bool on_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace moe
