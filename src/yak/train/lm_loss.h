// Causal language-model loss over a ragged batch: every sequence is its own slot with positions
// from 0, so sequences (or samples packed into one row) never attend to each other.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "yak/autograd/var.h"
#include "yak/model/decoder.h"

namespace yak::train {

constexpr int32_t kIgnoreIndex = -100;

// labels[t] is the token expected at position t (transformers' convention: the model's logits at
// t-1 predict labels[t]); kIgnoreIndex excludes a position (prompt tokens) from the loss.
struct LmSequence {
  std::vector<int32_t> ids;
  std::vector<int32_t> labels;
};

struct LmLoss {
  ag::Var sum;            // Σ token cross-entropy over counted targets (one element)
  int64_t n_targets = 0;  // counted targets
  ag::Var logits;         // [tokens, vocab]: the logits of every position (for distillation)
};

// The batch with logits asked at every position.
model::Batch all_positions(const model::Batch& batch);

// One forward over all sequences. `cache` must have a slot per sequence and room for the longest;
// keep it alive until the tape's backward ran.
LmLoss lm_loss(model::DecoderModel& model, const std::vector<LmSequence>& seqs, model::KVCache& cache);

// The same over a batch already laid out for the engine: targets[t] is the token logits[t] must
// predict, or kIgnoreIndex.
LmLoss lm_loss(model::DecoderModel& model, const model::Batch& batch, std::span<const int32_t> targets,
               model::KVCache& cache);

// Number of counted targets (labels after the first position that are not ignored).
int64_t count_targets(const std::vector<LmSequence>& seqs);

}  // namespace yak::train
