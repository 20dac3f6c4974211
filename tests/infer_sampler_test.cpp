// Sampler against transformers' processors/warpers (goldens from
// tools/golden/make_sampler_goldens.py) and statistical checks of the draw itself.
#include "yak/infer/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace yak::infer {
namespace {

using nlohmann::json;
constexpr float kInf = std::numeric_limits<float>::infinity();

json load_goldens() {
  std::ifstream f(std::string(YAK_GOLDEN_DIR) + "/sampler/processors.json");
  if (!f) return json();
  return json::parse(f);
}

const json& goldens() {
  static const json j = load_goldens();
  return j;
}

// "-inf" is how the goldens write a removed token.
std::vector<float> floats(const json& a) {
  std::vector<float> v;
  v.reserve(a.size());
  for (const json& x : a) v.push_back(x.is_string() ? -kInf : static_cast<float>(x.get<double>()));
  return v;
}

SamplingParams params_of(const json& p, uint64_t seed = 0) {
  SamplingParams s;
  s.do_sample = p.at("do_sample").get<bool>();
  s.temperature = static_cast<float>(p.at("temperature").get<double>());
  s.top_k = p.at("top_k").get<int>();
  s.top_p = static_cast<float>(p.at("top_p").get<double>());
  s.min_p = static_cast<float>(p.at("min_p").get<double>());
  s.repetition_penalty = static_cast<float>(p.at("repetition_penalty").get<double>());
  s.frequency_penalty = static_cast<float>(p.at("frequency_penalty").get<double>());
  s.presence_penalty = static_cast<float>(p.at("presence_penalty").get<double>());
  s.seed = seed;
  return s;
}

struct Case {
  std::string name;
  SamplingParams params;
  std::vector<float> logits, processed, probs;
  std::vector<int32_t> history;
  size_t n_generated;
  int32_t argmax;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  const json& g = goldens();
  if (g.is_null()) return out;
  for (const json& c : g.at("cases")) {
    Case k;
    k.name = c.at("name").get<std::string>();
    k.params = params_of(c.at("params"));
    k.logits = floats(g.at("rows").at(c.at("row").get<std::string>()));
    k.processed = floats(c.at("processed"));
    k.probs = floats(c.at("probs"));
    k.history = c.at("history").get<std::vector<int32_t>>();
    k.n_generated = c.at("n_generated").get<size_t>();
    k.argmax = c.at("argmax").get<int32_t>();
    out.push_back(std::move(k));
  }
  return out;
}

const Case* find_case(const std::vector<Case>& all, const std::string& name) {
  for (const Case& c : all)
    if (c.name == name) return &c;
  return nullptr;
}

#define REQUIRE_GOLDENS(all)                      \
  if ((all).empty())                              \
  GTEST_SKIP() << "no goldens at " YAK_GOLDEN_DIR \
                  "/sampler/processors.json "     \
                  "(run tools/golden/make_sampler_goldens.py)"

// Removed tokens must match exactly; kept logits to 1e-6 relative (they go through the same
// float32 operations as torch, so in practice they are bit-equal).
void expect_logits_eq(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < want.size() && bad < 5; ++i) {
    if (std::isinf(want[i]) || std::isinf(got[i])) {
      if (got[i] != want[i]) {
        ADD_FAILURE() << what << ": token " << i << " got " << got[i] << " want " << want[i];
        ++bad;
      }
    } else if (std::abs(got[i] - want[i]) > 1e-6f * std::max(1.0f, std::abs(want[i]))) {
      ADD_FAILURE() << what << ": token " << i << " got " << got[i] << " want " << want[i];
      ++bad;
    }
  }
}

TEST(SamplerGolden, ProcessLogitsMatchesTransformers) {
  const std::vector<Case> all = cases();
  REQUIRE_GOLDENS(all);
  EXPECT_GE(all.size(), 40u);
  for (const Case& c : all) {
    std::vector<float> x = c.logits;
    process_logits(x, c.history, c.n_generated, c.params);
    expect_logits_eq(x, c.processed, c.name + " processed");
    std::vector<float> p(x.size());
    softmax(x, p);
    for (size_t i = 0; i < p.size(); ++i) ASSERT_NEAR(p[i], c.probs[i], 1e-6) << c.name << " prob of token " << i;
  }
}

