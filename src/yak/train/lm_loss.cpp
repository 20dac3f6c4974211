#include "yak/train/lm_loss.h"

#include "yak/autograd/functions.h"
#include "yak/base/error.h"

namespace yak::train {

int64_t count_targets(const std::vector<LmSequence>& seqs) {
  int64_t n = 0;
  for (auto& s : seqs)
    for (size_t t = 1; t < s.labels.size(); ++t) n += s.labels[t] != kIgnoreIndex;
  return n;
}

LmLoss lm_loss(model::DecoderModel& model, const std::vector<LmSequence>& seqs, model::KVCache& cache) {
  check(static_cast<int64_t>(seqs.size()) <= cache.slots(), "lm_loss: more sequences than cache slots");
  model::Batch batch;
  std::vector<int32_t> targets;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto& s = seqs[i];
    check(s.ids.size() == s.labels.size(), "lm_loss: ids and labels differ in length");
    for (size_t t = 0; t < s.ids.size(); ++t) {
      batch.ids.push_back(s.ids[t]);
      batch.pos.push_back(static_cast<int32_t>(t));
      batch.slot.push_back(static_cast<int32_t>(i));
      batch.logits_for.push_back(static_cast<int32_t>(batch.ids.size() - 1));
      targets.push_back(t + 1 < s.labels.size() ? s.labels[t + 1] : kIgnoreIndex);
    }
  }
  return lm_loss(model, batch, targets, cache);
}

LmLoss lm_loss(model::DecoderModel& model, const model::Batch& batch, std::span<const int32_t> targets,
               model::KVCache& cache) {
  check(!batch.ids.empty(), "lm_loss: the batch has no tokens");
  check(targets.size() == batch.ids.size(), "lm_loss: one target per token expected");
  int64_t n = 0;
  for (auto t : targets) n += t != kIgnoreIndex;
  ag::Var logits = model.forward_var(all_positions(batch), cache);
  return {ag::cross_entropy_sum(logits, targets, kIgnoreIndex), n, logits};
}

model::Batch all_positions(const model::Batch& batch) {
  model::Batch all = batch;
  all.logits_for.resize(batch.ids.size());
  for (size_t t = 0; t < all.logits_for.size(); ++t) all.logits_for[t] = static_cast<int32_t>(t);
  return all;
}

}  // namespace yak::train
