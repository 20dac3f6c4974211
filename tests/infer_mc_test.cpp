// Multiple-choice evaluation pieces against the benchmarks' published code, written out by hand:
// the prompts of CMMLU (format_example / gen_prompt in haonan-li/CMMLU's mp_utils.py), C-Eval
// (format_example / generate_few_shot_prompt in hkust-nlp/ceval's evaluators) and MMLU
// (hendrycks/test's evaluate.py); CSV reading as RFC 4180; CMMLU's answer extraction rules.
#include "yak/infer/multiple_choice.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "yak/base/error.h"
#include "yak/io/csv.h"

namespace yak::infer {
namespace {

namespace fs = std::filesystem;

McQuestion q(const std::string& text, const std::string& answer) { return {text, {"w", "x", "y", "z"}, answer}; }

McSubject subject(const std::string& display) {
  McSubject s;
  s.name = "s";
  s.display = display;
  s.dev = {q("d1?", "B"), q("d2?", "C")};
  return s;
}

TEST(MultipleChoice, CmmluPrompt) {
  const auto s = subject("农学");
  EXPECT_EQ(mc_prompt(McTask::Cmmlu, s, q("问?", "A"), 2),
            "以下是关于农学的单项选择题，请直接给出正确答案的选项。\n\n"
            "题目：d1?\nA. w\nB. x\nC. y\nD. z\n答案是：B\n\n"
            "题目：d2?\nA. w\nB. x\nC. y\nD. z\n答案是：C\n\n"
            "题目：问?\nA. w\nB. x\nC. y\nD. z\n答案是：");
  EXPECT_EQ(mc_prompt(McTask::Cmmlu, s, q("问?", "A"), 0),
            "以下是关于农学的单项选择题，请直接给出正确答案的选项。\n\n题目：问?\nA. w\nB. x\nC. y\nD. z\n答案是：");
}

TEST(MultipleChoice, CevalAndMmluPrompts) {
  EXPECT_EQ(mc_prompt(McTask::Ceval, subject("计算机网络"), q("问?", "A"), 1),
            "以下是中国关于计算机网络考试的单项选择题，请选出其中的正确答案。\n\n"
            "d1?\nA. w\nB. x\nC. y\nD. z\n答案：B\n\n"
            "问?\nA. w\nB. x\nC. y\nD. z\n答案：");
  EXPECT_EQ(mc_prompt(McTask::Mmlu, subject("abstract algebra"), q("Q?", "A"), 1),
            "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
            "d1?\nA. w\nB. x\nC. y\nD. z\nAnswer: B\n\n"
            "Q?\nA. w\nB. x\nC. y\nD. z\nAnswer:");
}

TEST(MultipleChoice, CsvAsRfc4180) {
  const auto rows = io::parse_csv("\xEF\xBB\xBF,Question,A\r\n0,\"a, \"\"quoted\"\"\nline\",x\n1,,\"\"\n", "t.csv");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], (io::CsvRow{"", "Question", "A"}));
  EXPECT_EQ(rows[1], (io::CsvRow{"0", "a, \"quoted\"\nline", "x"}));
  EXPECT_EQ(rows[2], (io::CsvRow{"1", "", ""}));
  try {
    io::parse_csv("a,b\n\"open,c\n", "bad.csv");
    FAIL() << "an unclosed quote parsed";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "bad.csv:2: a quoted field is not closed");
  }
  EXPECT_THROW(io::parse_csv("\"a\"b,c\n", "bad.csv"), Error);
}

TEST(MultipleChoice, ExtractChoiceFollowsCmmlusRules) {
  EXPECT_EQ(extract_choice("B. 乙"), "B");  // the first character
  EXPECT_EQ(extract_choice("我认为答案是：C"), "C");
  EXPECT_EQ(extract_choice("答案为D，因为"), "D");
  EXPECT_EQ(extract_choice("所以选择 A"), "A");
  EXPECT_EQ(extract_choice("正确的选项是 B"), "B");
  EXPECT_EQ(extract_choice("只能是C啦"), "C");       // the only letter mentioned
  EXPECT_EQ(extract_choice("在A和B之间难以取舍"), "");  // two letters, no rule: unanswered
  EXPECT_EQ(extract_choice("不知道"), "");
}

TEST(MultipleChoice, LoadsCmmlusLayoutWithItsNamesAndCategories) {
  const auto dir = fs::temp_directory_path() / ("yak_mc_" + std::to_string(::getpid()));
  fs::create_directories(dir / "dev");
  fs::create_directories(dir / "test");
  for (const char* split : {"dev", "test"}) {
    std::ofstream(dir / split / "chinese_history.csv") << ",Question,A,B,C,D,Answer\n0,问,甲,乙,丙,丁,B\n";
    std::ofstream(dir / split / "virology.csv") << ",Question,A,B,C,D,Answer\n0,问,甲,乙,丙,丁,D\n1,问2,甲,乙,丙,丁,A\n";
  }
  const auto subs = load_mc_subjects(McTask::Cmmlu, dir.string(), "", {});
  ASSERT_EQ(subs.size(), 2u);
  EXPECT_EQ(subs[0].name, "chinese_history");
  EXPECT_EQ(subs[0].display, "中国历史");
  EXPECT_EQ(subs[0].categories, (std::vector<std::string>{"Humanities", "China specific"}));
  EXPECT_EQ(subs[1].display, "病毒学");
  EXPECT_EQ(subs[1].categories, (std::vector<std::string>{"STEM"}));
  EXPECT_EQ(subs[1].eval.size(), 2u);
  EXPECT_EQ(subs[1].eval[1].answer, "A");
  EXPECT_EQ(load_mc_subjects(McTask::Cmmlu, dir.string(), "", {"virology"}).size(), 1u);
  EXPECT_THROW(load_mc_subjects(McTask::Cmmlu, dir.string(), "", {"nothing"}), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace yak::infer
