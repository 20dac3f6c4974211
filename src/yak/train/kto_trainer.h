// `yak train kto`: KTO on unpaired feedback (prompt, completion, desirable or not) against a frozen
// reference, with OpenRLHF's batch KL estimate: each micro-batch also scores every prompt with the
// next sample's completion (mismatched pairs); mean(policy - reference) over those, clamped at 0
// and detached, is the reference point of the loss.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "yak/model/decoder.h"
#include "yak/tokenizer/chat_template.h"
#include "yak/train/dataset.h"
#include "yak/train/lm_trainer.h"
#include "yak/train/rm_trainer.h"

namespace yak::train {

struct KtoSample {
  Sample sample;  // prompt + completion, loss_mask on the completion
  size_t prompt_len = 0;
  bool desirable = true;
};

// Records with input (prompt), output (completion) and a label: true/false, 1/0 (--label_key).
std::vector<KtoSample> build_kto_samples(std::span<const Record> records, const tok::Tokenizer& tok,
                                         const tok::ChatTemplate* tmpl, const SftOptions& o,
                                         const std::string& label_key, SkipStats* skipped = nullptr);

struct KtoOptions {
  double beta = 0.1;
  double desirable_weight = 1.0, undesirable_weight = 1.0;
};

struct KtoResult {
  LmTrainResult losses;
  // Mean implicit reward beta * (log pi - log ref) of held-out desirable minus undesirable samples
  // (NaN: no eval samples).
  double eval_margin = 0;
};

KtoResult train_kto(model::DecoderModel& policy, model::DecoderModel& reference, std::span<const KtoSample> train,
                    std::span<const KtoSample> eval, const LmTrainOptions& o, const KtoOptions& k);

}  // namespace yak::train
