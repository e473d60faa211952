// What the model builders (row_model.cpp, lm_model.cpp, translation_model.cpp) share: the rng
// stream numbers, one per purpose, so that adding a layer does not shift another's draws; the
// embeddings' initial scale; the limits a config is checked against. Internal to src/model.
#pragma once

#include <cstdint>

namespace moe::model_detail {

// Initialisation streams. A block b draws from kInitBlock + b (the row and language models).
inline constexpr uint64_t kInitEmbed = 1, kInitHead = 2, kInitBlock = 100;
// Training noise of block b's MoE layer (noisy and Gumbel gates): kNoiseBlockMoe + b.
inline constexpr uint64_t kNoiseBlockMoe = 100000;

inline constexpr float kEmbedStd = 0.02f;  // token embeddings, N(0, 0.02²) as GPT-2
inline constexpr int64_t kMaxVocab = int64_t{1} << 24;
inline constexpr int64_t kMaxLayers = 1024;

}  // namespace moe::model_detail
