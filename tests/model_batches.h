// Shared by the model tests: one prompt as a batch (logits at every position), and the training
// golden's batch (tests/golden/train/<model>/batch.json) laid out as the trainers lay it out —
// one cache slot per sequence, next-token targets, -100 where the label masks a token.
#pragma once
#include <filesystem>
#include <vector>

#include "yak/base/json.h"
#include "yak/model/decoder.h"

namespace yak::testing_util {

// Prompt p alone in slot 0, asking for the output of every position or of the last one only.
inline model::Batch sequence_batch(const std::vector<int32_t>& p, bool every_position) {
  model::Batch b;
  for (size_t t = 0; t < p.size(); ++t) {
    b.ids.push_back(p[t]);
    b.pos.push_back(static_cast<int32_t>(t));
    b.slot.push_back(0);
    if (every_position || t + 1 == p.size()) b.logits_for.push_back(static_cast<int32_t>(t));
  }
  return b;
}

// Logits of every position of prompt p, alone in a fresh cache.
inline Tensor logits_of(model::DecoderModel& m, const std::vector<int32_t>& p) {
  model::KVCache cache(m.config(), 1, static_cast<int64_t>(p.size()));
  return m.forward(sequence_batch(p, true), cache);
}

struct TrainBatch {
  model::Batch batch;
  std::vector<int32_t> targets;
  int64_t slots = 0, longest = 0, n_targets = 0;
};

inline TrainBatch golden_train_batch(const std::filesystem::path& batch_json) {
  const Json batch = read_json_file(batch_json);
  TrainBatch r;
  for (size_t s = 0; s < batch["sequences"].size(); ++s, ++r.slots) {
    auto ids = batch["sequences"][s].get<std::vector<int32_t>>();
    auto labels = batch["labels"][s].get<std::vector<int32_t>>();
    r.longest = std::max<int64_t>(r.longest, static_cast<int64_t>(ids.size()));
    for (size_t t = 0; t < ids.size(); ++t) {
      r.batch.ids.push_back(ids[t]);
      r.batch.pos.push_back(static_cast<int32_t>(t));
      r.batch.slot.push_back(static_cast<int32_t>(r.slots));
      r.batch.logits_for.push_back(static_cast<int32_t>(r.batch.ids.size() - 1));
      r.targets.push_back(t + 1 < ids.size() ? labels[t + 1] : -100);
      r.n_targets += t + 1 < ids.size() && labels[t + 1] != -100;
    }
  }
  return r;
}

}  // namespace yak::testing_util