TEST(SamplerGolden, SampleLeavesProcessedRowAndDrawsAKeptToken) {
  const std::vector<Case> all = cases();
  REQUIRE_GOLDENS(all);
  for (const Case& c : all) {
    std::vector<float> x = c.logits;
    SamplingParams p = c.params;
    p.seed = 7;
    Sampler s(p);
    const int32_t t = s.sample(x, c.history, c.n_generated);
    expect_logits_eq(x, c.processed, c.name + " after sample()");
    ASSERT_GE(t, 0);
    ASSERT_LT(t, static_cast<int32_t>(x.size()));
    if (p.greedy())
      EXPECT_EQ(t, c.argmax) << c.name;
    else
      EXPECT_GT(c.probs[t], 0.0f) << c.name << " drew removed token " << t;
  }
}

// 20000 draws: every token's frequency within 5 standard errors of its golden probability,
// and tokens removed by top-k/top-p/min-p never drawn.
TEST(SamplerGolden, EmpiricalFrequenciesMatchProbabilities) {
  const std::vector<Case> all = cases();
  REQUIRE_GOLDENS(all);
  for (const char* name :
       {"normal/topp", "normal/all", "flat/temp_topk", "ties/topk_small", "masked/minp", "normal/freq_pres"}) {
    const Case* c = find_case(all, name);
    ASSERT_NE(c, nullptr) << name;
    SamplingParams p = c->params;
    p.seed = 12345;
    Sampler s(p);
    constexpr int kDraws = 20000;
    std::vector<int> counts(c->logits.size(), 0);
    for (int i = 0; i < kDraws; ++i) {
      std::vector<float> x = c->logits;
      ++counts[s.sample(x, c->history, c->n_generated)];
    }
    for (size_t t = 0; t < counts.size(); ++t) {
      const double pt = c->probs[t];
      if (pt == 0.0) {
        EXPECT_EQ(counts[t], 0) << name << ": removed token " << t << " was drawn";
        continue;
      }
      const double freq = static_cast<double>(counts[t]) / kDraws;
      const double se = std::sqrt(pt * (1.0 - pt) / kDraws);
      EXPECT_NEAR(freq, pt, 5.0 * se + 1e-12) << name << ": token " << t;
    }
  }
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  std::mt19937 gen(3);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  std::vector<float> row(5000);
  for (float& x : row) x = nd(gen);
  SamplingParams p;
  p.do_sample = true;
  p.temperature = 1.2f;
  p.top_p = 0.95f;
  auto run = [&](uint64_t seed) {
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 300; ++i) {
      std::vector<float> x = row;
      out.push_back(s.sample(x, {}, 0));
    }
    return out;
  };
  const auto a = run(42), b = run(42), c = run(43);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
  std::vector<float> x = {1.0f, 3.0f, -2.0f, 3.0f, 2.5f};
  EXPECT_EQ(argmax(x), 1);
  SamplingParams p;  // do_sample = false
  Sampler s(p);
  std::vector<float> y = x;
  EXPECT_EQ(s.sample(y, {}, 0), 1);
  EXPECT_EQ(y, x);  // greedy without penalties leaves the row alone
  SamplingParams q;
  q.do_sample = true;
  q.temperature = 0.0f;  // temperature 0 forces greedy
  Sampler s2(q);
  y = x;
  EXPECT_EQ(s2.sample(y, {}, 0), 1);
  // The penalty moves the argmax: 3 / 2 = 1.5 for id 1 and 3, so id 4 (2.5) wins.
  SamplingParams r;
  r.repetition_penalty = 2.0f;
  Sampler s3(r);
  y = x;
  const std::vector<int32_t> hist = {1, 3, 1, 1};
  EXPECT_EQ(s3.sample(y, hist, 0), 4);
}

TEST(Sampler, RepetitionPenaltyOncePerDistinctId) {
  std::vector<float> x = {2.0f, -2.0f, 4.0f, 1.0f};
  const std::vector<int32_t> ids = {0, 0, 0, 1, 1, 7, -1};  // 7 and -1 are out of range
  apply_repetition_penalty(x, ids, 2.0f);
  EXPECT_EQ(x, (std::vector<float>{1.0f, -4.0f, 4.0f, 1.0f}));
}

TEST(Sampler, FrequencyPresenceOverGeneratedOnly) {
  SamplingParams p;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  std::vector<float> x = {1.0f, 1.0f, 1.0f, 1.0f};
  // Prompt {0, 0}, generated {1, 2, 2, 2}: id 0 untouched, id 1 -= 0.75, id 2 -= 1.75.
  const std::vector<int32_t> hist = {0, 0, 1, 2, 2, 2};
  apply_penalties(x, hist, 4, p);
  EXPECT_EQ(x, (std::vector<float>{1.0f, 0.25f, -0.75f, 1.0f}));
}

