// Online RL: reward sources (rules, HTTP, subprocess, errors), the PPO learner's bookkeeping
// against independent code paths, and GRPO / PPO moving a policy towards a rewarded behaviour.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <thread>

#include "yak/base/error.h"
#include "yak/base/http.h"
#include "yak/base/json.h"
#include "yak/infer/engine.h"
#include "yak/ops/ops.h"
#include "yak/tokenizer/tokenizer.h"
#include "yak/train/dpo_trainer.h"
#include "yak/train/ppo_trainer.h"
#include "yak/train/reward.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kModel = fs::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat";

// n plain prompts asking for a word (the rewarded behaviour is the word's first letter).
std::vector<train::PromptItem> word_prompts(const tok::Tokenizer& tok, int n) {
  std::vector<train::Record> recs;
  for (int i = 0; i < n; ++i)
    recs.push_back({Json{{"input", "Name a word for thing " + std::to_string(i) + ":"}}, "gen:" + std::to_string(i)});
  return train::build_prompts(recs, tok, nullptr, {});
}

std::vector<float> score1(train::RewardSource& s, const std::string& response, const std::string& label) {
  train::RewardQuery q{"Q: ", response, label};
  return s.score(std::span(&q, 1));
}

TEST(Reward, RuleFunctions) {
  EXPECT_EQ(train::extract_final_answer("so the total is \\boxed{1,234}."), "1,234");
  EXPECT_EQ(train::extract_final_answer("\\boxed{\\frac{1}{2}}"), "\\frac{1}{2}");
  EXPECT_EQ(train::extract_final_answer("3 apples and 4 pears make 7"), "7");
  EXPECT_EQ(train::extract_final_answer("it is -2.5, I think"), "-2.5");
  EXPECT_EQ(train::extract_final_answer("no digits here"), "");
  auto exact = train::make_rule_reward("exact_match");
  EXPECT_EQ(score1(*exact, " 19 \n", "19")[0], 1.0f);
  EXPECT_EQ(score1(*exact, "19.", "19")[0], 0.0f);
  auto math = train::make_rule_reward("math");
  EXPECT_EQ(score1(*math, "The answer is 1,234.", "1234")[0], 1.0f);
  EXPECT_EQ(score1(*math, "The answer is 1,235.", "1234")[0], 0.0f);
  EXPECT_EQ(score1(*math, "\\boxed{0.5}", "0.50")[0], 1.0f);
  EXPECT_THROW(score1(*math, "7", "seven"), Error);  // a label that is no number is an error, not a 0
  auto fmt = train::make_rule_reward("format:<answer>\\d+</answer>");
  EXPECT_EQ(score1(*fmt, "<answer>42</answer>", "")[0], 1.0f);
  EXPECT_EQ(score1(*fmt, "answer: 42", "")[0], 0.0f);
  EXPECT_THROW(train::make_rule_reward("format:(("), Error);
  EXPECT_THROW(train::make_rule_reward("bleu"), Error);
}

// A loopback server speaking OpenRLHF's remote-RM protocol: reward = number of characters of the
// query, or a wrong count / an error when the test asks for it.
struct RmServer {
  http::Server srv;
  std::thread th;
  int port = 0;
  Json last;
  explicit RmServer(int mode) {
    srv.post("/get_reward", [this, mode](const std::string& body) {
      last = Json::parse(body);
      Json r = Json::array();
      for (auto& q : last["query"]) r.push_back(static_cast<double>(q.get<std::string>().size()));
      if (mode == 1) r.push_back(0.0);                                    // one reward too many
      if (mode == 2) return http::Response{500, "{\"error\":\"boom\"}"};  // server error
      if (mode == 3) r[0] = nullptr;                                      // a missing (NaN) reward
      return http::Response{200, Json{{"rewards", r}}.dump()};
    });
    port = srv.bind("127.0.0.1", 0);
    th = std::thread([this] { srv.run(); });
    srv.wait_until_running();
  }
  ~RmServer() {
    srv.stop();
    th.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port) + "/get_reward"; }
};

