// Run by ctest under `mpirun -np 2`: the collectives give what they promise, and data-parallel
// training across the ranks equals training in one process with the same global batch (per-step
// losses within 1e-6 relative (DPO: 2e-6), weights after the run within 1e-5), for SFT, DPO and
// GRPO (rollouts split across the ranks by prompt group, experience and update data parallel),
// and PPO with a critic. Every rank
// runs the one-process reference itself (a single-rank communicator) and then the distributed
// run, so the comparison needs no files. Without a launcher (one process) it checks the same
// with a world of one.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "../preference_data.h"
#include "yak/base/json.h"
#include "yak/dist/comm.h"
#include "yak/tokenizer/tokenizer.h"
#include "yak/train/dpo_trainer.h"
#include "yak/train/lm_trainer.h"
#include "yak/train/optimizer.h"
#include "yak/train/ppo_trainer.h"
#include "yak/train/reward.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kModel = fs::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat";

dist::Communicator& world() {
  return dist::world();
}

TEST(Collectives, SumsGathersAndBroadcasts) {
  auto& w = world();
  const int r = w.rank(), n = w.size();
  std::vector<float> f = {1.0f + r, 0.5f * r, -2.0f};
  w.all_reduce_sum(f.data(), f.size());
  const float ranks_sum = static_cast<float>(n * (n - 1) / 2);
  EXPECT_EQ(f[0], n + ranks_sum);
  EXPECT_EQ(f[1], 0.5f * ranks_sum);
  EXPECT_EQ(f[2], -2.0f * n);
  std::vector<double> d = {static_cast<double>(r)};
  w.all_reduce_max(d.data(), 1);
  EXPECT_EQ(d[0], n - 1);
  // reduce-scatter: rank q receives the sum over ranks of their block q (= q * 10 + rank)
  std::vector<float> send(static_cast<size_t>(2 * n)), recv(2);
  for (int q = 0; q < n; ++q) send[2 * q] = send[2 * q + 1] = static_cast<float>(q * 10 + r);
  w.reduce_scatter_sum(send.data(), recv.data(), 2);
  EXPECT_EQ(recv[0], static_cast<float>(r * 10 * n) + ranks_sum);
  EXPECT_EQ(recv[1], recv[0]);
  std::vector<float> mine = {static_cast<float>(r), static_cast<float>(-r)}, all(static_cast<size_t>(2 * n));
  w.all_gather(mine.data(), all.data(), 2);
  for (int q = 0; q < n; ++q) {
    EXPECT_EQ(all[2 * q], q);
    EXPECT_EQ(all[2 * q + 1], -q);
  }
  int64_t token = r == 0 ? 123456789 : -1;
  w.broadcast(&token, sizeof token, 0);
  EXPECT_EQ(token, 123456789);
  w.barrier();
}

// The two runs' gaps: per-step loss (relative), and per weight tensor the L2 norm of the
// difference relative to the tensor's norm (worst tensor). The runs differ only in the order the
// micro-batches' gradients are summed (in one buffer one after another, or per rank then across
// ranks): float rounding, which Adam's normalisation amplifies a little more every step. The test
// also checks that training moved the weights far more than the gap.
void expect_same_training(const train::LmTrainResult& one, const train::LmTrainResult& many,
                          const model::DecoderModel& start, const model::DecoderModel& a, const model::DecoderModel& b,
                          double loss_bound, double weight_bound) {
  ASSERT_EQ(one.step_losses.size(), many.step_losses.size());
  ASSERT_GE(one.step_losses.size(), 10u);
  double loss_gap = 0;
  for (size_t s = 0; s < one.step_losses.size(); ++s)
    loss_gap = std::max(loss_gap, std::abs(one.step_losses[s] - many.step_losses[s]) / std::abs(one.step_losses[s]));
  const auto p0 = start.parameters(), pa = a.trainable_parameters(), pb = b.trainable_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  ASSERT_EQ(pa.size(), p0.size());
  double weight_gap = 0, moved = 0;
  for (size_t i = 0; i < pa.size(); ++i) {
    const Tensor& x = pa[i].var.value();
    const Tensor& y = pb[i].var.value();
    const Tensor x0 = p0[i].var.value().to_f32();
    ASSERT_EQ(x.numel(), y.numel()) << pa[i].name;
    ASSERT_EQ(x.numel(), x0.numel()) << pa[i].name;
    const float *xp = x.data<float>(), *yp = y.data<float>(), *zp = x0.data<float>();
    double d2 = 0, x2 = 0, m2 = 0;
    for (int64_t k = 0; k < x.numel(); ++k) {
      d2 += (static_cast<double>(xp[k]) - yp[k]) * (static_cast<double>(xp[k]) - yp[k]);
      m2 += (static_cast<double>(xp[k]) - zp[k]) * (static_cast<double>(xp[k]) - zp[k]);
      x2 += static_cast<double>(xp[k]) * xp[k];
    }
    weight_gap = std::max(weight_gap, std::sqrt(d2 / std::max(x2, 1e-30)));
    moved = std::max(moved, std::sqrt(m2 / std::max(x2, 1e-30)));
  }
  if (world().is_root())
    std::printf("[ ranks %d ] worst relative gap over %zu steps: step loss %.3g, weights %.3g (training moved them %.3g)\n",
                world().size(), one.step_losses.size(), loss_gap, weight_gap, moved);
  EXPECT_LE(loss_gap, loss_bound) << "per-step loss, 1 process vs " << world().size() << " ranks";
  EXPECT_LE(weight_gap, weight_bound) << "weights after " << one.step_losses.size() << " steps";
  EXPECT_GT(moved, 100 * weight_bound) << "the runs must train for the comparison to mean anything";
}

