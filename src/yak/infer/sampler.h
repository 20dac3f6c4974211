// Token selection from one row of logits: greedy, or sampling with temperature, top-k, top-p,
// min-p (transformers semantics), repetition penalty (transformers), frequency and presence
// penalties (OpenAI). Each sequence owns a Sampler, so a seed reproduces its tokens exactly.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "yak/io/hf_config.h"

namespace yak::infer {

struct SamplingParams {
  bool do_sample = false;           // false: greedy (argmax after penalties)
  float temperature = 1.0f;         // <= 0 forces greedy
  int top_k = 0;                    // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // 1: off; applied over prompt + generated ids
  float frequency_penalty = 0.0f;   // 0: off; over generated ids only
  float presence_penalty = 0.0f;    // 0: off; over generated ids only
  uint64_t seed = 0;
  bool greedy() const { return !do_sample || temperature <= 0.0f; }
};

// The checkpoint's generation_config.json as sampling settings (what `yak generate` and `yak
// serve` start from before their flags or request fields).
inline SamplingParams sampling_defaults(const io::GenerationDefaults& d) {
  SamplingParams p;
  p.do_sample = d.do_sample.value_or(false);
  if (d.temperature) p.temperature = static_cast<float>(*d.temperature);
  if (d.top_k) p.top_k = static_cast<int>(*d.top_k);
  if (d.top_p) p.top_p = static_cast<float>(*d.top_p);
  if (d.min_p) p.min_p = static_cast<float>(*d.min_p);
  if (d.repetition_penalty) p.repetition_penalty = static_cast<float>(*d.repetition_penalty);
  return p;
}

// One surviving token while the warpers narrow the row down (internal to the sampler).
struct SamplerCandidate {
  float logit;
  float prob;
  int32_t id;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // logits is modified in place: afterwards it holds the processed row that the token was drawn
  // from (penalties and warpers applied, removed tokens at -inf), as transformers' `scores`.
  // history = prompt ids followed by generated ids; the last n_generated of them were generated.
  int32_t sample(std::span<float> logits, std::span<const int32_t> history, size_t n_generated);
  // What sample() draws from: processes the row the same way and returns the surviving tokens
  // with their probabilities (summing to one; greedy: the argmax alone with probability 1; empty
  // when every token was removed). Valid until the next call. Speculative decoding compares
  // these distributions between a draft and the target.
  std::span<const SamplerCandidate> distribution(std::span<float> logits, std::span<const int32_t> history,
                                                 size_t n_generated);
  // The token sample() picks from a distribution() of the row `logits` (as processed by it):
  // the argmax when nothing survived, the greedy choice, or a draw.
  int32_t choose(std::span<const SamplerCandidate> candidates, std::span<const float> logits);
  // One token drawn from candidates weighted by prob (one uniform from the generator).
  int32_t draw(std::span<const SamplerCandidate> candidates);
  // A uniform number in [0, 1) from the sequence's generator.
  double uniform();
  const SamplingParams& params() const { return params_; }
  // Room for a history of n ids, so that sampling never allocates while a sequence grows to n.
  void reserve(size_t n) { ids_.reserve(n); }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  // Scratch reused across calls so a 152k vocabulary costs no allocation per token.
  std::vector<SamplerCandidate> cand_, tmp_;
  std::vector<float> heap_;
  std::vector<int32_t> ids_;
};

// The steps of Sampler::sample, one function each, over a whole row (removed tokens become
// -inf). They are what the sampler runs, exposed so tests can check each one against
// transformers. Ids outside [0, logits.size()) are ignored.

// transformers' RepetitionPenaltyLogitsProcessor: each distinct id in `ids` once,
// logit < 0 ? logit * penalty : logit / penalty.
void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> ids, float penalty);
// OpenAI: logit[j] -= count[j] * frequency_penalty + (count[j] > 0) * presence_penalty, counts
// over `generated` only.
void apply_frequency_presence(std::span<float> logits, std::span<const int32_t> generated, float frequency_penalty,
                              float presence_penalty);
// Both penalty steps in the sampler's order: repetition, then frequency/presence.
void apply_penalties(std::span<float> logits, std::span<const int32_t> history, size_t n_generated,
                     const SamplingParams& params);
void apply_temperature(std::span<float> logits, float temperature);
// Keeps every token >= the k-th largest logit (ties at the cut are all kept, as transformers).
void apply_top_k(std::span<float> logits, int top_k);
// transformers' TopPLogitsWarper: keeps the tokens whose probability mass strictly above them
// (in descending order) is < top_p; the top token always stays. Ties at the cut: lower id first.
void apply_top_p(std::span<float> logits, float top_p);
// transformers' MinPLogitsWarper: removes tokens with prob < min_p * max prob.
void apply_min_p(std::span<float> logits, float min_p);
// Everything Sampler::sample does to the row before drawing: penalties, then (only when
// !params.greedy()) temperature, top-k, top-p, min-p in the order of transformers' generate().
void process_logits(std::span<float> logits, std::span<const int32_t> history, size_t n_generated,
                    const SamplingParams& params);
// softmax like torch: exp(x - max) * (1 / sum); an all -inf row gives all zeros.
void softmax(std::span<const float> logits, std::span<float> probs);
// First index of the largest logit (torch.argmax); NaNs are skipped.
int32_t argmax(std::span<const float> logits);

}  // namespace yak::infer
