// Structure-aware mutations of JSON text, for the fuzzers of the JSON readers (the config,
// model.json, train_state.json). Byte-level mutations rarely build what broke those readers: a
// value nested 100,000 deep (a stack overflow when a message printed it), a key given twice in
// one object (the last one won), a NUL with garbage after it (nlohmann stopped reading there), a
// finite number beyond a float or an integer type. These make them directly, at a random place.
//
// Only in the libFuzzer build: the fallback is libFuzzer's own LLVMFuzzerMutate.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moe::fuzz {

// Where the JSON is in a fuzz input.
enum class JsonPart {
  kWhole,           // all of it (train_state.json)
  kBeforeFirstNul,  // up to the first NUL; the rest (overrides, a weights file) kept as it is
};

// A LLVMFuzzerCustomMutator body: mutates data[0, size) in place, at most max_size bytes, and
// returns the new size. Half the time one of the structural mutations above on the JSON part,
// else (or when none applies) LLVMFuzzerMutate on the whole input.
size_t mutate_json_input(uint8_t* data, size_t size, size_t max_size, unsigned int seed,
                         JsonPart part);

}  // namespace moe::fuzz