std::vector<train::Sample> addition_samples(const tok::Tokenizer& tok, int n) {
  std::vector<train::Sample> out;
  for (int i = 0; i < n; ++i) {
    const int a = i % 7, b = (i * 3) % 5;
    auto prompt = tok.encode(std::to_string(a) + "+" + std::to_string(b) + "=", false);
    auto answer = tok.encode(std::to_string(a + b) + " and " + std::to_string(a * b) + "\n", false);
    train::Sample s;
    s.ids = prompt;
    s.ids.insert(s.ids.end(), answer.begin(), answer.end());
    s.loss_mask.assign(prompt.size(), 0);
    s.loss_mask.resize(s.ids.size(), 1);
    s.where = "generated:" + std::to_string(i);
    out.push_back(std::move(s));
  }
  return out;
}

TEST(DataParallel, SftEqualsOneProcess) {
  auto tok = tok::load_tokenizer(kModel);
  const auto train = addition_samples(*tok, 48);
  train::LmTrainOptions o;
  o.pretrain = kModel;
  o.train_batch_size = 8;  // the global batch: 4 micro-batches of 2, shared by the ranks
  o.micro_train_batch_size = 2;
  o.max_epochs = 2;  // 12 steps
  o.learning_rate = 1e-4;  // at 2e-3 the weights' gap after 12 steps is 1e-4 (see docs/DISTRIBUTED.md)
  o.lr_warmup_ratio = 0.1;
  o.seed = 11;
  o.max_len = 64;
  o.quiet = true;
  auto single = dist::make_single();
  auto start = model::DecoderModel::load(kModel), a = model::DecoderModel::load(kModel);
  o.comm = single.get();
  const auto one = train::train_lm(*a, train, {}, o);
  auto b = model::DecoderModel::load(kModel);
  o.comm = &world();
  const auto many = train::train_lm(*b, train, {}, o);
  expect_same_training(one, many, *start, *a, *b, 1e-6, 1e-5);
}

train::LmTrainOptions sft_options() {
  train::LmTrainOptions o;
  o.pretrain = kModel;
  o.train_batch_size = 8;
  o.micro_train_batch_size = 2;
  o.max_epochs = 2;  // 12 steps
  o.learning_rate = 1e-4;
  o.lr_warmup_ratio = 0.1;
  o.seed = 11;
  o.max_len = 64;
  o.quiet = true;
  o.comm = &world();
  return o;
}

std::vector<float> all_weights(const model::DecoderModel& m) {
  std::vector<float> w;
  for (const auto& p : m.trainable_parameters()) w.insert(w.end(), p.var.f32(), p.var.f32() + p.var.numel());
  return w;
}

