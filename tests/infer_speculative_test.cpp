// Speculative decoding's acceptance rule on hand-made logits rows: whatever the draft proposes,
// the tokens kept are distributed as the target's own sampling (chi-square over many seeds,
// against the target's probabilities computed here from its rows, with and without top-k so
// that draft and target may keep different tokens), and greedy decoding with penalties keeps
// exactly the tokens the target alone picks step by step. A control shows the same test rejects
// a rule that keeps every draft.
#include "yak/infer/speculative.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "chi_square.h"

namespace yak::infer {
namespace {

constexpr size_t V = 8;

// Logits rows of a made-up target and draft at each generated position (independent of the
// tokens before, so the target's law of the output is the product of its rows' distributions).
struct Rows {
  std::vector<std::vector<float>> target, draft;
  explicit Rows(uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> n(0.0f, 0.8f);
    for (int i = 0; i < 5; ++i) {
      target.emplace_back(V);
      draft.emplace_back(V);
      for (auto& x : target.back()) x = n(rng);
      // The draft is related to the target but visibly wrong.
      for (size_t j = 0; j < V; ++j) draft.back()[j] = 0.5f * target.back()[j] + n(rng);
    }
  }
  const std::vector<float>& t(size_t m) const { return target[m % target.size()]; }
  const std::vector<float>& d(size_t m) const { return draft[m % draft.size()]; }
};

GenerateRequest request(bool sample, int top_k, uint64_t seed) {
  GenerateRequest r;
  r.prompt = {0};
  r.max_new_tokens = 64;
  r.ignore_eos = true;
  r.sampling.do_sample = sample;
  r.sampling.temperature = 1.0f;
  r.sampling.top_k = top_k;
  r.sampling.seed = seed;
  return r;
}

// One speculative round of k drafts: returns how many were kept.
size_t round(Continuation& c, const Rows& rows, size_t k, Drafts& drafts) {
  const size_t m = c.generated().size();
  drafts.clear();
  for (size_t j = 0; j < k; ++j) {
    auto row = rows.d(m + j);
    drafts.propose(c, row);
  }
  std::vector<float> target;
  for (size_t j = 0; j <= k; ++j) target.insert(target.end(), rows.t(m + j).begin(), rows.t(m + j).end());
  return drafts.verify(c, target, V);
}

// The target's distribution at position m, as its sampler would draw (top-k applied).
std::vector<double> target_law(const Rows& rows, size_t m, int top_k) {
  GenerateRequest r = request(true, top_k, 0);
  Sampler s(r.sampling);
  auto row = rows.t(m);
  std::vector<double> p(V, 0.0);
  for (const auto& c : s.distribution(row, r.prompt, 0)) p[static_cast<size_t>(c.id)] = c.prob;
  return p;
}

using testing_stats::chi2_quantile;

// Pearson's statistic over the cells with positive expectation, and its degrees of freedom;
// a count in a cell of probability 0 is an outright failure (returned as infinity).
std::pair<double, double> chi2(const std::vector<double>& counts, const std::vector<double>& probs, double n) {
  double x = 0, df = -1;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0) {
      if (counts[i] > 0) return {INFINITY, 1};
      continue;
    }
    const double e = probs[i] * n;
    x += (counts[i] - e) * (counts[i] - e) / e;
    df += 1;
  }
  return {x, df};
}

void expect_target_law(int top_k) {
  const Rows rows(11);
  const int trials = 20000;
  const size_t k = 3;
  std::vector<double> first(V, 0), second(V, 0), third(V, 0), pair(V * V, 0);
  size_t kept = 0, proposed = 0;
  for (int t = 0; t < trials; ++t) {
    Continuation c(request(true, top_k, 1000 + static_cast<uint64_t>(t)), nullptr, {});
    Drafts drafts;
    while (c.generated().size() < 3) {
      kept += round(c, rows, k, drafts);
      proposed += k;
    }
    const auto& g = c.generated();
    first[static_cast<size_t>(g[0])] += 1;
    second[static_cast<size_t>(g[1])] += 1;
    third[static_cast<size_t>(g[2])] += 1;
    pair[static_cast<size_t>(g[0]) * V + static_cast<size_t>(g[1])] += 1;
  }
  const auto p0 = target_law(rows, 0, top_k), p1 = target_law(rows, 1, top_k), p2 = target_law(rows, 2, top_k);
  std::vector<double> p01(V * V);
  for (size_t a = 0; a < V; ++a)
    for (size_t b = 0; b < V; ++b) p01[a * V + b] = p0[a] * p1[b];
  const double z = 3.72;  // one in ten thousand
  struct Check {
    const char* name;
    const std::vector<double>* counts;
    const std::vector<double>* probs;
  };
  for (const Check& ch : {Check{"first", &first, &p0}, Check{"second", &second, &p1}, Check{"third", &third, &p2},
                          Check{"pair", &pair, &p01}}) {
    const auto [x, df] = chi2(*ch.counts, *ch.probs, trials);
    const char* name = ch.name;
    EXPECT_LT(x, chi2_quantile(df, z)) << name << " token: chi-square " << x << " on " << df << " degrees of freedom";
  }
  // Some drafts are kept and some are not: both branches of the rule ran.
  EXPECT_GT(kept, proposed / 10);
  EXPECT_LT(kept, proposed * 9 / 10);

  // Control: the draft's own law is far from the target's, so a rule that kept every draft
  // would fail the check above.
  std::vector<double> drafted(V, 0);
  for (int t = 0; t < trials; ++t) {
    Continuation c(request(true, top_k, 5000 + static_cast<uint64_t>(t)), nullptr, {});
    Drafts drafts;
    auto row = rows.d(0);
    drafted[static_cast<size_t>(drafts.propose(c, row))] += 1;
  }
  const auto [x, df] = chi2(drafted, p0, trials);
  EXPECT_GT(x, chi2_quantile(df, z)) << "the draft alone is indistinguishable from the target";
}

