// tok::Jieba against jieba 0.42.1 itself (tests/golden/tokenizer/jieba_cuts.json, from
// tools/golden/make_jieba_goldens.py): the same words for every sentence, dictionary routes,
// HMM-grouped unknown names, numbers, English and punctuation alike. The dictionary is the
// installed jieba package's (Debian's python3-jieba); without it the test skips and says so.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/tokenizer/jieba.h"

using namespace yak;
namespace fs = std::filesystem;

TEST(Jieba, CutsEqualJiebas) {
  const auto dir = tok::Jieba::find_installed();
  if (!dir) GTEST_SKIP() << "jieba's dictionary not installed (apt-get install python3-jieba, or set YAK_JIEBA_DIR)";
  const auto jb = tok::Jieba::load(*dir);
  const Json g = read_json_file(fs::path(YAK_GOLDEN_DIR) / "tokenizer" / "jieba_cuts.json");
  int same = 0, total = 0;
  for (const auto& c : g.at("cuts")) {
    const auto want = c.at("words").get<std::vector<std::string>>();
    const auto got = jb->cut(c.at("text").get<std::string>());
    EXPECT_EQ(got, want) << c.at("text").get<std::string>();
    same += got == want;
    ++total;
  }
  EXPECT_EQ(total, 30);
  EXPECT_EQ(same, total);
}

TEST(Jieba, MalformedDataIsNamed) {
  const fs::path d = fs::temp_directory_path() / ("yak-jieba-" + std::to_string(::getpid()));
  fs::create_directories(d / "finalseg");
  std::ofstream(d / "finalseg" / "prob_start.py") << "P={'B': -0.26, 'E': -3.14e+100, 'M': -3.14e+100, 'S': -1.5}\n";
  std::ofstream(d / "finalseg" / "prob_trans.py") << "P={}\n";
  std::ofstream(d / "finalseg" / "prob_emit.py") << "P={}\n";
  std::ofstream(d / "dict.txt") << "北京 100 ns\n上海 x ns\n";
  auto error_of_load = [&] {
    try {
      tok::Jieba::load(d);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  std::string e = error_of_load();
  EXPECT_NE(e.find("dict.txt:2: frequency 'x'"), std::string::npos) << e;
  std::ofstream(d / "dict.txt") << "北京 100 ns\n";
  EXPECT_EQ(error_of_load(), "");
  std::ofstream(d / "finalseg" / "prob_start.py") << "P={'B': -0.26, 'E': -3.14e+100, 'M': -3.14e+100}\n";
  e = error_of_load();
  EXPECT_NE(e.find("prob_start.py:1: a state's start probability is missing"), std::string::npos) << e;
  std::ofstream(d / "finalseg" / "prob_start.py") << "P={'B': -0.26, 'E': -3.14e+100, 'M': -3.14e+100, 'S': -1.5}\n";
  std::ofstream(d / "finalseg" / "prob_emit.py") << "P={'B': {'\\u4zz0': -1}}\n";
  e = error_of_load();
  EXPECT_NE(e.find("prob_emit.py:1: bad \\u escape"), std::string::npos) << e;
  fs::remove_all(d);
}