TEST(Reward, RemoteRewardModel) {
  std::vector<train::RewardQuery> q = {{"Q1 ", "abc", "x"}, {"Q22 ", "", "y"}};
  {
    RmServer s(0);
    auto rm = train::make_remote_reward(s.url(), 5.0);
    auto r = rm->score(q);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0], 6.0f);  // "Q1 abc"
    EXPECT_EQ(r[1], 4.0f);
    EXPECT_EQ(s.last["prompts"][1], "Q22 ");
    EXPECT_EQ(s.last["labels"][0], "x");
  }
  {
    RmServer s(1);
    auto rm = train::make_remote_reward(s.url(), 5.0, 1);
    try {
      rm->score(q);
      FAIL() << "a wrong reward count must be an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("3 rewards for 2 queries"), std::string::npos) << e.what();
    }
  }
  {
    RmServer s(2);
    EXPECT_THROW(train::make_remote_reward(s.url(), 5.0, 1)->score(q), Error);
  }
  {
    RmServer s(3);
    train::RewardSet set;
    set.add(train::make_remote_reward(s.url(), 5.0, 1));
    std::vector<bool> bad;
    auto r = set.score(q, &bad);
    EXPECT_TRUE(bad[0]);
    EXPECT_FALSE(bad[1]);
  }
  int dead_port;
  {
    RmServer s(0);
    dead_port = s.port;
  }
  try {
    train::make_remote_reward("http://127.0.0.1:" + std::to_string(dead_port) + "/get_reward", 1.0, 2)->score(q);
    FAIL() << "an unreachable reward model must be an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(train::make_remote_reward("https://example.org/r", 1.0), Error);
  EXPECT_THROW(train::make_remote_reward("http://host:99999/r", 1.0), Error);
}

TEST(Reward, CommandReward) {
  std::vector<train::RewardQuery> q = {{"a", "b", "1"}, {"c", "d", "2"}};
  // The command sees the JSON request (labels echoed back as rewards).
  auto cmd = train::make_command_reward(
      "python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({\"rewards\": [float(x) for x in "
      "d[\"labels\"]]}))'",
      20.0);
  auto r = cmd->score(q);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0], 1.0f);
  EXPECT_EQ(r[1], 2.0f);
  EXPECT_THROW(train::make_command_reward("cat >/dev/null; echo '{\"rewards\": [1]}'", 5.0)->score(q), Error);
  EXPECT_THROW(train::make_command_reward("cat >/dev/null; echo not json", 5.0)->score(q), Error);
  EXPECT_THROW(train::make_command_reward("cat >/dev/null; exit 3", 5.0)->score(q), Error);
  try {
    train::make_command_reward("sleep 10", 0.3)->score(q);
    FAIL() << "a command past its timeout must be an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no answer within"), std::string::npos) << e.what();
  }
}

// Rollouts of the tiny chat model: 4 prompts x 2 samples of up to 4 tokens.
std::vector<train::Rollout> make_rollouts(const tok::Tokenizer& tok, int n_prompts, int n, int len, uint64_t seed) {
  std::vector<train::Rollout> out;
  std::mt19937 rng(static_cast<uint32_t>(seed));
  for (int p = 0; p < n_prompts; ++p)
    for (int j = 0; j < n; ++j) {
      train::Rollout r;
      r.ids = tok.encode("Say something about hill number " + std::to_string(p) + ".", true);
      r.prompt_len = static_cast<int64_t>(r.ids.size());
      const int actions = 1 + static_cast<int>(rng() % static_cast<uint32_t>(len));
      for (int a = 0; a < actions; ++a) r.ids.push_back(static_cast<int32_t>(rng() % 400));
      r.reward = static_cast<float>(rng() % 3);
      r.prompt = static_cast<size_t>(p);
      out.push_back(std::move(r));
    }
  return out;
}

