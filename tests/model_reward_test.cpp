// Reward models: transformers' Qwen2ForSequenceClassification scores (score head on the last token)
// and a score head added to a causal LM that saves as a sequence classifier and loads back.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "yak/base/json.h"
#include "yak/model/decoder.h"
#include "model_batches.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kModels = fs::path(YAK_GOLDEN_DIR) / "models";

float last_token_score(model::DecoderModel& m, const std::vector<int32_t>& p) {
  model::KVCache cache(m.config(), 1, static_cast<int64_t>(p.size()));
  return m.forward_scores(testing_util::sequence_batch(p, false), cache).f32()[0];
}

TEST(RewardModel, ScoresMatchTransformers) {
  Json g = read_json_file(kModels / "qwen2_rm" / "rm_golden.json");
  auto m = model::DecoderModel::load(kModels / "qwen2_rm");
  ASSERT_TRUE(m->has_score_head());
  EXPECT_TRUE(m->config().sequence_classifier);
  for (size_t i = 0; i < g["prompts"].size(); ++i)
    EXPECT_NEAR(last_token_score(*m, g["prompts"][i].get<std::vector<int32_t>>()), g["scores"][i].get<double>(), 1e-4)
        << "prompt " << i;
  model::KVCache cache(m->config(), 1, 4);
  model::Batch b{{1, 2}, {0, 1}, {0, 0}, {1}, {}, nullptr};
  EXPECT_THROW(m->forward_var(b, cache), Error);  // a classifier has no logits
}

TEST(RewardModel, ScoreHeadOnACausalLm) {
  auto m = model::DecoderModel::load(kModels / "llama_mha_f32");
  m->add_score_head(1, 3);
  auto params = m->parameters();
  EXPECT_EQ(params.back().name, "score.weight");
  for (auto& p : params) EXPECT_NE(p.name, "lm_head.weight");
  EXPECT_TRUE(std::isfinite(last_token_score(*m, {5, 6, 7})));
}

}  // namespace
