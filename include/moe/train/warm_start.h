// Warm starts: a new run's model begins from a trained checkpoint's parameters (training.init,
// `moe train CONFIG --init DIR`) instead of from random ones; the optimizer starts afresh.
//
// Each parameter of the new model, by name:
//
//   loaded          the checkpoint has it with the same shape, and the end of the network it
//                   serves (Model::param_end) means the same thing in both runs
//   upcycled        an expert's parameter (blocks.<l>.moe.experts.<e>.<w>) where the checkpoint
//                   has a dense FFN in that block (blocks.<l>.ffn.<w>) of the same shape: every
//                   expert starts as a copy of the trained FFN (sparse upcycling, Komatsuzaki et
//                   al. 2023), the router fresh. Where the gate's weights over the chosen experts
//                   sum to 1 (dense softmax, top-k renormalised, k = E), the model computes what
//                   the dense one did until it trains.
//   reinitialised   new in this model (no such name in the checkpoint: a MoE block where the
//                   checkpoint had a dense one, an extra block); or it serves an end whose
//                   meaning changed: the outputs (other classes, other targets) or the inputs
//                   (other columns or categories, another vocabulary, another image size, another
//                   tokenizer); or excluded by the config (training.init_exclude). It keeps
//                   the fresh initialisation the run gave it.
//   refused         the same name with another shape where nothing explains it (an inner width
//                   changed): the whole warm start fails, naming the parameter, both shapes and
//                   the checkpoint, for a model that cannot be the checkpoint's continuation.
//
// The checkpoint's parameters the new model lacks are ignored and listed, and so are the model
// keys whose values changed: the parameters show a change of shape, but not one of meaning over
// the same shapes (other attention heads over the same width, another activation), which loads. A
// warm start that would load nothing is refused. The routers' persistent state (the sigmoid gate's
// selection bias) comes along with a loaded router; a gate's step count (its temperature schedule)
// starts again from 0, as the optimizer does.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/core/status.h"
#include "moe/model/model.h"
#include "moe/train/checkpoint.h"
#include "moe/train/data_source.h"

namespace moe {

struct WarmStartReport {
  struct Reinitialised {
    std::string name;
    std::string why;  // "new in this model", "the outputs differ (…)", "excluded by …", …
  };
  std::string from;                 // the checkpoint directory
  std::vector<std::string> loaded;  // names, in store order
  // Experts' parameters taken from the checkpoint's dense FFN of the same block and shape
  // (sparse upcycling): {expert parameter, dense parameter}.
  std::vector<std::pair<std::string, std::string>> upcycled;
  std::vector<Reinitialised> reinitialised;
  std::vector<std::string> ignored;  // the checkpoint's names the model lacks
  // The model keys whose values differ from the checkpoint's: "model.lm.heads (4, now 8)".
  std::vector<std::string> model_differences;
  int64_t loaded_elements = 0;
  int64_t total_elements = 0;  // the new model's

  // A few lines for the run's log: counts, then each reinitialised parameter with its reason
  // (consecutive ones with the same reason on one line), then the ignored ones.
  std::string to_text() const;
  nlohmann::ordered_json to_json() const;
};

// Loads the checkpoint in `dir` (load_checkpoint: every check it makes) and copies what matches
// into `model`, which must be initialised already. `schema` is the new run's data schema; the
// checkpoint's is compared with it end by end. Parameters matching a pattern of `exclude`
// (training.init_exclude: shell globs, each of which must match some parameter) keep their
// fresh values.
Result<WarmStartReport> warm_start(Model& model, const DataSchema& schema, const std::string& dir,
                                   const std::vector<std::string>& exclude = {});

// The same in two steps, so a command can refuse a bad checkpoint before it reads the data:
// load_checkpoint with its messages under "training.init: ", then the warm start from it (`dir`
// only names it in the report and messages).
Result<Checkpoint> load_init_checkpoint(const std::string& dir);
Result<WarmStartReport> warm_start(Model& model, const DataSchema& schema, const Checkpoint& ck,
                                   const std::string& dir,
                                   const std::vector<std::string>& exclude = {});

}  // namespace moe
