// `yak train ppo`: online RL in one process, with OpenRLHF's semantics. Each step generates
// rollouts with the infer engine straight from the actor's weights (LoRA applied), scores them
// (rule functions, reward models, a remote RM, a subprocess), computes old/reference log-probs
// and critic values, shapes rewards (group baselines, KL penalty), computes advantages
// (gae | reinforce | reinforce_baseline | rloo | group_norm | dr_grpo) and trains the actor with
// the clipped policy loss (+ KL loss, entropy bonus) and the critic with the clipped value loss.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "yak/model/decoder.h"
#include "yak/tokenizer/chat_template.h"
#include "yak/tokenizer/tokenizer.h"
#include "yak/train/data_source.h"
#include "yak/train/dataset.h"
#include "yak/train/lm_trainer.h"
#include "yak/train/optimizer.h"
#include "yak/train/reward.h"
#include "yak/train/rl_losses.h"

namespace yak::train {

struct PromptItem {
  std::vector<int32_t> ids;
  std::string text;   // as rendered (chat template or input template applied)
  std::string label;  // --label_key value, "" when none
  std::string where;  // FILE:LINE
};

struct PromptOptions {
  std::string input_key = "input";  // --input_key: a string, or a messages list with --apply_chat_template
  std::string label_key;            // --label_key: the reference answer handed to reward functions
  std::optional<std::string> input_template;
  bool apply_chat_template = false;
  int prompt_max_len = 1024;  // longer prompts are counted skips
};
// OpenRLHF's PromptDataset: the prompt rendered with the generation prompt (chat) or the input
// template; empty and over-long prompts are counted skips.
std::vector<PromptItem> build_prompts(std::span<const Record> records, const tok::Tokenizer& tok,
                                      const tok::ChatTemplate* tmpl, const PromptOptions& o,
                                      SkipStats* skipped = nullptr);

struct PpoOptions {
  // Actor optimisation: learning_rate (--actor_learning_rate), schedule, batch sizes (samples),
  // max_epochs (passes over each rollout batch), clipping, seed, metrics, save_path...
  LmTrainOptions actor;
  double critic_learning_rate = 9e-6;
  std::string advantage_estimator = "gae";
  int64_t n_samples_per_prompt = 1;
  int64_t rollout_batch_size = 16;        // prompts per rollout step
  int64_t micro_rollout_batch_size = 16;  // samples per generation / experience forward
  int64_t num_episodes = 1;               // passes over the prompt set
  int64_t max_steps = -1;                 // rollout steps (-1: all episodes)
  int generate_max_len = 1024;
  int max_len = 0;  // --max_len: prompt + response at most (0: no bound beyond generate_max_len)
  float temperature = 1.0f, top_p = 1.0f;
  int top_k = 0;
  double gamma = 1.0, lambd = 0.95;
  double init_kl_coef = 0.01;
  std::optional<double> kl_target;  // adaptive KL controller
  double kl_horizon = 10000;
  bool use_kl_loss = false;
  KlEstimator kl_estimator = KlEstimator::K1;
  PolicyLossConfig policy;
  std::optional<double> value_clip = 0.5;
  double entropy_coef = 0.0;
  bool no_advantage_std_norm = false;
  std::optional<std::pair<double, double>> reward_clip_range;
  bool dynamic_filtering = false;  // drop groups whose mean reward is not inside the range
  std::pair<double, double> dynamic_filtering_range = {0.0, 1.0};
  int overlong_buffer_len = 0;  // DAPO overlong penalty (0: off)
  double overlong_penalty_factor = 1.0;
  int64_t eval_steps = -1;  // evaluate every N rollout steps (-1: at the start and end only)
  // --save_value_network: the trained critic as a sequence classifier at SAVE_PATH_critic
  // (config and tokenizer copied from critic_pretrain).
  bool save_value_network = false;
  std::filesystem::path critic_pretrain;
};

// One generated sequence with its (scalar) reward.
struct Rollout {
  std::vector<int32_t> ids;  // prompt + actions (the EOS that ended it included)
  int64_t prompt_len = 0;
  size_t prompt = 0;  // index into the prompt set
  std::string response;
  float reward = 0;
  bool truncated = false;
  int64_t actions() const { return static_cast<int64_t>(ids.size()) - prompt_len; }
};

// One rollout step's numbers (also written to metrics and the progress line).
struct PpoStepStats {
  double reward = 0;        // mean raw reward of the kept samples
  double response_len = 0;  // mean action tokens
  double kl = 0;            // mean per-token KL to the reference
  double policy_loss = 0, value_loss = 0, entropy = 0, clip_ratio = 0, grad_norm = 0;
  int64_t samples = 0, skipped = 0;  // kept, dropped (bad rewards, dynamic filtering)
  double generate_s = 0, reward_s = 0, forward_s = 0, train_s = 0;
};

// What one update computed before training (for tests and debugging), as [N, T] grids.
struct PpoTrace {
  TokenGrid old_logprobs, ref_logprobs, values, kl, advantages, returns;
};

// The learning half of PPO: given scored rollouts (whole groups of n_samples_per_prompt, in
// order), computes old/reference log-probs and values, shapes rewards, computes advantages and
// returns, and runs max_epochs passes of clipped policy (and value) updates.
class PpoLearner {
 public:
  // Makes the actor (and critic) trainable; the schedule spans total_rollout_steps updates.
  PpoLearner(model::DecoderModel& actor, model::DecoderModel* reference, model::DecoderModel* critic,
             const PpoOptions& o, int64_t total_rollout_steps);
  ~PpoLearner();
  PpoStepStats update(std::vector<Rollout>& rollouts, PpoTrace* trace = nullptr);
  double kl_coef() const { return kl_coef_; }
  // Checkpoints: ckpt/actor and ckpt/critic (training-core layout: weights, AdamW moments),
  // `extra` (the trainer loop's own position) stored with the actor's. load returns nullopt when
  // there is no checkpoint, and throws when actor and critic checkpoints are of different steps.
  void save(const std::filesystem::path& ckpt, int64_t step, const Json& extra, int max_keep) const;
  std::optional<std::pair<int64_t, Json>> load(const std::filesystem::path& ckpt);

