// yak's GGUF writing against llama.cpp's own tools (files in tests/golden/gguf, by
// tools/golden/make_gguf_goldens.py): `yak convert` of a Hugging Face folder gives the tensors
// (names, types, shapes, bytes) and metadata of llama.cpp's convert_hf_to_gguf.py; `yak quantize`
// gives llama-quantize's tensors, its Q4_K_M mixture included.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <set>

#include "yak/io/gguf.h"
#include "yak/io/gguf_model.h"
#include "yak/io/gguf_writer.h"
#include "yak/tokenizer/gguf_vocab.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak {
namespace {
namespace fs = std::filesystem;

const fs::path kGolden = fs::path(YAK_GOLDEN_DIR);

bool same_value(const io::GgufValue& a, const io::GgufValue& b) {
  if (a.type != b.type) return false;
  switch (a.type) {
    case io::GgufType::STRING:
      return a.s == b.s;
    case io::GgufType::F32:
    case io::GgufType::F64:
      return a.f == b.f;
    case io::GgufType::BOOL:
      return a.b == b.b;
    case io::GgufType::ARRAY:
      if (a.elem_type != b.elem_type || a.arr.size() != b.arr.size()) return false;
      for (size_t i = 0; i < a.arr.size(); ++i)
        if (!same_value(a.arr[i], b.arr[i])) return false;
      return true;
    default:
      return a.i == b.i && a.u == b.u;
  }
}

// Every tensor of `ref` is in `got` with the same type, dimensions and bytes, and nothing else
// is; every metadata key of `ref` but those in `skip` has the same type and value in `got`.
void expect_same_file(const fs::path& got_path, const fs::path& ref_path, const std::set<std::string>& skip,
                      const std::set<size_t>& token_ids_may_differ = {}) {
  const auto got = io::GgufFile::open(got_path), ref = io::GgufFile::open(ref_path);
  SCOPED_TRACE(ref_path.filename().string());
  ASSERT_EQ(got.tensors().size(), ref.tensors().size());
  for (const auto& r : ref.tensors()) {
    const io::GgufTensorInfo* g = got.find_tensor(r.name);
    ASSERT_NE(g, nullptr) << "missing tensor " << r.name;
    EXPECT_EQ(g->ggml_type, r.ggml_type) << r.name;
    EXPECT_EQ(g->dims, r.dims) << r.name;
    ASSERT_EQ(g->nbytes, r.nbytes) << r.name;
    EXPECT_EQ(std::memcmp(got.tensor_data(*g), ref.tensor_data(r), r.nbytes), 0) << r.name << ": bytes differ";
  }
  int compared = 0;
  for (const auto& [key, v] : ref.metadata()) {
    if (skip.count(key)) continue;
    const io::GgufValue* g = got.find(key);
    ASSERT_NE(g, nullptr) << "missing metadata " << key;
    if (!token_ids_may_differ.empty() && (key == "tokenizer.ggml.tokens" || key == "tokenizer.ggml.token_type")) {
      ASSERT_EQ(g->arr.size(), v.arr.size()) << key;
      for (size_t i = 0; i < v.arr.size(); ++i)
        if (!token_ids_may_differ.count(i)) {
          EXPECT_TRUE(same_value(g->arr[i], v.arr[i])) << key << "[" << i << "]";
        }
      ++compared;
      continue;
    }
    EXPECT_TRUE(same_value(*g, v)) << "metadata " << key << " differs";
    ++compared;
  }
  EXPECT_GT(compared, 15);
}

// Names the converter derives from the folder name, and keys yak does not write.
const std::set<std::string> kNotCompared = {"general.name", "general.size_label", "tokenizer.ggml.add_sep_token"};

struct ConvertCase {
  std::string model, type;
};
class GgufConvert : public ::testing::TestWithParam<ConvertCase> {};

TEST_P(GgufConvert, EqualsLlamaCppsConverter) {
  const auto& c = GetParam();
  const fs::path dir = kGolden / "models" / c.model;
  const fs::path out = fs::temp_directory_path() / ("yak-convert-" + c.model + "-" + c.type + ".gguf");
  const auto cfg = io::ModelConfig::load(dir);
  io::GgufWriter w;
  io::add_gguf_model(w, cfg, io::WeightStore::open_dir(dir), *io::gguf_file_type_from_name(c.type), c.model, nullptr);
  tok::add_gguf_vocab(w, dir, cfg);
  w.write(out);
  // For Qwen2 the converter reads the vocabulary through transformers, whose tokenizer adds an
  // <|endoftext|> at id 501 that tokenizer.json does not hold; yak writes the file's padding there.
  expect_same_file(out, kGolden / "gguf" / (c.model + "-" + c.type + ".gguf"), kNotCompared,
                   c.model == "qwen2_bpe" ? std::set<size_t>{501} : std::set<size_t>{});
  fs::remove(out);
}

INSTANTIATE_TEST_SUITE_P(Files, GgufConvert,
                         ::testing::Values(ConvertCase{"qwen2_bpe", "f32"}, ConvertCase{"qwen2_bpe", "f16"},
                                           ConvertCase{"qwen2_bpe", "q8_0"}, ConvertCase{"llama_bpe", "f32"},
                                           ConvertCase{"llama_bpe", "f16"}, ConvertCase{"llama_bpe", "q8_0"}),
                         [](const auto& info) { return info.param.model + "_" + info.param.type; });

class GgufQuantize : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufQuantize, EqualsLlamaQuantize) {
  const std::string type = GetParam();
  const fs::path in = kGolden / "gguf" / "llama_k-bf16.gguf";
  const fs::path out = fs::temp_directory_path() / ("yak-quantize-" + type + ".gguf");
  const auto g = io::GgufFile::open(in);
  const auto cfg = io::config_from_gguf(g);
  io::GgufWriter w;
  io::add_gguf_model(w, cfg, io::weights_from_gguf(g, cfg), *io::gguf_file_type_from_name(type),
                     g.get_string("general.name"), nullptr);
  for (const auto& [key, v] : g.metadata())
    if (key.starts_with("tokenizer.")) w.add_value(key, v);
  w.write(out);
  expect_same_file(out, kGolden / "gguf" / ("llama_k-" + type + ".gguf"), {"general.size_label"});
  fs::remove(out);
}

