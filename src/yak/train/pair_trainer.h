// The optimizer loop shared by the preference trainers (reward model, DPO): a fresh permutation of
// the pairs every epoch, micro-batches of pairs with gradient accumulation, clipping, AdamW on the
// schedule, progress bar and metrics. The trainer supplies the forward/backward of a micro-batch.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <span>
#include <string>

#include "yak/model/decoder.h"
#include "yak/train/lm_trainer.h"

namespace yak::train {

struct PairMicroResult {
  double loss = 0;                     // the micro-batch's contribution to the step's loss
  std::map<std::string, double> sums;  // per-pair statistics summed over the micro-batch
};
// Runs forward and backward for the pairs `pairs` (indices into the training set); `share` is the
// micro-batch's share of the step (multiply the loss by it before the backward).
using PairMicroStep = std::function<PairMicroResult(std::span<const size_t> pairs, float share)>;

// Trains on n_pairs pairs; stats are logged as per-pair means. After the last step, `eval` (may be
// empty) returns the metrics logged under "eval". Checkpoints (--save_steps, --load_checkpoint,
// --max_steps) work as in the LM trainer: a resumed run repeats the uninterrupted one.
LmTrainResult train_on_pairs(model::DecoderModel& model, size_t n_pairs, const LmTrainOptions& o,
                             const PairMicroStep& micro,
                             const std::function<std::map<std::string, double>()>& eval = {});

}  // namespace yak::train
