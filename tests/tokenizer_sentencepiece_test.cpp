#include "tokenizer_test_util.h"
#include "yak/base/error.h"
#include "yak/tokenizer/sentencepiece_tokenizer.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::tok {
namespace {

using namespace yak::tok::testing;

TEST(TokenizerSentencePiece, ChineseLlama2MatchesReference) {
  YAK_SKIP_UNLESS_SHARED("tokenizers/chinese-llama-2/tokenizer.model");
  auto tok = load_tokenizer(shared("tokenizers/chinese-llama-2"));
  auto g = golden_json("chinese_llama2_ids.json");
  EXPECT_EQ(tok->vocab_size(), g["vocab_size"].get<int>());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->is_special(1));
  EXPECT_FALSE(tok->is_special(100));
  int same_as_sentencepiece = 0, same_as_hf_fast = 0, n = 0;
  for (const auto& c : g["cases"]) {
    std::string text = c["text"].get<std::string>();
    SCOPED_TRACE("text: " + show(text));
    auto ids = tok->encode(text, false);
    auto ids_sp = tok->encode(text, true);
    EXPECT_EQ(ids, ids_of(c["ids"]));
    EXPECT_EQ(ids_sp, ids_of(c["ids_add_special"]));
    EXPECT_EQ(tok->decode(ids, false), c["decoded"].get<std::string>());
    EXPECT_EQ(tok->decode(ids, true), c["decoded_skip_special"].get<std::string>());
    EXPECT_EQ(tok->decode(ids_sp, false), c["decoded_add_special"].get<std::string>());
    same_as_sentencepiece += ids == ids_of(c["sentencepiece_ids"]);
    same_as_hf_fast += ids == ids_of(c["hf_fast_ids"]);
    ++n;
  }
  // Text without <s>/</s> is plain SentencePiece; transformers 5's converted BPE differs on some.
  EXPECT_EQ(same_as_sentencepiece, n - 2);
  std::printf("%d/%d cases equal transformers 5 LlamaTokenizer ids\n", same_as_hf_fast, n);
}

TEST(TokenizerSentencePiece, SpecialTokensInTextAreControlTokens) {
  YAK_SKIP_UNLESS_SHARED("tokenizers/chinese-llama-2/tokenizer.model");
  auto tok = load_tokenizer(shared("tokenizers/chinese-llama-2/tokenizer.model"));
  auto ids = tok->encode("<s>hi</s>", false);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids.back(), 2);
  EXPECT_EQ(tok->decode(ids, true), "hi");
}

TEST(TokenizerSentencePiece, ByteFallbackDecodes) {
  YAK_SKIP_UNLESS_SHARED("tokenizers/chinese-llama-2/tokenizer.model");
  auto tok = load_tokenizer(shared("tokenizers/chinese-llama-2/tokenizer.model"));
  std::string text = "emoji 🤖 and 👨‍👩‍👧";
  auto ids = tok->encode(text, false);
  EXPECT_EQ(tok->decode(ids, false), text);
  // Half of a 4-byte character is not valid text: one U+FFFD per byte, as transformers does.
  auto robot = tok->encode("🤖", false);
  ASSERT_GE(robot.size(), 4u);
  std::vector<int32_t> half(robot.end() - 2, robot.end());
  EXPECT_EQ(tok->decode(half, false), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_THROW(tok->encode("bad \xC3", false), yak::Error);
}

TEST(TokenizerSentencePiece, ChineseSpModelRoundTrips) {
  YAK_SKIP_UNLESS_SHARED("tokenizers/chinese-sp/chinese_sp.model");
  auto tok = load_tokenizer(shared("tokenizers/chinese-sp/chinese_sp.model"));
  std::string text = "我们的目标是让大语言模型在中文场景下更好用。";
  auto ids = tok->encode(text, false);
  EXPECT_FALSE(ids.empty());
  EXPECT_EQ(tok->decode(ids, true), text);
}

TEST(TokenizerSentencePiece, NotAModelIsAnError) {
  EXPECT_THROW(SentencePieceTokenizer("this is not a protobuf", "bad.model", nullptr, nullptr), yak::Error);
  try {
    SentencePieceTokenizer("\x0a\xff\xff\xff\x0f", "bad.model", nullptr, nullptr);
    FAIL() << "no error";
  } catch (const yak::Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.model"), std::string::npos);
  }
}

}  // namespace
}  // namespace yak::tok
