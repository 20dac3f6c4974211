#include <chrono>
#include <filesystem>
#include <fstream>

#include "tokenizer_test_util.h"
#include "yak/base/error.h"
#include "yak/tokenizer/bpe.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::tok {
namespace {

using namespace yak::tok::testing;

// Every golden case: ids with and without special tokens, and both decodes.
void check_cases(const Tokenizer& tok, const Json& g) {
  int checked = 0;
  for (const auto& c : g["cases"]) {
    std::string text = c["text"].get<std::string>();
    SCOPED_TRACE("text: " + show(text));
    auto ids = tok.encode(text, false);
    EXPECT_EQ(ids, ids_of(c["ids"]));
    EXPECT_EQ(tok.encode(text, true), ids_of(c["ids_add_special"]));
    EXPECT_EQ(tok.decode(ids, false), c["decoded"].get<std::string>());
    EXPECT_EQ(tok.decode(ids, true), c["decoded_skip_special"].get<std::string>());
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

TEST(TokenizerBpe, TinySplitTokenizerMatchesHfTokenizers) {
  auto tok = load_tokenizer(golden("tiny_bpe.json"));
  auto g = golden_json("tiny_bpe_ids.json");
  EXPECT_EQ(tok->vocab_size(), g["vocab_size"].get<int>());
  check_cases(*tok, g);
  EXPECT_EQ(tok->bos_id(), 0);
  EXPECT_TRUE(tok->is_special(0));
  EXPECT_FALSE(tok->is_special(500));  // "yak::tok" is added but not special
  EXPECT_EQ(tok->token_to_id("<|im_end|>"), 4);
  EXPECT_EQ(tok->id_to_token(4), "<|im_end|>");
  EXPECT_NE(tok->describe().find("byte-level BPE"), std::string::npos);
}

TEST(TokenizerBpe, TinyGpt2ByteLevelRegexMatchesHfTokenizers) {
  auto tok = load_tokenizer(golden("tiny_bpe_gpt2.json"));
  check_cases(*tok, golden_json("tiny_bpe_gpt2_ids.json"));
}

TEST(TokenizerBpe, MergesAsStringsLoadLikePairs) {
  Json j = read_json_file(golden("tiny_bpe.json"));
  for (auto& m : j["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  auto tok = BpeTokenizer::from_json_string(j.dump(), "tiny_bpe.json (string merges)");
  check_cases(*tok, golden_json("tiny_bpe_ids.json"));
}

TEST(TokenizerBpe, Qwen2TwoFileFormMatchesTransformers) {
  YAK_SKIP_UNLESS_SHARED("tokenizers/qwen2/vocab.json");
  // Qwen2's tokenizer.json (11 MB) is too large to commit, so only the two-file form is tested.
  auto tok = load_tokenizer(shared("tokenizers/qwen2"));
  auto g = golden_json("qwen2_ids.json");
  EXPECT_EQ(tok->vocab_size(), g["vocab_size"].get<int>());
  check_cases(*tok, g);
  EXPECT_FALSE(tok->bos_id().has_value());
  EXPECT_EQ(tok->eos_id(), 151645);
  EXPECT_EQ(tok->pad_id(), 151643);
  EXPECT_TRUE(tok->is_special(151644));
  EXPECT_NE(tok->chat_template_source().find("<|im_start|>"), std::string::npos);
  // Loading through the merges.txt or vocab.json path gives the same tokenizer.
  auto tok2 = load_tokenizer(shared("tokenizers/qwen2/merges.txt"));
  EXPECT_EQ(tok2->encode("你好, world", false), tok->encode("你好, world", false));
}

TEST(TokenizerBpe, Qwen2LargeTextRoundTrips) {
  YAK_SKIP_UNLESS_SHARED("tokenizers/qwen2/vocab.json");
  YAK_SKIP_UNLESS_SHARED("text/tinyshakespeare.txt");
  auto tok = load_tokenizer(shared("tokenizers/qwen2"));
  std::string text = read_text_file(shared("text/tinyshakespeare.txt"));
  auto t0 = std::chrono::steady_clock::now();
  auto ids = tok->encode(text, false);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("encoded %zu bytes into %zu ids in %.3f s (%.1f MB/s)\n", text.size(), ids.size(), s,
              text.size() / s / 1e6);
  EXPECT_EQ(tok->decode(ids, false), text);
}

TEST(TokenizerBpe, InvalidUtf8IsAnError) {
  auto tok = load_tokenizer(golden("tiny_bpe.json"));
  EXPECT_THROW(tok->encode("abc\xff", false), yak::Error);
  EXPECT_THROW(tok->encode("\xe4\xbd", false), yak::Error);
  EXPECT_THROW(tok->decode(std::vector<int32_t>{100000}, false), yak::Error);
}

std::string error_of(const std::string& json) {
  try {
    BpeTokenizer::from_json_string(json, "bad/tokenizer.json");
  } catch (const yak::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TokenizerBpe, BrokenTokenizerJsonNamesFileAndField) {
  auto e = error_of("{\"model\": {");
  EXPECT_NE(e.find("bad/tokenizer.json"), std::string::npos) << e;
  EXPECT_NE(e.find("line"), std::string::npos) << e;
  e = error_of("{\"version\": \"1.0\"}");
  EXPECT_NE(e.find("'model'"), std::string::npos) << e;
  e = error_of(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a c"]}})");
  EXPECT_NE(e.find("merges[0]"), std::string::npos) << e;
  EXPECT_NE(e.find("'c'"), std::string::npos) << e;
  e = error_of(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": [["a", "b"]]}})");
  EXPECT_NE(e.find("not in the vocabulary"), std::string::npos) << e;
  e = error_of(R"({"model": {"type": "WordPiece", "vocab": {}}})");
  EXPECT_NE(e.find("model.type"), std::string::npos) << e;
  e = error_of(R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})");
  EXPECT_NE(e.find("'a'"), std::string::npos) << e;
  e = error_of(
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Whitespace"}})");
  EXPECT_NE(e.find("pre_tokenizer"), std::string::npos) << e;
  e = error_of(
      R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}}})");
  EXPECT_NE(e.find("regex"), std::string::npos) << e;
  EXPECT_THROW(load_tokenizer("/nonexistent/tokenizer.json"), yak::Error);
}

TEST(TokenizerBpe, AddedTokenStripFlags) {
  Json j = read_json_file(golden("tiny_bpe.json"));
  j["added_tokens"].push_back({{"id", 501},
                               {"content", "<mask>"},
                               {"special", true},
                               {"lstrip", true},
                               {"rstrip", true},
                               {"normalized", false},
                               {"single_word", false}});
  auto tok = BpeTokenizer::from_json_string(j.dump(), "tiny+mask");
  auto a = tok->encode("x  <mask>  y", false);
  auto b = tok->encode("x<mask>y", false);
  EXPECT_EQ(a, b);
  EXPECT_NE(std::find(a.begin(), a.end(), 501), a.end());
}

}  // namespace
}  // namespace yak::tok
