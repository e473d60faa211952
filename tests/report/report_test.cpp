// The training report: reading a run directory (sample in tests/report/data/sample_run, written
// to the inspect.json contract), the verdict's thresholds, every chart present, notes for
// missing files, clear errors for malformed ones, and no markup injection from any data string.
//
// Dims: N epochs, E experts, C classes, P targets, H x W pixels.
#include "moe/report/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "moe/report/run_data.h"
#include "report/xml_check.h"

namespace moe::report {
namespace {

namespace fs = std::filesystem;
using testing::count_of;
using testing::xml_problem;

constexpr const char* kSample = "report/data/sample_run";

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

// A scratch copy of the sample run, removed at the end of the test.
class ReportDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("moe_report_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (const char* f : {"metrics.jsonl", "config.json", "summary.json", "inspect.json"})
      fs::copy_file(fs::path(kSample) / f, dir_ / f);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST(Report, SampleRunLoads) {
  Result<RunData> run = load_run(kSample);
  ASSERT_TRUE(run) << run.status().message();
  ASSERT_TRUE(run->epochs);
  ASSERT_EQ(run->epochs->size(), 6u);
  const EpochPoint& e = run->epochs->front();
  EXPECT_EQ(e.epoch, 1.0);
  ASSERT_EQ(e.expert_load.size(), 1u);
  EXPECT_EQ(e.expert_load[0].second.size(), 4u);
  ASSERT_EQ(e.gate_entropy.size(), 1u);
  ASSERT_EQ(e.aux_losses.size(), 1u);
  EXPECT_EQ(e.aux_losses[0].first, "blocks.0.moe.switch");
  ASSERT_TRUE(run->inspect);
  const InspectData& in = *run->inspect;
  EXPECT_EQ(in.classes.size(), 2u);
  ASSERT_EQ(in.layers.size(), 1u);
  EXPECT_EQ(in.layers[0].coactivation.size(), 4u);
  EXPECT_EQ(in.layers[0].class_shares.size(), 2u);
  EXPECT_EQ(in.layers[0].tokens.size(), 4u);
  EXPECT_NEAR(in.layers[0].mutual_information_max, 0.673, 1e-12);
  ASSERT_TRUE(run->config && run->summary);
}

TEST(Report, MetricsLineForms) {
  // Gate entropy as a number or as {"mean", "max", ...}; train_<metric> numbers; nested
  // auxiliary losses flattened; blank lines skipped; unknown fields ignored.
  Result<std::vector<EpochPoint>> epochs = parse_metrics_jsonl(
      "{\"epoch\": 1, \"gate_entropy\": {\"a\": 1.5}, \"future_field\": [1]}\n\n"
      "{\"epoch\": 2, \"gate_entropy\": {\"a\": {\"mean\": 1.2, \"max\": 2.07}}, "
      "\"train_accuracy\": 0.9, \"aux_losses\": {\"a\": {\"switch\": 1.1, \"z\": 0.2}}}\n",
      "m.jsonl");
  ASSERT_TRUE(epochs) << epochs.status().message();
  ASSERT_EQ(epochs->size(), 2u);
  EXPECT_TRUE(std::isnan((*epochs)[0].train_loss));
  ASSERT_EQ((*epochs)[0].gate_entropy.size(), 1u);
  EXPECT_EQ((*epochs)[0].gate_entropy[0].second, 1.5);
  EXPECT_TRUE((*epochs)[0].gate_entropy_max.empty());
  const EpochPoint& e = (*epochs)[1];
  ASSERT_EQ(e.gate_entropy_max.size(), 1u);
  EXPECT_EQ(e.gate_entropy_max[0].second, 2.07);
  ASSERT_EQ(e.train_metrics.size(), 1u);
  EXPECT_EQ(e.train_metrics[0].first, "accuracy");
  ASSERT_EQ(e.aux_losses.size(), 2u);
  EXPECT_EQ(e.aux_losses[1].first, "a.z");
  EXPECT_FALSE(parse_metrics_jsonl("{\"steps\": 3}\n", "m.jsonl"));  // no epoch
  // Adaptive training's changes, one sentence each (fields of any type, some missing).
  epochs = parse_metrics_jsonl(
      "{\"epoch\": 3, \"expert_changes\": [{\"layer\": \"b.moe\", \"op\": \"remove\", "
      "\"expert\": 1, \"experts\": 3, \"why\": \"dead\"}, {\"op\": 7}, 5]}\n",
      "m.jsonl");
  ASSERT_TRUE(epochs) << epochs.status().message();
  EXPECT_EQ((*epochs)[0].expert_changes,
            (std::vector<std::string>{"b.moe remove expert 1 (now 3 experts): dead",
                                      "? 7 expert ? (now ? experts): ?"}));
}

TEST(Report, AssessLoad) {
  const LoadAssessment even = assess_load({0.25, 0.25, 0.25, 0.25}, 2);
  EXPECT_EQ(even.balance, Balance::kBalanced);
  EXPECT_NEAR(even.cv, 0.0, 1e-12);
  EXPECT_NEAR(even.effective_experts, 4.0, 1e-12);
  EXPECT_TRUE(even.dead.empty());

  // Top-2 with everything on experts 0 and 1: the fewest a top-2 gate can use.
  const LoadAssessment two = assess_load({0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}, 2);
  EXPECT_EQ(two.balance, Balance::kCollapsed);
  EXPECT_EQ(two.dead.size(), 6u);
  EXPECT_NEAR(two.max_over_mean, 4.0, 1e-12);

  // Uneven but spread: imbalanced, with the expert under 1/(10E) = 0.025 dead.
  const LoadAssessment uneven = assess_load({0.45, 0.3, 0.23, 0.02}, 1);
  EXPECT_EQ(uneven.balance, Balance::kImbalanced);
  ASSERT_EQ(uneven.dead.size(), 1u);
  EXPECT_EQ(uneven.dead[0], 3);

  // The inspector's flag wins over the entropy rule either way.
  EXPECT_EQ(assess_load({0.25, 0.25, 0.25, 0.25}, 1, true).balance, Balance::kCollapsed);
  EXPECT_EQ(assess_load({0.5, 0.5, 0.0, 0.0}, 2, false).balance, Balance::kImbalanced);
  EXPECT_EQ(assess_load({}, 1).balance, Balance::kBalanced);
}

TEST(Report, VerdictReadsTheNumbers) {
  Result<RunData> run = load_run(kSample);
  ASSERT_TRUE(run);
  std::string v = verdict_text(*run);
  // The sample's final load has CV ~0.35 and no dead expert; MI 0.21 of 0.673 is 31%.
  EXPECT_NE(v.find("Routing is imbalanced"), std::string::npos) << v;
  EXPECT_NE(v.find("no expert is dead"), std::string::npos) << v;
  EXPECT_NE(v.find("31% of the information"), std::string::npos) << v;
  EXPECT_NE(v.find("specialise partly"), std::string::npos) << v;
  EXPECT_NE(v.find("grew more uneven"), std::string::npos) << v;
  EXPECT_NE(v.find("test data: accuracy 0.79"), std::string::npos) << v;

  run->inspect->layers[0].load = {0.5, 0.5, 0.0, 0.0};
  run->inspect->layers[0].collapsed.reset();
  run->inspect->layers[0].dead = {2, 3};
  v = verdict_text(*run);
  EXPECT_NE(v.find("Routing is collapsed"), std::string::npos) << v;
  EXPECT_NE(v.find("about 2.0 effective experts of its 4"), std::string::npos) << v;
  EXPECT_NE(v.find("2 dead experts (2, 3)"), std::string::npos) << v;
  EXPECT_EQ(v.find("silent"), std::string::npos) << v;
  run->inspect->layers[0].silent = {1};
  v = verdict_text(*run);
  EXPECT_NE(v.find("1 of its experts (1) is silent: it receives rows but returns under 1%"),
            std::string::npos)
      << v;

  EXPECT_EQ(v.find("undecided"), std::string::npos) << v;  // 0.9 of ln 4 = 1.386: neither
  EXPECT_EQ(v.find("is confident"), std::string::npos) << v;
  run->inspect->layers[0].entropy_mean = 1.35;
  EXPECT_NE(verdict_text(*run).find("nearly undecided"), std::string::npos);
  run->inspect->layers[0].entropy_mean = 0.3;
  EXPECT_NE(verdict_text(*run).find("is confident"), std::string::npos);

  // Without inspect.json the verdict falls back on the last epoch of metrics.jsonl.
  run->inspect.reset();
  v = verdict_text(*run);
  EXPECT_NE(v.find("last epoch's load"), std::string::npos) << v;
  EXPECT_NE(v.find("no inspect.json"), std::string::npos) << v;
}

TEST(Report, EveryChartIsThere) {
  Result<RunData> run = load_run(kSample);
  ASSERT_TRUE(run);
  const std::string html = render_report_html(*run);
  EXPECT_EQ(xml_problem(html), "");
  for (const char* title : {"<title>Loss per epoch</title>", "<title>Metrics per epoch</title>",
                            "<title>Auxiliary losses per epoch (unweighted)</title>",
                            "<title>Gate entropy per epoch</title>",
                            "<title>Expert load over training: blocks.0.moe</title>",
                            "<title>Final load per expert: blocks.0.moe</title>",
                            "<title>Co-activation: blocks.0.moe</title>",
                            "<title>Class x expert: blocks.0.moe</title>"}) {
    EXPECT_NE(html.find(title), std::string::npos) << title;
  }
  EXPECT_EQ(count_of(html, "<svg "), 8u);
  EXPECT_NE(html.find("<b>delicious</b>"), std::string::npos);                      // tokens table
  EXPECT_NE(html.find("<td>model.moe.experts</td><td>4</td>"), std::string::npos);  // config
  EXPECT_NE(html.find("<td>best_epoch</td><td>5</td>"), std::string::npos);         // summary
  EXPECT_NE(html.find("class=\"verdict\""), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(count_of(html, "http://"), count_of(html, "http://www.w3.org/2000/svg"));
  EXPECT_EQ(count_of(html, "https://"), 0u);
  EXPECT_EQ(render_report_html(*run), html);  // deterministic

  EXPECT_EQ(html.find("silent experts"), std::string::npos);  // the sample predates them
  EXPECT_EQ(html.find("Expert changes"), std::string::npos);  // and adaptive training
  run->epochs->at(1).expert_changes = {"blocks.0.moe split expert 2 (now 5 experts): <why>"};
  EXPECT_NE(render_report_html(*run).find(
                "<li>after epoch 2: blocks.0.moe split expert 2 (now 5 experts): &lt;why&gt;</li>"),
            std::string::npos);
  run->epochs->at(1).expert_changes.clear();
  run->inspect->layers[0].silent = {1, 3};
  EXPECT_NE(render_report_html(*run).find("<th>silent experts</th><td class=\"num\">1, 3</td>"),
            std::string::npos);
}

TEST(Report, ImagesFeaturesAndRegressionLayers) {
  RunData run;
  run.name = "synthetic";
  InspectData in;
  in.task = "regression";
  in.targets = {"price"};
  InspectLayer l;
  l.name = "blocks.0.moe";
  l.level = "top";
  l.experts = 2;
  l.k = 1;
  l.load = {0.6, 0.4};
  l.regression_mean = {{1.5}, {-0.5}};
  l.regression_std = {{0.2}, {0.3}};
  l.features = {{{"area", 1.25}}, {{"age", -0.75}}};
  l.image_height = 2;
  l.image_width = 2;
  l.mean_images = {{0, 1, 1, 0}, {1, 0, 0, 1}};
  in.layers.push_back(l);
  run.inspect = in;
  const std::string html = render_report_html(run);
  EXPECT_EQ(xml_problem(html), "");
  EXPECT_EQ(count_of(html, "<image "), 2u);
  EXPECT_NE(html.find("blocks.0.moe (top)"), std::string::npos);
  EXPECT_NE(html.find("<b>area</b> +1.25"), std::string::npos);
  EXPECT_NE(html.find("1.5 &plusmn; 0.2"), std::string::npos);
  EXPECT_NE(html.find("No metrics.jsonl"), std::string::npos);
  EXPECT_NE(html.find("No config.json"), std::string::npos);
}

TEST_F(ReportDir, MissingInspectIsANoteNotAFailure) {
  fs::remove(dir_ / "inspect.json");
  fs::remove(dir_ / "summary.json");
  const fs::path out = dir_ / "report.html";
  const Status s = write_report(dir_.string(), out.string());
  ASSERT_TRUE(s) << s.message();
  const std::string html = read(out);
  EXPECT_EQ(xml_problem(html), "");
  EXPECT_NE(html.find("No inspect.json in this run directory"), std::string::npos);
  EXPECT_NE(html.find("No summary.json"), std::string::npos);
  EXPECT_EQ(count_of(html, "<svg "), 5u);  // the training curves remain
}

TEST_F(ReportDir, MalformedFilesAreNamed) {
  const std::string good_inspect = read(dir_ / "inspect.json");
  struct Case {
    const char* file;
    std::string text;
    const char* message;
  };
  const std::string metrics = read(dir_ / "metrics.jsonl");
  std::string bad_line3 = metrics;
  size_t at = 0;
  for (int i = 0; i < 2; ++i) at = bad_line3.find('\n', at) + 1;
  bad_line3.insert(at, "{\"epoch\": 3, \"expert_load\": {\"blocks.0.moe\": [0.5, \"x\"]}}\n");
  const Case cases[] = {
      {"inspect.json", "{\"format\": \"moe.inspect\", ",
       "inspect.json line 1 column 27: invalid JSON"},
      {"inspect.json", "{\"format\": \"other\", \"version\": 1, \"layers\": []}",
       "inspect.json: field 'format'"},
      {"inspect.json",
       "{\"format\": \"moe.inspect\", \"version\": 1, \"layers\": [{\"name\": "
       "\"m\", \"load\": \"lots\"}]}",
       "inspect.json: field 'layers[0].load': expected an array"},
      {"inspect.json",
       "{\"format\": \"moe.inspect\", \"version\": 1, \"layers\": [{\"name\": "
       "\"m\", \"load\": [0.5, 0.5], \"coactivation\": [[1, 0], [0]]}]}",
       "inspect.json: field 'layers[0].coactivation[1]': expected 2 values, found 1"},
      {"inspect.json",
       "{\"format\": \"moe.inspect\", \"version\": 1, \"layers\": [{\"name\": "
       "\"m\", \"load\": [0.5, 0.5], \"mean_images\": {\"height\": 100000, "
       "\"width\": 100000, \"pixels\": []}}]}",
       "field 'layers[0].mean_images': height and width"},
      {"metrics.jsonl", bad_line3, "metrics.jsonl line 3: field 'expert_load.blocks.0.moe[1]'"},
      {"metrics.jsonl", "{\"epoch\": 1}\nnot json\n",
       "metrics.jsonl line 2 column 2: invalid JSON"},
      {"config.json", "[1, 2]", "config.json: expected a JSON object"},
      {"summary.json", "{", "summary.json line 1 column 2: invalid JSON"},
  };
  for (const Case& c : cases) {
    const std::string original = read(dir_ / c.file);
    write(dir_ / c.file, c.text);
    const Status s = write_report(dir_.string(), (dir_ / "report.html").string());
    EXPECT_FALSE(s) << c.message;
    EXPECT_NE(s.message().find(c.message), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(dir_.string()), std::string::npos) << s.message();
    write(dir_ / c.file, original);
  }
  EXPECT_FALSE(fs::exists(dir_ / "report.html"));
  EXPECT_TRUE(write_report(dir_.string(), (dir_ / "report.html").string()));
}

TEST_F(ReportDir, NotARunDirectory) {
  for (const char* f : {"metrics.jsonl", "config.json", "summary.json", "inspect.json"})
    fs::remove(dir_ / f);
  const Status s = write_report(dir_.string(), (dir_ / "report.html").string());
  EXPECT_NE(s.message().find("not a run directory"), std::string::npos) << s.message();
  const Status none = write_report((dir_ / "absent").string(), (dir_ / "report.html").string());
  EXPECT_NE(none.message().find("absent: not a directory"), std::string::npos);
}

// Nesting deep enough to overflow a recursive walk is read and shown bounded, not followed.
TEST_F(ReportDir, DeepNestingIsBounded) {
  // Within the readers' limit (64 levels, core/json_read.h), the report shows 16 and says so.
  const int depth = 40;
  const std::string deep = std::string(depth, '[') + std::string(depth, ']');
  write(dir_ / "config.json", "{\"model\": {\"deep\": " + deep + "}}");
  std::string nested_aux;
  for (int i = 0; i < depth; ++i) nested_aux += "{\"a\": ";
  nested_aux += "1" + std::string(depth, '}');
  write(dir_ / "metrics.jsonl", "{\"epoch\": 1, \"aux_losses\": " + nested_aux + "}\n");
  const fs::path out = dir_ / "report.html";
  const Status s = write_report(dir_.string(), out.string());
  ASSERT_TRUE(s) << s.message();
  EXPECT_NE(read(out).find("model.deep</td><td>(nested more than 16 levels deep: not shown)"),
            std::string::npos);
  // Beyond it, the file is refused by name: 100,000 levels overflowed the stack when printed.
  write(dir_ / "config.json",
        "{\"model\": {\"deep\": " + std::string(100000, '[') + std::string(100000, ']') + "}}");
  const Status refused = write_report(dir_.string(), out.string());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.message().find("config.json line 1 column 82: arrays and objects nested more "
                                   "than 64 deep"),
            std::string::npos)
      << refused.message();
}

// Every string the report takes from a file, made hostile at once: the page must stay
// well-formed and hold no tag that the data wrote.
TEST_F(ReportDir, NoMarkupInjection) {
  const std::string evil = "<script>alert(1)</script><img src=x onerror=alert(2)>&\"'";
  const std::string evil_json = nlohmann::json(evil).dump();  // a JSON string literal
  auto replace_all = [](std::string s, const std::string& from, const std::string& to) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
      s.replace(at, from.size(), to);
    return s;
  };
  for (const char* f : {"metrics.jsonl", "inspect.json", "config.json", "summary.json"}) {
    std::string text = read(dir_ / f);
    for (const char* name : {"\"blocks.0.moe\"", "\"great\"", "\"delicious\"", "\"topk_softmax\"",
                             "\"accuracy (validation)\"", "\"data/cache/finefoods_test.tsv\"",
                             "\"blocks.0.moe.switch\""})
      text = replace_all(text, name, evil_json);
    write(dir_ / f, text);
  }
  Result<RunData> run = load_run(dir_.string());
  ASSERT_TRUE(run) << run.status().message();
  run->name = evil;
  const std::string html = render_report_html(*run);
  EXPECT_EQ(xml_problem(html), "");
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_GE(count_of(html, "&lt;script&gt;alert(1)&lt;/script&gt;"), 10u);
}

}  // namespace
}  // namespace moe::report
