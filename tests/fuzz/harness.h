// Fuzz harnesses: one function per parser, each taking arbitrary bytes. They are the bodies of
// the libFuzzer targets (tests/fuzz/*_fuzz.cpp, built with -DMOE_FUZZ=ON) and of the corpus
// replay unit test (corpus_test.cpp, every build), so every committed input also runs under the
// ordinary build and the ASan build.
//
// Contract: for any bytes, a harness returns normally. A parser that crashes, trips a sanitizer,
// fails a MOE_CHECK, or breaks one of the invariants below aborts the process with a message
// (for libFuzzer: a crash, with the input saved).
//
//   safetensors  bytes -> SafetensorsFile::parse. An accepted file: every entry loads, its
//                offsets lie in the data section; re-encoding the tensors and metadata parses
//                back to the same entries and bytes.
//   config       bytes -> a JSON file -> load_config (duplicate-key check, --set overrides,
//                validation). The input is the file, then up to 4 NUL-separated overrides. An
//                accepted config: its resolved form parses back to the same resolved form.
//   checkpoint   bytes -> model.json and model.safetensors in a temporary directory ->
//                load_checkpoint. The input is model.json, a NUL, then the weights file.
//                model.json's recorded weights size and hash are rewritten to match the weights
//                (when it has a "weights" object) so that inputs get past the hash check to the
//                config, schema, gate and tensor validation. A language model's input ends
//                with its tokenizer.model: when model.json's data.tokenizer.bytes is N (no more
//                than what follows the NUL), the last N bytes are written as tokenizer.model and
//                its recorded hash rewritten to match, so inputs reach the tokenizer's checks.
//                An accepted checkpoint predicts three rows (a language model evaluates three
//                windows).
//   train_state  bytes -> train_state.json beside a small text model's checkpoint and a
//                training state it saved (train_state.safetensors, AdamW moments and best
//                weights) -> load_train_state. The recorded tensors size and hash and the model
//                weights hash are rewritten to match (when the JSON parses and has them), so
//                inputs reach the field checks. An accepted state is consistent (its position,
//                schedule horizon, best epoch and early-stopping counter; Adam's second moments
//                ≥ 0) and saves and loads back to the same fields.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace moe::fuzz {

void safetensors_one(const uint8_t* data, size_t size);
void config_one(const uint8_t* data, size_t size);
void checkpoint_one(const uint8_t* data, size_t size);
void train_state_one(const uint8_t* data, size_t size);

// The train_state harness's verdict on an input: "" when load_train_state accepts it, else the
// message.
std::string train_state_rejection(const uint8_t* data, size_t size);

// The checkpoint harness's input as files: model.json (its weights size and hash rewritten as
// above), model.safetensors and, for a language model, tokenizer.model in `dir`, which must
// exist.
void write_checkpoint_dir(const uint8_t* data, size_t size, const std::string& dir);

}  // namespace moe::fuzz
