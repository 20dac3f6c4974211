// GGUF models as llama.cpp's converter writes them (tests/golden/gguf, by
// tools/golden/make_gguf_goldens.py): each file runs in yak with the logits and greedy tokens of
// yak on the Hugging Face folder it came from, and of transformers on that folder.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/io/gguf_model.h"
#include "yak/model/decoder.h"

namespace yak {
namespace {
namespace fs = std::filesystem;

const fs::path kDir = fs::path(YAK_GOLDEN_DIR) / "gguf";

// Logits of every position of the prompt, one forward.
std::vector<float> all_logits(model::DecoderModel& m, const std::vector<int32_t>& p) {
  const auto L = static_cast<int64_t>(p.size());
  model::KVCache cache(m.config(), 1, L);
  model::Batch b;
  for (int64_t t = 0; t < L; ++t) {
    b.ids.push_back(p[t]);
    b.pos.push_back(static_cast<int32_t>(t));
    b.slot.push_back(0);
    b.logits_for.push_back(static_cast<int32_t>(t));
  }
  Tensor out = m.forward(b, cache);
  return {out.data<float>(), out.data<float>() + out.numel()};
}

// Greedy continuation through the KV cache (argmax, first index on ties).
std::vector<int32_t> greedy(model::DecoderModel& m, const std::vector<int32_t>& p, int n) {
  const auto L = static_cast<int64_t>(p.size());
  model::KVCache cache(m.config(), 1, L + n);
  model::Batch b;
  for (int64_t t = 0; t < L; ++t) {
    b.ids.push_back(p[t]);
    b.pos.push_back(static_cast<int32_t>(t));
    b.slot.push_back(0);
  }
  b.logits_for = {static_cast<int32_t>(L - 1)};
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    Tensor lg = m.forward(b, cache);
    const float* v = lg.data<float>();
    int32_t best = 0;
    for (int64_t k = 1; k < lg.dim(1); ++k)
      if (v[k] > v[best]) best = static_cast<int32_t>(k);
    out.push_back(best);
    b = {};
    b.ids = {best};
    b.pos = {static_cast<int32_t>(L + i)};
    b.slot = {0};
    b.logits_for = {0};
  }
  return out;
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

struct Case {
  std::string model, type;
  float bound;       // max |logit diff| against yak on the HF folder
  bool same_greedy;  // the 24 greedy tokens equal transformers'
};

class GgufModel : public ::testing::TestWithParam<Case> {};

TEST_P(GgufModel, RunsLikeTheHuggingFaceFolder) {
  const Case& c = GetParam();
  const Json expected = read_json_file(kDir / "expected.json");
  const auto& e = expected.at(c.model);
  const auto prompt = e.at("prompt").get<std::vector<int32_t>>();
  const auto want = e.at("greedy").get<std::vector<int32_t>>();
  const auto hf_last = e.at("last_logits").get<std::vector<float>>();

  auto hf = model::DecoderModel::load(fs::path(YAK_GOLDEN_DIR) / "models" / c.model);
  auto gg = model::DecoderModel::load(kDir / (c.model + "-" + c.type + ".gguf"));
  ASSERT_EQ(gg->config().arch, hf->config().arch);
  ASSERT_EQ(gg->config().vocab_size, hf->config().vocab_size);
  EXPECT_EQ(gg->config().tie_word_embeddings, hf->config().tie_word_embeddings);
  EXPECT_EQ(gg->config().attention_bias, hf->config().attention_bias);
  EXPECT_DOUBLE_EQ(gg->config().rope.theta, hf->config().rope.theta);

  const auto a = all_logits(*hf, prompt), b = all_logits(*gg, prompt);
  ASSERT_EQ(a.size(), b.size());
  const float d = max_diff(a, b);
  const std::vector<float> yak_last(a.end() - static_cast<std::ptrdiff_t>(hf_last.size()), a.end());
  EXPECT_LE(max_diff(yak_last, hf_last), 1e-4f) << "yak on the HF folder vs transformers";
  EXPECT_LE(d, c.bound) << c.model << " " << c.type;
  const auto got = greedy(*gg, prompt, static_cast<int>(want.size()));
  if (c.same_greedy) {
    EXPECT_EQ(got, want) << c.model << " " << c.type << ": greedy tokens differ from transformers'";
  }
  if (c.type == "q8_0") {
    // The converter's Q8_0 tensors are the bytes yak's quantizer makes from the HF weights.
    const auto g = io::GgufFile::open(kDir / (c.model + "-" + c.type + ".gguf"));
    const auto store = io::weights_from_gguf(g, gg->config());
    const auto hf_store = io::WeightStore::open_dir(fs::path(YAK_GOLDEN_DIR) / "models" / c.model);
    int quantized = 0;
    for (const auto& name : store.names()) {
      const Tensor q = store.get(name);
      if (q.dtype() != DType::Q8_0) continue;
      const Tensor w = hf_store.get(name).to_f32();
      std::vector<uint8_t> mine(q.nbytes());
      dtype_info(DType::Q8_0).from_float(w.data<float>(), mine.data(), w.numel());
      EXPECT_EQ(std::memcmp(mine.data(), q.raw(), mine.size()), 0) << name;
      ++quantized;
    }
    EXPECT_GT(quantized, 0);
  }
  int same = 0;
  for (size_t i = 0; i < want.size() && got[i] == want[i]; ++i) ++same;
  std::printf("[gguf] %-10s %-5s max |logit diff| vs HF folder %.3g, greedy prefix equal to transformers %d/%zu\n",
              c.model.c_str(), c.type.c_str(), d, same, want.size());
}

// f32: the same numbers (q/k rows put back in order): bit for bit. f16 and q8_0: the rounding
// of the weights; measured 0.017 / 0.013 (f16, greedy equal) and 0.38 (q8_0, where greedy
// tokens may part) on logits of magnitude ~10; the bounds keep a margin.
INSTANTIATE_TEST_SUITE_P(Files, GgufModel,
                         ::testing::Values(Case{"qwen2_bpe", "f32", 0.f, true}, Case{"qwen2_bpe", "f16", 2e-2f, true},
                                           Case{"qwen2_bpe", "q8_0", 0.5f, false}, Case{"llama_bpe", "f32", 0.f, true},
                                           Case{"llama_bpe", "f16", 2e-2f, true},
                                           Case{"llama_bpe", "q8_0", 0.5f, false}),
                         [](const auto& info) { return info.param.model + "_" + info.param.type; });

// A model cut by llama.cpp's gguf-split into three files loads from any of them with the tensors
// of the whole file: the same logits bit for bit.
TEST(GgufModel, SplitFiles) {
  const Json expected = read_json_file(kDir / "expected.json");
  const auto prompt = expected.at("llama_bpe").at("prompt").get<std::vector<int32_t>>();
  auto whole = model::DecoderModel::load(kDir / "llama_bpe-f32.gguf");
  const auto want = all_logits(*whole, prompt);
  for (const char* part : {"llama_bpe-split-00001-of-00003.gguf", "llama_bpe-split-00003-of-00003.gguf"}) {
    auto split = model::DecoderModel::load(kDir / part);
    EXPECT_EQ(max_diff(all_logits(*split, prompt), want), 0.f) << part;
  }
  // a missing sibling is named
  const fs::path tmp = fs::temp_directory_path() / "yak-split-test";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  fs::copy_file(kDir / "llama_bpe-split-00001-of-00003.gguf", tmp / "m-00001-of-00003.gguf");
  fs::copy_file(kDir / "llama_bpe-split-00002-of-00003.gguf", tmp / "m-00002-of-00003.gguf");
  try {
    model::DecoderModel::load(tmp / "m-00001-of-00003.gguf");
    ADD_FAILURE() << "loaded without its third file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("m-00003-of-00003.gguf"), std::string::npos) << e.what();
  }
  fs::remove_all(tmp);
}

TEST(GgufModel, RefusesWhatItCannotRun) {
  // Not a model: a GGUF holding only a vocabulary (no architecture) names the missing key.
  const fs::path vocab = fs::path(YAK_GOLDEN_DIR) / "gguf_vocab";
  if (fs::exists(vocab))
    for (auto& f : fs::directory_iterator(vocab))
      if (f.path().extension() == ".gguf") {
        try {
          model::DecoderModel::load(f.path());
          ADD_FAILURE() << f.path() << " loaded as a model";
        } catch (const Error& err) {
          EXPECT_NE(std::string(err.what()).find(f.path().string()), std::string::npos) << err.what();
        }
        break;
      }
}

}  // namespace
}  // namespace yak
