// How many weight-matrix elements a model configuration asks for, computed from the
// configuration alone, before anything is allocated.
//
// Dims: D model width · D_in input features (V for text) · C outputs · E experts · F expert
// hidden width · G groups.
//
// A checkpoint's model.json is user input: a config with width 2^20 or two billion experts must
// be refused by a check, not by an allocation failure. The count covers every weight matrix the
// model declares (input, trunk and dense blocks, routers, routed and shared experts, head) and
// leaves out vectors (biases, norm gains), so it is a lower bound of the parameter count: a
// weights file holding fewer elements cannot belong to the config. Arithmetic saturates at
// INT64_MAX.
#pragma once

#include <cstdint>

#include "moe/train/config.h"

namespace moe {

int64_t model_matrix_elements(const ModelConfig& config, int64_t n_features, int64_t n_outputs);

}  // namespace moe
