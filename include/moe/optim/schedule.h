// Learning-rate schedules: a small value type mapping an optimizer step to a learning rate.
//
// Steps count from 0 (the first optimizer step). Every kind may start with a linear warm-up of
// W = warmup_steps steps; s' = s − W counts the steps after it.
//
//   warm-up (s < W):  lr(s) = base_lr · (s + 1) / W
//                     (the first step already moves; step W − 1 reaches base_lr)
//   kConstant:        lr(s) = base_lr
//   kCosine:          lr(s) = min_lr + (base_lr − min_lr) · ½ (1 + cos(π · min(1, s' / D))),
//                     D = max(1, total_steps − W): the decay reaches min_lr at s = total_steps
//                     and stays there (SGDR, Loshchilov & Hutter 2017, without restarts)
//   kStep:            lr(s) = base_lr · γ^⌊s' / N⌋,  N = step_size
//
// "Linear warm-up then constant" is kConstant with warmup_steps > 0.
#pragma once

#include <cstdint>
#include <string>

#include "moe/core/enum_names.h"
#include "moe/core/status.h"

namespace moe {

enum class ScheduleKind { kConstant, kCosine, kStep };

inline constexpr EnumName<ScheduleKind> kScheduleKindNames[] = {
    {"constant", ScheduleKind::kConstant},
    {"cosine", ScheduleKind::kCosine},
    {"step", ScheduleKind::kStep}};

const char* schedule_kind_name(ScheduleKind k);
// Parses the names above; false if unknown.
bool parse_schedule_kind(const std::string& name, ScheduleKind* out);

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::kConstant;
  double base_lr = 1e-3;
  int64_t warmup_steps = 0;  // W
  int64_t total_steps = 0;   // kCosine: the step at which min_lr is reached
  double min_lr = 0.0;       // kCosine
  int64_t step_size = 1;     // kStep: N
  double gamma = 0.1;        // kStep: γ

  static LrSchedule constant(double lr, int64_t warmup_steps = 0);
  static LrSchedule cosine(double lr, int64_t total_steps, int64_t warmup_steps = 0,
                           double min_lr = 0.0);
  static LrSchedule step_decay(double lr, int64_t step_size, double gamma,
                               int64_t warmup_steps = 0);

  // The learning rate of step `step` (≥ 0).
  double lr_at(int64_t step) const;
  // Rejects values a user could write in a config: negative rates or counts, γ outside (0, 1],
  // min_lr above base_lr, a cosine horizon inside the warm-up, a zero step size.
  Status validate() const;
};

}  // namespace moe