TEST(PpoLearner, ExperienceMatchesIndependentComputations) {
  auto tok = tok::load_tokenizer(kModel);
  auto actor = model::DecoderModel::load(kModel), ref = model::DecoderModel::load(kModel);
  // The reference log-probs come from the untouched model through DPO's sequence_logps (a separate
  // code path: segment sums over a plain forward).
  auto rolls = make_rollouts(*tok, 4, 2, 4, 3);
  std::vector<train::Sample> samples;
  for (auto& r : rolls) {
    train::Sample s;
    s.ids = r.ids;
    s.loss_mask.assign(r.ids.size(), 0);
    for (size_t t = static_cast<size_t>(r.prompt_len); t < r.ids.size(); ++t) s.loss_mask[t] = 1;
    samples.push_back(s);
  }
  std::vector<const train::Sample*> sp;
  for (auto& s : samples) sp.push_back(&s);
  std::unique_ptr<model::KVCache> cache;
  ag::Var want = train::sequence_logps(*ref, sp, cache);

  train::PpoOptions o;
  o.advantage_estimator = "group_norm";
  o.n_samples_per_prompt = 2;
  o.rollout_batch_size = 4;
  o.init_kl_coef = 0.05;
  o.actor.train_batch_size = 4;
  o.actor.micro_train_batch_size = 2;
  o.actor.learning_rate = 1e-3;
  o.actor.quiet = true;
  train::PpoLearner learner(*actor, ref.get(), nullptr, o, 1);
  train::PpoTrace tr;
  auto st = learner.update(rolls, &tr);
  ASSERT_EQ(tr.old_logprobs.B, 8);
  for (int64_t b = 0; b < 8; ++b) {
    double sum = 0, ref_sum = 0;
    for (int64_t t = 0; t < tr.old_logprobs.T; ++t)
      if (tr.old_logprobs.mask[b * tr.old_logprobs.T + t]) {
        sum += tr.old_logprobs.at(b, t);
        ref_sum += tr.ref_logprobs.at(b, t);
        // before any update the actor is the reference: KL 0 everywhere
        EXPECT_NEAR(tr.kl.at(b, t), 0.0, 1e-5);
      }
    EXPECT_NEAR(sum, want.f32()[b], 2e-3 * std::max(1.0, std::fabs(sum))) << "row " << b;
    EXPECT_NEAR(ref_sum, want.f32()[b], 2e-3 * std::max(1.0, std::fabs(sum))) << "row " << b;
    // group_norm with KL 0: every action token's advantage is the row's group-normalized reward
    const float r0 = rolls[b & ~1].reward, r1 = rolls[b | 1].reward;
    const double mean = (r0 + r1) / 2, sd = std::fabs(r0 - r1) / std::sqrt(2.0);
    const double a = (rolls[b].reward - mean) / (sd + 1e-9);
    for (int64_t t = 0; t < rolls[b].actions(); ++t) EXPECT_NEAR(tr.advantages.at(b, t), a, 1e-4);
  }
  EXPECT_EQ(st.samples, 8);
  EXPECT_GT(st.grad_norm, 0.0);
  // a second update sees a moved policy: KL to the reference is no longer 0
  auto rolls2 = make_rollouts(*tok, 4, 2, 4, 4);
  train::PpoTrace tr2;
  learner.update(rolls2, &tr2);
  double kl = 0;
  for (size_t i = 0; i < tr2.kl.v.size(); ++i) kl += tr2.kl.mask[i] ? std::fabs(tr2.kl.v[i]) : 0.0;
  EXPECT_GT(kl, 1e-4);
  // bad batches are refused
  std::vector<train::Rollout> odd(rolls.begin(), rolls.begin() + 3);
  EXPECT_THROW(learner.update(odd), Error);
}

