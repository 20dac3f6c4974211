// The alignment losses and advantage math of OpenRLHF (openrlhf/models/loss.py, models/utils.py,
// trainer/ppo_utils/experience_maker.py) over [B, T] token grids with an action mask. Losses are
// differentiable ops (ag::Var in, scalar Var out); advantage/return math is plain arithmetic.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "yak/autograd/var.h"

namespace yak::train {

// A [B, T] grid of floats with its action mask (1 = a generated token that counts).
struct TokenGrid {
  int64_t B = 0, T = 0;  // v and mask hold B*T entries, row-major
  std::vector<float> v;
  std::vector<uint8_t> mask;
  float at(int64_t b, int64_t t) const { return v[b * T + t]; }
};

// ---- losses (gradients flow into every ag::Var argument that requires grad)

struct PolicyLossConfig {
  double clip_eps_low = 0.2, clip_eps_high = 0.2;
  std::optional<double> dual_clip;  // > 1; only for negative advantages
  bool token_level_loss = true;     // mean over all tokens, else mean over each sequence then batch
};
struct PolicyLossOut {
  ag::Var loss;
  double clip_ratio = 0, ppo_kl = 0;
};
// log_probs: Var [B*T]; old_log_probs, advantages, mask as grids of the same shape.
PolicyLossOut policy_loss(const ag::Var& log_probs, const TokenGrid& old_log_probs, const TokenGrid& advantages,
                          const PolicyLossConfig& cfg);

// 0.5 * masked mean of max((clip(v) - R)^2, (v - R)^2) (no clip when clip_eps is unset).
ag::Var value_loss(const ag::Var& values, const TokenGrid& old_values, const TokenGrid& returns,
                   std::optional<double> clip_eps, bool token_level_loss);

// Reward model losses over [N] chosen/rejected rewards: mean -logsigmoid(c - r - margin), and
// mean log(1 + exp(r - c)).
ag::Var pairwise_loss(const ag::Var& chosen, const ag::Var& rejected, const std::vector<float>& margin = {});
ag::Var logexp_loss(const ag::Var& chosen, const ag::Var& rejected);

struct PreferenceOut {
  ag::Var loss;
  std::vector<float> chosen_rewards, rejected_rewards;  // beta * (policy - reference) log-ratios
  double kl = 0;                                        // KTO's batch KL estimate
};
// DPO / cDPO (label_smoothing) / IPO over [N] sequence log-probabilities.
PreferenceOut dpo_loss(const ag::Var& policy_chosen, const ag::Var& policy_rejected,
                       const std::vector<float>& ref_chosen, const std::vector<float>& ref_rejected, double beta,
                       double label_smoothing, bool ipo);
// KTO: desirable (chosen) and undesirable (rejected) samples with the batch KL estimate taken from
// mismatched pairs (policy_kl - reference_kl), clamped at 0 and detached, as OpenRLHF does.
PreferenceOut kto_loss(const ag::Var& policy_chosen, const ag::Var& policy_rejected, const ag::Var& policy_kl,
                       const std::vector<float>& ref_chosen, const std::vector<float>& ref_rejected,
                       const std::vector<float>& ref_kl, double beta, double desirable_weight,
                       double undesirable_weight);
// Knowledge distillation: -mean over non-ignored rows of Σ softmax(teacher) * log_softmax(student).
ag::Var kd_loss(const ag::Var& logits, const std::vector<float>& teacher_logits, const std::vector<int32_t>& labels,
                int32_t ignore_index = -100);

enum class KlEstimator { K1, K2, K3 };
KlEstimator parse_kl_estimator(const std::string& name);  // "k1" | "k2" | "k3"
// Per-token KL estimate, clamped to [-10, 10], as a Var [B*T] differentiable in log_probs. Like
// OpenRLHF it is not masked here: whoever consumes it applies the action mask.
ag::Var approx_kl(const ag::Var& log_probs, const TokenGrid& base_log_probs, KlEstimator est);
// Mean of a [B*T] Var over the mask: token level or per sequence then batch.
ag::Var masked_mean(const ag::Var& x, const std::vector<uint8_t>& mask, int64_t B, int64_t T, bool token_level);

// ---- advantages and returns (no gradients)

// Generalized advantage estimation; returns (advantages, returns = advantages + values).
std::pair<TokenGrid, TokenGrid> gae(const TokenGrid& values, const TokenGrid& rewards, double gamma, double lambd);
// REINFORCE returns: discounted sums of the masked per-token rewards.
TokenGrid cumulative_returns(const TokenGrid& rewards, double gamma);
// Per-token rewards: -kl_coef * kl everywhere, plus the scalar reward r[b] on each row's last
// action token (rewards clipped to clip_range first when given).
TokenGrid kl_shaped_rewards(const std::vector<float>& r, double kl_coef, const TokenGrid& kl,
                            std::optional<std::pair<double, double>> clip_range = std::nullopt);
// Group baselines over consecutive groups of n samples of one prompt:
// "rloo", "reinforce_baseline", "group_norm", "dr_grpo" (others return r unchanged).
std::vector<float> group_shaped_rewards(const std::vector<float>& r, int64_t n, const std::string& estimator);
// OpenRLHF's masked_normalize: per row, (x - mean) * mask / sqrt(max(var, eps)), biased variance.
TokenGrid masked_normalize(const TokenGrid& x, double eps = 1e-8);
// The global advantage normalization of experience_maker (gae, reinforce, reinforce_baseline):
// mean and biased variance over every masked token of the batch, written to every position.
TokenGrid normalize_advantages(const TokenGrid& x, bool no_std_norm, double* mean = nullptr, double* rstd = nullptr);

}  // namespace yak::train
