#include "yak/infer/speculative.h"

#include <algorithm>
#include <cmath>

#include "yak/base/error.h"

namespace yak::infer {

namespace {
// Probability of id in a candidate list (0 when it did not survive).
float prob_of(std::span<const SamplerCandidate> c, int32_t id) {
  for (const auto& x : c)
    if (x.id == id) return x.prob;
  return 0.0f;
}

// How sure the draft is of its next token: q's largest probability, or for a greedy (one-token)
// distribution the softmax probability of the argmax over the processed logits.
float confidence(std::span<const SamplerCandidate> q, std::span<const float> row, bool greedy) {
  if (!greedy) {
    float best = 0.0f;
    for (const auto& x : q) best = std::max(best, x.prob);
    return best;
  }
  const float top = *std::max_element(row.begin(), row.end());
  double sum = 0.0;
  for (const float v : row) sum += std::exp(static_cast<double>(v - top));
  return static_cast<float>(1.0 / sum);
}
}  // namespace

int32_t Drafts::propose(Continuation& c, std::span<float> draft_row, float p_min) {
  const auto q = c.distribution(draft_row, ids_);
  if (p_min > 0.0f && (q.empty() || confidence(q, draft_row, c.sampler().params().greedy()) < p_min)) return -1;
  const size_t i = ids_.size();
  if (dists_.size() <= i) dists_.resize(i + 1);
  auto& dist = dists_[i];
  const int32_t id = c.sampler().choose(q, draft_row);
  if (q.empty())
    dist.assign(1, SamplerCandidate{draft_row[static_cast<size_t>(id)], 1.0f, id});
  else
    dist.assign(q.begin(), q.end());
  ids_.push_back(id);
  q_.resize(ids_.size());
  q_[i] = prob_of(dist, id);
  return id;
}

size_t Drafts::verify(Continuation& c, std::span<float> rows, size_t vocab) {
  const size_t k = ids_.size();
  check(rows.size() == (k + 1) * vocab, "Drafts::verify: expected one target row per draft plus one");
  const bool greedy = c.sampler().params().greedy();
  for (size_t i = 0; i < k; ++i) {
    auto row = rows.subspan(i * vocab, vocab);
    const auto p = c.distribution(row, {});  // c already holds the drafts before this one
    const int32_t x = ids_[i];
    if (greedy || p.size() <= 1) {
      // A one-token distribution keeps x exactly when it is x, else gives its own token.
      const int32_t y = c.sampler().choose(p, row);
      c.accept(y);
      if (y != x) return i;
      if (c.done()) return i + 1;
      continue;
    }
    if (c.sampler().uniform() * q_[i] < prob_of(p, x)) {
      c.accept(x);
      if (c.done()) return i + 1;
      continue;
    }
    // Residual max(0, p - q) over p's survivors (q is zero elsewhere).
    if (dense_.size() < vocab) dense_.assign(vocab, 0.0f);
    for (const auto& e : dists_[i])
      if (static_cast<size_t>(e.id) < vocab) dense_[static_cast<size_t>(e.id)] = e.prob;
    residual_.assign(p.begin(), p.end());
    double mass = 0;
    for (auto& e : residual_) {
      e.prob = std::max(0.0f, e.prob - dense_[static_cast<size_t>(e.id)]);
      mass += e.prob;
    }
    for (const auto& e : dists_[i])
      if (static_cast<size_t>(e.id) < vocab) dense_[static_cast<size_t>(e.id)] = 0.0f;
    // p == q up to rounding: the residual is empty, and p itself is the right law.
    const int32_t y = mass > 0 ? c.sampler().draw(residual_) : c.sampler().draw(p);
    c.accept(y);
    return i;
  }
  auto row = rows.subspan(k * vocab, vocab);
  c.accept(c.sampler().choose(c.distribution(row, {}), row));
  return k;
}

}  // namespace yak::infer