// ZeRO 1 shards AdamW's moments (each rank updates its share of the elements, then the weights
// are all-gathered): the same arithmetic as stage 0, so the same bits. Stage 2 reduce-scatters the
// gradients instead of all-reducing them (another summation order) and clips with a norm summed
// from the shares: within the bound of the data-parallel comparison. Each rank holds 1 / ranks of
// the moments.
TEST(Zero, StagesOneAndTwoEqualStageZero) {
  auto tok = tok::load_tokenizer(kModel);
  const auto train = addition_samples(*tok, 48);
  std::vector<std::vector<float>> w;
  std::vector<train::LmTrainResult> r;
  for (int stage : {0, 1, 2}) {
    auto m = model::DecoderModel::load(kModel);
    auto o = sft_options();
    o.zero_stage = stage;
    r.push_back(train::train_lm(*m, train, {}, o));
    w.push_back(all_weights(*m));
  }
  EXPECT_EQ(w[1], w[0]) << "stage 1 changed the arithmetic";
  EXPECT_EQ(r[1].step_losses, r[0].step_losses);
  double gap = 0, norm = 0;
  for (size_t i = 0; i < w[0].size(); ++i) {
    gap += (static_cast<double>(w[2][i]) - w[0][i]) * (static_cast<double>(w[2][i]) - w[0][i]);
    norm += static_cast<double>(w[0][i]) * w[0][i];
  }
  EXPECT_LE(std::sqrt(gap / norm), 1e-5) << "stage 2 vs stage 0";
  // the moments each rank holds
  auto m = model::DecoderModel::load(kModel);
  auto o = sft_options();
  train::AdamW whole = train::prepare_training(*m, o);
  auto m2 = model::DecoderModel::load(kModel);
  o.zero_stage = 1;
  train::AdamW sharded = train::prepare_training(*m2, o);
  const double ratio = static_cast<double>(sharded.moment_bytes()) / static_cast<double>(whole.moment_bytes());
  if (world().is_root())
    std::printf("[ ranks %d ] moments per rank: stage 0 %.2f MB, stage 1 %.2f MB; stage 2 vs 0 weights %.3g\n",
                world().size(), whole.moment_bytes() / 1e6, sharded.moment_bytes() / 1e6, std::sqrt(gap / norm));
  EXPECT_LE(ratio, 1.0 / world().size() + 1e-3);
}

// A stage-1 checkpoint holds the full moments (gathered from the ranks): resumed without sharding
// it continues exactly as the uninterrupted stage-0 run, bit for bit.
TEST(Zero, ShardedCheckpointResumesUnsharded) {
  auto tok = tok::load_tokenizer(kModel);
  const auto train = addition_samples(*tok, 48);
  const fs::path ckpt = fs::temp_directory_path() / "yak-zero-ckpt-test";
  if (world().is_root()) fs::remove_all(ckpt);
  world().barrier();
  auto o = sft_options();
  auto whole = model::DecoderModel::load(kModel);
  train::train_lm(*whole, train, {}, o);
  auto first = model::DecoderModel::load(kModel);
  o.zero_stage = 1;
  o.ckpt_path = ckpt;
  o.save_steps = 6;
  o.max_steps = 6;
  train::train_lm(*first, train, {}, o);
  world().barrier();
  auto resumed = model::DecoderModel::load(kModel);
  o.zero_stage = 0;
  o.max_steps = -1;
  o.load_checkpoint = true;
  o.save_steps = -1;
  const auto r = train::train_lm(*resumed, train, {}, o);
  EXPECT_EQ(r.first_step, 6);
  EXPECT_EQ(all_weights(*resumed), all_weights(*whole)) << "stage 1 then stage 0 differs from stage 0 throughout";
  world().barrier();
  if (world().is_root()) fs::remove_all(ckpt);
}

TEST(DataParallel, DpoEqualsOneProcess) {
  auto tok = tok::load_tokenizer(kModel);
  train::PreferenceOptions po;
  po.max_len = 64;
  const auto pairs = train::build_preference_pairs(testdata::preferences(80, 3), *tok, nullptr, po);
  train::LmTrainOptions o;
  o.pretrain = kModel;
  o.train_batch_size = 8;
  o.micro_train_batch_size = 2;
  o.max_epochs = 1;  // 10 steps
  o.learning_rate = 1e-4;
  o.seed = 5;
  o.quiet = true;
  train::DpoOptions dpo;
  auto single = dist::make_single();
  auto start = model::DecoderModel::load(kModel);
  auto a = model::DecoderModel::load(kModel), ref_a = model::DecoderModel::load(kModel);
  o.comm = single.get();
  const auto one = train::train_dpo(*a, *ref_a, pairs, {}, o, dpo);
  auto b = model::DecoderModel::load(kModel), ref_b = model::DecoderModel::load(kModel);
  o.comm = &world();
  const auto many = train::train_dpo(*b, *ref_b, pairs, {}, o, dpo);
  // DPO's loss reads differences of summed sequence log-probs: its gap sits at f32's floor
  // (1.05e-6 measured at lr 5e-5 and 1e-4 alike), so its bound is 2e-6.
  expect_same_training(one.losses, many.losses, *start, *a, *b, 2e-6, 1e-5);
}

