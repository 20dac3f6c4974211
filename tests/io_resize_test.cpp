// Vocabulary resize of golden checkpoints (untied LLaMA, tied Qwen2, bf16 LLaMA): old rows bit for
// bit, new rows the mean of the old, every other tensor and config field unchanged.
#include <gtest/gtest.h>

#include <cstring>

#include "golden_models.h"
#include "yak/base/error.h"
#include "yak/io/resize.h"
#include "yak/io/safetensors.h"
#include "yak/tensor/half.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::path(::testing::TempDir()) / ("yak_resize_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

float element(const Tensor& t, int64_t i) {
  float f;
  convert_to_f32(t.dtype(), static_cast<const uint8_t*>(t.raw()) + dtype_bytes(t.dtype(), i), &f, 1);
  return f;
}

// The mean row as the test computes it on its own: double sums, one rounding to the dtype.
std::vector<float> mean_row(const Tensor& w) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  std::vector<float> m(cols);
  for (int64_t c = 0; c < cols; ++c) {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) s += element(w, r * cols + c);
    float f = static_cast<float>(s / rows);
    if (w.dtype() == DType::BF16) f = bf16_to_f32(f32_to_bf16(f));
    if (w.dtype() == DType::F16) f = f16_to_f32(f32_to_f16(f));
    m[c] = f;
  }
  return m;
}

void check_resized(const std::string& model, int64_t new_vocab, int64_t pad_to, int64_t expect_vocab) {
  SCOPED_TRACE(model);
  fs::path src = golden::golden_models_dir() / model;
  fs::path out = temp_dir(model) / "resized";
  io::ResizeOptions opt;
  opt.vocab_size = new_vocab;
  opt.pad_to_multiple_of = pad_to;
  auto res = io::resize_embeddings(src, out, opt);
  Json cfg_old = read_json_file(src / "config.json"), cfg_new = read_json_file(out / "config.json");
  const int64_t V = cfg_old["vocab_size"].get<int64_t>();
  EXPECT_EQ(res.old_vocab, V);
  EXPECT_EQ(res.new_vocab, expect_vocab);
  EXPECT_EQ(cfg_new["vocab_size"].get<int64_t>(), expect_vocab);
  cfg_new["vocab_size"] = V;
  EXPECT_EQ(cfg_new, cfg_old);  // nothing else in config.json changed
  EXPECT_TRUE(fs::exists(out / "generation_config.json"));

  auto a = io::WeightStore::open_dir(src), b = io::WeightStore::open_dir(out);
  EXPECT_EQ(a.names(), b.names());
  bool tied = cfg_old.value("tie_word_embeddings", false);
  EXPECT_EQ(b.has("lm_head.weight"), !tied);
  for (const auto& name : a.names()) {
    Tensor x = a.get(name), y = b.get(name);
    ASSERT_EQ(x.dtype(), y.dtype()) << name;
    if (name != "model.embed_tokens.weight" && name != "lm_head.weight") {
      ASSERT_EQ(x.shape(), y.shape()) << name;
      EXPECT_EQ(std::memcmp(x.raw(), y.raw(), x.nbytes()), 0) << name;
      continue;
    }
    ASSERT_EQ(y.shape(), (Shape{expect_vocab, x.dim(1)})) << name;
    EXPECT_EQ(std::memcmp(x.raw(), y.raw(), x.nbytes()), 0) << name << ": old rows changed";
    auto m = mean_row(x);
    const int64_t H = x.dim(1);
    float worst = 0;
    for (int64_t r = V; r < expect_vocab; ++r)
      for (int64_t c = 0; c < H; ++c) worst = std::max(worst, std::fabs(element(y, r * H + c) - m[c]));
    EXPECT_EQ(worst, 0.0f) << name << ": new rows differ from the mean of the old rows";
  }
}

}  // namespace

TEST(ResizeEmbeddings, UntiedLlamaGrowsEmbedAndHead) {
  check_resized("llama_mha_f32", 357, 0, 357);
}

TEST(ResizeEmbeddings, TiedQwen2GrowsEmbedOnly) {
  check_resized("qwen2_bias_tied", 357, 64, 384);
}

TEST(ResizeEmbeddings, Bf16MeanRoundedOnce) {
  check_resized("llama_bf16", 400, 0, 400);
}

TEST(ResizeEmbeddings, SameSizeCopiesEverything) {
  check_resized("llama_mha_f32", 320, 0, 320);
  check_resized("llama_mha_f32", 300, 64, 320);  // rounding up to 320 = the model's size: no new rows
}

TEST(ResizeEmbeddings, BadInputWritesNothing) {
  fs::path src = golden::golden_models_dir() / "llama_mha_f32";
  fs::path d = temp_dir("bad");
  io::ResizeOptions opt;
  opt.vocab_size = 100;  // below the model's 320: would drop rows
  EXPECT_THROW(io::resize_embeddings(src, d / "out", opt), Error);
  opt.vocab_size = 0;
  EXPECT_THROW(io::resize_embeddings(src, d / "out", opt), Error);
  opt.vocab_size = 400;
  EXPECT_THROW(io::resize_embeddings(d / "no_model", d / "out", opt), Error);
  EXPECT_THROW(io::resize_embeddings(src, d / "no_parent" / "out", opt), Error);
  opt.extra_files = {{d / "missing.model", "tokenizer.model"}};
  EXPECT_THROW(io::resize_embeddings(src, d / "out", opt), Error);
  EXPECT_FALSE(fs::exists(d / "out"));
  opt.extra_files.clear();
  io::write_file_atomic(d / "file", "keep");
  EXPECT_THROW(io::resize_embeddings(src, d / "file", opt), Error);
  EXPECT_EQ(read_text_file(d / "file"), "keep");
  fs::create_directories(d / "full");
  io::write_file_atomic(d / "full" / "README", "keep");
  EXPECT_THROW(io::resize_embeddings(src, d / "full", opt), Error);
  EXPECT_FALSE(fs::exists(d / "full" / "model.safetensors"));
  size_t entries = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(d)) ++entries;
  EXPECT_EQ(entries, 2u);  // "file" and "full": no temporary folder left behind
}

TEST(ResizeEmbeddings, ExtraFilesAndShardedInput) {
  fs::path src = golden::golden_models_dir() / "llama_sharded_f32";
  fs::path d = temp_dir("sharded");
  io::write_file_atomic(d / "tok.model", "pretend tokenizer");
  io::ResizeOptions opt;
  opt.vocab_size = 333;
  opt.extra_files = {{d / "tok.model", "tokenizer.model"}};
  auto res = io::resize_embeddings(src, d / "out", opt);
  EXPECT_EQ(res.new_vocab, 333);
  EXPECT_EQ(read_text_file(d / "out" / "tokenizer.model"), "pretend tokenizer");
  EXPECT_TRUE(fs::exists(d / "out" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(d / "out" / "model.safetensors.index.json"));
  auto a = io::WeightStore::open_dir(src), b = io::WeightStore::open_dir(d / "out");
  EXPECT_EQ(a.names(), b.names());
}
