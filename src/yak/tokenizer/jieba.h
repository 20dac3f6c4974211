// Chinese word segmentation as jieba 0.42 cuts (jieba.cut(text, cut_all=False, HMM=True)): the
// dictionary's prefix DAG with the most probable route by word frequency, and runs of unknown
// single characters regrouped by jieba's BMES hidden Markov model (finalseg's Viterbi). LongBench
// scores Chinese answers over these words. The data is jieba's own (dict.txt, finalseg/prob_*.py),
// read from an installed jieba package (Debian's python3-jieba) — yak ships none of it.
#pragma once
#include <array>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace yak::tok {

class Jieba {
 public:
  // Reads DIR/dict.txt and DIR/finalseg/prob_{start,trans,emit}.py (DIR: jieba's package folder).
  // Throws yak::Error naming the file and line of anything malformed.
  static std::unique_ptr<Jieba> load(const std::filesystem::path& dir);
  // The same from the files' contents (errors name `where`/dict.txt and so on; for the fuzzer).
  static std::unique_ptr<Jieba> from_text(std::string_view dict, std::string start, std::string trans,
                                          std::string emit, const std::string& where);
  // $YAK_JIEBA_DIR, else the Debian package's folder, when it holds dict.txt; nullopt otherwise.
  static std::optional<std::filesystem::path> find_installed();

  // The words of `text` (UTF-8; invalid bytes become U+FFFD), in order; concatenated they give
  // the text back.
  std::vector<std::string> cut(std::string_view text) const;

 private:
  void cut_dag(const std::u32string& s, std::vector<std::string>& out) const;
  void cut_hmm(const std::u32string& s, std::vector<std::string>& out) const;
  void viterbi(const std::u32string& s, std::vector<std::string>& out) const;
  int64_t freq(const std::u32string& w) const;  // 0: a prefix only or absent

  std::unordered_map<std::u32string, int64_t> freq_;  // words and (with 0) their prefixes
  double log_total_ = 0;
  std::array<double, 4> start_{};                    // B M E S
  std::array<std::array<double, 4>, 4> trans_{};     // [from][to]
  std::array<std::unordered_map<char32_t, double>, 4> emit_;
};

}  // namespace yak::tok
