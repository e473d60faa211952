// libFuzzer entry point for the checkpoint harness (see harness.h).
#include <cstddef>
#include <cstdint>

#include "harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::fuzz::checkpoint_one(data, size);
  return 0;
}