// One whole PPO update (experience, KL-shaped rewards, GAE, whitening, two epochs of clipped
// policy + entropy and clipped value updates with AdamW) against the torch transcription in
// tools/golden/make_ppo_golden.py.
TEST(PpoLearner, OneFullUpdateMatchesTorch) {
  const fs::path g = fs::path(YAK_GOLDEN_DIR) / "ppo";
  const Json gold = read_json_file(g / "update.json");
  auto actor = model::DecoderModel::load(fs::path(YAK_GOLDEN_DIR) / "models" / "llama_mha_f32");
  auto ref = model::DecoderModel::load(g / "reference");
  auto critic = model::DecoderModel::load(g / "critic");
  ASSERT_TRUE(critic->has_score_head());
  const Json& go = gold["options"];
  train::PpoOptions o;
  o.advantage_estimator = "gae";
  o.n_samples_per_prompt = 1;
  o.rollout_batch_size = 4;
  o.gamma = go["gamma"].get<double>();
  o.lambd = go["lambd"].get<double>();
  o.init_kl_coef = go["init_kl_coef"].get<double>();
  o.kl_estimator = train::KlEstimator::K1;
  o.policy.clip_eps_low = o.policy.clip_eps_high = go["eps_clip"].get<double>();
  o.value_clip = go["value_clip"].get<double>();
  o.entropy_coef = go["entropy_coef"].get<double>();
  o.critic_learning_rate = go["learning_rate"].get<double>();
  o.actor.learning_rate = go["learning_rate"].get<double>();
  o.actor.lr_scheduler = "constant";
  o.actor.lr_warmup_ratio = 0;
  o.actor.max_norm = go["max_norm"].get<double>();
  o.actor.max_epochs = go["max_epochs"].get<int64_t>();
  o.actor.train_batch_size = 4;
  o.actor.micro_train_batch_size = 2;  // accumulation must give the one-batch update
  o.actor.quiet = true;
  std::vector<train::Rollout> rolls;
  for (const auto& r : gold["rollouts"]) {
    train::Rollout x;
    x.ids = r["prompt"].get<std::vector<int32_t>>();
    x.prompt_len = static_cast<int64_t>(x.ids.size());
    for (int32_t a : r["actions"].get<std::vector<int32_t>>()) x.ids.push_back(a);
    x.reward = r["reward"].get<float>();
    rolls.push_back(x);
  }
  train::PpoLearner learner(*actor, ref.get(), critic.get(), o, 1);
  train::PpoTrace tr;
  auto st = learner.update(rolls, &tr);
  auto expect_grid = [&](const train::TokenGrid& got, const char* key, double tol) {
    const Json& want = gold[key];
    for (size_t b = 0; b < want.size(); ++b)
      for (size_t t = 0; t < want[b].size(); ++t)
        EXPECT_NEAR(got.at(static_cast<int64_t>(b), static_cast<int64_t>(t)), want[b][t].get<double>(), tol)
            << key << " row " << b << " token " << t;
  };
  expect_grid(tr.old_logprobs, "old_logprobs", 2e-5);
  expect_grid(tr.ref_logprobs, "ref_logprobs", 2e-5);
  expect_grid(tr.values, "values", 2e-5);
  expect_grid(tr.advantages, "advantages", 1e-4);
  expect_grid(tr.returns, "returns", 2e-5);
  // Step statistics are means over the two optimizer steps.
  double pg = 0, ent = 0, vl = 0;
  for (const auto& e : gold["epochs"]) {
    pg += e["policy_loss"].get<double>() / 2;
    ent += e["entropy"].get<double>() / 2;
    vl += e["value_loss"].get<double>() / 2;
  }
  EXPECT_NEAR(st.policy_loss, pg, 1e-5);
  EXPECT_NEAR(st.entropy, ent, 1e-5);
  EXPECT_NEAR(st.value_loss, vl, 1e-5);
  // Updated weights: whole tensors for a few, |w| sums for every tensor of actor and critic.
  std::map<std::string, ag::Var> params;
  for (auto& p : actor->parameters()) params["actor/" + p.name] = p.var;
  for (auto& p : critic->parameters()) params["critic/" + p.name] = p.var;
  double worst = 0;
  for (auto& [name, want] : gold["weights"].items()) {
    ASSERT_TRUE(params.count(name)) << name;
    const ag::Var& v = params[name];
    ASSERT_EQ(static_cast<size_t>(v.numel()), want.size()) << name;
    for (int64_t i = 0; i < v.numel(); ++i) worst = std::max(worst, std::fabs(v.f32()[i] - want[i].get<double>()));
  }
  std::printf("[ppo golden] worst |updated weight - torch| %.2e\n", worst);
  EXPECT_LT(worst, 1e-5);
  for (auto& [name, want] : gold["weight_sums"].items()) {
    if (!params.count(name)) continue;  // a tied lm_head appears once, as embed_tokens
    double s = 0;
    const ag::Var& v = params[name];
    for (int64_t i = 0; i < v.numel(); ++i) s += std::fabs(v.f32()[i]);
    EXPECT_NEAR(s, want.get<double>(), 1e-5 * std::max(1.0, want.get<double>())) << name;
  }
}