std::vector<train::PromptItem> word_prompts(const tok::Tokenizer& tok, int n) {
  std::vector<train::Record> recs;
  for (int i = 0; i < n; ++i)
    recs.push_back({Json{{"input", "Name a word for thing " + std::to_string(i) + ":"}}, "gen:" + std::to_string(i)});
  return train::build_prompts(recs, tok, nullptr, {});
}

// 10 rollout steps of 4 prompts x 4 samples; the per-step number compared is the mean policy
// loss (the trainer's own loss figure), and the rollouts' rewards must be identical (the same
// samples were drawn, wherever they were drawn).
void rl_equals_one_process(const std::string& estimator) {
  auto tok = tok::load_tokenizer(kModel);
  const auto prompts = word_prompts(*tok, 40);
  train::RewardSet reward;
  reward.add(train::make_rule_reward("format:\\s*[a-mA-M][\\s\\S]*"));
  train::PpoOptions o;
  o.advantage_estimator = estimator;
  o.n_samples_per_prompt = 4;
  o.rollout_batch_size = 4;
  o.micro_rollout_batch_size = 4;
  o.generate_max_len = 3;
  o.init_kl_coef = 0.01;
  o.num_episodes = 1;  // 10 steps
  o.critic_learning_rate = 1e-4;
  o.actor.train_batch_size = 8;
  o.actor.micro_train_batch_size = 2;
  o.actor.learning_rate = 1e-4;
  o.actor.quiet = true;
  const bool gae = estimator == "gae";
  auto run = [&](dist::Communicator* comm, std::unique_ptr<model::DecoderModel>& actor) {
    actor = model::DecoderModel::load(kModel);
    auto ref = model::DecoderModel::load(kModel);
    auto critic = gae ? model::DecoderModel::load(kModel) : nullptr;
    o.actor.comm = comm;
    return train::train_ppo(*actor, ref.get(), critic.get(), *tok, prompts, reward, o);
  };
  auto single = dist::make_single();
  std::unique_ptr<model::DecoderModel> a, b;
  const auto one = run(single.get(), a);
  const auto many = run(&world(), b);
  ASSERT_EQ(one.steps.size(), 10u);
  ASSERT_EQ(many.steps.size(), 10u);
  train::LmTrainResult l1, l2;
  for (size_t k = 0; k < one.steps.size(); ++k) {
    EXPECT_EQ(one.steps[k].reward, many.steps[k].reward) << "rollout step " << k;
    EXPECT_EQ(one.steps[k].response_len, many.steps[k].response_len) << "rollout step " << k;
    // a group estimator's policy loss sits near 0: compared as 1 + loss (1e-6 absolute)
    l1.step_losses.push_back(one.steps[k].policy_loss + 1.0);
    l2.step_losses.push_back(many.steps[k].policy_loss + 1.0);
  }
  auto start = model::DecoderModel::load(kModel);
  expect_same_training(l1, l2, *start, *a, *b, 1e-6, 1e-5);
}

TEST(DataParallel, GrpoEqualsOneProcess) {
  rl_equals_one_process("group_norm");
}

TEST(DataParallel, PpoWithCriticEqualsOneProcess) {
  rl_equals_one_process("gae");
}

TEST(DataParallel, TooFewMicroBatchesForTheRanksIsRefused) {
  if (world().size() < 2) GTEST_SKIP() << "needs several ranks (run under mpirun -np 2)";
  auto tok = tok::load_tokenizer(kModel);
  const auto train = addition_samples(*tok, 8);
  train::LmTrainOptions o;
  o.pretrain = kModel;
  o.train_batch_size = 2;
  o.micro_train_batch_size = 2;  // one micro-batch a step for two ranks
  o.quiet = true;
  o.comm = &world();
  auto m = model::DecoderModel::load(kModel);
  try {
    train::train_lm(*m, train, {}, o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than the 2 ranks"), std::string::npos) << e.what();
  }
}

}  // namespace
