// Expert surgery on checkpoints and runs (surgery.h).
#include "moe/train/surgery.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "moe/core/file_io.h"
#include "moe/core/rng.h"
#include "moe/optim/optimizer.h"
#include "moe/train/freeze.h"
#include "moe/train/train_state.h"

namespace moe {

namespace {

namespace fs = std::filesystem;

size_t at(int64_t i) {
  return static_cast<size_t>(i);
}

// Gates whose weights are a softmax over every expert they use: a split pair shares its traffic
// by ln 2. (A top-k gate picks one or both copies, and its weight over the chosen is a
// renormalised share; the Gumbel gate's evaluation takes the argmax: a duplicate keeps those only
// unshifted.)
bool weights_over_all_experts(const GateConfig& g) {
  return g.kind == GateKind::kDenseSoftmax || g.kind == GateKind::kExpertChoice;
}

Result<int64_t> find_layer(const Model& model, const ExpertSurgery& s) {
  const int64_t n = model.n_moe_layers();
  if (n == 0)
    return Status::error("the model has no MoE layer{}",
                         model.config().dense ? " (model.dense replaced them by dense FFNs)" : "");
  if (s.layer < 0 && n > 1)
    return Status::error("the model has {} MoE layers (0 to {}): choose one with --layer", n,
                         n - 1);
  const int64_t layer = s.layer < 0 ? 0 : s.layer;
  if (layer >= n)
    return Status::error("--layer {}: the model has {} MoE layer{} (0 to {})", layer, n,
                         n == 1 ? "" : "s", n - 1);
  return layer;
}

// The config object of MoE layer `layer`; a language or translation model's one shared object
// becomes a list of one per MoE block first, so that only this layer changes.
MoeBlockConfig& layer_config(ModelConfig& m, int64_t layer) {
  const int64_t blocks = m.language_model      ? m.lm.n_moe_blocks()
                         : m.translation_model ? m.translation.n_moe_blocks()
                                               : static_cast<int64_t>(m.moe.size());
  if (m.moe.size() == 1 && blocks > 1) {
    m.moe.assign(at(blocks), m.moe[0]);
    m.moe_list = true;
  }
  return m.moe[at(layer)];
}

// `block` is the layer's config object: with adaptive training on, its expert bounds hold.
Status check_request(const MoeLayer& layer, const MoeBlockConfig& block, const ExpertSurgery& s) {
  const int64_t e_n = layer.n_experts();
  const char* op = enum_name(kExpertOpNames, s.op);
  if (layer.n_groups() > 0)
    return Status::error("{}: a hierarchical layer ({} groups) is not supported", op,
                         layer.n_groups());
  if (s.op != ExpertOp::kFreeze && layer.config().gate.kind == GateKind::kHash)
    return Status::error(
        "{}: hash routing sends each token to its id modulo the expert count, so a change of "
        "count re-routes every token; not supported",
        op);
  const bool needs_expert = s.op != ExpertOp::kAdd;
  if ((needs_expert || s.expert >= 0) && (s.expert < 0 || s.expert >= e_n))
    return Status::error("{}: --expert {}: the layer has {} experts (0 to {})", op, s.expert, e_n,
                         e_n - 1);
  if (!(s.noise >= 0.0f) || !std::isfinite(s.noise))
    return Status::error("split: --noise must be a finite number ≥ 0, got {}", s.noise);
  if (!(s.gap >= 0.0f) || !std::isfinite(s.gap))
    return Status::error("add: --gap must be a finite number ≥ 0, got {}", s.gap);
  if (s.op == ExpertOp::kRemove && e_n == 1)
    return Status::error("remove: expert {} is the layer's last expert", s.expert);
  const AdaptConfig& a = block.adapt;
  const bool grows = s.op == ExpertOp::kSplit || s.op == ExpertOp::kAdd;
  if (a.enabled && grows && e_n >= a.max_experts)
    return Status::error("{}: the layer has {} experts, its adapt.max_experts", op, e_n);
  if (a.enabled && s.op == ExpertOp::kRemove && e_n <= a.min_experts)
    return Status::error("remove: the layer has {} experts, its adapt.min_experts", e_n);
  const GateConfig& g = layer.config().gate;
  const bool uses_k = g.kind == GateKind::kTopKSoftmax || g.kind == GateKind::kNoisyTopK ||
                      g.kind == GateKind::kSigmoidBias || g.kind == GateKind::kSinkhorn;
  if (s.op == ExpertOp::kRemove && uses_k && g.k > e_n - 1)
    return Status::error(
        "remove: the gate chooses k = {} experts and {} would remain; lower k first", g.k, e_n - 1);
  return Status::ok();
}

// The expert map and the changed config of one request; notes say what the output keeps.
ExpertMap plan_layer(const MoeLayer& layer, const std::string& prefix, const ExpertSurgery& s,
                     MoeBlockConfig* b, std::vector<std::string>* notes) {
  const int64_t e_n = layer.n_experts();
  ExpertMap m{prefix, {}, {}};
  for (int64_t e = 0; e < e_n; ++e)
    if (s.op != ExpertOp::kRemove || e != s.expert) m.src.push_back(e);
  const GateConfig& g = layer.config().gate;
  std::vector<ExpertConfig> list = b->routed_experts();
  if (s.op == ExpertOp::kSplit || s.op == ExpertOp::kAdd) {
    m.src.push_back(s.expert);
    list.push_back(s.expert >= 0 ? list[at(s.expert)] : b->expert);
  } else if (s.op == ExpertOp::kRemove) {
    list.erase(list.begin() + s.expert);
  }
  m.shift.assign(m.src.size(), 0.0f);
  if (s.op == ExpertOp::kSplit) {
    const bool halve = weights_over_all_experts(g);
    if (halve) m.shift[at(s.expert)] = m.shift.back() = -std::log(2.0f);
    notes->push_back(fmt::format(
        "split expert {} into {} and {}: {}", s.expert, s.expert, e_n,
        halve ? "both copies' router bias lowered by ln 2, so the pair gets the one's weight"
        : g.k == 1 || g.kind == GateKind::kGumbelSoftmax
            ? "the copies keep its logit; with k = 1 each token keeps its choice"
            : "the copies keep its logit; with k ≥ 2 a token that chose it now chooses both and "
              "gives up its k-th choice, so outputs change until training separates them"));
  } else if (s.op == ExpertOp::kAdd) {
    m.shift.back() = -s.gap;
    notes->push_back(fmt::format(
        "added expert {} ({}), its logit {} below {}{}", e_n,
        s.expert >= 0 ? fmt::format("a copy of expert {}", s.expert) : "freshly initialised", s.gap,
        s.expert >= 0 ? "its source's" : "the mean of the others'",
        g.kind == GateKind::kSigmoidBias
            ? "; its selection bias starts 1 below the lowest, so balancing brings it traffic"
            : ""));
  } else if (s.op == ExpertOp::kRemove) {
    const std::string moved = s.expert == e_n - 1 ? ""
                              : s.expert == e_n - 2
                                  ? fmt::format("; expert {} is now {}", e_n - 1, s.expert)
                                  : fmt::format("; experts {} to {} are now {} to {}", s.expert + 1,
                                                e_n - 1, s.expert, e_n - 2);
    notes->push_back(
        fmt::format("removed expert {}{}; routing renormalises over the rest", s.expert, moved));
  }
  if (s.op == ExpertOp::kSplit || s.op == ExpertOp::kAdd) {
    if (!b->gate.router_bias) notes->push_back("gate.router_bias turned on (starting at 0)");
    b->gate.router_bias = true;
  }
  b->n_experts = static_cast<int64_t>(list.size());
  if (!b->expert_list.empty()) b->expert_list = list;
  return m;
}

// "blocks.2.moe.experts.5.w1" -> {5, "w1"} when under m.prefix; {-1, ""} otherwise.
std::pair<int64_t, std::string> expert_of(const ExpertMap& m, const std::string& name) {
  const std::string head = m.prefix + ".experts.";
  if (name.compare(0, head.size(), head) != 0) return {-1, ""};
  const size_t dot = name.find('.', head.size());
  if (dot == std::string::npos) return {-1, ""};
  return {std::stoll(name.substr(head.size(), dot - head.size())), name.substr(dot + 1)};
}

bool is_router_param(const ExpertMap& m, const std::string& name) {
  return name == m.prefix + ".router.w" || name == m.prefix + ".router.w_noise" ||
         name == m.prefix + ".router.b";
}

// The old tensor of a name (empty when there is none) and the fresh value of a new one.
using Lookup = std::function<Tensor(const std::string&)>;

// Fills dst, the new parameter `name`, from the old ones: an expert's from its source expert,
// a router's rows from their source rows, anything else by name. `fresh` (empty: zeros) is
// what a new expert or a router row without source takes.
void fill_param(const ExpertMap& m, const std::string& name, Tensor dst, const Lookup& old,
                Tensor fresh) {
  const auto copy_or_zero = [](Tensor to, Tensor from) {
    if (from.empty())
      fill(to, 0.0f);
    else
      copy(to, from);
  };
  const auto [e, rest] = expert_of(m, name);
  if (e >= 0) {
    const int64_t src = m.src[at(e)];
    return copy_or_zero(
        dst, src >= 0 ? old(fmt::format("{}.experts.{}.{}", m.prefix, src, rest)) : fresh);
  }
  if (!is_router_param(m, name)) return copy_or_zero(dst, old(name));
  const Tensor before = old(name);  // [E, D] or [E]; empty: a router bias new to this model
  const int64_t width = dst.numel() / dst.shape()[0];
  for (size_t j = 0; j < m.src.size(); ++j) {
    float* row = dst.f32() + static_cast<int64_t>(j) * width;
    const int64_t src = m.src[j];
    if (!before.empty() && src >= 0)
      std::memcpy(row, before.f32() + src * width, at(width) * sizeof(float));
    else if (!fresh.empty())
      std::memcpy(row, fresh.f32() + static_cast<int64_t>(j) * width, at(width) * sizeof(float));
    else
      std::fill(row, row + width, 0.0f);
  }
}

// Each new parameter's tensor from `old` into `view(id)` of the new store; `fresh_of(id)` gives
// a new expert's start (or empty for zeros).
void move_params(const ExpertMap& m, const ParamStore& store, const Lookup& old,
                 const std::function<Tensor(ParamId)>& view,
                 const std::function<Tensor(ParamId)>& fresh_of) {
  for (ParamId id = 0; id < store.size(); ++id) {
    const Tensor dst = view(id);
    if (!dst.empty()) fill_param(m, store.info(id).name, dst, old, fresh_of(id));
  }
}

Lookup lookup_in(const ParamStore& store, Tensor arena) {
  return [&store, arena](const std::string& name) {
    const ParamId id = store.find(name);
    return id < 0 ? Tensor() : param_slice(arena, store.info(id));
  };
}

// What a new expert starts from when it has no source: the new model's own initialisation, and
// for the router rows of the layer, the mean of the old rows (so the new logit is the mean).
std::vector<float> fresh_values(const ExpertMap& m, Model& model, const ParamStore& old_store,
                                Tensor old_arena, uint64_t seed) {
  model.init(seed);
  const Tensor v = model.params().values();
  std::vector<float> out(v.f32(), v.f32() + v.numel());
  const Tensor fresh{out.data(), v.shape()};
  const Lookup old = lookup_in(old_store, old_arena);
  for (const char* r : {".router.w", ".router.w_noise", ".router.b"}) {
    const ParamId id = model.params().find(m.prefix + r);
    const Tensor before = old(m.prefix + r);
    if (id < 0) continue;
    const Tensor dst = param_slice(fresh, model.params().info(id));
    const int64_t rows = dst.shape()[0], width = dst.numel() / rows;
    for (int64_t j = 0; j < rows; ++j)
      for (int64_t c = 0; c < width; ++c) {
        double sum = 0.0;
        const int64_t n_old = before.empty() ? 0 : before.shape()[0];
        for (int64_t e = 0; e < n_old; ++e) sum += before.f32()[e * width + c];
        dst.f32()[j * width + c] = n_old > 0 ? static_cast<float>(sum / n_old) : 0.0f;
      }
  }
  return out;
}

// The arena of `old_store` (values, or best values) as the new store's, with the router bias
// shifts applied; fresh experts from `fresh`.
std::vector<float> moved_values(const ExpertMap& m, const ParamStore& old_store, Tensor old_arena,
                                const ParamStore& store, const std::vector<float>& fresh) {
  std::vector<float> out(fresh.size(), 0.0f);
  const Tensor arena{out.data(), Shape{static_cast<int64_t>(out.size())}};
  const Tensor fresh_arena{const_cast<float*>(fresh.data()), arena.shape()};
  move_params(
      m, store, lookup_in(old_store, old_arena),
      [&](ParamId id) { return param_slice(arena, store.info(id)); },
      [&](ParamId id) { return param_slice(fresh_arena, store.info(id)); });
  const ParamId b = store.find(m.prefix + ".router.b");
  if (b >= 0) {
    const Tensor bias = param_slice(arena, store.info(b));
    for (size_t j = 0; j < m.shift.size(); ++j) bias.f32()[j] += m.shift[j];
  }
  return out;
}

// split --noise: ±δ on the two copies' weights, δ ~ N(0, noise² · mean square of the tensor).
void perturb_pair(const ExpertMap& m, const ExpertSurgery& s, const ParamStore& store,
                  std::vector<float>* values) {
  if (s.op != ExpertOp::kSplit || s.noise <= 0.0f) return;
  const Tensor arena{values->data(), Shape{static_cast<int64_t>(values->size())}};
  Rng rng(s.seed);
  const int64_t copy = static_cast<int64_t>(m.src.size()) - 1;
  for (ParamId id = 0; id < store.size(); ++id) {
    const auto [e, rest] = expert_of(m, store.info(id).name);
    if (e != s.expert) continue;
    const Tensor a = param_slice(arena, store.info(id));
    const Tensor b = param_slice(
        arena, store.info(store.find(fmt::format("{}.experts.{}.{}", m.prefix, copy, rest))));
    double ms = 0.0;
    for (int64_t i = 0; i < a.numel(); ++i) ms += double{a.f32()[i]} * a.f32()[i];
    const float sd = s.noise * static_cast<float>(std::sqrt(ms / std::max<int64_t>(a.numel(), 1)));
    TensorBuffer delta(a.shape());
    rng.fill_normal(delta, 0.0f, sd);
    for (int64_t i = 0; i < a.numel(); ++i) {
      a.f32()[i] += delta.f32()[i];
      b.f32()[i] -= delta.f32()[i];
    }
  }
}

// The gates' persistent states with the layer's selection bias moved along (a fresh or added
// expert's 1 below the lowest, so no token chooses it until balancing raises it).
std::vector<GateState> moved_gates(const ExpertMap& m, const ExpertSurgery& s,
                                   std::vector<GateState> gates) {
  for (GateState& g : gates) {
    if (g.name != m.prefix + ".router" || g.bias.empty()) continue;
    const std::vector<float> before = g.bias;
    const float lowest = *std::min_element(before.begin(), before.end());
    g.bias.assign(m.src.size(), 0.0f);
    for (size_t j = 0; j < m.src.size(); ++j)
      g.bias[j] = s.op == ExpertOp::kAdd && j + 1 == m.src.size() ? lowest - 1.0f
                  : m.src[j] >= 0                                 ? before[at(m.src[j])]
                                                                  : lowest - 1.0f;
  }
  return gates;
}

// A state tensor's slice of parameter id, empty when the parameter is frozen (it has none).
Tensor state_view(const Optimizer& opt, const ParamStore& store, Tensor arena, ParamId id) {
  return id < 0 || store.frozen(id) ? Tensor() : opt.state_slice(arena, id);
}

// The config with the change made: the layer's expert count, list and router bias, or the
// frozen pattern; notes say what the output keeps.
ExpertMap change_config(const Model& model, int64_t layer, const ExpertSurgery& s,
                        SurgeryResult* r) {
  const MoeLayer& moe = model.moe_layer(layer);
  r->layer = model.moe_layer_name(layer);
  r->experts_before = moe.n_experts();
  MoeBlockConfig& b = layer_config(r->config.model, layer);
  ExpertMap map = plan_layer(moe, r->layer, s, &b, &r->notes);
  r->experts_after = b.n_experts;
  if (s.op == ExpertOp::kFreeze) {
    const std::string pattern = fmt::format("{}.experts.{}.*", r->layer, s.expert);
    std::vector<std::string>& frozen = r->config.training.frozen;
    if (std::find(frozen.begin(), frozen.end(), pattern) == frozen.end()) frozen.push_back(pattern);
    r->notes.push_back(fmt::format("training.frozen gains \"{}\"", pattern));
  }
  return map;
}

// A run's best model so far has another structure than the changed one and is not carried
// through the change (under a change that alters the function, the carried parameters would be
// a model no epoch evaluated): the best restarts with the next epoch judged, and early stopping
// counts from the change.
void restart_best(TrainState* st) {
  st->best_epoch = 0;
  st->best_value = 0.0;
  st->since_best = 0;
  st->best_values.clear();
  st->best_gates.clear();
}

// Moves the training state of `dir` (read against the checkpoint's model) to the changed model
// and writes it beside the changed checkpoint in `out`.
Status move_train_state(const std::string& dir, const Checkpoint& ck, const ExpertChange& change,
                        const std::string& out) {
  ParamStore& old_store = ck.model->params();
  MOE_TRY(apply_frozen(ck.config.training, old_store));
  const std::unique_ptr<Optimizer> old_opt =
      make_optimizer(old_store, ck.config.training.optimizer);
  MOE_ASSIGN_OR_RETURN(TrainState st, load_train_state(dir, *ck.model, ck.weights_fnv1a64, *old_opt,
                                                       ck.config.training));
  if (st.batches_done > 0)
    return Status::error(
        "{}/{}: saved {} batches into epoch {}; the experts can change only between epochs "
        "(the epoch's sums count per expert)",
        dir, kTrainStateJsonFile, st.batches_done, st.epochs_done + 1);
  const SurgeryResult& r = change.result();
  const std::unique_ptr<Optimizer> opt =
      make_optimizer(r.model->params(), r.config.training.optimizer);
  change.move_optimizer_state(old_store, *old_opt, *opt);
  restart_best(&st);
  return save_train_state(out, st, *r.model, *opt);
}

Result<SurgeryResult> operate_into(const std::string& dir, const ExpertSurgery& s,
                                   const std::string& out) {
  MOE_ASSIGN_OR_RETURN(Checkpoint ck, load_checkpoint(dir));
  MOE_ASSIGN_OR_RETURN(ExpertChange change,
                       ExpertChange::make(*ck.model, ck.config, ck.schema.shape(), s));
  SurgeryResult& r = change.result();
  nlohmann::json info = ck.info.is_object() ? ck.info : nlohmann::json::object();
  info["experts_history"].push_back(experts_history_entry(ck.info, s, r));
  // A compressed checkpoint stays compressed (its values are already the rounded ones).
  MOE_TRY(save_checkpoint(out, *r.model, r.config, ck.schema, info, ck.weights_format));
  if (fs::exists(fs::path(dir) / kTrainStateJsonFile))
    MOE_TRY(move_train_state(dir, ck, change, out));
  return std::move(r);
}

}  // namespace

nlohmann::json experts_history_entry(const nlohmann::json& info, const ExpertSurgery& s,
                                     const SurgeryResult& r) {
  nlohmann::json e = {{"op", enum_name(kExpertOpNames, s.op)},
                      {"layer", r.layer},
                      {"experts_before", r.experts_before},
                      {"experts_after", r.experts_after}};
  if (s.expert >= 0) e["expert"] = s.expert;
  if (info.is_object() && info.contains("epoch")) e["epoch"] = info["epoch"];
  return e;
}

Result<ExpertChange> ExpertChange::make(const Model& model, const Config& config,
                                        const DataShape& shape, const ExpertSurgery& s) {
  MOE_ASSIGN_OR_RETURN(const int64_t layer, find_layer(model, s));
  const ModelConfig& m = model.config();
  const MoeBlockConfig& block =
      m.language_model || m.translation_model ? m.lm_moe(layer) : m.moe[at(layer)];
  MOE_TRY(
      check_request(model.moe_layer(layer), block, s).with_context(model.moe_layer_name(layer)));
  ExpertChange c;
  c.request_ = s;
  SurgeryResult& r = c.result_;
  r.config = config;
  c.map_ = change_config(model, layer, s, &r);
  MOE_ASSIGN_OR_RETURN(r.model, Model::create(r.config.model, shape));
  const ParamStore& old_store = model.params();
  const Tensor old_values = old_store.values();
  c.fresh_ = fresh_values(c.map_, *r.model, old_store, old_values, s.seed);
  std::vector<float> values = c.move_values(
      old_store, std::vector<float>(old_values.f32(), old_values.f32() + old_values.numel()));
  std::memcpy(r.model->params().values().f32(), values.data(), values.size() * sizeof(float));
  MOE_TRY(r.model->set_gate_states(c.move_gates(model.gate_states())));
  MOE_TRY(apply_frozen(r.config.training, r.model->params()).with_context("after the change"));
  return c;
}

void ExpertChange::move_optimizer_state(const ParamStore& from_store, const Optimizer& from,
                                        Optimizer& to) const {
  const ParamStore& store = result_.model->params();
  to.set_step_count(from.step_count());
  const std::vector<NamedTensor> before = from.state(), after = to.state();
  for (size_t i = 0; i < after.size() && i < before.size(); ++i) {
    const Tensor old_arena = before[i].tensor, arena = after[i].tensor;
    move_params(
        map_, store,
        [&](const std::string& name) {
          return state_view(from, from_store, old_arena, from_store.find(name));
        },
        [&](ParamId id) { return state_view(to, store, arena, id); },
        [](ParamId) { return Tensor(); });
  }
}

std::vector<float> ExpertChange::move_values(const ParamStore& from_store,
                                             const std::vector<float>& values) const {
  const Tensor arena{const_cast<float*>(values.data()), Shape{static_cast<int64_t>(values.size())}};
  std::vector<float> out = moved_values(map_, from_store, arena, result_.model->params(), fresh_);
  perturb_pair(map_, request_, result_.model->params(), &out);
  return out;
}

std::vector<GateState> ExpertChange::move_gates(std::vector<GateState> gates) const {
  return moved_gates(map_, request_, std::move(gates));
}

Result<SurgeryResult> operate_on_checkpoint(const std::string& dir, const ExpertSurgery& s,
                                            const std::string& out) {
  std::optional<SurgeryResult> result;
  MOE_TRY(write_new_directory(out, [&](const std::string& staging) -> Status {
    MOE_ASSIGN_OR_RETURN(SurgeryResult r, operate_into(dir, s, staging));
    result = std::move(r);
    return Status::ok();
  }));
  return std::move(*result);
}

Result<SurgeryResult> operate_on_run(const std::string& dir, const ExpertSurgery& s,
                                     const std::string& out) {
  const fs::path run(dir);
  if (!fs::is_directory(run / "last"))
    return Status::error("{}: no last/ checkpoint (a run directory has one after its first epoch)",
                         dir);
  std::optional<SurgeryResult> result;
  MOE_TRY(write_new_directory(out, [&](const std::string& staging) -> Status {
    std::error_code ec;
    fs::create_directories(staging, ec);
    if (ec) return Status::error("{}: cannot create it: {}", staging, ec.message());
    MOE_ASSIGN_OR_RETURN(SurgeryResult r,
                         operate_into((run / "last").string(), s, staging + "/last"));
    if (fs::is_directory(run / "best")) {
      Result<SurgeryResult> best = operate_into((run / "best").string(), s, staging + "/best");
      if (!best.is_ok()) return best.status().with_context("best/");
    }
    Config config = r.config;
    config.output.dir = out;
    const std::string text = config_to_json(config).dump(2) + "\n";
    MOE_TRY(write_file_atomic(staging + "/config.json", text.data(), text.size()));
    if (fs::exists(run / "metrics.jsonl"))
      fs::copy_file(run / "metrics.jsonl", fs::path(staging) / "metrics.jsonl", ec);
    if (ec) return Status::error("{}/metrics.jsonl: cannot copy: {}", dir, ec.message());
    result = std::move(r);
    return Status::ok();
  }));
  return std::move(*result);
}

}  // namespace moe
