// Learning-rate schedules (formulas in include/moe/optim/schedule.h).
#include "moe/optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "moe/core/check.h"

namespace moe {

const char* schedule_kind_name(ScheduleKind k) {
  return enum_name(kScheduleKindNames, k);
}

bool parse_schedule_kind(const std::string& name, ScheduleKind* out) {
  return parse_enum_name(kScheduleKindNames, name, out);
}

LrSchedule LrSchedule::constant(double lr, int64_t warmup_steps) {
  LrSchedule s;
  s.kind = ScheduleKind::kConstant;
  s.base_lr = lr;
  s.warmup_steps = warmup_steps;
  return s;
}

LrSchedule LrSchedule::cosine(double lr, int64_t total_steps, int64_t warmup_steps, double min_lr) {
  LrSchedule s;
  s.kind = ScheduleKind::kCosine;
  s.base_lr = lr;
  s.total_steps = total_steps;
  s.warmup_steps = warmup_steps;
  s.min_lr = min_lr;
  return s;
}

LrSchedule LrSchedule::step_decay(double lr, int64_t step_size, double gamma,
                                  int64_t warmup_steps) {
  LrSchedule s;
  s.kind = ScheduleKind::kStep;
  s.base_lr = lr;
  s.step_size = step_size;
  s.gamma = gamma;
  s.warmup_steps = warmup_steps;
  return s;
}

double LrSchedule::lr_at(int64_t step) const {
  MOE_CHECK(step >= 0, "lr_at: negative step {}", step);
  if (step < warmup_steps) {
    return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  const int64_t after = step - warmup_steps;  // s'
  switch (kind) {
    case ScheduleKind::kConstant:
      return base_lr;
    case ScheduleKind::kCosine: {
      const int64_t horizon = std::max<int64_t>(1, total_steps - warmup_steps);  // D
      const double progress =
          std::min(1.0, static_cast<double>(after) / static_cast<double>(horizon));
      return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
    }
    case ScheduleKind::kStep: {
      MOE_CHECK(step_size > 0, "step schedule with step_size {}", step_size);
      const int64_t n_decays = after / step_size;  // ⌊s' / N⌋
      return base_lr * std::pow(gamma, static_cast<double>(n_decays));
    }
  }
  return base_lr;
}

Status LrSchedule::validate() const {
  if (!(base_lr >= 0.0) || !std::isfinite(base_lr))
    return Status::error("learning rate must be a finite number >= 0, got {}", base_lr);
  if (warmup_steps < 0) return Status::error("warmup_steps must be >= 0, got {}", warmup_steps);
  switch (kind) {
    case ScheduleKind::kConstant:
      break;
    case ScheduleKind::kCosine:
      if (!(min_lr >= 0.0) || min_lr > base_lr)
        return Status::error("cosine schedule: min_lr {} must lie in [0, lr = {}]", min_lr,
                             base_lr);
      if (total_steps <= warmup_steps)
        return Status::error("cosine schedule: total_steps {} must exceed warmup_steps {}",
                             total_steps, warmup_steps);
      break;
    case ScheduleKind::kStep:
      if (step_size <= 0)
        return Status::error("step schedule: step_size must be > 0, got {}", step_size);
      if (!(gamma > 0.0 && gamma <= 1.0))
        return Status::error("step schedule: gamma must lie in (0, 1], got {}", gamma);
      break;
  }
  return Status::ok();
}

}  // namespace moe