// The rewarded behaviour: answers whose text starts with a letter from a to m, about half of a
// random model's first tokens; GRPO and PPO must move the share up.
void learns(const std::string& estimator, int n, bool lora = false) {
  auto tok = tok::load_tokenizer(kModel);
  auto actor = model::DecoderModel::load(kModel), critic = model::DecoderModel::load(kModel);
  if (lora) {  // only the adapter trains; rollouts must see it, or the reward cannot move
    model::LoraConfig lc;
    lc.r = 8;
    lc.alpha = 16;
    lc.target_modules = {"all-linear"};
    lc.base_model = kModel;
    actor->add_lora(lc, 11);
  }
  auto prompts = word_prompts(*tok, 32);
  ASSERT_EQ(prompts.size(), 32u);
  train::RewardSet reward;
  reward.add(train::make_rule_reward("format:\\s*[a-mA-M][\\s\\S]*"));
  train::PpoOptions o;
  o.advantage_estimator = estimator;
  o.n_samples_per_prompt = n;
  o.rollout_batch_size = 16;
  o.micro_rollout_batch_size = 64;
  o.generate_max_len = 1;
  o.init_kl_coef = 0;
  o.num_episodes = 6;
  o.critic_learning_rate = 2e-3;
  o.actor.train_batch_size = 32;
  o.actor.micro_train_batch_size = 16;
  o.actor.learning_rate = 2e-3;
  o.actor.lr_warmup_ratio = 0;
  o.actor.quiet = true;
  // Sampled (not greedy) share of rewarded first tokens, before and after.
  auto sampled = [&](model::DecoderModel& m) {
    infer::Engine engine(m, tok.get());
    std::vector<infer::GenerateRequest> reqs;
    std::vector<train::RewardQuery> q;
    for (const auto& p : prompts)
      for (int j = 0; j < 8; ++j) {
        infer::GenerateRequest r;
        r.prompt = p.ids;
        r.max_new_tokens = 1;
        r.sampling.do_sample = true;
        r.sampling.seed = 1000 + reqs.size();
        reqs.push_back(r);
      }
    auto out = engine.generate(reqs);
    for (size_t i = 0; i < out.size(); ++i) q.push_back({prompts[i / 8].text, out[i].text, ""});
    std::vector<bool> bad;
    auto r = reward.score(q, &bad);
    double s = 0;
    for (float v : r) s += v;
    return s / static_cast<double>(r.size());
  };
  auto probe = model::DecoderModel::load(kModel);
  const double before = sampled(*probe);
  auto res = train::train_ppo(*actor, nullptr, estimator == "gae" ? critic.get() : nullptr, *tok, prompts, reward, o);
  ASSERT_EQ(res.steps.size(), 12u);
  const double after = sampled(*actor);
  std::printf("[%s] sampled reward share %.2f -> %.2f (rollouts %.2f -> %.2f)\n", estimator.c_str(), before, after,
              res.steps.front().reward, res.steps.back().reward);
  EXPECT_GE(after, before + 0.2);
}

// Killed after 2 of 4 rollout steps and resumed from its checkpoint, a PPO run (actor, critic,
// prompt order, sampling seeds, optimizer moments) ends with exactly the weights of the run that
// was never interrupted (1 thread).
TEST(PpoTrainer, ResumesExactly) {
  ops::set_num_threads(1);
  auto tok = tok::load_tokenizer(kModel);
  auto prompts = word_prompts(*tok, 16);
  train::RewardSet reward;
  reward.add(train::make_rule_reward("format:\\s*[a-mA-M][\\s\\S]*"));
  const fs::path ckpt = fs::temp_directory_path() / "yak-ppo-resume-test";
  fs::remove_all(ckpt);
  train::PpoOptions o;
  o.advantage_estimator = "gae";
  o.n_samples_per_prompt = 2;
  o.rollout_batch_size = 4;
  o.micro_rollout_batch_size = 8;
  o.generate_max_len = 2;
  o.init_kl_coef = 0.05;
  o.num_episodes = 2;
  o.max_steps = 4;
  o.actor.train_batch_size = 4;
  o.actor.micro_train_batch_size = 2;
  o.actor.learning_rate = 1e-3;
  o.actor.lr_scheduler = "constant";
  o.actor.lr_warmup_ratio = 0;
  o.actor.quiet = true;
  auto run = [&](int64_t max_steps, bool resume, bool save) {
    auto actor = model::DecoderModel::load(kModel), ref = model::DecoderModel::load(kModel),
         critic = model::DecoderModel::load(kModel);
    train::PpoOptions r = o;
    r.max_steps = max_steps;
    r.actor.ckpt_path = ckpt;
    r.actor.save_steps = save ? 2 : -1;
    r.actor.load_checkpoint = resume;
    auto res = train::train_ppo(*actor, ref.get(), critic.get(), *tok, prompts, reward, r);
    std::vector<float> w;
    for (auto& p : actor->parameters()) w.insert(w.end(), p.var.f32(), p.var.f32() + p.var.numel());
    for (auto& p : critic->parameters()) w.insert(w.end(), p.var.f32(), p.var.f32() + p.var.numel());
    return std::make_pair(w, res.steps.size());
  };
  o.save_value_network = true;
  o.critic_pretrain = kModel;
  o.actor.save_path = ckpt.string() + "-out";
  auto [whole, n_whole] = run(4, false, false);
  // --save_value_network: the critic is a sequence classifier next to the actor
  const Json cc = read_json_file(ckpt.string() + "-out_critic/config.json");
  EXPECT_EQ(cc["architectures"][0], "Qwen2ForSequenceClassification");
  EXPECT_TRUE(model::DecoderModel::load(ckpt.string() + "-out_critic")->has_score_head());
  fs::remove_all(ckpt.string() + "-out");
  fs::remove_all(ckpt.string() + "-out_critic");
  o.save_value_network = false;
  o.actor.save_path.clear();
  auto [first, n_first] = run(2, false, true);
  EXPECT_EQ(n_first, 2u);
  EXPECT_TRUE(fs::exists(ckpt / "actor" / "latest"));
  EXPECT_TRUE(fs::exists(ckpt / "critic" / "latest"));
  auto [resumed, n_resumed] = run(4, true, false);
  EXPECT_EQ(n_resumed, 2u);  // steps 3 and 4 only
  ASSERT_EQ(whole.size(), resumed.size());
  size_t differ = 0;
  for (size_t i = 0; i < whole.size(); ++i) differ += whole[i] != resumed[i];
  EXPECT_EQ(differ, 0u) << "of " << whole.size() << " weights";
  size_t moved = 0;
  for (size_t i = 0; i < whole.size(); ++i) moved += whole[i] != first[i];
  EXPECT_GT(moved, 0u);  // steps 3-4 did change the weights
  fs::remove_all(ckpt);
  ops::set_num_threads(0);
}