TEST(Speculative, SampledTokensFollowTheTargetsDistribution) {
  expect_target_law(0);
}

TEST(Speculative, SampledTokensFollowTheTargetsDistributionUnderTopK) {
  expect_target_law(3);  // draft and target keep different sets of three tokens
}

TEST(Speculative, GreedyKeepsExactlyTheTargetsTokensUnderPenalties) {
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    const Rows rows(seed);
    GenerateRequest r = request(false, 0, 0);
    r.max_new_tokens = 12;
    r.sampling.repetition_penalty = 1.4f;
    r.sampling.frequency_penalty = 0.3f;
    r.sampling.presence_penalty = 0.2f;
    // The target alone, one row per token.
    Continuation alone(r, nullptr, {});
    while (!alone.done()) {
      auto row = rows.t(alone.generated().size());
      alone.step(row);
    }
    // With drafts: some rounds keep drafts (the draft's argmax often agrees), some do not.
    Continuation spec(r, nullptr, {});
    Drafts drafts;
    size_t kept = 0;
    while (!spec.done()) {
      const size_t k = std::min<size_t>(1 + seed % 4, static_cast<size_t>(spec.remaining()) - 1);
      if (k == 0) {
        auto row = rows.t(spec.generated().size());
        spec.step(row);
        continue;
      }
      kept += round(spec, rows, k, drafts);
    }
    EXPECT_EQ(spec.generated(), alone.generated()) << "seed " << seed << ", " << kept << " drafts kept";
  }
}

TEST(Speculative, DraftsEqualToTheTargetAreAllKept) {
  // The target as its own draft: sampled drafts come from p itself, so p/q = 1 and all are kept.
  const Rows base(5);
  Rows same = base;
  same.draft = same.target;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Continuation c(request(true, 0, seed), nullptr, {});
    Drafts drafts;
    EXPECT_EQ(round(c, same, 4, drafts), 4u);
    EXPECT_EQ(c.generated().size(), 5u);  // four drafts and the target's own fifth token
  }
}

TEST(Speculative, StopsWhereTheSequenceEnds) {
  const Rows rows(3);
  Rows same = rows;
  same.draft = same.target;
  GenerateRequest r = request(false, 0, 0);
  r.max_new_tokens = 2;
  Continuation c(r, nullptr, {});
  Drafts drafts;
  // Four drafts, but the length limit ends the sequence after the second token.
  drafts.clear();
  for (size_t j = 0; j < 4; ++j) {
    auto row = same.d(j);
    drafts.propose(c, row);
  }
  std::vector<float> target;
  for (size_t j = 0; j <= 4; ++j) target.insert(target.end(), same.t(j).begin(), same.t(j).end());
  EXPECT_EQ(drafts.verify(c, target, V), 2u);
  EXPECT_TRUE(c.done());
  EXPECT_EQ(c.generated().size(), 2u);
  EXPECT_EQ(c.finish(), FinishReason::Length);
}

TEST(Speculative, ProposesOnlyWhenTheDraftIsSureEnough) {
  // The confidence is computed here from the row itself: the softmax of the argmax for greedy
  // sampling, the largest top-k probability (renormalised over the k kept) when sampling.
  std::mt19937 rng(77);
  std::normal_distribution<float> n(0.0f, 1.5f);
  for (const bool sample : {false, true}) {
    int proposed = 0, refused = 0;
    for (int t = 0; t < 400; ++t) {
      std::vector<float> row(V);
      for (auto& x : row) x = n(rng);
      const int top_k = sample ? 3 : 0;
      std::vector<double> e(row.begin(), row.end());
      std::sort(e.begin(), e.end(), std::greater<>());
      const size_t kept = sample ? 3 : V;
      double sum = 0;
      for (size_t i = 0; i < kept; ++i) sum += std::exp(e[i] - e[0]);
      const double conf = 1.0 / sum;
      const float p_min = 0.2f + 0.6f * static_cast<float>(t % 7) / 6.0f;
      if (std::abs(conf - p_min) < 1e-4) continue;  // too close to call in float
      Continuation c(request(sample, top_k, static_cast<uint64_t>(t)), nullptr, {});
      Drafts drafts;
      auto copy = row;
      const int32_t id = drafts.propose(c, copy, p_min);
      if (conf < p_min) {
        EXPECT_EQ(id, -1) << "confidence " << conf << " under " << p_min;
        EXPECT_TRUE(drafts.empty());
        ++refused;
      } else {
        EXPECT_GE(id, 0) << "confidence " << conf << " at least " << p_min;
        EXPECT_EQ(drafts.size(), 1u);
        if (!sample) EXPECT_EQ(id, static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin()));
        ++proposed;
      }
    }
    EXPECT_GT(proposed, 50);
    EXPECT_GT(refused, 50);
  }
}

}  // namespace
}  // namespace yak::infer
