// Logits of every golden checkpoint (LLaMA/Mistral/Qwen2/Qwen3 variants, every rope type, f32 and
// bf16 weights, sharded) against transformers, prompt by prompt, without and with the KV cache.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "golden_models.h"
#include "yak/base/error.h"
#include "yak/model/decoder.h"
#include "yak/model/rope.h"

using namespace yak;

namespace {

float max_abs_diff(const float* a, const float* b, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

class GoldenLogits : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenLogits, MatchesTransformers) {
  golden::GoldenModel g(GetParam());
  auto model = model::DecoderModel::load(g.dir);
  const int64_t V = model->config().vocab_size;
  float worst = 0, worst_vs_bf16_compute = 0;
  for (size_t i = 0; i < g.prompts.size(); ++i) {
    const auto& p = g.prompts[i];
    const int64_t L = static_cast<int64_t>(p.size());
    Tensor ref = g.logits->get("logits_" + std::to_string(i));
    ASSERT_EQ(ref.shape(), (Shape{L, V}));
    model::KVCache cache(model->config(), 1, L);
    model::Batch b;
    for (int64_t t = 0; t < L; ++t) {
      b.ids.push_back(p[t]);
      b.pos.push_back(static_cast<int32_t>(t));
      b.slot.push_back(0);
      b.logits_for.push_back(static_cast<int32_t>(t));
    }
    Tensor out = model->forward(b, cache);
    float d = max_abs_diff(out.data<float>(), ref.data<float>(), L * V);
    worst = std::max(worst, d);
    EXPECT_LE(d, 1e-4f) << GetParam() << " prompt " << i;
    if (g.logits->has("logits_bf16compute_" + std::to_string(i))) {
      Tensor r2 = g.logits->get("logits_bf16compute_" + std::to_string(i));
      worst_vs_bf16_compute =
          std::max(worst_vs_bf16_compute, max_abs_diff(out.data<float>(), r2.to_f32().data<float>(), L * V));
    }

    // Same logits token by token through the KV cache (the decode path), rope tables included.
    model::KVCache cache2(model->config(), 1, L);
    float worst_step = 0;
    for (int64_t t = 0; t < L; ++t) {
      model::Batch s;
      s.ids = {static_cast<int32_t>(p[t])};
      s.pos = {static_cast<int32_t>(t)};
      s.slot = {0};
      s.logits_for = {0};
      Tensor o = model->forward(s, cache2);
      worst_step = std::max(worst_step, max_abs_diff(o.data<float>(), ref.data<float>() + t * V, V));
    }
    // Dynamic NTK rescales per forward from the longest position seen, as transformers does,
    // so a prefix processed alone uses a different base than the full prompt: skip there.
    if (model->config().rope.type != io::RopeType::Dynamic) EXPECT_LE(worst_step, 1e-4f) << "incremental, prompt " << i;
  }
  std::printf(
      "[parity] %-22s max |logit diff| %.3g%s\n", GetParam().c_str(), worst,
      g.bf16() ? (" (vs transformers bf16 compute: " + std::to_string(worst_vs_bf16_compute) + ")").c_str() : "");
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenLogits, ::testing::ValuesIn(golden::golden_model_names()),
                         [](const auto& info) { return info.param; });

// The rope tables themselves against transformers' (logits.safetensors: rope_inv_freq of the
// fresh model, and for dynamic NTK the tables at sequence lengths 17, 40 and 72), and YaRN's
// attention scaling against golden.json's: every golden model, every table counted.
TEST(GoldenRope, InverseFrequenciesMatchTransformers) {
  int tables = 0, models = 0;
  for (const auto& name : golden::golden_model_names()) {
    golden::GoldenModel g(name);
    const auto cfg = io::ModelConfig::load(g.dir);
    model::Rope rope(cfg.rope, cfg.head_dim, cfg.max_position_embeddings);
    auto check = [&](const std::string& key, int64_t seq_len) {
      ASSERT_TRUE(g.logits->has(key)) << name << ": no " << key;
      const Tensor want = g.logits->get(key);
      const auto& got = rope.table(seq_len).inv_freq;
      ASSERT_EQ(static_cast<int64_t>(got.size()), want.numel()) << name << " " << key;
      for (int64_t i = 0; i < want.numel(); ++i)
        EXPECT_NEAR(got[static_cast<size_t>(i)], want.data<float>()[i], 1e-6 * std::fabs(want.data<float>()[i]))
            << name << " " << key << " [" << i << "]";
      ++tables;
    };
    check("rope_inv_freq", 1);
    for (int64_t n : {17, 40, 72})
      if (g.logits->has("rope_inv_freq_seqlen_" + std::to_string(n))) check("rope_inv_freq_seqlen_" + std::to_string(n), n);
    if (g.meta.contains("rope_attention_scaling"))
      EXPECT_NEAR(rope.table(1).attention_scale, g.meta["rope_attention_scaling"].get<double>(), 1e-6) << name;
    ++models;
  }
  EXPECT_EQ(models, static_cast<int>(golden::golden_model_names().size()));
  EXPECT_EQ(tables, models + 3);  // one table each, three more for dynamic NTK
  std::printf("[rope] %d inverse-frequency tables of %d golden models match transformers\n", tables, models);
}

TEST(GoldenModels, ArePresent) {
  EXPECT_GE(golden::golden_model_names().size(), 10u);
}

}  // namespace
