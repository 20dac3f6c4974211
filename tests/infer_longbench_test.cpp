// LongBench's scorers: ROUGE-L and code similarity against the packages metrics.py calls
// (tools/golden/make_longbench_goldens.py: rouge 1.0.1, fuzzywuzzy + python-Levenshtein); QA F1,
// classification, retrieval and counting against values worked out by hand below from
// metrics.py's definitions; the dataset-level rules (first line on trec/triviaqa/samsum/lsht,
// best over the answers); reading JSONL and prompts; truncation from the middle.
#include "yak/infer/longbench.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::infer {
namespace {

const std::filesystem::path kGolden = std::filesystem::path(YAK_GOLDEN_DIR) / "eval" / "longbench_scorers.json";

// qa_f1_zh and rouge_zh over jieba's words equal LongBench's metrics.py run with jieba 0.42.1
// (tests/golden/eval/longbench_zh_scorers.json, tools/golden/make_jieba_goldens.py).
TEST(LongBench, ChineseScorersOverJiebaWordsMatchLongBench) {
  const auto dir = tok::Jieba::find_installed();
  if (!dir) GTEST_SKIP() << "jieba's dictionary not installed (apt-get install python3-jieba, or set YAK_JIEBA_DIR)";
  const auto zh = tok::Jieba::load(*dir);
  const Json g = read_json_file(std::filesystem::path(YAK_GOLDEN_DIR) / "eval" / "longbench_zh_scorers.json");
  int n = 0;
  for (const auto& c : g["pairs"]) {
    const std::string p = c["pred"], a = c["answer"];
    EXPECT_NEAR(longbench_score(LbMetric::QaF1Zh, p, a, {}, zh.get()), c["qa_f1_zh"].get<double>(), 1e-12) << p << " | " << a;
    EXPECT_NEAR(longbench_score(LbMetric::RougeZh, p, a, {}, zh.get()), c["rouge_zh"].get<double>(), 1e-9) << p << " | " << a;
    ++n;
  }
  EXPECT_EQ(n, 8);
}

TEST(LongBench, RougeLAndCodeSimilarityMatchThePackages) {
  const Json g = read_json_file(kGolden);
  int n = 0;
  for (const auto& c : g["rouge_l"]) {
    EXPECT_NEAR(longbench_score(LbMetric::Rouge, c["prediction"], c["reference"]), c["f"].get<double>(), 1e-9)
        << c["prediction"] << " | " << c["reference"];
    ++n;
  }
  for (const auto& c : g["code_sim"]) {
    EXPECT_NEAR(longbench_score(LbMetric::CodeSim, c["prediction"], c["reference"]), c["score"].get<double>(), 1e-9)
        << c["prediction"];
    ++n;
  }
  EXPECT_EQ(n, 16);
}

TEST(LongBench, QaF1AsNormalisedTokenOverlap) {
  // "The Eiffel Tower, Paris!" -> "eiffel tower paris" (lower, punctuation, articles); against
  // "eiffel tower": 2 common, precision 2/3, recall 1 -> F1 0.8.
  EXPECT_NEAR(longbench_score(LbMetric::QaF1, "The Eiffel Tower, Paris!", "Eiffel Tower"), 0.8, 1e-12);
  EXPECT_NEAR(longbench_score(LbMetric::QaF1, "an apple", "Apple."), 1.0, 1e-12);
  EXPECT_EQ(longbench_score(LbMetric::QaF1, "banana", "apple"), 0.0);
  // "theory" keeps its "the": articles go only as whole words. {theory, of, a, b} vs {theory}: 0.4.
  EXPECT_NEAR(longbench_score(LbMetric::QaF1, "theory of a b", "theory"), 2.0 * (1.0 / 3) * 1 / (1.0 / 3 + 1), 1e-12);
  // Chinese: characters after dropping punctuation; 北京大学 vs 北京，大学城: 4 common of 4 and 5 -> 8/9.
  EXPECT_NEAR(longbench_score(LbMetric::QaF1Zh, "北京大学", "北京，大学城"), 2.0 * 1.0 * 0.8 / 1.8, 1e-12);
}

TEST(LongBench, ClassificationRetrievalAndCount) {
  const std::vector<std::string> cls = {"Location", "Person", "Description", "Abbreviation"};
  EXPECT_EQ(longbench_score(LbMetric::Classification, "Person", "Person", cls), 1.0);
  // Two classes named: 1/2 when one is right.
  EXPECT_EQ(longbench_score(LbMetric::Classification, "Person or Location", "Person", cls), 0.5);
  EXPECT_EQ(longbench_score(LbMetric::Classification, "Location", "Person", cls), 0.0);
  // A named class inside the answer (but not it) is dropped: "Person" is in "Person name".
  const std::vector<std::string> nested = {"Person", "Person name", "Date"};
  EXPECT_EQ(longbench_score(LbMetric::Classification, "Person name", "Person name", nested), 1.0);
  // ... and the one right after a dropped one is skipped, as metrics.py's remove-while-iterating
  // does: [Person, Person name, Date] minus Person leaves [Person name, Date] -> 1/2.
  EXPECT_EQ(longbench_score(LbMetric::Classification, "Person name Date", "Person name", nested), 0.5);
  EXPECT_EQ(longbench_score(LbMetric::Retrieval, "Paragraph 3", "Paragraph 3"), 1.0);
  EXPECT_NEAR(longbench_score(LbMetric::Retrieval, "It is 3, not 12 or 7", "Paragraph 3"), 1.0 / 3, 1e-12);
  EXPECT_EQ(longbench_score(LbMetric::Retrieval, "no numbers", "Paragraph 3"), 0.0);
  EXPECT_EQ(longbench_score(LbMetric::RetrievalZh, "段落5", "段落5"), 1.0);
  EXPECT_EQ(longbench_score(LbMetric::Count, "There are 4 unique paragraphs, 4 in all", "4"), 1.0);
  EXPECT_EQ(longbench_score(LbMetric::Count, "4 or 5", "4"), 0.5);
}

TEST(LongBench, DatasetRules) {
  EXPECT_EQ(longbench_metric("hotpotqa"), LbMetric::QaF1);
  EXPECT_EQ(longbench_metric("hotpotqa_e"), LbMetric::QaF1);
  EXPECT_EQ(longbench_metric("lcc"), LbMetric::CodeSim);
  EXPECT_THROW(longbench_metric("gsm8k"), Error);
  // triviaqa keeps the first line (after leading newlines); the best answer counts.
  EXPECT_EQ(longbench_record_score("triviaqa", "\nParis\nbecause ...", {"London", "Paris"}, {}), 1.0);
  EXPECT_EQ(longbench_record_score("hotpotqa", "\nParis\nbecause", {"Paris"}, {}), 2.0 * 0.5 * 1 / 1.5);
}

TEST(LongBench, ReadsRecordsAndFillsPrompts) {
  const auto path = std::filesystem::temp_directory_path() / ("yak_lb_" + std::to_string(::getpid()) + ".jsonl");
  std::ofstream(path) << R"({"input": "Who?", "context": "Alice wrote it.", "answers": ["Alice"], "all_classes": null, "dataset": "hotpotqa", "length": 3})"
                      << "\n\n"
                      << R"({"input": "q", "context": "c", "answers": "x", "pred": "x"})" << "\n";
  const auto recs = read_longbench(path.string(), "qasper");
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].dataset, "hotpotqa");
  EXPECT_EQ(recs[0].length, 3);
  EXPECT_EQ(recs[1].dataset, "qasper");
  EXPECT_EQ(recs[1].answers, std::vector<std::string>{"x"});
  EXPECT_EQ(recs[1].prediction, "x");
  EXPECT_EQ(longbench_prompt("Read: {context}\nQ: {input} {{literal}}", recs[0]), "Read: Alice wrote it.\nQ: Who? {literal}");
  EXPECT_THROW(longbench_prompt("{missing}", recs[0]), Error);
  std::ofstream(path) << R"({"input": "q", "answers": 3, "dataset": "hotpotqa"})" << "\n";
  try {
    read_longbench(path.string());
    FAIL() << "answers as a number read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(":1: field 'answers' must be a list of strings"), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(LongBench, LongPromptsKeepTheirFirstAndLastHalves) {
  auto tok = tok::load_tokenizer(std::filesystem::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat");
  std::string text;
  for (int i = 0; i < 60; ++i) text += "word" + std::to_string(i) + " ";
  const auto ids = tok->encode(text, true);
  ASSERT_GT(ids.size(), 40u);
  EXPECT_EQ(truncate_middle(text, *tok, static_cast<int64_t>(ids.size())), text) << "short enough: unchanged";
  const std::string cut = truncate_middle(text, *tok, 40);
  const std::vector<int32_t> head(ids.begin(), ids.begin() + 20), tail(ids.end() - 20, ids.end());
  EXPECT_EQ(cut, tok->decode(head, true) + tok->decode(tail, true));
  EXPECT_EQ(cut.rfind("word0", 0), 0u);
  EXPECT_NE(cut.find("word59"), std::string::npos);
  EXPECT_EQ(cut.find("word30 "), std::string::npos) << "the middle is gone";
}

}  // namespace
}  // namespace yak::infer