 private:
  model::DecoderModel& actor_;
  model::DecoderModel *reference_, *critic_;
  PpoOptions o_;
  bool gae_ = false, group_ = false, use_ref_ = false;
  double kl_coef_;
  int64_t opt_steps_per_rollout_ = 1, total_opt_ = 1, done_opt_steps_ = 0;
  std::optional<AdamW> actor_opt_, critic_opt_;
  std::optional<LrSchedule> sched_;
  std::optional<DataRng> train_rng_;
};

struct PpoResult {
  std::vector<PpoStepStats> steps;
  std::vector<std::pair<int64_t, double>> eval_history;  // (rollout steps done, eval score)
};

// An evaluation of the current actor (e.g. held-out greedy accuracy); higher is better.
using PolicyEval = std::function<double(model::DecoderModel& actor)>;

// Mean reward of greedy responses to `prompts` (the held-out score of `yak train ppo --eval_dataset`).
double greedy_reward(model::DecoderModel& actor, const tok::Tokenizer& tok, std::span<const PromptItem> prompts,
                     RewardSet& reward, int max_new_tokens);

// Trains `actor` in place. `reference` (may be null: no KL) is frozen; `critic` (needed by gae;
// null otherwise) gets a value head when it has none.
PpoResult train_ppo(model::DecoderModel& actor, model::DecoderModel* reference, model::DecoderModel* critic,
                    const tok::Tokenizer& tok, std::span<const PromptItem> prompts, RewardSet& reward,
                    const PpoOptions& o, const PolicyEval& eval = {});

// Loss curves and eval points of a PPO run as a PNG.
void plot_ppo(const std::filesystem::path& path, const std::string& title, const PpoResult& r);

}  // namespace yak::train
