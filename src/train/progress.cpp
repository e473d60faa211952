// Progress bar, plain progress lines and the metrics.jsonl writer (see progress.h).
//
// Dims: E experts of a MoE layer.
#include "moe/train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

namespace moe {

namespace {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

bool stream_is_terminal(std::FILE* stream) {
  return isatty(fileno(stream)) == 1;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-:--";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

Progress::Progress(std::FILE* out, ProgressOptions options)
    : out_(out), options_(std::move(options)) {
  if (!options_.clock) options_.clock = steady_seconds;
}

void Progress::start_epoch(int64_t epoch, int64_t n_epochs, int64_t n_steps) {
  epoch_ = epoch;
  n_epochs_ = n_epochs;
  n_steps_ = n_steps;
  step_ = 0;
  rows_ = 0;
  loss_ = 0.0;
  epoch_start_ = now();
  last_draw_ = epoch_start_;
}

double Progress::epoch_seconds() const {
  return now() - epoch_start_;
}

double Progress::rows_per_second() const {
  const double s = epoch_seconds();
  return s > 0 ? static_cast<double>(rows_) / s : 0.0;
}

std::string Progress::status_line() const {
  const double elapsed = epoch_seconds();
  const double eta =
      step_ > 0 ? elapsed / static_cast<double>(step_) * static_cast<double>(n_steps_ - step_)
                : NAN;
  std::string bar;
  if (options_.terminal && options_.bar_width > 0) {
    const int64_t width = options_.bar_width;
    const int64_t filled = n_steps_ > 0 ? std::min(width, step_ * width / n_steps_) : 0;
    bar = "  [" + std::string(static_cast<size_t>(filled), '#') +
          std::string(static_cast<size_t>(width - filled), '.') + "]";
  }
  const std::string speed =
      options_.tokens_per_row > 0
          ? fmt::format("{:.0f} tokens/s",
                        rows_per_second() * static_cast<double>(options_.tokens_per_row))
          : fmt::format("{:.0f} rows/s", rows_per_second());
  return fmt::format("epoch {}/{}{}  {}/{}  loss {:.4f}  {}  ETA {}", epoch_, n_epochs_, bar, step_,
                     n_steps_, loss_, speed, format_duration(eta));
}

void Progress::clear_bar() {
  if (!drawn_) return;
  std::fputs("\r\x1b[K", out_);  // carriage return, then erase to the end of the line
  drawn_ = false;
}

void Progress::update(int64_t step, double mean_loss, int64_t rows) {
  step_ = step;
  loss_ = mean_loss;
  rows_ = rows;
  const double t = now();
  const bool last = step == n_steps_;
  if (options_.terminal) {
    if (!last && t - last_draw_ < options_.min_redraw_seconds) return;
    std::fputs("\r", out_);
    std::fputs(status_line().c_str(), out_);
    std::fputs("\x1b[K", out_);
    drawn_ = true;
  } else {
    if (last || t - last_draw_ < options_.plain_interval_seconds) return;
    std::fputs((status_line() + "\n").c_str(), out_);
  }
  last_draw_ = t;
  std::fflush(out_);
}

void Progress::end_epoch(const std::string& summary) {
  clear_bar();
  std::fputs((summary + "\n").c_str(), out_);
  std::fflush(out_);
}

void Progress::note(const std::string& line) {
  clear_bar();
  std::fputs((line + "\n").c_str(), out_);
  std::fflush(out_);
}

nlohmann::ordered_json EpochRecord::to_json() const {
  nlohmann::ordered_json j;
  j["epoch"] = epoch;
  j["steps"] = steps;
  j["train_loss"] = train_loss;
  nlohmann::ordered_json aux = nlohmann::ordered_json::object();
  for (const auto& [name, value] : aux_losses) aux[name] = value;
  j["aux_losses"] = aux;
  j["validation"] = validation;
  nlohmann::ordered_json load = nlohmann::ordered_json::object();
  for (const ExpertLoad& l : expert_load) load[l.layer] = l.share;
  j["expert_load"] = load;
  if (!gate_entropy.empty()) {
    nlohmann::ordered_json entropy;
    for (const GateEntropy& g : gate_entropy)
      entropy[g.layer] = {{"mean", g.mean}, {"of_mean", g.of_mean}, {"max", g.max}};
    j["gate_entropy"] = entropy;
  }
  j["learning_rate"] = learning_rate;
  j["seconds"] = seconds;
  j["rows_per_second"] = rows_per_second;
  if (tokens_per_second) j["tokens_per_second"] = *tokens_per_second;
  if (!expert_changes.empty()) j["expert_changes"] = expert_changes;
  return j;
}

Result<MetricsLog> MetricsLog::open(const std::string& path, bool append) {
  MetricsLog log;
  log.path_ = path;
  log.out_.open(path, std::ios::out | (append ? std::ios::app : std::ios::trunc));
  if (!log.out_) return Status::error("{}: cannot create the file", path);
  return log;
}

Status MetricsLog::append(const EpochRecord& record) {
  // A NaN (an undefined ROC AUC, say) is written as null: JSON has no NaN.
  out_ << record.to_json().dump() << '\n';
  out_.flush();
  if (!out_) return Status::error("{}: write failed", path_);
  return Status::ok();
}

}  // namespace moe
