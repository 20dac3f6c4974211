// OpenRLHF's alignment losses and advantage math against a float64 torch transcription of the
// published formulas (tests/golden/align/losses.json from tools/golden/make_align_goldens.py):
// values, and gradients through the tape.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "yak/base/json.h"
#include "yak/train/rl_losses.h"

using namespace yak;
using namespace yak::train;

namespace {

double num(const Json& v) {
  if (v.is_string()) return v.get<std::string>() == "-inf" ? -INFINITY : INFINITY;
  return v.get<double>();
}

std::vector<float> flat(const Json& j) {
  std::vector<float> out;
  if (j.is_array()) {
    for (auto& e : j)
      for (float f : flat(e)) out.push_back(f);
  } else {
    out.push_back(static_cast<float>(num(j)));
  }
  return out;
}

TokenGrid grid(const Json& values, const Json& mask) {
  TokenGrid g;
  g.B = static_cast<int64_t>(values.size());
  g.T = static_cast<int64_t>(values[0].size());
  g.v = flat(values);
  for (float m : flat(mask)) g.mask.push_back(m != 0);
  return g;
}

ag::Var var_of(const Json& j) {
  auto f = flat(j);
  Tensor t = Tensor::empty({static_cast<int64_t>(f.size())});
  std::copy(f.begin(), f.end(), t.data<float>());
  return ag::Var(t, true);
}

void expect_close(const std::vector<float>& got, const Json& want, double tol, const std::string& what) {
  auto w = flat(want);
  ASSERT_EQ(got.size(), w.size()) << what;
  for (size_t i = 0; i < w.size(); ++i)
    EXPECT_NEAR(got[i], w[i], tol * std::max(1.0, std::fabs(static_cast<double>(w[i])))) << what << "[" << i << "]";
}

std::vector<float> values_of(const ag::Var& v) {
  return {v.f32(), v.f32() + v.numel()};
}
std::vector<float> grads_of(const ag::Var& v) {
  if (!v.has_grad()) return std::vector<float>(static_cast<size_t>(v.numel()), 0.0f);
  return {v.grad_f32(), v.grad_f32() + v.numel()};
}

// Runs fn under a tape, backpropagates its loss, compares outputs and gradients.
template <typename Fn>
void run_loss(const Json& c, std::map<std::string, ag::Var> vars, Fn fn) {
  ag::Tape tape;
  ag::Var loss;
  {
    ag::TapeScope scope(tape);
    loss = fn(vars);
  }
  tape.backward(loss);
  const std::string name = c["name"];
  expect_close(values_of(loss), c["outputs"]["loss"], 1e-5, name + " loss");
  for (auto& [k, g] : c["grads"].items()) expect_close(grads_of(vars.at(k)), g, 1e-5, name + " d/d" + k);
}

class AlignGolden : public ::testing::Test {
 protected:
  static Json cases() { return read_json_file(std::filesystem::path(YAK_GOLDEN_DIR) / "align" / "losses.json"); }
};

TEST_F(AlignGolden, EveryCase) {
  int ran = 0;
  for (const auto& c : cases()) {
    const std::string fn = c["fn"], name = c["name"];
    const Json& in = c["inputs"];
    const Json& p = c["params"];
    SCOPED_TRACE(name);
    if (fn == "policy_loss") {
      PolicyLossConfig cfg{p["clip_eps_low"], p["clip_eps_high"], std::nullopt, p["token_level_loss"]};
      if (!p["dual_clip"].is_null()) cfg.dual_clip = p["dual_clip"].get<double>();
      auto old = grid(in["old_log_probs"], in["action_mask"]), adv = grid(in["advantages"], in["action_mask"]);
      PolicyLossOut out;
      run_loss(c, {{"log_probs", var_of(in["log_probs"])}}, [&](auto& v) {
        out = policy_loss(v.at("log_probs"), old, adv, cfg);
        return out.loss;
      });
      EXPECT_NEAR(out.clip_ratio, num(c["outputs"]["clip_ratio"]), 1e-6);
      EXPECT_NEAR(out.ppo_kl, num(c["outputs"]["ppo_kl"]), 1e-5);
    } else if (fn == "value_loss") {
      std::optional<double> clip;
      if (!p["clip_eps"].is_null()) clip = p["clip_eps"].get<double>();
      auto old = grid(in["old_values"], in["action_mask"]), ret = grid(in["returns"], in["action_mask"]);
      run_loss(c, {{"values", var_of(in["values"])}},
               [&](auto& v) { return value_loss(v.at("values"), old, ret, clip, p["token_level_loss"]); });
    } else if (fn == "pairwise_loss" || fn == "logexp_loss") {
      std::vector<float> margin;
      if (in.contains("margin")) margin = flat(in["margin"]);
      run_loss(c, {{"chosen_reward", var_of(in["chosen_reward"])}, {"reject_reward", var_of(in["reject_reward"])}},
               [&](auto& v) {
                 return fn == "pairwise_loss" ? pairwise_loss(v.at("chosen_reward"), v.at("reject_reward"), margin)
                                              : logexp_loss(v.at("chosen_reward"), v.at("reject_reward"));
               });
    } else if (fn == "dpo_loss") {
      PreferenceOut out;
      run_loss(c,
               {{"policy_chosen_logps", var_of(in["policy_chosen_logps"])},
                {"policy_rejected_logps", var_of(in["policy_rejected_logps"])}},
               [&](auto& v) {
                 out = dpo_loss(v.at("policy_chosen_logps"), v.at("policy_rejected_logps"),
                                flat(in["reference_chosen_logps"]), flat(in["reference_rejected_logps"]), p["beta"],
                                p["label_smoothing"], p["ipo"]);
                 return out.loss;
               });
      expect_close(out.chosen_rewards, c["outputs"]["chosen_rewards"], 1e-5, name);
      expect_close(out.rejected_rewards, c["outputs"]["rejected_rewards"], 1e-5, name);
    } else if (fn == "kto_loss") {
      PreferenceOut out;
      run_loss(c,
               {{"policy_chosen_logps", var_of(in["policy_chosen_logps"])},
                {"policy_rejected_logps", var_of(in["policy_rejected_logps"])},
                {"policy_KL_logps", var_of(in["policy_KL_logps"])}},
               [&](auto& v) {
                 out = kto_loss(v.at("policy_chosen_logps"), v.at("policy_rejected_logps"), v.at("policy_KL_logps"),
                                flat(in["reference_chosen_logps"]), flat(in["reference_rejected_logps"]),
                                flat(in["reference_KL_logps"]), p["beta"], p["desirable_weight"],
                                p["undesirable_weight"]);
                 return out.loss;
               });
      EXPECT_NEAR(out.kl, num(c["outputs"]["KL"]), 1e-5);
      expect_close(out.chosen_rewards, c["outputs"]["chosen_rewards"], 1e-5, name);
    } else if (fn == "kd_loss") {
      const int64_t N = static_cast<int64_t>(in["logits"].size()) * static_cast<int64_t>(in["logits"][0].size());
      auto lf = flat(in["logits"]);
      const int64_t V = static_cast<int64_t>(lf.size()) / N;
      Tensor t = Tensor::empty({N, V});
      std::copy(lf.begin(), lf.end(), t.data<float>());
      std::vector<int32_t> labels;
      for (float l : flat(in["label"])) labels.push_back(static_cast<int32_t>(l));
      run_loss(c, {{"logits", ag::Var(t, true)}},
               [&](auto& v) { return kd_loss(v.at("logits"), flat(in["teacher_logits"]), labels); });
    } else if (fn == "approx_kl") {
      auto base = grid(in["log_probs_base"], in["action_mask"]);
      ag::Var lp = var_of(in["log_probs"]);
      ag::Tape tape;
      ag::Var kl, loss;
      {
        ag::TapeScope scope(tape);
        kl = approx_kl(lp, base, parse_kl_estimator(p["kl_estimator"]));
        loss = masked_mean(kl, base.mask, base.B, base.T, true);
      }
      tape.backward(loss);
      expect_close(values_of(kl), c["outputs"]["kl"], 1e-5, name + " kl");
      expect_close(values_of(loss), c["outputs"]["kl_loss"], 1e-5, name + " kl_loss");
      expect_close(grads_of(lp), c["grads"]["log_probs"], 1e-5, name + " grad");
    } else if (fn == "gae") {
      auto [adv, ret] =
          gae(grid(in["values"], in["action_mask"]), grid(in["rewards"], in["action_mask"]), p["gamma"], p["lambd"]);
      expect_close(adv.v, c["outputs"]["advantages"], 1e-5, name);
      expect_close(ret.v, c["outputs"]["returns"], 1e-5, name);
    } else if (fn == "cumulative_returns") {
      expect_close(cumulative_returns(grid(in["rewards"], in["action_mask"]), p["gamma"]).v, c["outputs"]["returns"],
                   1e-5, name);
    } else if (fn == "rloo" || fn == "reinforce_baseline" || fn == "group_norm" || fn == "dr_grpo" ||
               fn == "reinforce") {
      auto shaped = group_shaped_rewards(flat(in["rewards"]), p["n_samples_per_prompt"], fn);
      expect_close(shaped, c["outputs"]["shaped_rewards"], 1e-5, name + " shaped");
      auto kl = grid(in["kl"], in["action_mask"]);
      auto tokens = kl_shaped_rewards(shaped, p["kl_coef"], kl);
      expect_close(tokens.v, c["outputs"]["token_rewards"], 1e-5, name + " token rewards");
      auto ret = cumulative_returns(tokens, p["gamma"]);
      expect_close(ret.v, c["outputs"]["returns"], 1e-5, name + " returns");
      auto adv = (fn == "reinforce" || fn == "reinforce_baseline") ? normalize_advantages(ret, false) : ret;
      expect_close(adv.v, c["outputs"]["advantages"], 1e-5, name + " advantages");
    } else if (fn == "whiten") {
      expect_close(masked_normalize(grid(in["tensor"], in["action_mask"]), p["eps"]).v, c["outputs"]["whitened"], 1e-5,
                   name);
    } else if (fn == "advantages_norm") {
      double mean = 0, rstd = 0;
      auto out = normalize_advantages(grid(in["advantages"], in["action_mask"]), p["no_std_norm"], &mean, &rstd);
      expect_close(out.v, c["outputs"]["advantages"], 1e-5, name);
      EXPECT_NEAR(mean, num(c["outputs"]["mean"]), 1e-6);
      EXPECT_NEAR(rstd, num(c["outputs"]["rstd"]), 1e-5 * std::max(1.0, rstd));
    } else if (fn == "kl_reward") {
      std::optional<std::pair<double, double>> clip;
      if (!p["reward_clip_range"].is_null())
        clip = std::pair{p["reward_clip_range"][0].get<double>(), p["reward_clip_range"][1].get<double>()};
      expect_close(kl_shaped_rewards(flat(in["r"]), p["kl_coef"], grid(in["kl"], in["action_mask"]), clip).v,
                   c["outputs"]["rewards"], 1e-5, name);
    } else {
      ADD_FAILURE() << "no C++ counterpart for golden fn " << fn;
      continue;
    }
    ++ran;
  }
  EXPECT_GE(ran, 40);
}

}  // namespace
