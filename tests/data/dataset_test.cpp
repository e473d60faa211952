#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <vector>

#include "moe/data/dataset.h"

namespace moe {
namespace {

// N rows of D = 3 features where row i holds (i, 10 i, 100 i), label i % n_classes.
Dataset dense_rows(int64_t n, int64_t n_classes) {
  Dataset d;
  d.kind = FeatureKind::kDense;
  d.n_rows = n;
  d.n_features = 3;
  d.has_labels = true;
  d.n_classes = n_classes;
  for (int64_t i = 0; i < n; ++i) {
    d.dense.insert(d.dense.end(), {float(i), 10.0f * float(i), 100.0f * float(i)});
    d.labels.push_back(static_cast<int32_t>(i % n_classes));
    d.source_rows.push_back(i + 2);
  }
  return d;
}

// Row i holds ids {0, .., i % 4 − 1} with weights i + k / 10.
Dataset sparse_rows(int64_t n) {
  Dataset d;
  d.kind = FeatureKind::kSparse;
  d.n_rows = n;
  d.n_features = 4;
  d.offsets.push_back(0);
  for (int64_t i = 0; i < n; ++i) {
    for (int32_t k = 0; k < i % 4; ++k) {
      d.ids.push_back(k);
      d.weights.push_back(float(i) + float(k) / 10.0f);
    }
    d.offsets.push_back(static_cast<int64_t>(d.ids.size()));
  }
  return d;
}

TEST(Head, FirstRowsOfEveryKind) {
  const Dataset d = dense_rows(5, 2).head(2);
  EXPECT_EQ(d.n_rows, 2);
  EXPECT_EQ(d.dense, (std::vector<float>{0, 0, 0, 1, 10, 100}));
  EXPECT_EQ(d.labels, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(dense_rows(3, 2).head(9).n_rows, 3);  // at most what there is
  const Dataset s = sparse_rows(6).head(3);
  EXPECT_EQ(s.offsets, (std::vector<int64_t>{0, 0, 1, 3}));

  // Token windows of S = 4: row i is ids[4i .. 4i + 4]; the head is a prefix of the stream.
  Dataset t;
  t.kind = FeatureKind::kTokens;
  t.context = 4;
  t.n_rows = 3;
  t.ids.resize(13);
  std::iota(t.ids.begin(), t.ids.end(), 0);
  t.n_bytes = 130;
  t.window_bytes = 120;
  const Dataset h = t.head(2);
  EXPECT_EQ(h.n_rows, 2);
  EXPECT_EQ(h.ids.size(), 9u);
  EXPECT_EQ(h.ids.back(), 8);
  EXPECT_EQ(h.window_bytes, 80);
  EXPECT_EQ(t.head(0).ids.size(), 0u);
}

TEST(Split, StratifiedProportionsArePerClass) {
  std::vector<int32_t> labels;
  for (int i = 0; i < 600; ++i) labels.push_back(0);
  for (int i = 0; i < 300; ++i) labels.push_back(1);
  for (int i = 0; i < 100; ++i) labels.push_back(2);
  SplitOptions o;
  o.validation = 0.1;
  o.test = 0.2;
  o.seed = 11;
  Result<SplitIndices> s = split_rows(1000, labels, 3, o);
  ASSERT_TRUE(s.is_ok()) << s.status().message();
  auto per_class = [&](const std::vector<int64_t>& rows) {
    std::vector<int64_t> c(3, 0);
    for (int64_t r : rows) ++c[static_cast<size_t>(labels[static_cast<size_t>(r)])];
    return c;
  };
  EXPECT_EQ(per_class(s->validation), (std::vector<int64_t>{60, 30, 10}));
  EXPECT_EQ(per_class(s->test), (std::vector<int64_t>{120, 60, 20}));
  EXPECT_EQ(per_class(s->train), (std::vector<int64_t>{420, 210, 70}));
  // A partition of the rows, each part sorted.
  std::vector<int64_t> all = s->train;
  all.insert(all.end(), s->validation.begin(), s->validation.end());
  all.insert(all.end(), s->test.begin(), s->test.end());
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected(1000);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(all, expected);
  EXPECT_TRUE(std::is_sorted(s->train.begin(), s->train.end()));
  EXPECT_TRUE(std::is_sorted(s->test.begin(), s->test.end()));
}

TEST(Split, DeterministicPerSeed) {
  std::vector<int32_t> labels(200);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int32_t>(i % 2);
  SplitOptions o;
  o.validation = 0.25;
  o.seed = 5;
  const SplitIndices a = split_rows(200, labels, 2, o).value();
  const SplitIndices b = split_rows(200, labels, 2, o).value();
  EXPECT_EQ(a.validation, b.validation);
  EXPECT_EQ(a.train, b.train);
  o.seed = 6;
  const SplitIndices c = split_rows(200, labels, 2, o).value();
  EXPECT_NE(a.validation, c.validation);
  EXPECT_EQ(c.validation.size(), 50u);
  // Without labels (regression) all rows are shuffled together.
  const SplitIndices plain = split_rows(200, {}, 0, o).value();
  EXPECT_EQ(plain.validation.size(), 50u);
  EXPECT_EQ(plain.train.size(), 150u);
}

TEST(Split, SmallClassesKeepATrainingRowAndBadRatiosAreErrors) {
  const std::vector<int32_t> labels = {0, 0, 0, 0, 0, 0, 0, 0, 1};
  SplitOptions o;
  o.validation = 0.5;
  o.test = 0.4;
  Result<SplitIndices> s = split_rows(9, labels, 2, o);
  ASSERT_TRUE(s.is_ok());
  EXPECT_TRUE(std::find(s->train.begin(), s->train.end(), 8) != s->train.end());
  EXPECT_GE(s->train.size(), 2u);

  o.validation = 0.6;
  EXPECT_EQ(split_rows(9, labels, 2, o).status().message(),
            "split: validation 0.6 and test 0.4 must each be in [0, 1) and add up to less than 1");
  o.validation = -0.1;
  EXPECT_FALSE(split_rows(9, labels, 2, o).is_ok());
  o.validation = 0.1;
  EXPECT_EQ(split_rows(0, {}, 0, o).status().message(), "split: no rows to split");
}

TEST(Batches, EveryRowOncePerEpochInAFreshOrder) {
  const Dataset d = dense_rows(10, 3);
  BatchOptions o;
  o.batch_size = 4;
  o.seed = 42;
  BatchIterator it(d, o);
  const BatchBuffers buffers = BatchBuffers::for_dataset(d, 4);
  EXPECT_EQ(it.n_batches(), 3);
  std::vector<std::vector<int64_t>> orders;
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    it.start_epoch(epoch);
    std::vector<int64_t> seen;
    std::vector<int64_t> sizes;
    Batch b;
    while (it.next(buffers, &b)) {
      sizes.push_back(b.n_rows);
      ASSERT_EQ(b.features.shape(), (Shape{b.n_rows, 3}));
      for (int64_t i = 0; i < b.n_rows; ++i) {
        const int64_t row = b.rows.data<int64_t>()[i];
        seen.push_back(row);
        EXPECT_EQ(b.features.at(i, 1), 10.0f * float(row));
        EXPECT_EQ(b.labels.data<int32_t>()[i], row % 3);
      }
      // The views point into the caller's buffers: nothing is allocated per batch.
      EXPECT_EQ(b.features.raw(), buffers.features.view().raw());
    }
    EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4, 2}));
    orders.push_back(seen);
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  }
  EXPECT_NE(orders[0], orders[1]);
  EXPECT_NE(orders[1], orders[2]);

  // The same seed and epoch give the same order; no shuffling keeps the data set's order.
  BatchIterator again(d, o);
  again.start_epoch(1);
  Batch b;
  ASSERT_TRUE(again.next(buffers, &b));
  EXPECT_EQ(std::vector<int64_t>(b.rows.data<int64_t>(), b.rows.data<int64_t>() + 4),
            std::vector<int64_t>(orders[1].begin(), orders[1].begin() + 4));
  o.shuffle = false;
  o.drop_last = true;
  BatchIterator ordered(d, o);
  EXPECT_EQ(ordered.n_batches(), 2);
  ordered.start_epoch(0);
  std::vector<int64_t> rows;
  while (ordered.next(buffers, &b))
    for (int64_t i = 0; i < b.n_rows; ++i) rows.push_back(b.rows.data<int64_t>()[i]);
  EXPECT_EQ(rows, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
}

