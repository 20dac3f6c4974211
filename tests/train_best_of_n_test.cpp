// Best-of-n rejection sampling and iterative DPO on a tiny Qwen2: the kept answer is the best of
// its prompt's samples (re-scored independently), and rounds of sample -> pair -> DPO raise the
// share of rewarded answers.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <regex>

#include "yak/base/error.h"
#include "yak/ops/ops.h"
#include "yak/tokenizer/tokenizer.h"
#include "yak/train/best_of_n.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kModel = fs::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat";
const char* kRule = "format:\\s*[a-mA-M][\\s\\S]*";

std::vector<train::PromptItem> prompts(const tok::Tokenizer& tok, int n) {
  std::vector<train::Record> recs;
  for (int i = 0; i < n; ++i)
    recs.push_back({Json{{"input", "Name a word for thing " + std::to_string(i) + ":"}}, "gen:" + std::to_string(i)});
  return train::build_prompts(recs, tok, nullptr, {});
}

TEST(BestOfN, KeepsTheBestAnswerOfEachPrompt) {
  auto tok = tok::load_tokenizer(kModel);
  auto m = model::DecoderModel::load(kModel);
  auto ps = prompts(*tok, 12);
  train::RewardSet reward;
  reward.add(train::make_rule_reward(kRule));
  train::SampleOptions o;
  o.n_samples_per_prompt = 6;
  o.generate_max_len = 3;
  o.seed = 5;
  auto all = train::sample_and_score(*m, *tok, ps, reward, o);
  auto recs = train::rejection_sample(*m, *tok, ps, reward, o);
  ASSERT_EQ(recs.size(), ps.size());
  const std::regex rule("\\s*[a-mA-M][\\s\\S]*");
  double best_mean = 0, mean = 0;
  for (size_t p = 0; p < ps.size(); ++p) {
    ASSERT_EQ(all[p].size(), 6u);
    float best = -1;
    for (auto& a : all[p]) {
      const float r = std::regex_match(a.text, rule) ? 1.0f : 0.0f;  // independent re-scoring
      EXPECT_EQ(a.reward, r);
      best = std::max(best, r);
      mean += r / 6.0;
    }
    EXPECT_EQ(recs[p]["input"], ps[p].text);
    EXPECT_EQ(recs[p]["reward"].get<float>(), best) << "prompt " << p;
    EXPECT_EQ(std::regex_match(recs[p]["output"].get<std::string>(), rule) ? 1.0f : 0.0f, best);
    best_mean += best;
  }
  std::printf("[best-of-n] mean reward %.2f, best-of-6 %.2f\n", mean / 12, best_mean / 12);
  EXPECT_GT(best_mean, mean);
}

TEST(BestOfN, ConditionalSftData) {
  std::vector<train::PromptItem> ps(2);
  ps[0].text = "Q0";
  ps[1].text = "Q1";
  std::vector<std::vector<train::ScoredAnswer>> scored(2);
  scored[0] = {{{}, "a", 1.0f, true}, {{}, "b", 0.0f, true}};
  scored[1] = {{{}, "c", 0.0f, true}, {{}, "d", 1.0f, true}, {{}, "e", NAN, false}};
  auto raw = train::conditional_sft_data(scored, ps, "{input} <rm_score>: {reward} ", false);
  ASSERT_EQ(raw.size(), 4u);  // the invalid answer is left out
  EXPECT_EQ(raw[0]["input"], "Q0 <rm_score>: 1.0 ");
  EXPECT_EQ(raw[1]["input"], "Q0 <rm_score>: 0.0 ");
  EXPECT_EQ(raw[3]["output"], "d");
  // z-scores of {1, 0, 0, 1}: mean 0.5, unbiased std sqrt(1/3) -> +-0.866
  auto z = train::conditional_sft_data(scored, ps, "[{reward}] {input}", true);
  EXPECT_EQ(z[0]["input"], "[0.9] Q0");
  EXPECT_EQ(z[1]["input"], "[-0.9] Q0");
  EXPECT_NEAR(z[0]["reward"].get<double>(), 0.5 / std::sqrt(1.0 / 3.0), 1e-12);
  EXPECT_THROW(train::conditional_sft_data(scored, ps, "{input} only", false), Error);
  // `yak train csft` rewrites existing records the same way.
  std::vector<train::Record> recs = {{Json{{"input", "Q0"}, {"reward", 1.0}}, "a:1"},
                                     {Json{{"input", "Q1"}, {"reward", 0.0}}, "a:2"},
                                     {Json{{"input", "Q2"}, {"reward", 0.0}}, "a:3"},
                                     {Json{{"input", "Q3"}, {"reward", 1.0}}, "a:4"}};
  auto plain = recs;
  train::condition_on_reward(plain, "input", "reward", "{input} <rm_score>: {reward} ", false);
  EXPECT_EQ(plain[1].value["input"], "Q1 <rm_score>: 0.0 ");
  train::condition_on_reward(recs, "input", "reward", "[{reward}] {input}", true);
  EXPECT_EQ(recs[0].value["input"], "[0.9] Q0");
  EXPECT_EQ(recs[2].value["input"], "[-0.9] Q2");
  recs[0].value.erase("reward");
  EXPECT_THROW(train::condition_on_reward(recs, "input", "reward", "{input}{reward}", false), Error);
}

