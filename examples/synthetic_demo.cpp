// The built-in demo: a synthetic classification task whose four input clusters each follow their
// own rule, learned by a dense feed-forward model and by an MoE model with the same compute per
// row (4 experts of the same width, top-1). It prints the loss falling epoch by epoch, the test
// accuracy of both, and where the MoE sent each cluster.
//
// Dims: T rows per batch · D = 16 input width · F = 32 hidden width · C = 4 classes · E = 4.
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "moe/core/arena.h"
#include "moe/core/params.h"
#include "moe/core/rng.h"
#include "moe/layers/linear.h"
#include "moe/layers/loss.h"
#include "moe/moe/experts.h"
#include "moe/moe/moe_layer.h"
#include "moe/optim/optimizer.h"
#include "moe/optim/schedule.h"

namespace {

using namespace moe;

constexpr int64_t kD = 16, kF = 32, kC = 4, kClusters = 4;
constexpr int64_t kTrain = 8192, kTest = 2048, kBatch = 128;
constexpr int kEpochs = 12;

// Row i belongs to cluster i % 4: x = centre_c + noise, label = argmax(A_c · x) with a random
// map A_c per cluster, so no single linear rule fits all clusters.
struct Data {
  TensorBuffer x;      // [N, D]
  TensorBuffer label;  // [N] int32
  std::vector<int> cluster;
};

Data make_data(int64_t n, uint64_t seed) {
  Rng world(7);  // the same centres and maps for train and test
  TensorBuffer centres(Shape{kClusters, kD}), maps(Shape{kClusters, kC, kD});
  world.fill_normal(centres, 0.0f, 3.0f);
  world.fill_normal(maps, 0.0f, 1.0f);
  Rng rng(seed);
  Data d{TensorBuffer(Shape{n, kD}), TensorBuffer(Shape{n}, DType::kI32), {}};
  TensorBuffer noise(Shape{n, kD});
  rng.fill_normal(noise, 0.0f, 1.0f);
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % kClusters);
    d.cluster.push_back(c);
    for (int64_t j = 0; j < kD; ++j)
      d.x.f32()[i * kD + j] = centres.f32()[c * kD + j] + noise.f32()[i * kD + j];
    int best = 0;
    float best_v = -1e30f;
    for (int k = 0; k < kC; ++k) {
      float v = 0;
      for (int64_t j = 0; j < kD; ++j)
        v += maps.f32()[(c * kC + k) * kD + j] * noise.f32()[i * kD + j];
      if (v > best_v) best_v = v, best = k;
    }
    d.label.view().data<int32_t>()[i] = best;
  }
  return d;
}

// body(x) -> h [T, D], then head: logits = h · Wᵀ + b. The body is one dense FFN or an MoE layer.
class Model {
 public:
  explicit Model(bool use_moe) {
    ExpertConfig ffn{ExpertKind::kMlp, kF, 1, Activation::kGelu, true};
    if (use_moe) {
      MoeConfig c;
      c.d_model = kD;
      c.gate.kind = GateKind::kTopKSoftmax;
      c.gate.d_model = kD;
      c.gate.n_experts = 4;
      c.gate.k = 1;
      c.gate.switch_loss = 0.01f;
      c.experts = repeat_experts(ffn, 4);
      moe_ = std::make_unique<MoeLayer>(c);
      moe_->declare(store_, "body");
    } else {
      dense_ = std::make_unique<Expert>(kD, ffn);
      dense_->declare(store_, "body");
    }
    head_w_ = store_.add("head.w", Shape{kC, kD});
    head_b_ = store_.add("head.b", Shape{kC}, /*decay=*/false);
    store_.finalize();
    Rng init(1);
    if (moe_) {
      moe_->bind(store_);
      moe_->init(init);
    } else {
      dense_->bind(store_);
      dense_->init(init);
    }
    head_ = {store_.value(head_w_), store_.value(head_b_)};
    head_grad_ = {store_.grad(head_w_), store_.grad(head_b_)};
    linear_init(head_, init);
  }

  ParamStore& store() { return store_; }
  MoeLayer* moe() { return moe_.get(); }

