// A checkpoint resized by io::resize_embeddings still loads and gives the original logits on the
// old vocabulary; every new token gets the same logit (the new head rows are all the mean row).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "golden_models.h"
#include "yak/io/resize.h"
#include "yak/model/decoder.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

Tensor logits_of(model::DecoderModel& m, const std::vector<int32_t>& p) {
  const int64_t L = static_cast<int64_t>(p.size());
  model::KVCache cache(m.config(), 1, L);
  model::Batch b;
  for (int64_t t = 0; t < L; ++t) {
    b.ids.push_back(p[t]);
    b.pos.push_back(static_cast<int32_t>(t));
    b.slot.push_back(0);
    b.logits_for.push_back(static_cast<int32_t>(t));
  }
  return m.forward(b, cache);
}

class ResizedLogits : public ::testing::TestWithParam<std::string> {};

TEST_P(ResizedLogits, OldVocabularyUnchanged) {
  golden::GoldenModel g(GetParam());
  fs::path out = fs::path(::testing::TempDir()) / ("yak_resized_" + GetParam() + "_" + std::to_string(::getpid()));
  fs::remove_all(out);
  io::ResizeOptions opt;
  opt.vocab_size = 357;
  io::resize_embeddings(g.dir, out, opt);
  auto before = model::DecoderModel::load(g.dir), after = model::DecoderModel::load(out);
  const int64_t V = before->config().vocab_size, V2 = after->config().vocab_size;
  ASSERT_EQ(V2, 357);
  float worst = 0;
  for (const auto& p : g.prompts) {
    Tensor a = logits_of(*before, p), b = logits_of(*after, p);
    ASSERT_EQ(b.shape(), (Shape{static_cast<int64_t>(p.size()), V2}));
    for (size_t t = 0; t < p.size(); ++t) {
      const float* x = a.data<float>() + t * V;
      const float* y = b.data<float>() + t * V2;
      // Same numbers up to float rounding: OpenBLAS may block a wider head differently.
      for (int64_t v = 0; v < V; ++v) worst = std::max(worst, std::fabs(x[v] - y[v]));
      // New rows are identical, so their logits are too (up to rounding), and equal the mean of the old logits
      // (the head is linear).
      double mean = 0;
      for (int64_t v = 0; v < V; ++v) mean += x[v];
      mean /= V;
      for (int64_t v = V; v < V2; ++v) {
        ASSERT_NEAR(y[v], y[V], 1e-5);
        EXPECT_NEAR(y[v], mean, 1e-4);
      }
    }
  }
  std::printf("%s: max |logit diff| on the old vocabulary %.3g\n", GetParam().c_str(), worst);
  EXPECT_LE(worst, 1e-5f);
  fs::remove_all(out);
}

INSTANTIATE_TEST_SUITE_P(Golden, ResizedLogits, ::testing::Values("llama_mha_f32", "qwen2_bias_tied"));

}  // namespace