// A plug-in reward (the C++ interface) that fails on some answers: their groups are dropped and
// counted, the update runs on the rest, and no weight turns non-finite.
struct FlakyReward : train::RewardSource {
  std::string name() const override { return "flaky"; }
  std::vector<float> score(std::span<const train::RewardQuery> q) override {
    std::vector<float> r;
    for (const auto& x : q) r.push_back(x.response.size() % 3 == 0 ? NAN : static_cast<float>(x.response.size() % 2));
    return r;
  }
};

TEST(PpoTrainer, NonFiniteRewardsDropTheirGroups) {
  auto tok = tok::load_tokenizer(kModel);
  auto prompts = word_prompts(*tok, 16);
  train::RewardSet reward;
  reward.add(std::make_unique<FlakyReward>());
  train::PpoOptions o;
  o.advantage_estimator = "group_norm";
  o.n_samples_per_prompt = 4;
  o.rollout_batch_size = 8;
  o.generate_max_len = 3;
  o.num_episodes = 2;
  o.max_steps = 3;
  o.actor.train_batch_size = 8;
  o.actor.micro_train_batch_size = 4;
  o.actor.learning_rate = 1e-3;
  o.actor.quiet = true;
  auto actor = model::DecoderModel::load(kModel);
  auto res = train::train_ppo(*actor, nullptr, nullptr, *tok, prompts, reward, o);
  ASSERT_EQ(res.steps.size(), 3u);
  int64_t skipped = 0, kept = 0;
  for (const auto& s : res.steps) {
    EXPECT_EQ((s.samples + s.skipped) % 4, 0);  // whole groups
    EXPECT_EQ(s.samples + s.skipped, 32);
    EXPECT_TRUE(std::isfinite(s.reward) || s.samples == 0);
    skipped += s.skipped, kept += s.samples;
  }
  std::printf("[flaky reward] kept %lld, skipped %lld samples\n", static_cast<long long>(kept),
              static_cast<long long>(skipped));
  EXPECT_GT(skipped, 0);
  EXPECT_GT(kept, 0);
  for (auto& p : actor->parameters())
    for (int64_t i = 0; i < p.var.numel(); ++i) ASSERT_TRUE(std::isfinite(p.var.f32()[i])) << p.name;
}

TEST(PpoTrainer, GrpoLearnsTheRewardedBehaviour) {
  learns("group_norm", 4);
}
TEST(PpoTrainer, LoraActorGeneratesWithItsAdapterAndLearns) {
  learns("group_norm", 4, true);
}
TEST(PpoTrainer, PpoWithCriticLearnsTheRewardedBehaviour) {
  learns("gae", 2);
}
TEST(PpoTrainer, RloosAndReinforceRun) {
  for (std::string e : {"rloo", "reinforce_baseline", "dr_grpo", "reinforce"}) {
    SCOPED_TRACE(e);
    learns(e, 4);
  }
}

}  // namespace