  // Returns the loss (cross-entropy + the MoE's auxiliary loss); fills logits [T, C].
  double step(Tensor x, Tensor labels, bool training, const Rng& rng, Tensor logits) {
    arena_.reset();
    const int64_t t = x.rows();
    Tensor h = arena_.alloc(Shape{t, kD});
    if (moe_) {
      moe_->forward(x, h, training, rng, arena_);
    } else {
      dense_->forward(x, h, arena_);
    }
    linear_forward(head_, h, logits);
    if (!training) return cross_entropy_loss(logits, labels, Tensor());
    Tensor dlogits = arena_.alloc(Shape{t, kC});
    Tensor dh = arena_.alloc(Shape{t, kD});
    Tensor dx = arena_.alloc(Shape{t, kD});
    const double loss = cross_entropy_loss(logits, labels, dlogits);
    linear_backward(head_, head_grad_, h, dlogits, dh);
    if (moe_) {
      moe_->backward(dh, dx, arena_);
      return loss + moe_->aux_loss();
    }
    dense_->backward(dh, dx, arena_);
    return loss;
  }

 private:
  ParamStore store_;
  std::unique_ptr<Expert> dense_;
  std::unique_ptr<MoeLayer> moe_;
  ParamId head_w_, head_b_;
  LinearParams head_, head_grad_;
  Arena arena_;
};

double accuracy(Tensor logits, const int32_t* labels) {
  int64_t right = 0;
  for (int64_t i = 0; i < logits.rows(); ++i) {
    int best = 0;
    for (int64_t c = 1; c < kC; ++c)
      if (logits.at(i, c) > logits.at(i, best)) best = static_cast<int>(c);
    right += best == labels[i];
  }
  return static_cast<double>(right) / static_cast<double>(logits.rows());
}

double train_and_report(const char* name, bool use_moe, const Data& train, const Data& test) {
  Model model(use_moe);
  OptimizerConfig oc;
  oc.kind = OptimizerKind::kAdamW;
  oc.weight_decay = 1e-4;
  auto opt = make_optimizer(model.store(), oc);
  const int64_t steps_per_epoch = kTrain / kBatch;
  const auto schedule = LrSchedule::cosine(1e-2, kEpochs * steps_per_epoch, steps_per_epoch);
  TensorBuffer logits(Shape{kBatch, kC});
  std::printf("\n%s: %lld parameters\n", name, static_cast<long long>(model.store().n_elements()));
  const auto start = std::chrono::steady_clock::now();
  Rng noise(3);
  for (int epoch = 1; epoch <= kEpochs; ++epoch) {
    double sum = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      model.store().zero_grads();
      Tensor xb = train.x.view().slice(s * kBatch, (s + 1) * kBatch);
      Tensor yb = train.label.view().slice(s * kBatch, (s + 1) * kBatch);
      sum += model.step(xb, yb, true, noise.fork(static_cast<uint64_t>(opt->step_count())), logits);
      opt->step(schedule.lr_at(opt->step_count()));
      if (model.moe()) model.moe()->after_step();
    }
    std::printf("  epoch %2d  train loss %.4f\n", epoch,
                sum / static_cast<double>(steps_per_epoch));
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  TensorBuffer test_logits(Shape{kTest, kC});
  model.step(test.x, test.label, false, noise, test_logits);
  const double acc = accuracy(test_logits, test.label.view().data<int32_t>());
  std::printf("  test accuracy %.3f  (%.0f training rows/s)\n", acc,
              static_cast<double>(kEpochs * kTrain) / secs);
  if (model.moe()) {
    // Which expert took each cluster's test rows (top-1: one slot per row).
    const RoutingPlan& plan = model.moe()->plan();
    std::printf("  rows of each cluster per expert:\n");
    for (int c = 0; c < kClusters; ++c) {
      std::printf("    cluster %d:", c);
      std::vector<int64_t> count(4, 0);
      for (int64_t t = 0; t < kTest; ++t)
        if (test.cluster[static_cast<size_t>(t)] == c)
          ++count[static_cast<size_t>(plan.expert_ids[static_cast<size_t>(plan.token_offsets[t])])];
      for (int64_t n : count) std::printf(" %5lld", static_cast<long long>(n));
      std::printf("\n");
    }
  }
  return acc;
}

}  // namespace

int main() {
  std::printf("moe demo: 4 input clusters, each labelled by its own rule (D=%lld, %lld classes)\n",
              static_cast<long long>(kD), static_cast<long long>(kC));
  const Data train = make_data(kTrain, 11), test = make_data(kTest, 12);
  const double dense = train_and_report("dense FFN (16 -> 32 -> 16, GELU)", false, train, test);
  const double sparse =
      train_and_report("MoE: 4 experts like the dense FFN, top-1 softmax gate", true, train, test);
  std::printf("\ntest accuracy: dense %.3f, MoE %.3f (same compute per row)\n", dense, sparse);
  return 0;
}
