// Helpers for the data tests: a temporary directory removed at the end of each test, and file
// writers (plain and gzipped) for the small inline files the readers are tested on.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

namespace moe::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "moe_data_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string path(const std::string& name) const { return (path_ / name).string(); }

  // Writes `bytes` to `name` in the directory and returns the full path.
  std::string write(const std::string& name, std::string_view bytes) const {
    const std::string p = path(name);
    std::FILE* f = std::fopen(p.c_str(), "wb");
    if (f == nullptr) {
      ADD_FAILURE() << "cannot create " << p;
      return p;
    }
    if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
    return p;
  }

  // The same, gzip-compressed (zlib's gz* file interface).
  std::string write_gzip(const std::string& name, std::string_view bytes) const {
    const std::string p = path(name);
    gzFile f = gzopen(p.c_str(), "wb");
    if (f == nullptr) {
      ADD_FAILURE() << "cannot create " << p;
      return p;
    }
    if (!bytes.empty()) gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
    return p;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace moe::testing