TEST(Sampler, TopKKeepsAllTiesAtTheCut) {
  std::vector<float> x = {1.0f, 5.0f, 3.0f, 3.0f, 0.0f, 3.0f};
  apply_top_k(x, 2);
  EXPECT_EQ(x, (std::vector<float>{-kInf, 5.0f, 3.0f, 3.0f, -kInf, 3.0f}));
}

TEST(Sampler, TopPTiesAtTheCutKeepLowerIdsFirst) {
  // probs ~ {0.643, 0.087 x4, 0.004 x2}: top_p 0.8 needs the 5.0 and two of the four 3.0s.
  std::vector<float> x = {5.0f, 3.0f, 3.0f, 3.0f, 3.0f, 0.0f, 0.0f};
  apply_top_p(x, 0.8f);
  EXPECT_EQ(x, (std::vector<float>{5.0f, 3.0f, 3.0f, -kInf, -kInf, -kInf, -kInf}));
  // The token that crosses top_p stays (mass strictly above it is < top_p).
  std::vector<float> y = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  apply_top_p(y, 0.6f);
  EXPECT_TRUE(std::isfinite(y[1]));
  EXPECT_TRUE(std::isinf(y[2]));
}

TEST(Sampler, MinPKeepsTokensAboveScaledMax) {
  std::vector<float> x = {std::log(0.5f), std::log(0.3f), std::log(0.04f), std::log(0.16f)};
  apply_min_p(x, 0.1f);  // threshold 0.05
  EXPECT_TRUE(std::isfinite(x[0]) && std::isfinite(x[1]) && std::isfinite(x[3]));
  EXPECT_TRUE(std::isinf(x[2]));
}

// Plain full-sort reference of top-k then top-p, to check the heap and bucket shortcuts on a
// 152k vocabulary.
std::vector<bool> reference_kept(const std::vector<float>& x, int top_k, float top_p) {
  const size_t v = x.size();
  std::vector<int32_t> order(v);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return x[a] > x[b]; });
  std::vector<bool> kept(v, false);
  size_t n = v;
  if (top_k > 0 && static_cast<size_t>(top_k) < v) {
    const float kth = x[order[top_k - 1]];
    n = 0;
    while (n < v && x[order[n]] >= kth) ++n;
  }
  std::vector<float> logits(n), probs(n);
  for (size_t i = 0; i < n; ++i) logits[i] = x[order[i]];
  softmax(logits, probs);
  double total = 0.0;
  for (float q : probs) total += q;
  const float thr = static_cast<float>(1.0 - static_cast<double>(top_p));
  double above = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (top_p < 1.0f && i > 0 && !(static_cast<float>(total - above) > thr)) break;
    kept[order[i]] = true;
    above += probs[i];
  }
  return kept;
}

TEST(Sampler, LargeVocabularyMatchesFullSortReference) {
  std::mt19937 gen(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const size_t v = 152064;
  struct P {
    int k;
    float p;
    float scale;
  };
  for (P cfg : {P{50, 0.9f, 3.0f}, P{0, 0.9f, 3.0f}, P{0, 0.5f, 0.3f}, P{0, 0.99f, 6.0f}, P{5000, 1.0f, 1.0f},
                P{20, 1.0f, 1.0f}, P{6000, 0.7f, 0.5f}}) {
    std::vector<float> row(v);
    for (float& x : row) x = std::round(nd(gen) * cfg.scale * 64.0f) / 64.0f;  // with ties
    const std::vector<bool> want = reference_kept(row, cfg.k, cfg.p);
    SamplingParams sp;
    sp.do_sample = true;
    sp.top_k = cfg.k;
    sp.top_p = cfg.p;
    Sampler s(sp);
    std::vector<float> x = row;
    const int32_t t = s.sample(x, {}, 0);
    EXPECT_TRUE(want[t]);
    size_t n_want = 0, n_got = 0, diff = 0;
    for (size_t i = 0; i < v; ++i) {
      n_want += want[i];
      n_got += std::isfinite(x[i]);
      diff += want[i] != static_cast<bool>(std::isfinite(x[i]));
      if (want[i]) {
        ASSERT_EQ(x[i], row[i]);
      }
    }
    EXPECT_EQ(diff, 0u) << "top_k " << cfg.k << " top_p " << cfg.p << ": kept " << n_got << ", reference kept "
                        << n_want;
  }
}

}  // namespace
}  // namespace yak::infer
