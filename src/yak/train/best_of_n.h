// Sampling loops around a reward: best-of-n rejection sampling (OpenRLHF's batch_inference with the
// "rs" post-processor: generate n answers per prompt, score them, keep the best as SFT data) and
// iterative DPO (each round: sample with the current policy, pair the best answer against the
// worst, DPO against the round's starting policy).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "yak/base/json.h"
#include "yak/model/decoder.h"
#include "yak/tokenizer/tokenizer.h"
#include "yak/train/dpo_trainer.h"
#include "yak/train/ppo_trainer.h"
#include "yak/train/reward.h"

namespace yak::train {

struct SampleOptions {
  int64_t n_samples_per_prompt = 4;
  int generate_max_len = 1024;
  float temperature = 1.0f, top_p = 1.0f;
  int64_t micro_batch_size = 64;  // sequences generated together
  uint64_t seed = 42;
};

struct ScoredAnswer {
  std::vector<int32_t> tokens;  // generated ids, the ending EOS included when there was one
  std::string text;
  float reward = 0;
  bool valid = true;  // false: a non-finite reward (never chosen)
};

// n answers per prompt (in prompt order), each scored by `reward`.
std::vector<std::vector<ScoredAnswer>> sample_and_score(model::DecoderModel& policy, const tok::Tokenizer& tok,
                                                        std::span<const PromptItem> prompts, RewardSet& reward,
                                                        const SampleOptions& o);

// Best-of-n: one record {"input": prompt text, "output": best answer, "reward": r} per prompt
// whose best answer is valid (ties: the first sample).
std::vector<Json> rejection_sample(model::DecoderModel& policy, const tok::Tokenizer& tok,
                                   std::span<const PromptItem> prompts, RewardSet& reward, const SampleOptions& o);

// Conditional SFT data (OpenRLHF's "csft" post-processor): every sampled answer, its prompt
// rewritten by `reward_template` ("{input}" and "{reward}" replaced; the reward printed with one
// decimal, after z-scoring over all answers when normalize). Train SFT on it, then ask with a high
// reward in the prompt.
std::vector<Json> conditional_sft_data(const std::vector<std::vector<ScoredAnswer>>& scored,
                                       std::span<const PromptItem> prompts, const std::string& reward_template,
                                       bool normalize);

// The pieces of conditional SFT: the prompt with its reward ("{reward}" printed with one decimal,
// then "{input}"; the template must hold both), and z-scores with the unbiased std (torch.std).
std::string reward_prompt(const std::string& reward_template, const std::string& input, double reward);
std::vector<double> zscores(std::vector<double> r);

// `yak train csft`: rewrites each record's input_key with reward_template and its reward_key
// (z-scored over the records when normalize), for SFT on reward-conditioned prompts.
void condition_on_reward(std::vector<Record>& records, const std::string& input_key, const std::string& reward_key,
                         const std::string& reward_template, bool normalize);

struct IterativeDpoOptions {
  int rounds = 2;
  SampleOptions sampling;
  DpoOptions dpo;
  LmTrainOptions train;  // per round; save_path gets the final policy
};

struct IterativeDpoRound {
  size_t pairs = 0;        // prompts whose best and worst answers differed in reward
  double mean_reward = 0;  // of the round's samples (before its DPO)
  double best_reward = 0;  // mean over prompts of the best sample
};

// Trains `policy` in place; returns per-round statistics.
std::vector<IterativeDpoRound> iterative_dpo(model::DecoderModel& policy, const tok::Tokenizer& tok,
                                             std::span<const PromptItem> prompts, RewardSet& reward,
                                             const IterativeDpoOptions& o);

}  // namespace yak::train
