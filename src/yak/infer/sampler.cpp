// Sampler: transformers' logits processors and warpers (repetition penalty, temperature, top-k,
// top-p, min-p, in generate()'s order) plus OpenAI's frequency/presence penalties, then a draw.
// Warpers work on a shrinking candidate list, so a 152k vocabulary never gets a full sort.
#include "yak/infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

namespace yak::infer {

namespace {

using Cand = SamplerCandidate;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Descending logit; ties by ascending id. torch.sort (used by TopPLogitsWarper) is not stable,
// so transformers' choice among tied tokens at the top-p cut is arbitrary; we fix it this way.
bool ranks_before(const Cand& a, const Cand& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

void all_candidates(std::span<const float> logits, std::vector<Cand>& out) {
  out.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = {logits[i], 0.0f, static_cast<int32_t>(i)};
}

// torch's softmax over the candidates: exp(x - max) * (1 / sum). Returns false if all are -inf.
bool softmax_candidates(std::vector<Cand>& c) {
  float m = kNegInf;
  for (const Cand& x : c) m = std::max(m, x.logit);
  if (m == kNegInf) {
    for (Cand& x : c) x.prob = 0.0f;
    return false;
  }
  double z = 0.0;
  for (Cand& x : c) x.prob = std::exp(x.logit - m);
  for (const Cand& x : c) z += x.prob;
  const float inv = 1.0f / static_cast<float>(z);
  for (Cand& x : c) x.prob *= inv;
  return true;
}

// TopKLogitsWarper: keep logit >= k-th largest. A min-heap of size k rejects most of a large
// vocabulary with a single comparison.
void select_top_k(std::span<const float> logits, int top_k, std::vector<Cand>& out, std::vector<float>& heap) {
  const size_t v = logits.size();
  if (top_k <= 0 || static_cast<size_t>(top_k) >= v) {
    all_candidates(logits, out);
    return;
  }
  const size_t k = static_cast<size_t>(top_k);
  float kth;
  if (k <= 4096) {
    heap.assign(logits.begin(), logits.begin() + k);
    std::make_heap(heap.begin(), heap.end(), std::greater<float>());
    for (size_t i = k; i < v; ++i) {
      const float x = logits[i];
      if (x > heap.front()) {
        std::pop_heap(heap.begin(), heap.end(), std::greater<float>());
        heap.back() = x;
        std::push_heap(heap.begin(), heap.end(), std::greater<float>());
      }
    }
    kth = heap.front();
  } else {
    heap.assign(logits.begin(), logits.end());
    std::nth_element(heap.begin(), heap.begin() + (k - 1), heap.end(), std::greater<float>());
    kth = heap[k - 1];
  }
  out.clear();
  for (size_t i = 0; i < v; ++i)
    if (logits[i] >= kth) out.push_back({logits[i], 0.0f, static_cast<int32_t>(i)});
}

// TopPLogitsWarper. transformers sorts ascending, takes c = cumsum(softmax) and removes tokens
// with c <= 1 - top_p, keeping the last (largest) one. In descending order that is: keep token i
// while S - A_i > 1 - top_p, where A_i is the mass ranked before it and S the total. Only tokens
// in the value buckets that reach top_p mass (plus a margin) are sorted; the rest cannot survive.
void filter_top_p(std::vector<Cand>& c, float top_p, std::vector<Cand>& tmp) {
  if (!(top_p < 1.0f) || c.size() <= 1) return;
  if (!softmax_candidates(c)) return;
  float m = kNegInf;
  for (const Cand& x : c) m = std::max(m, x.logit);
  constexpr int kBuckets = 256;
  constexpr float kPerLogit = 8.0f;  // bucket width 1/8 logit; the last bucket takes the tail
  auto bucket = [&](float logit) {
    const float d = (m - logit) * kPerLogit;
    return d < static_cast<float>(kBuckets - 1) ? static_cast<int>(d) : kBuckets - 1;
  };
  double mass[kBuckets] = {};
  double total = 0.0;
  for (const Cand& x : c) {
    total += x.prob;
    mass[bucket(x.logit)] += x.prob;
  }
  int last = kBuckets - 1;
  double cum = 0.0;
  for (int b = 0; b < kBuckets; ++b) {
    cum += mass[b];
    if (cum >= static_cast<double>(top_p) + 1e-4) {
      last = b;
      break;
    }
  }
  tmp.clear();
  for (const Cand& x : c)
    if (bucket(x.logit) <= last) tmp.push_back(x);
  std::sort(tmp.begin(), tmp.end(), ranks_before);
  // torch compares float32 cumsums with the Python float 1 - top_p cast to float32.
  const float threshold = static_cast<float>(1.0 - static_cast<double>(top_p));
  double above = 0.0;
  size_t keep = 0;
  for (size_t i = 0; i < tmp.size(); ++i) {
    if (i > 0 && !(static_cast<float>(total - above) > threshold)) break;
    above += tmp[i].prob;
    keep = i + 1;
  }
  tmp.resize(keep);
  c.swap(tmp);
}

// MinPLogitsWarper: remove prob < min_p * max prob (float32 like torch); the top token stays.
void filter_min_p(std::vector<Cand>& c, float min_p) {
  if (!(min_p > 0.0f) || c.size() <= 1) return;
  if (!softmax_candidates(c)) return;
  size_t top = 0;
  for (size_t i = 1; i < c.size(); ++i)
    if (c[i].prob > c[top].prob) top = i;
  const float threshold = min_p * c[top].prob;
  size_t n = 0;
  for (size_t i = 0; i < c.size(); ++i)
    if (i == top || !(c[i].prob < threshold)) c[n++] = c[i];
  c.resize(n);
}

// Writes the survivors back over a row of -inf.
void write_back(std::span<float> logits, const std::vector<Cand>& c) {
  if (c.size() == logits.size()) return;
  std::fill(logits.begin(), logits.end(), kNegInf);
  for (const Cand& x : c) logits[x.id] = x.logit;
}

}  // namespace

namespace {

// The penalty steps over a caller's scratch vector (the Sampler's, so no allocation per token).
void repetition_penalty(std::span<float> logits, std::span<const int32_t> ids, float penalty, std::vector<int32_t>& u) {
  if (penalty == 1.0f || ids.empty()) return;
  // Distinct ids, each penalized once: a sorted copy is cheaper than a vocab-sized mask.
  if (u.capacity() < ids.size()) u.reserve(2 * ids.size());  // geometric: history grows a token a step
  u.assign(ids.begin(), ids.end());
  std::sort(u.begin(), u.end());
  u.erase(std::unique(u.begin(), u.end()), u.end());
  const int64_t v = static_cast<int64_t>(logits.size());
  for (int32_t id : u) {
    if (id < 0 || id >= v) continue;
    float& x = logits[id];
    x = x < 0.0f ? x * penalty : x / penalty;
  }
}

void frequency_presence(std::span<float> logits, std::span<const int32_t> generated, float frequency_penalty,
                        float presence_penalty, std::vector<int32_t>& u) {
  if ((frequency_penalty == 0.0f && presence_penalty == 0.0f) || generated.empty()) return;
  if (u.capacity() < generated.size()) u.reserve(2 * generated.size());
  u.assign(generated.begin(), generated.end());
  std::sort(u.begin(), u.end());
  const int64_t v = static_cast<int64_t>(logits.size());
  for (size_t i = 0; i < u.size();) {
    size_t j = i;
    while (j < u.size() && u[j] == u[i]) ++j;
    const int32_t id = u[i];
    if (id >= 0 && id < v) {
      const float count = static_cast<float>(j - i);
      logits[id] -= count * frequency_penalty + presence_penalty;
    }
    i = j;
  }
}

void penalties(std::span<float> logits, std::span<const int32_t> history, size_t n_generated, const SamplingParams& p,
               std::vector<int32_t>& scratch) {
  repetition_penalty(logits, history, p.repetition_penalty, scratch);
  const size_t n = std::min(n_generated, history.size());
  frequency_presence(logits, history.subspan(history.size() - n), p.frequency_penalty, p.presence_penalty, scratch);
}

}  // namespace

void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> ids, float penalty) {
  std::vector<int32_t> u;
  repetition_penalty(logits, ids, penalty, u);
}

void apply_frequency_presence(std::span<float> logits, std::span<const int32_t> generated, float frequency_penalty,
                              float presence_penalty) {
  std::vector<int32_t> u;
  frequency_presence(logits, generated, frequency_penalty, presence_penalty, u);
}

void apply_penalties(std::span<float> logits, std::span<const int32_t> history, size_t n_generated,
                     const SamplingParams& p) {
  std::vector<int32_t> u;
  penalties(logits, history, n_generated, p, u);
}

void apply_temperature(std::span<float> logits, float temperature) {
  if (temperature == 1.0f || !(temperature > 0.0f)) return;
  for (float& x : logits) x /= temperature;
}

void apply_top_k(std::span<float> logits, int top_k) {
  std::vector<Cand> c;
  std::vector<float> heap;
  select_top_k(logits, top_k, c, heap);
  write_back(logits, c);
}

void apply_top_p(std::span<float> logits, float top_p) {
  std::vector<Cand> c, tmp;
  all_candidates(logits, c);
  filter_top_p(c, top_p, tmp);
  write_back(logits, c);
}

void apply_min_p(std::span<float> logits, float min_p) {
  std::vector<Cand> c;
  all_candidates(logits, c);
  filter_min_p(c, min_p);
  write_back(logits, c);
}

void process_logits(std::span<float> logits, std::span<const int32_t> history, size_t n_generated,
                    const SamplingParams& p) {
  apply_penalties(logits, history, n_generated, p);
  if (p.greedy()) return;
  apply_temperature(logits, p.temperature);
  if (p.top_k > 0) apply_top_k(logits, p.top_k);
  apply_top_p(logits, p.top_p);
  apply_min_p(logits, p.min_p);
}

void softmax(std::span<const float> logits, std::span<float> probs) {
  float m = kNegInf;
  for (float x : logits) m = std::max(m, x);
  if (m == kNegInf) {
    std::fill(probs.begin(), probs.end(), 0.0f);
    return;
  }
  double z = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) probs[i] = std::exp(logits[i] - m);
  for (size_t i = 0; i < logits.size(); ++i) z += probs[i];
  const float inv = 1.0f / static_cast<float>(z);
  for (size_t i = 0; i < logits.size(); ++i) probs[i] *= inv;
}

