// `yak train prm`: a process reward model (OpenRLHF's PRM recipe). Each step of a solution ends
// with a placeholder token; the causal LM's logits at every placeholder, restricted to the reward
// tokens (e.g. "+" and "-"), are trained with cross-entropy against the step's label: a reward
// token (hard label) or the probability that the step is good (soft label).
#pragma once
#include <span>
#include <string>
#include <vector>

#include "yak/model/decoder.h"
#include "yak/tokenizer/tokenizer.h"
#include "yak/train/data_source.h"
#include "yak/train/dataset.h"
#include "yak/train/lm_trainer.h"

namespace yak::train {

struct PrmOptions {
  std::string input_key = "input";  // the text with a placeholder after every step
  std::string label_key = "value";  // one label per placeholder: a reward token, or a number in [0, 1]
  std::string placeholder_token = "ки";
  std::vector<std::string> reward_tokens = {"+", "-"};  // the first one means "good step"
  int max_len = 2048;
};

struct PrmSample {
  std::vector<int32_t> ids;
  std::vector<int32_t> steps;   // positions of the placeholders
  std::vector<float> positive;  // per step: probability of the first reward token (hard: 1 or 0)
  std::vector<int32_t> target;  // per step: index into the reward tokens (soft: of the likelier one)
  std::string where;
};

struct PrmVocab {
  int32_t placeholder = -1;
  std::vector<int32_t> reward_ids;
};
// The placeholder's and reward tokens' ids; each must be a single token of this tokenizer.
PrmVocab prm_vocab(const tok::Tokenizer& tok, const PrmOptions& o);

// Samples from records; too long ones are counted skips; a label count that differs from the
// placeholder count, or a label that is neither a reward token nor a number in [0, 1], is an error
// naming the record.
std::vector<PrmSample> build_prm_samples(std::span<const Record> records, const tok::Tokenizer& tok,
                                         const PrmOptions& o, SkipStats* skipped = nullptr);

// Share of steps whose likelier reward token is the labelled one.
double prm_accuracy(model::DecoderModel& model, std::span<const PrmSample> samples, const PrmVocab& v);

struct PrmResult {
  LmTrainResult losses;
  double accuracy_before = 0, eval_accuracy = 0;  // NaN when no eval samples
};

// Batch sizes count samples.
PrmResult train_prm(model::DecoderModel& model, std::span<const PrmSample> train, std::span<const PrmSample> eval,
                    const PrmVocab& v, const LmTrainOptions& o);

}  // namespace yak::train