// Data parallelism: the shards of a batch are contiguous parts of the batch one iterator gives,
// in rank order, together the whole batch; a final batch with fewer rows than shards is left out.
TEST(Batches, ShardsCutEachBatchIntoContiguousPartsInRankOrder) {
  const Dataset d = dense_rows(11, 3);  // batches of 4: 4, 4, 3
  BatchOptions o;
  o.batch_size = 4;
  o.seed = 7;
  const BatchBuffers buffers = BatchBuffers::for_dataset(d, 4);
  for (int shards : {2, 3, 4}) {
    std::vector<std::vector<int64_t>> whole;
    BatchIterator all(d, o);
    all.start_epoch(2);
    Batch b;
    while (all.next(buffers, &b))
      whole.emplace_back(b.rows.data<int64_t>(), b.rows.data<int64_t>() + b.n_rows);
    if (whole.back().size() < static_cast<size_t>(shards)) whole.pop_back();
    std::vector<std::vector<int64_t>> joined(whole.size());
    for (int shard = 0; shard < shards; ++shard) {
      BatchOptions so = o;
      so.shard = shard;
      so.shards = shards;
      BatchIterator it(d, so);
      EXPECT_EQ(it.n_batches(), static_cast<int64_t>(whole.size())) << shards << " shards";
      it.start_epoch(2);
      size_t k = 0;
      while (it.next(buffers, &b)) {
        ASSERT_LT(k, whole.size());
        EXPECT_GE(b.n_rows, 1);
        const int64_t n = static_cast<int64_t>(whole[k].size());
        EXPECT_EQ(b.n_rows, n * (shard + 1) / shards - n * shard / shards);
        for (int64_t i = 0; i < b.n_rows; ++i) {
          joined[k].push_back(b.rows.data<int64_t>()[i]);
          EXPECT_EQ(b.features.at(i, 1), 10.0f * float(b.rows.data<int64_t>()[i]));
        }
        ++k;
      }
      EXPECT_EQ(k, whole.size());
    }
    EXPECT_EQ(joined, whole) << shards << " shards";
  }
}

