// libFuzzer entry point for the checkpoint harness (see harness.h), with structure-aware mutations
// of model.json (the input up to its first NUL) (json_mutator.h).
#include <cstddef>
#include <cstdint>

#include "harness.h"
#include "json_mutator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moe::fuzz::checkpoint_one(data, size);
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int seed) {
  return moe::fuzz::mutate_json_input(data, size, max_size, seed,
                                      moe::fuzz::JsonPart::kBeforeFirstNul);
}
