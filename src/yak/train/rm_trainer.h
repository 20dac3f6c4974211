// `yak train rm`: a reward model (the decoder with a score head) trained on preference pairs with
// OpenRLHF's pairwise losses ("sigmoid": -log σ(r_c - r_r - margin), "logexp"), scoring each
// sequence at its last token (the EOS that the data layer appends).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "yak/model/decoder.h"
#include "yak/tokenizer/chat_template.h"
#include "yak/train/dataset.h"
#include "yak/train/lm_trainer.h"

namespace yak::train {

struct PreferencePair {
  Sample chosen, rejected;
  float margin = 0;
};

struct PreferenceOptions {
  std::string prompt_key = "prompt";  // --prompt_key; empty: chosen/rejected hold whole dialogues
  // --prompt_key not given: records without prompt_key hold whole dialogues (OpenRLHF's default
  // of no prompt key), records with it are prompt + responses.
  bool prompt_key_optional = false;
  std::string chosen_key = "chosen", rejected_key = "rejected";
  std::string margin_key;  // optional per-pair margin
  std::optional<std::string> input_template;
  bool apply_chat_template = false;
  int max_len = 2048;
};

// Pairs from records; records whose prompt or either response is empty or too long are counted skips.
std::vector<PreferencePair> build_preference_pairs(std::span<const Record> records, const tok::Tokenizer& tokenizer,
                                                   const tok::ChatTemplate* tmpl, const PreferenceOptions& o,
                                                   SkipStats* skipped = nullptr);

struct RmTrainResult {
  LmTrainResult losses;                    // step losses (for plots)
  double eval_accuracy = 0;                // share of held-out pairs with r_chosen > r_rejected (NaN: none)
  double accuracy_before = 0;              // the same before training
  double reward_mean = 0, reward_std = 0;  // over the training set's responses, after training
};

// Scores of every sequence at its last token.
std::vector<float> score_samples(model::DecoderModel& model, std::span<const Sample* const> samples);
double pair_accuracy(model::DecoderModel& model, std::span<const PreferencePair> pairs);

// LmTrainOptions' batch sizes count pairs; loss is "sigmoid" or "logexp".
RmTrainResult train_rm(model::DecoderModel& model, std::span<const PreferencePair> train,
                       std::span<const PreferencePair> eval, const LmTrainOptions& o, const std::string& loss);

}  // namespace yak::train