TEST(Batches, SparseBatchesRebaseOffsets) {
  const Dataset d = sparse_rows(7);  // row lengths 0 1 2 3 0 1 2
  EXPECT_EQ(BatchIterator::max_ids_per_batch(d, 3), 3 + 2 + 2);
  BatchOptions o;
  o.batch_size = 3;
  o.shuffle = false;
  BatchIterator it(d, o);
  const BatchBuffers buffers = BatchBuffers::for_dataset(d, 3);
  EXPECT_EQ(buffers.ids.numel(), 7);
  it.start_epoch(0);
  Batch b;
  ASSERT_TRUE(it.next(buffers, &b));
  ASSERT_TRUE(it.next(buffers, &b));  // rows 3, 4, 5
  EXPECT_EQ(b.n_rows, 3);
  const int64_t* off = b.offsets.data<int64_t>();
  EXPECT_EQ(std::vector<int64_t>(off, off + 4), (std::vector<int64_t>{0, 3, 3, 4}));
  EXPECT_EQ(b.ids.numel(), 4);
  EXPECT_EQ(b.ids.data<int32_t>()[2], 2);
  EXPECT_FLOAT_EQ(b.weights.f32()[3], 5.0f);
  EXPECT_TRUE(b.labels.empty());
  ASSERT_TRUE(it.next(buffers, &b));
  EXPECT_EQ(b.n_rows, 1);
  EXPECT_FALSE(it.next(buffers, &b));
}

