// Speculative decoding's acceptance rule (Leviathan, Kalman and Matias, "Fast Inference from
// Transformers via Speculative Decoding", 2023; Chen et al., "Accelerating Large Language Model
// Decoding with Speculative Sampling", 2023). A small draft model proposes K tokens one at a
// time, drawn from its distributions q_1..q_K; the target scores all of them in one forward of
// K+1 rows, giving p_1..p_{K+1}. Draft i is kept with probability min(1, p_i(x_i) / q_i(x_i));
// at the first rejection one token is drawn from the residual norm(max(0, p_i - q_i)) and the
// rest is dropped; when all K are kept, one more is drawn from p_{K+1}. Every token kept this
// way is distributed exactly as the target's own sampling, so the output does not depend on the
// draft, only the speed does. p and q are the *processed* distributions (penalties, temperature,
// top-k/p, min-p: what Sampler::sample would draw from), each seeing the drafted tokens before
// it as generated. Greedy sampling reduces to: keep drafts while they equal the target's argmax,
// then take the target's argmax — the tokens the target alone would pick.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "yak/infer/engine.h"

namespace yak::infer {

// The drafts of one sequence in one step, with the distribution each was drawn from.
class Drafts {
 public:
  void clear() { ids_.clear(); }
  void drop_last() { ids_.pop_back(); }
  size_t size() const { return ids_.size(); }
  bool empty() const { return ids_.empty(); }
  std::span<const int32_t> ids() const { return ids_; }
  // Draws the next draft for c from the draft model's logits row (processed in place), after
  // the drafts so far; uses c's random generator. With p_min > 0 the draft is proposed only when
  // the draft model is that sure of its next token (its largest processed probability; for
  // greedy sampling the softmax of the penalised logits): otherwise nothing is drawn and -1 is
  // returned (llama.cpp's --draft-p-min). The cut-off looks at the draft alone, so the output
  // law is unchanged; it only spares target rows a draft would likely waste.
  int32_t propose(Continuation& c, std::span<float> draft_row, float p_min = 0.0f);
  // Checks the drafts against the target: rows holds size() + 1 logits rows of `vocab` floats,
  // row i scored after the accepted tokens and drafts [0, i) (processed in place). Accepts the
  // kept drafts (one by one, so each row's penalties see the drafts before it) and the target's own next token into c (fewer once c ends: EOS, stop string,
  // length) and returns how many drafts were kept.
  size_t verify(Continuation& c, std::span<float> rows, size_t vocab);

 private:
  std::vector<int32_t> ids_;
  std::vector<float> q_;                               // draft probability of each id
  std::vector<std::vector<SamplerCandidate>> dists_;   // q_i over its surviving tokens
  std::vector<float> dense_;                           // q_i by id while a residual is built
  std::vector<SamplerCandidate> residual_;
};

}  // namespace yak::infer
