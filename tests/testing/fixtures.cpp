#include "testing/fixtures.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace moe::testing {

Fixture::Fixture(const std::string& name) : path_("golden/fixtures/" + name + ".safetensors") {
  auto f = SafetensorsFile::open(path_);
  if (!f.is_ok()) {
    ADD_FAILURE() << "cannot load fixture: " << f.status().message();
    return;
  }
  file_.emplace(std::move(f).value());
}

TensorBuffer Fixture::get(const std::string& name) const {
  if (!file_) return {};
  auto t = file_->load(name);
  if (!t.is_ok()) {
    ADD_FAILURE() << path_ << ": " << t.status().message();
    return {};
  }
  return std::move(t).value();
}

std::string Fixture::meta(const std::string& key) const {
  if (!file_) return "";
  auto it = file_->metadata().find(key);
  return it == file_->metadata().end() ? "" : it->second;
}

double Fixture::meta_double(const std::string& key) const {
  const std::string text = meta(key);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0') {
    ADD_FAILURE() << path_ << ": metadata '" << key << "' is '" << text << "', not a number";
    return 0.0;
  }
  return v;
}

int64_t Fixture::meta_int(const std::string& key) const {
  const std::string text = meta(key);
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0') {
    ADD_FAILURE() << path_ << ": metadata '" << key << "' is '" << text << "', not an integer";
    return 0;
  }
  return v;
}

void expect_close(const std::string& label, Tensor actual, Tensor expected, double rtol,
                  double atol) {
  ASSERT_EQ(actual.numel(), expected.numel())
      << label << ": shape " << actual.shape().str() << " vs expected " << expected.shape().str();
  double max_abs = 0.0, max_rel = 0.0;
  int64_t worst = -1;
  int bad = 0;
  for (int64_t i = 0; i < actual.numel(); ++i) {
    const double a = actual.f32()[i], e = expected.f32()[i];
    const double d = std::fabs(a - e);
    if (!(d <= atol + rtol * std::fabs(e))) {
      ++bad;
      if (worst < 0) worst = i;
    }
    if (d > max_abs || std::isnan(d)) max_abs = d;
    max_rel = std::fmax(max_rel, d / std::fmax(std::fabs(e), 1e-12));
  }
  std::printf("  %-28s max abs diff %.3g, max rel diff %.3g (%lld elements)\n", label.c_str(),
              max_abs, max_rel, static_cast<long long>(actual.numel()));
  EXPECT_EQ(bad, 0) << label << ": " << bad << " elements outside rtol " << rtol << " atol " << atol
                    << "; first at " << worst << ": got " << actual.f32()[worst] << ", expected "
                    << expected.f32()[worst];
}

}  // namespace moe::testing
