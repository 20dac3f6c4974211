// `yak train dpo`: DPO / cDPO (label smoothing) / IPO on preference pairs against a frozen
// reference model (OpenRLHF's DPOLoss), with an optional NLL term on the chosen responses.
#pragma once
#include <span>
#include <vector>

#include "yak/autograd/var.h"
#include "yak/model/decoder.h"
#include "yak/train/lm_trainer.h"
#include "yak/train/rm_trainer.h"

namespace yak::train {

struct DpoOptions {
  double beta = 0.1;
  double label_smoothing = 0.0;  // cDPO
  bool ipo = false;
  double nll_loss_coef = 0.0;  // + coef * mean token NLL of the chosen responses
};

struct DpoResult {
  LmTrainResult losses;
  // Held-out preference accuracy: share of pairs whose implicit reward
  // beta * (log pi - log ref) is higher for the chosen response (NaN: no eval pairs).
  double eval_accuracy = 0;
  // The same preference read from the policy alone (log pi(chosen) > log pi(rejected)), before
  // and after training.
  double policy_preference_before = 0, policy_preference_after = 0;
};

// Sum of log-probabilities of each sample's target tokens (loss_mask 1), as a Var [n]; also the
// number of target tokens of each sample.
ag::Var sequence_logps(model::DecoderModel& model, std::span<const Sample* const> samples,
                       std::unique_ptr<model::KVCache>& cache, std::vector<int64_t>* counts = nullptr);
// The same without a tape, in batches of 16 sequences.
std::vector<float> sequence_logp_values(model::DecoderModel& model, std::span<const Sample* const> samples);
double policy_preference(model::DecoderModel& model, std::span<const PreferencePair> pairs);

// `reference` may be `policy` itself when it carries a LoRA adapter: the reference is then the
// base model (adapter off), as OpenRLHF does for LoRA DPO.
DpoResult train_dpo(model::DecoderModel& policy, model::DecoderModel& reference, std::span<const PreferencePair> train,
                    std::span<const PreferencePair> eval, const LmTrainOptions& o, const DpoOptions& d);

}  // namespace yak::train
