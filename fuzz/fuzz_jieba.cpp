// Fuzzes jieba's data readers (dict.txt, finalseg's prob_*.py literals) and the segmenter over
// what they accept. The input is four parts split at 0x00 bytes: dict.txt, prob_start.py,
// prob_trans.py and prob_emit.py; the dictionary text is then also cut. Any input must give words
// that concatenate to the text, or a yak::Error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "yak/base/error.h"
#include "yak/base/utf8.h"
#include "yak/tokenizer/jieba.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1 << 16) return 0;
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0 && parts.size() < 4)
      parts.emplace_back();
    else
      parts.back().push_back(static_cast<char>(data[i]));
  }
  parts.resize(4);
  try {
    auto j = yak::tok::Jieba::from_text(parts[0], parts[1], parts[2], parts[3], "fuzz");
    for (const std::string& text : {parts[0], std::string("我来到北京清华大学，2023年增长12.5%。abc-def 杭研")}) {
      std::string back;
      for (const auto& w : j->cut(text)) back += w;
      std::string want;  // the text with invalid bytes as U+FFFD, as cut() decodes it
      for (size_t i = 0; i < text.size();) yak::utf8::append(want, yak::utf8::next(text, i));
      if (back != want) __builtin_trap();
    }
  } catch (const yak::Error&) {
  }
  return 0;
}
