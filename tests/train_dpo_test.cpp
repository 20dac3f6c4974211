// DPO on generated preferences: the policy comes to prefer the chosen responses on held-out pairs
// (implicit reward and raw log-probability), relative to a frozen reference; cDPO/IPO/NLL run too.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "preference_data.h"
#include "yak/autograd/functions.h"
#include "yak/base/json.h"
#include "yak/ops/ops.h"
#include "yak/tokenizer/tokenizer.h"
#include "yak/train/dpo_trainer.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kModel = fs::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat";

using testdata::preferences;

struct Data {
  std::vector<train::PreferencePair> train, eval;
};

Data make_data() {
  auto tok = tok::load_tokenizer(kModel);
  train::PreferenceOptions po;
  po.max_len = 64;
  auto a = preferences(64, 1), b = preferences(32, 2);
  return {train::build_preference_pairs(a, *tok, nullptr, po), train::build_preference_pairs(b, *tok, nullptr, po)};
}

train::LmTrainOptions options() {
  train::LmTrainOptions o;
  o.pretrain = kModel;
  o.train_batch_size = 8;
  o.micro_train_batch_size = 4;
  o.max_epochs = 3;
  o.learning_rate = 2e-3;
  o.quiet = true;
  return o;
}

TEST(Dpo, PolicyLearnsThePreference) {
  Data d = make_data();
  auto policy = model::DecoderModel::load(kModel), ref = model::DecoderModel::load(kModel);
  train::DpoOptions opt;
  opt.beta = 0.1;
  auto r = train::train_dpo(*policy, *ref, d.train, d.eval, options(), opt);
  std::printf("[dpo] held-out: implicit-reward accuracy %.2f; policy prefers chosen %.2f -> %.2f\n", r.eval_accuracy,
              r.policy_preference_before, r.policy_preference_after);
  EXPECT_GE(r.eval_accuracy, 0.9);
  EXPECT_GE(r.policy_preference_after, r.policy_preference_before + 0.3);
  EXPECT_LT(r.losses.step_losses.back(), r.losses.step_losses.front());
}

TEST(Dpo, VariantsRunAndBadOptionsAreRefused) {
  Data d = make_data();
  for (auto [ls, ipo, nll] : {std::tuple{0.1, false, 0.0}, std::tuple{0.0, true, 0.0}, std::tuple{0.0, false, 0.5}}) {
    auto policy = model::DecoderModel::load(kModel), ref = model::DecoderModel::load(kModel);
    train::DpoOptions opt;
    opt.label_smoothing = ls;
    opt.ipo = ipo;
    opt.nll_loss_coef = nll;
    auto o = options();
    o.max_epochs = 1;
    auto r = train::train_dpo(*policy, *ref, d.train, d.eval, o, opt);
    EXPECT_EQ(r.losses.step_losses.size(), 8u);
    for (double l : r.losses.step_losses) EXPECT_TRUE(std::isfinite(l));
  }
  auto policy = model::DecoderModel::load(kModel), ref = model::DecoderModel::load(kModel);
  train::DpoOptions bad;
  bad.beta = 0;
  EXPECT_THROW(train::train_dpo(*policy, *ref, d.train, d.eval, options(), bad), Error);
}

// LoRA DPO with the policy as its own reference (adapter off) trains exactly like LoRA DPO against
// a separate copy of the base model; a policy without an adapter cannot be its own reference.
TEST(Dpo, LoraPolicyIsItsOwnReference) {
  Data d = make_data();
  model::LoraConfig lc;
  lc.r = 4;
  lc.alpha = 8;
  lc.target_modules = {"all-linear"};
  lc.base_model = kModel;
  auto o = options();
  o.max_epochs = 1;
  o.learning_rate = 1e-2;
  train::DpoOptions opt;
  auto a = model::DecoderModel::load(kModel), b = model::DecoderModel::load(kModel);
  auto base = model::DecoderModel::load(kModel);
  a->add_lora(lc, 5);
  b->add_lora(lc, 5);
  auto self = train::train_dpo(*a, *a, d.train, d.eval, o, opt);
  auto copy = train::train_dpo(*b, *base, d.train, d.eval, o, opt);
  ASSERT_EQ(self.losses.step_losses.size(), copy.losses.step_losses.size());
  for (size_t i = 0; i < self.losses.step_losses.size(); ++i)
    EXPECT_NEAR(self.losses.step_losses[i], copy.losses.step_losses[i], 1e-6) << "step " << i;
  EXPECT_NEAR(self.eval_accuracy, copy.eval_accuracy, 1e-12);
  EXPECT_GT(self.losses.step_losses.front(), self.losses.step_losses.back());
  EXPECT_TRUE(a->lora_enabled());
  auto plain = model::DecoderModel::load(kModel);
  EXPECT_THROW(train::train_dpo(*plain, *plain, d.train, d.eval, o, opt), Error);
}

// Stopped after 4 of 8 steps with a checkpoint every 2, then resumed: the same weights as the run
// that was never stopped (1 thread).
TEST(Dpo, ResumesExactly) {
  ops::set_num_threads(1);
  Data d = make_data();
  const fs::path ckpt = fs::temp_directory_path() / "yak-dpo-resume-test";
  fs::remove_all(ckpt);
  auto run = [&](int64_t max_steps, bool resume, bool save) {
    auto policy = model::DecoderModel::load(kModel), ref = model::DecoderModel::load(kModel);
    auto o = options();
    o.max_epochs = 1;
    o.max_steps = max_steps;
    o.ckpt_path = ckpt;
    o.save_steps = save ? 2 : -1;
    o.load_checkpoint = resume;
    auto r = train::train_dpo(*policy, *ref, d.train, d.eval, o, {});
    std::vector<float> w;
    for (auto& p : policy->parameters()) w.insert(w.end(), p.var.f32(), p.var.f32() + p.var.numel());
    return std::make_pair(w, r.losses.step_losses);
  };
  auto [whole, lw] = run(-1, false, false);
  auto [half, lh] = run(4, false, true);
  auto [resumed, lr] = run(-1, true, false);
  ASSERT_EQ(lw.size(), 8u);
  ASSERT_EQ(lh.size(), 4u);
  ASSERT_EQ(lr.size(), 4u);  // steps 5-8 only
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(lw[4 + i], lr[i]) << "step " << 5 + i;
  size_t differ = 0, moved = 0;
  for (size_t i = 0; i < whole.size(); ++i) differ += whole[i] != resumed[i], moved += whole[i] != half[i];
  EXPECT_EQ(differ, 0u);
  EXPECT_GT(moved, 0u);
  fs::remove_all(ckpt);
  ops::set_num_threads(0);
}

TEST(Dpo, SequenceLogpsSumTheResponseTokens) {
  Data d = make_data();
  auto m = model::DecoderModel::load(kModel);
  const train::Sample* s[] = {&d.train[0].chosen};
  std::unique_ptr<model::KVCache> cache;
  std::vector<int64_t> counts;
  ag::Var lp = train::sequence_logps(*m, s, cache, &counts);
  int64_t targets = 0;
  for (size_t t = 1; t < s[0]->ids.size(); ++t) targets += s[0]->loss_mask[t];
  EXPECT_EQ(counts[0], targets);
  EXPECT_LT(lp.f32()[0], 0.0f);
}

}  // namespace