int32_t argmax(std::span<const float> logits) {
  // NaN compares false, so it is skipped; an all -inf row gives 0.
  int32_t best = 0;
  float bv = kNegInf;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] > bv) {
      bv = logits[i];
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> history, size_t n_generated) {
  if (logits.empty()) return 0;
  return choose(distribution(logits, history, n_generated), logits);
}

int32_t Sampler::choose(std::span<const SamplerCandidate> c, std::span<const float> logits) {
  if (c.empty()) return argmax(logits);  // every token removed
  if (params_.greedy()) return c.front().id;
  return draw(c);
}

std::span<const SamplerCandidate> Sampler::distribution(std::span<float> logits, std::span<const int32_t> history,
                                                        size_t n_generated) {
  cand_.clear();
  if (logits.empty()) return cand_;
  penalties(logits, history, n_generated, params_, ids_);
  if (params_.greedy()) {
    const int32_t id = argmax(logits);
    cand_.push_back({logits[static_cast<size_t>(id)], 1.0f, id});
    return cand_;
  }
  if (cand_.capacity() < logits.size()) {  // once: the candidate lists never grow after this
    cand_.reserve(logits.size());
    tmp_.reserve(logits.size());
    heap_.reserve(logits.size());
  }
  apply_temperature(logits, params_.temperature);
  select_top_k(logits, params_.top_k, cand_, heap_);
  filter_top_p(cand_, params_.top_p, tmp_);
  filter_min_p(cand_, params_.min_p);
  write_back(logits, cand_);
  if (!softmax_candidates(cand_)) cand_.clear();  // every token removed: the caller takes the argmax
  return cand_;
}

double Sampler::uniform() {
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

int32_t Sampler::draw(std::span<const SamplerCandidate> c) {
  // The uniform comes from our own mt19937_64, so a seed reproduces tokens (but not torch's RNG
  // stream). Weights need not sum to one.
  double total = 0.0;
  for (const Cand& x : c) total += x.prob;
  const double r = uniform() * total;
  double cum = 0.0;
  int32_t last = c.empty() ? 0 : c.front().id;
  for (const Cand& x : c) {
    if (x.prob <= 0.0f) continue;
    cum += x.prob;
    last = x.id;
    if (cum > r) return x.id;
  }
  return last;
}

}  // namespace yak::infer