TEST(IterativeDpo, RoundsRaiseTheRewardedShare) {
  auto tok = tok::load_tokenizer(kModel);
  auto m = model::DecoderModel::load(kModel);
  auto ps = prompts(*tok, 32);
  train::RewardSet reward;
  reward.add(train::make_rule_reward(kRule));
  train::IterativeDpoOptions o;
  o.rounds = 3;
  o.sampling.n_samples_per_prompt = 4;
  o.sampling.generate_max_len = 1;
  o.dpo.beta = 0.1;
  o.dpo.nll_loss_coef = 1.0;
  o.train.pretrain = kModel;
  o.train.train_batch_size = 8;
  o.train.micro_train_batch_size = 4;
  o.train.max_epochs = 2;
  o.train.learning_rate = 2e-3;
  o.train.quiet = true;
  auto st = train::iterative_dpo(*m, *tok, ps, reward, o);
  ASSERT_EQ(st.size(), 3u);
  std::printf("[iterative dpo] mean sampled reward %.2f -> %.2f -> %.2f (pairs %zu, %zu, %zu)\n", st[0].mean_reward,
              st[1].mean_reward, st[2].mean_reward, st[0].pairs, st[1].pairs, st[2].pairs);
  EXPECT_GT(st[0].pairs, 0u);
  EXPECT_GE(st[2].mean_reward, st[0].mean_reward + 0.2);
  // Stopped after one round and resumed: the weights of the run that was never stopped (1 thread).
  ops::set_num_threads(1);
  const fs::path ckpt = fs::temp_directory_path() / "yak-idpo-resume-test";
  fs::remove_all(ckpt);
  auto weights = [&](int rounds, bool resume, bool save) {
    auto p = model::DecoderModel::load(kModel);
    train::IterativeDpoOptions r = o;
    r.rounds = rounds;
    r.train.ckpt_path = save || resume ? ckpt : fs::path();
    r.train.load_checkpoint = resume;
    auto s = train::iterative_dpo(*p, *tok, ps, reward, r);
    std::vector<float> w;
    for (auto& x : p->parameters()) w.insert(w.end(), x.var.f32(), x.var.f32() + x.var.numel());
    return std::make_pair(w, s.size());
  };
  auto [whole, n_whole] = weights(3, false, false);
  auto [one, n_one] = weights(1, false, true);
  auto [resumed, n_resumed] = weights(3, true, false);
  EXPECT_EQ(n_one, 1u);
  EXPECT_EQ(n_resumed, 2u);  // rounds 2 and 3 only
  size_t differ = 0, moved = 0;
  for (size_t i = 0; i < whole.size(); ++i) differ += whole[i] != resumed[i], moved += whole[i] != one[i];
  EXPECT_EQ(differ, 0u);
  EXPECT_GT(moved, 0u);
  fs::remove_all(ckpt);
  ops::set_num_threads(0);

  train::IterativeDpoOptions bad = o;
  bad.sampling.n_samples_per_prompt = 1;
  EXPECT_THROW(train::iterative_dpo(*m, *tok, ps, reward, bad), Error);
}

}  // namespace
