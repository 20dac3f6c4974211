#include <cstring>
#include <fstream>

#include "tokenizer_test_util.h"
#include "yak/base/error.h"
#include "yak/io/gguf.h"
#include "yak/tokenizer/gguf_vocab.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::tok {
namespace {

using namespace yak::tok::testing;
using io::GgufFile;
using io::GgufType;

// A little GGUF writer for synthetic files.
struct Writer {
  std::string b;
  template <typename T>
  void put(T v) {
    b.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    b += s;
  }
  void key(const std::string& k, GgufType t) {
    str(k);
    put<uint32_t>(static_cast<uint32_t>(t));
  }
};

std::string sample_gguf(uint32_t version = 3) {
  Writer w;
  w.put<uint32_t>(0x46554747u);
  w.put<uint32_t>(version);
  w.put<uint64_t>(2);   // tensors
  w.put<uint64_t>(10);  // kv
  w.key("general.architecture", GgufType::STRING);
  w.str("llama");
  w.key("general.alignment", GgufType::U32);
  w.put<uint32_t>(64);
  w.key("a.u8", GgufType::U8);
  w.put<uint8_t>(200);
  w.key("a.i16", GgufType::I16);
  w.put<int16_t>(-300);
  w.key("a.i64", GgufType::I64);
  w.put<int64_t>(-5000000000LL);
  w.key("a.f32", GgufType::F32);
  w.put<float>(1.5f);
  w.key("a.f64", GgufType::F64);
  w.put<double>(-2.25);
  w.key("a.bool", GgufType::BOOL);
  w.put<uint8_t>(1);
  w.key("a.strings", GgufType::ARRAY);
  w.put<uint32_t>(static_cast<uint32_t>(GgufType::STRING));
  w.put<uint64_t>(3);
  w.str("x");
  w.str("");
  w.str("你好");
  w.key("a.nested", GgufType::ARRAY);
  w.put<uint32_t>(static_cast<uint32_t>(GgufType::ARRAY));
  w.put<uint64_t>(1);
  w.put<uint32_t>(static_cast<uint32_t>(GgufType::I32));
  w.put<uint64_t>(2);
  w.put<int32_t>(7);
  w.put<int32_t>(-8);
  // tensor infos
  w.str("w");
  w.put<uint32_t>(2);
  w.put<uint64_t>(4);
  w.put<uint64_t>(2);
  w.put<uint32_t>(0);  // F32
  w.put<uint64_t>(0);
  w.str("q");
  w.put<uint32_t>(1);
  w.put<uint64_t>(32);
  w.put<uint32_t>(8);  // Q8_0: 34 bytes
  w.put<uint64_t>(64);
  while (w.b.size() % 64) w.b += '\0';
  w.b += std::string(64 + 34, '\x01');
  return w.b;
}

GgufFile parse(const std::string& s) {
  return GgufFile::parse(reinterpret_cast<const uint8_t*>(s.data()), s.size(), "test.gguf");
}

TEST(TokenizerGguf, ReaderParsesAllValueTypes) {
  for (uint32_t v : {2u, 3u}) {
    auto g = parse(sample_gguf(v));
    EXPECT_EQ(g.version(), v);
    EXPECT_EQ(g.alignment(), 64u);
    EXPECT_EQ(g.get_string("general.architecture"), "llama");
    EXPECT_EQ(g.get_int("a.u8"), 200);
    EXPECT_EQ(g.get_int("a.i16"), -300);
    EXPECT_EQ(g.get_int("a.i64"), -5000000000LL);
    EXPECT_FLOAT_EQ(g.find("a.f32")->f, 1.5);
    EXPECT_DOUBLE_EQ(g.find("a.f64")->f, -2.25);
    EXPECT_TRUE(g.get_bool("a.bool"));
    EXPECT_EQ(g.get_string_array("a.strings"), (std::vector<std::string>{"x", "", "你好"}));
    const auto* nested = g.find("a.nested");
    ASSERT_EQ(nested->arr.size(), 1u);
    EXPECT_EQ(nested->arr[0].arr[1].i, -8);
    ASSERT_EQ(g.tensors().size(), 2u);
    EXPECT_EQ(g.tensors()[0].dims, (std::vector<uint64_t>{4, 2}));
    EXPECT_EQ(g.tensors()[0].nbytes, 32u);
    EXPECT_EQ(g.tensors()[1].nbytes, 34u);
    EXPECT_EQ(g.data_offset() % 64, 0u);
    EXPECT_THROW(g.get_string("a.u8"), yak::Error);
    EXPECT_THROW(g.get_int("missing"), yak::Error);
  }
}

TEST(TokenizerGguf, TruncatedOrCorruptFilesAreErrors) {
  std::string s = sample_gguf();
  // Every truncation is an error, never a crash.
  for (size_t n = 0; n < s.size(); ++n) EXPECT_THROW(parse(s.substr(0, n)), yak::Error) << "length " << n;
  std::string bad = s;
  bad[0] = 'X';
  EXPECT_THROW(parse(bad), yak::Error);
  bad = s;
  bad[4] = 9;  // version
  EXPECT_THROW(parse(bad), yak::Error);
  bad = s;
  std::memset(&bad[16], 0xff, 8);  // absurd metadata count
  EXPECT_THROW(parse(bad), yak::Error);
  try {
    parse(s.substr(0, 60));
  } catch (const yak::Error& e) {
    EXPECT_NE(std::string(e.what()).find("test.gguf"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  EXPECT_THROW(GgufFile::open("/nonexistent.gguf"), yak::Error);
}

std::vector<std::string> split_inputs(const std::string& s) {
  std::vector<std::string> out;
  const std::string sep = "\n__ggml_vocab_test__\n";
  size_t pos = 0;
  while (true) {
    size_t p = s.find(sep, pos);
    if (p == std::string::npos) break;
    out.push_back(s.substr(pos, p - pos));
    pos = p + sep.size();
  }
  return out;
}

class LlamaCppVocab : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaCppVocab, MatchesReferenceIds) {
  const std::string base = "tokenizers/llama-cpp-vocab/ggml-vocab-" + GetParam() + ".gguf";
  YAK_SKIP_UNLESS_SHARED(base);
  auto tok = load_tokenizer(shared(base));
  auto inputs = split_inputs(read_text_file(shared(base + ".inp")));
  std::string out_text = read_text_file(shared(base + ".out"));
  std::vector<std::vector<int32_t>> expected;
  for (size_t pos = 0; pos < out_text.size();) {
    size_t nl = out_text.find('\n', pos);
    if (nl == std::string::npos) nl = out_text.size();
    std::vector<int32_t> ids;
    std::string line = out_text.substr(pos, nl - pos);
    for (size_t i = 0; i < line.size();) {
      while (i < line.size() && line[i] == ' ') ++i;
      if (i >= line.size()) break;
      size_t j = line.find(' ', i);
      if (j == std::string::npos) j = line.size();
      ids.push_back(std::stoi(line.substr(i, j - i)));
      i = j;
    }
    expected.push_back(ids);
    pos = nl + 1;
  }
  ASSERT_EQ(inputs.size(), expected.size());
  int mismatches = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    auto ids = tok->encode(inputs[k], false);
    if (ids != expected[k]) {
      ++mismatches;
      ADD_FAILURE() << GetParam() << " case " << k << " '" << show(inputs[k])
                    << "'\n got:  " << ::testing::PrintToString(ids)
                    << "\n want: " << ::testing::PrintToString(expected[k]);
    }
  }
  EXPECT_EQ(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(Vectors, LlamaCppVocab,
                         ::testing::Values("llama-spm", "gpt-2", "bert-bge", "phi-3", "deepseek-llm", "starcoder"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(TokenizerGguf, UnsupportedModelIsAnError) {
  Writer w;
  w.put<uint32_t>(0x46554747u);
  w.put<uint32_t>(3);
  w.put<uint64_t>(0);
  w.put<uint64_t>(1);
  w.key("tokenizer.ggml.model", GgufType::STRING);
  w.str("rwkv");
  auto g = parse(w.b);
  try {
    tokenizer_from_gguf(g);
    FAIL();
  } catch (const yak::Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.model"), std::string::npos);
  }
}

}  // namespace
}  // namespace yak::tok