TEST(Dataset, SubsetCopiesRowsLabelsAndSources) {
  const Dataset d = dense_rows(6, 2);
  const std::vector<int64_t> rows = {4, 1};
  const Dataset s = d.subset(rows);
  EXPECT_EQ(s.n_rows, 2);
  EXPECT_EQ(s.dense, (std::vector<float>{4, 40, 400, 1, 10, 100}));
  EXPECT_EQ(s.labels, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(s.source_rows, (std::vector<int64_t>{6, 3}));
  const Dataset sp = sparse_rows(5).subset(rows);
  EXPECT_EQ(sp.offsets, (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(sp.ids, (std::vector<int32_t>{0}));
}

// Three pairs: sources (eos 2 included) of 3, 1 and 2 tokens, targets of 2, 0 and 3 tokens.
Dataset pairs_data() {
  Dataset d;
  d.kind = FeatureKind::kPairs;
  d.n_rows = 3;
  d.n_features = 20;
  d.bos_id = 1;
  d.eos_id = 2;
  d.ids = {5, 6, 2, 2, 7, 2};
  d.offsets = {0, 3, 4, 6};
  d.target_ids = {10, 11, 12, 13, 14};
  d.target_offsets = {0, 2, 2, 5};
  d.source_rows = {1, 2, 3};
  return d;
}

std::vector<int64_t> i64s(Tensor t) {
  return {t.data<int64_t>(), t.data<int64_t>() + t.numel()};
}
std::vector<int32_t> i32s(Tensor t) {
  return {t.data<int32_t>(), t.data<int32_t>() + t.numel()};
}

TEST(Batches, SentencePairsArePackedWithBosAndEos) {
  const Dataset d = pairs_data();
  const BatchBuffers buffers = BatchBuffers::for_dataset(d, 2);
  // The two longest sources (3 + 2) and targets (2 + 3, plus bos or eos for each of 2 rows).
  EXPECT_EQ(buffers.src_tokens.numel(), 5);
  EXPECT_EQ(buffers.tgt_in.numel(), 7);
  BatchIterator it(d, BatchOptions{.batch_size = 2, .shuffle = false});
  it.start_epoch(0);
  Batch b;
  ASSERT_TRUE(it.next(buffers, &b));
  EXPECT_EQ(b.n_rows, 2);
  EXPECT_EQ(i32s(b.src_tokens), (std::vector<int32_t>{5, 6, 2, 2}));
  EXPECT_EQ(i64s(b.src_starts), (std::vector<int64_t>{0, 3, 4}));
  EXPECT_EQ(i32s(b.tgt_in), (std::vector<int32_t>{1, 10, 11, 1}));
  EXPECT_EQ(i32s(b.tgt_out), (std::vector<int32_t>{10, 11, 2, 2}));
  EXPECT_EQ(i64s(b.tgt_starts), (std::vector<int64_t>{0, 3, 4}));
  ASSERT_TRUE(it.next(buffers, &b));
  EXPECT_EQ(i32s(b.src_tokens), (std::vector<int32_t>{7, 2}));
  EXPECT_EQ(i32s(b.tgt_in), (std::vector<int32_t>{1, 12, 13, 14}));
  EXPECT_EQ(i32s(b.tgt_out), (std::vector<int32_t>{12, 13, 14, 2}));
  EXPECT_EQ(i64s(b.tgt_starts), (std::vector<int64_t>{0, 4}));
  EXPECT_FALSE(it.next(buffers, &b));
}

TEST(Dataset, SubsetOfSentencePairs) {
  const Dataset d = pairs_data();
  const std::vector<int64_t> rows = {2, 0};
  const Dataset s = d.subset(rows);
  EXPECT_EQ(s.kind, FeatureKind::kPairs);
  EXPECT_EQ(s.n_rows, 2);
  EXPECT_EQ(s.ids, (std::vector<int32_t>{7, 2, 5, 6, 2}));
  EXPECT_EQ(s.offsets, (std::vector<int64_t>{0, 2, 5}));
  EXPECT_EQ(s.target_ids, (std::vector<int32_t>{12, 13, 14, 10, 11}));
  EXPECT_EQ(s.target_offsets, (std::vector<int64_t>{0, 3, 5}));
  EXPECT_EQ(s.source_rows, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(s.bos_id, 1);
  EXPECT_EQ(s.eos_id, 2);
}

TEST(LabelSpec, JsonRoundTripAndClassLookup) {
  LabelSpec s;
  s.columns = {"score"};
  s.class_names = {"great", "other"};
  EXPECT_EQ(s.class_id(" other "), 1);
  EXPECT_EQ(s.class_id("meh"), -1);
  Result<LabelSpec> back = LabelSpec::from_json(s.to_json(), "m.json");
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  EXPECT_EQ(back->class_names, s.class_names);
  nlohmann::json j = s.to_json();
  j["task"] = "ranking";
  EXPECT_EQ(LabelSpec::from_json(j, "m.json").status().message(),
            "m.json: labels: task 'ranking' is neither 'classification' nor 'regression'");
}

}  // namespace
}  // namespace moe
