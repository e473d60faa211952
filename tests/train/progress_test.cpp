// Progress bar throttling and plain lines (with a fake clock), and the metrics.jsonl writer.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "moe/train/progress.h"

namespace moe {
namespace {

// Captures what a Progress writes through a FILE* backed by memory.
class Capture {
 public:
  Capture() { stream_ = open_memstream(&data_, &size_); }
  ~Capture() {
    std::fclose(stream_);
    std::free(data_);
  }
  std::FILE* stream() { return stream_; }
  std::string text() {
    std::fflush(stream_);
    return std::string(data_, size_);
  }

 private:
  std::FILE* stream_ = nullptr;
  char* data_ = nullptr;
  size_t size_ = 0;
};

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

TEST(Progress, TerminalRedrawsAtMostTenTimesASecondAndClearsAtEpochEnd) {
  Capture cap;
  double t = 100.0;
  ProgressOptions o;
  o.terminal = true;
  o.bar_width = 10;
  o.clock = [&] { return t; };
  Progress p(cap.stream(), o);
  p.start_epoch(2, 5, 100);
  // 100 steps, 5 ms apart: 0.5 s in all, so a redraw about every 20 steps plus the last.
  for (int64_t s = 1; s <= 100; ++s) {
    t += 0.005;
    p.update(s, 0.5, s * 32);
  }
  const std::string out = cap.text();
  const int draws = count(out, "epoch 2/5");
  EXPECT_GE(draws, 4);
  EXPECT_LE(draws, 6);
  EXPECT_NE(out.find("[##########]  100/100"), std::string::npos) << out;
  EXPECT_NE(out.find("6400 rows/s"), std::string::npos) << out;  // 3200 rows in 0.5 s
  EXPECT_EQ(out.find('\n'), std::string::npos);                  // drawn in place
  p.end_epoch("epoch 2: loss 0.5");
  const std::string done = cap.text();
  EXPECT_NE(done.find("\r\x1b[Kepoch 2: loss 0.5\n"), std::string::npos);
}

TEST(Progress, PlainModePrintsLinesOnlyEveryIntervalAndNoControlCodes) {
  Capture cap;
  double t = 0.0;
  ProgressOptions o;
  o.terminal = false;
  o.plain_interval_seconds = 10.0;
  o.clock = [&] { return t; };
  Progress p(cap.stream(), o);
  p.start_epoch(1, 1, 50);
  for (int64_t s = 1; s <= 50; ++s) {
    t += 1.0;  // 50 s: lines at 10, 20, 30, 40 s; the last step is left to end_epoch
    p.update(s, 1.25, s * 10);
  }
  p.end_epoch("epoch 1/1 done");
  const std::string out = cap.text();
  EXPECT_EQ(count(out, "\n"), 5) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos);
  EXPECT_EQ(out.find('\x1b'), std::string::npos);
  EXPECT_EQ(out.find('['), std::string::npos);  // no bar
  EXPECT_NE(out.find("epoch 1/1  10/50  loss 1.2500  10 rows/s  ETA 0:40\n"), std::string::npos)
      << out;
}

// Token data: a row is a window of S tokens, so the line gives tokens/s = rows/s · S.
TEST(Progress, TokenDataShowsTokensPerSecond) {
  Capture cap;
  double t = 0.0;
  ProgressOptions o;
  o.terminal = false;
  o.plain_interval_seconds = 10.0;
  o.tokens_per_row = 16;
  o.clock = [&] { return t; };
  Progress p(cap.stream(), o);
  p.start_epoch(1, 1, 50);
  for (int64_t s = 1; s <= 50; ++s) {
    t += 1.0;
    p.update(s, 1.25, s * 10);  // 10 windows a second
  }
  const std::string out = cap.text();
  EXPECT_NE(out.find("epoch 1/1  10/50  loss 1.2500  160 tokens/s  ETA 0:40\n"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("rows/s"), std::string::npos) << out;
}

TEST(Progress, DurationFormat) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(59.6), "1:00");
  EXPECT_EQ(format_duration(3725), "1:02:05");
  EXPECT_EQ(format_duration(-1), "-:--");
}

TEST(MetricsLog, OneParsableLinePerEpochWithNaNAsNull) {
  const std::string path = testing::TempDir() + "moe_metrics_log_test.jsonl";
  {
    Result<MetricsLog> log = MetricsLog::open(path);
    ASSERT_TRUE(log.is_ok()) << log.status().message();
    for (int64_t e = 1; e <= 2; ++e) {
      EpochRecord r;
      r.epoch = e;
      r.steps = 10 * e;
      r.train_loss = 1.0 / static_cast<double>(e);
      r.aux_losses = {{"blocks.0.moe.switch", 1.02}};
      r.validation = {{"accuracy", 0.5}, {"roc_auc", std::nan("")}};
      r.expert_load = {{"blocks.0.moe", {0.25, 0.75}}};
      r.learning_rate = 1e-3;
      r.seconds = 0.5;
      r.rows_per_second = 100.0;
      if (e == 2) r.tokens_per_second = 1600.0;  // token data: written beside rows_per_second
      ASSERT_TRUE(log->append(r).is_ok());
    }
  }
  std::ifstream in(path);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    const nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_EQ(j["epoch"].get<int64_t>(), n);
    EXPECT_DOUBLE_EQ(j["aux_losses"]["blocks.0.moe.switch"].get<double>(), 1.02);
    EXPECT_TRUE(j["validation"]["roc_auc"].is_null());
    EXPECT_EQ(j["expert_load"]["blocks.0.moe"].size(), 2u);
    EXPECT_DOUBLE_EQ(j["rows_per_second"].get<double>(), 100.0);
    if (n == 1) {
      EXPECT_FALSE(j.contains("tokens_per_second")) << line;
    } else {
      EXPECT_DOUBLE_EQ(j["tokens_per_second"].get<double>(), 1600.0);
    }
  }
  EXPECT_EQ(n, 2);
  std::filesystem::remove(path);
}

TEST(MetricsLog, UnwritablePathIsAnError) {
  const Result<MetricsLog> log = MetricsLog::open("/nonexistent-dir/metrics.jsonl");
  ASSERT_FALSE(log.is_ok());
  EXPECT_NE(log.status().message().find("/nonexistent-dir/metrics.jsonl"), std::string::npos);
}

}  // namespace
}  // namespace moe
