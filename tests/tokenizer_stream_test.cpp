#include "tokenizer_test_util.h"
#include "yak/base/utf8.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::tok {
namespace {

using namespace yak::tok::testing;

// Streams every text of the multilingual set one id at a time: the pieces must concatenate to
// decode(all ids), and no piece may end inside a character.
void check_streaming(const Tokenizer& tok) {
  auto texts = golden_json("texts.json");
  for (bool skip : {true, false}) {
    for (const auto& t : texts) {
      std::string text = t.get<std::string>();
      SCOPED_TRACE("text: " + show(text) + (skip ? " (skip special)" : ""));
      auto ids = tok.encode(text, true);
      StreamDecoder sd(tok, skip);
      std::string streamed;
      for (int32_t id : ids) {
        std::string piece = sd.push(id);
        EXPECT_EQ(utf8::incomplete_tail(piece), 0u);
        EXPECT_TRUE(utf8::is_valid(piece));
        streamed += piece;
      }
      streamed += sd.flush();
      EXPECT_EQ(streamed, tok.decode(ids, skip));
    }
  }
}

TEST(TokenizerStream, TinyBpe) {
  check_streaming(*load_tokenizer(golden("tiny_bpe.json")));
}

TEST(TokenizerStream, Qwen2) {
  YAK_SKIP_UNLESS_SHARED("tokenizers/qwen2/vocab.json");
  check_streaming(*load_tokenizer(shared("tokenizers/qwen2")));
}

TEST(TokenizerStream, ChineseLlama2SentencePiece) {
  YAK_SKIP_UNLESS_SHARED("tokenizers/chinese-llama-2/tokenizer.model");
  check_streaming(*load_tokenizer(shared("tokenizers/chinese-llama-2")));
}

TEST(TokenizerStream, GgufLlamaSpm) {
  YAK_SKIP_UNLESS_SHARED("tokenizers/llama-cpp-vocab/ggml-vocab-llama-spm.gguf");
  check_streaming(*load_tokenizer(shared("tokenizers/llama-cpp-vocab/ggml-vocab-llama-spm.gguf")));
}

TEST(TokenizerStream, ResetStartsOver) {
  auto tok = load_tokenizer(golden("tiny_bpe.json"));
  StreamDecoder sd(*tok);
  auto ids = tok->encode("你好", false);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(sd.push(ids[0]), "");  // a lone leading byte of 你 is held back
  sd.reset();
  std::string s;
  for (auto id : tok->encode("abc", false)) s += sd.push(id);
  EXPECT_EQ(s + sd.flush(), "abc");
}

}  // namespace
}  // namespace yak::tok
