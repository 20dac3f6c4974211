// Greedy continuations of every golden checkpoint against transformers' generate(), one prompt at
// a time and all prompts in one batch; sessions that reuse a cached prefix give the same tokens;
// requests with the same prompt (RL rollouts' n samples) compute it once and answer as alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "golden_models.h"
#include "yak/infer/engine.h"

using namespace yak;

namespace {

class GoldenGreedy : public ::testing::TestWithParam<std::string> {};

std::vector<infer::GenerateRequest> greedy_requests(const golden::GoldenModel& g) {
  std::vector<infer::GenerateRequest> reqs;
  for (auto& p : g.prompts) {
    infer::GenerateRequest r;
    r.prompt = p;
    r.max_new_tokens = static_cast<int64_t>(g.greedy[0].size());
    r.ignore_eos = true;  // the goldens were generated with EOS disabled
    reqs.push_back(r);
  }
  return reqs;
}

TEST_P(GoldenGreedy, OneByOneAndBatched) {
  golden::GoldenModel g(GetParam());
  auto model = model::DecoderModel::load(g.dir);
  infer::Engine engine(*model, nullptr);
  auto reqs = greedy_requests(g);
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto r = engine.generate({reqs[i]});
    EXPECT_EQ(r[0].tokens, g.greedy[i]) << GetParam() << " prompt " << i;
    EXPECT_EQ(r[0].finish_reason, infer::FinishReason::Length);
  }
  // Dynamic NTK depends on the longest sequence in a forward, so batching changes its numbers
  // exactly as it does in transformers; the batched check covers every other model.
  if (model->config().rope.type == io::RopeType::Dynamic) return;
  auto batched = engine.generate(reqs);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(batched[i].tokens, g.greedy[i]) << "batched, prompt " << i;
  // In chunks of two: the same answers, in request order.
  auto chunked = engine.generate_in_chunks(reqs, 2);
  ASSERT_EQ(chunked.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(chunked[i].tokens, g.greedy[i]) << "chunked, prompt " << i;
  EXPECT_THROW(engine.generate_in_chunks(reqs, 0), Error);
}

INSTANTIATE_TEST_SUITE_P(Models, GoldenGreedy, ::testing::ValuesIn(golden::golden_model_names()),
                         [](const auto& info) { return info.param; });

TEST(Session, ReusesTheCachedPrefix) {
  golden::GoldenModel g("qwen3_qknorm");
  auto model = model::DecoderModel::load(g.dir);
  infer::Engine engine(*model, nullptr);
  infer::Session session(engine, 256);
  auto reqs = greedy_requests(g);
  auto first = session.generate(reqs[2]);
  EXPECT_EQ(first.tokens, g.greedy[2]);
  // Second turn: the earlier prompt + answer + more tokens; only the new part is prefilled.
  infer::GenerateRequest next = reqs[2];
  next.prompt.insert(next.prompt.end(), first.tokens.begin(), first.tokens.end());
  next.prompt.insert(next.prompt.end(), g.prompts[0].begin(), g.prompts[0].end());
  next.max_new_tokens = 8;
  auto second = session.generate(next);
  EXPECT_LE(engine.last_stats().prefill_tokens, static_cast<int64_t>(g.prompts[0].size()) + 1);
  auto fresh = engine.generate({next});
  EXPECT_EQ(second.tokens, fresh[0].tokens);
}

TEST(Engine, StopsAtEosAndRespectsMaxNewTokens) {
  golden::GoldenModel g("llama_mha_f32");
  auto model = model::DecoderModel::load(g.dir);
  infer::Engine engine(*model, nullptr);
  infer::GenerateRequest r;
  r.prompt = g.prompts[1];
  r.max_new_tokens = 5;
  r.ignore_eos = true;
  EXPECT_EQ(engine.generate({r})[0].tokens.size(), 5u);
  // With the fourth greedy token declared an EOS id, generation stops before it.
  const auto& want = g.greedy[1];
  size_t first = std::find(want.begin(), want.end(), want[3]) - want.begin();
  engine.set_eos_ids({want[3]});
  r.max_new_tokens = 32;
  r.ignore_eos = false;
  auto out = engine.generate({r})[0];
  EXPECT_EQ(out.tokens, std::vector<int32_t>(want.begin(), want.begin() + static_cast<long>(first)));
  EXPECT_EQ(out.finish_reason, infer::FinishReason::Stop);
}

TEST(Engine, SamplesOfOnePromptShareItsPages) {
  auto model = model::DecoderModel::load(golden::golden_models_dir() / "qwen2_chat");
  infer::Engine engine(*model, nullptr);
  std::mt19937 rng(4);
  auto prompt = [&](size_t n) {
    std::vector<int32_t> p(n);
    for (auto& t : p) t = static_cast<int32_t>(5 + rng() % 400);
    return p;
  };
  const auto a = prompt(150), b = prompt(70), c = prompt(40);
  std::vector<infer::GenerateRequest> reqs;
  auto add = [&](const std::vector<int32_t>& p, int64_t n, uint64_t seed) {
    infer::GenerateRequest r;
    r.prompt = p;
    r.max_new_tokens = n;
    r.ignore_eos = true;
    r.sampling.do_sample = true;
    r.sampling.temperature = 0.8f;
    r.sampling.seed = seed;
    reqs.push_back(r);
  };
  add(a, 0, 1);  // generates nothing: must not be the one that computes a's pages
  for (uint64_t s = 0; s < 4; ++s) add(a, 20, 10 + s);
  add(b, 12, 20);
  add(c, 12, 21);
  add(b, 12, 22);
  add(c, 12, 23);  // 40 tokens: no full page to share
  std::vector<std::vector<int32_t>> alone;
  for (auto& r : reqs) alone.push_back(engine.generate({r})[0].tokens);
  int64_t all = 0;
  for (auto& r : reqs) all += r.max_new_tokens > 0 ? static_cast<int64_t>(r.prompt.size()) : 0;
  for (bool share : {true, false}) {
    engine.share_prompts = share;
    const auto out = engine.generate(reqs);
    for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(out[i].tokens, alone[i]) << "request " << i << " share " << share;
    // Shared: the three later samples of a skip two pages each, the second b skips one.
    EXPECT_EQ(engine.last_stats().prefill_tokens, share ? all - 3 * 128 - 64 : all);
  }
}

}  // namespace
