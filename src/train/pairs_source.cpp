// Translation data: TSV sentence pairs to encoded pair data sets (see train/pairs_source.h).
//
// Dims: N pairs · V vocabulary · M max_tokens.
#include "train/pairs_source.h"

#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "moe/core/file_io.h"
#include "moe/data/pairs.h"
#include "moe/train/checkpoint.h"
#include "train/corpus_source.h"

namespace moe::pairs_detail {

namespace {

// Encodes `pairs` into a pair data set; a side over max_tokens (with its eos or bos) is an error
// or, with drop_long, dropped and counted in *dropped.
Result<Dataset> encode_pairs(const SentencePairs& pairs, const Tokenizer& tokenizer,
                             int64_t max_tokens, bool drop_long, int64_t* dropped) {
  Dataset d;
  d.source = pairs.source;
  d.kind = FeatureKind::kPairs;
  d.n_features = tokenizer.vocab_size();
  d.task = TaskKind::kClassification;
  d.has_labels = true;
  d.n_classes = d.n_features;
  d.bos_id = tokenizer.bos_id();
  d.eos_id = tokenizer.eos_id();
  d.offsets.push_back(0);
  d.target_offsets.push_back(0);
  int64_t n_dropped = 0;
  std::vector<int32_t> src, tgt;
  for (size_t i = 0; i < pairs.sources.size(); ++i) {
    src.clear();
    tgt.clear();
    tokenizer.encode(pairs.sources[i], &src);
    tokenizer.encode(pairs.targets[i], &tgt);
    src.push_back(d.eos_id);
    const auto src_len = static_cast<int64_t>(src.size());
    const auto tgt_len = static_cast<int64_t>(tgt.size()) + 1;  // with bos (or eos)
    if (src_len > max_tokens || tgt_len > max_tokens) {
      if (drop_long) {
        ++n_dropped;
        continue;
      }
      const bool source_long = src_len > max_tokens;
      return Status::error(
          "{}: line {}: the {} has {} tokens with its {}, more than model.translation.max_tokens "
          "{}; raise max_tokens, or set data.pairs.drop_long to drop such pairs",
          pairs.source, pairs.lines[i], source_long ? "source" : "target",
          source_long ? src_len : tgt_len, source_long ? "eos" : "bos", max_tokens);
    }
    d.ids.insert(d.ids.end(), src.begin(), src.end());
    d.offsets.push_back(static_cast<int64_t>(d.ids.size()));
    d.target_ids.insert(d.target_ids.end(), tgt.begin(), tgt.end());
    d.target_offsets.push_back(static_cast<int64_t>(d.target_ids.size()));
    d.source_rows.push_back(pairs.lines[i]);
    d.n_bytes += static_cast<int64_t>(pairs.sources[i].size());
    d.target_bytes += static_cast<int64_t>(pairs.targets[i].size());
  }
  d.n_rows = static_cast<int64_t>(d.source_rows.size());
  if (d.n_rows == 0)
    return Status::error("{}: every pair is longer than model.translation.max_tokens {}",
                         pairs.source, max_tokens);
  if (dropped != nullptr) *dropped = n_dropped;
  return d;
}

std::string dropped_note(int64_t n, const std::string& path) {
  return n == 0 ? std::string() : fmt::format("; {} pairs of {} over max_tokens dropped", n, path);
}

}  // namespace

Result<LoadedData> load_pairs_data(const DataConfig& c, int64_t max_tokens) {
  if (max_tokens < 2)
    return Status::error("model.translation.max_tokens: must be at least 2, got {}", max_tokens);
  MOE_ASSIGN_OR_RETURN(const SentencePairs train, read_sentence_pairs(c.train));
  // One vocabulary for both sides: the trainer sees every source and target line.
  std::string sources, targets;
  for (size_t i = 0; i < train.sources.size(); ++i) {
    sources.append(train.sources[i]).push_back('\n');
    targets.append(train.targets[i]).push_back('\n');
  }
  const std::vector<std::string> documents = {std::move(sources), std::move(targets)};
  MOE_ASSIGN_OR_RETURN(Tokenizer trained, corpus_detail::subword_tokenizer(c, documents));
  auto tokenizer = std::make_shared<const Tokenizer>(std::move(trained));

  LoadedData out;
  out.schema.format = DataFormat::kPairs;
  out.schema.labels.task = TaskKind::kClassification;
  out.schema.context = max_tokens;
  const std::string& bytes = tokenizer->to_bytes();
  out.schema.tokenizer_bytes = static_cast<int64_t>(bytes.size());
  out.schema.tokenizer_fnv1a64 = fnv1a64_hex(bytes.data(), bytes.size());
  out.schema.tokenizer = tokenizer;

  int64_t dropped = 0;
  MOE_ASSIGN_OR_RETURN(Dataset all,
                       encode_pairs(train, *tokenizer, max_tokens, c.pairs.drop_long, &dropped));
  std::string notes = dropped_note(dropped, c.train);
  if (c.validation.empty() && c.split.validation > 0) {
    SplitOptions so;
    so.validation = c.split.validation;
    so.stratify = false;
    so.seed = c.split.seed;
    MOE_ASSIGN_OR_RETURN(const SplitIndices split, split_rows(all.n_rows, {}, 0, so));
    out.train = all.subset(split.train);
    out.validation = all.subset(split.validation);
  } else {
    out.train = std::move(all);
  }
  for (const auto& [path, part] :
       {std::pair{c.validation, &out.validation}, std::pair{c.test, &out.test}}) {
    if (path.empty()) continue;
    MOE_ASSIGN_OR_RETURN(*part, load_pairs_file(out.schema, path, c.pairs.drop_long, &dropped));
    notes += dropped_note(dropped, path);
  }
  out.report =
      (c.corpus.tokenizer_model.empty()
           ? fmt::format("a {} tokenizer of {} pieces trained on both sides of {} ({} pairs)",
                         enum_name(kTokenizerKindNames, c.corpus.tokenizer.kind),
                         tokenizer->vocab_size(), c.train, train.sources.size())
           : fmt::format("the tokenizer of {} pieces in {}", tokenizer->vocab_size(),
                         c.corpus.tokenizer_model)) +
      notes;
  return out;
}

Result<Dataset> load_pairs_file(const DataSchema& schema, const std::string& path, bool drop_long,
                                int64_t* dropped) {
  if (!schema.tokenizer) return Status::error("{}: the model has no tokenizer", path);
  MOE_ASSIGN_OR_RETURN(const SentencePairs pairs, read_sentence_pairs(path));
  return encode_pairs(pairs, *schema.tokenizer, schema.context, drop_long, dropped);
}

}  // namespace moe::pairs_detail