INSTANTIATE_TEST_SUITE_P(Types, GgufQuantize, ::testing::Values("q4_0", "q4_k_m", "q6_k"));

// A SentencePiece vocabulary written as tokenizer.ggml.* reads back as the same tokenizer:
// Chinese-LLaMA-2's (49,953 pieces) encodes mixed text to the same ids from the GGUF file as from
// tokenizer.model.
TEST(GgufVocabExport, SentencePieceRoundTrip) {
  const fs::path dir = fs::path(YAK_SHARED_DATA) / "tokenizers" / "chinese-llama-2";
  if (!fs::exists(dir / "tokenizer.model")) GTEST_SKIP() << "no " << dir << " (../shared/data absent)";
  const auto sp = tok::load_tokenizer(dir / "tokenizer.model");
  io::ModelConfig cfg;
  cfg.vocab_size = sp->vocab_size();
  cfg.bos_token_id = 1;
  cfg.eos_token_ids = {2};
  io::GgufWriter w;
  w.add_string("general.architecture", "llama");
  tok::add_gguf_vocab(w, dir, cfg);
  const fs::path out = fs::temp_directory_path() / "yak-spm-vocab.gguf";
  w.write(out);
  const auto gg = tok::load_tokenizer(out);
  ASSERT_EQ(gg->vocab_size(), sp->vocab_size());
  for (const char* text :
       {"Hello world", "去年QQ音乐播放量最高的10位歌手", "  two  spaces, 标点。 and\nnewline", "ümlaut café 🙂"}) {
    EXPECT_EQ(gg->encode(text, true), sp->encode(text, true)) << text;
    EXPECT_EQ(gg->encode(text, false), sp->encode(text, false)) << text;
  }
  fs::remove(out);
}

TEST(GgufTensorTypes, LlamaQuantizeMixtures) {
  using io::GgufFileType;
  // Q4_K_M: attn_v and ffn_down get Q6_K in use_more_bits layers (of 32: 0-3, 6, 9, ..., 28-31).
  for (int64_t l : {0, 3, 6, 9, 28, 31})
    EXPECT_EQ(
        io::gguf_tensor_type(GgufFileType::Q4_K_M, "blk." + std::to_string(l) + ".attn_v.weight", l, 32, 4096, false),
        DType::Q6_K)
        << l;
  for (int64_t l : {4, 5, 7, 8, 26})
    EXPECT_EQ(io::gguf_tensor_type(GgufFileType::Q4_K_M, "blk." + std::to_string(l) + ".ffn_down.weight", l, 32, 11008,
                                   false),
              DType::Q4_K)
        << l;
  EXPECT_EQ(io::gguf_tensor_type(GgufFileType::Q4_K_M, "blk.5.attn_q.weight", 5, 32, 4096, false), DType::Q4_K);
  EXPECT_EQ(io::gguf_tensor_type(GgufFileType::Q4_0, "output.weight", -1, 32, 4096, false), DType::Q6_K);
  EXPECT_EQ(io::gguf_tensor_type(GgufFileType::Q4_0, "token_embd.weight", -1, 32, 4096, true), DType::Q6_K);
  EXPECT_EQ(io::gguf_tensor_type(GgufFileType::Q4_0, "token_embd.weight", -1, 32, 4096, false), DType::Q4_0);
  EXPECT_EQ(io::gguf_tensor_type(GgufFileType::Q8_0, "output.weight", -1, 32, 4096, false), DType::Q8_0);
  // Rows that are not whole super-blocks fall back as llama.cpp's do.
  EXPECT_EQ(io::gguf_tensor_type(GgufFileType::Q4_K_M, "blk.5.attn_q.weight", 5, 32, 896 + 32, false), DType::Q5_0);
  EXPECT_EQ(io::gguf_tensor_type(GgufFileType::Q6_K, "blk.5.attn_q.weight", 5, 32, 64, false), DType::Q8_0);
  EXPECT_EQ(io::gguf_tensor_type(GgufFileType::Q4_0, "blk.5.attn_q.weight", 5, 32, 48, false), DType::F16);
}

}  // namespace
}  // namespace yak
