// yak serve's scheduler and page pool: continuous batching over a paged KV cache gives every
// request the tokens the engine gives it alone (greedy and seeded sampling), whether requests
// arrive together or one after another, with small prefill chunks, with and without the prefix
// cache; shared prefixes are computed once; cancelled requests free their slot; a full queue
// refuses; the page pool's sharing, eviction and invalidation rules hold. With a draft model
// (speculative decoding), greedy output is the target's own, token for token, and sampled
// output follows the target's distribution (chi-square against probabilities computed here).
// Prompts with pictures (a tiny Qwen3-VL) get the engine's tokens alone, batched with each other
// and with text prompts; the prefix cache takes their image pages back only for the same picture.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <deque>
#include <map>
#include <random>
#include <unistd.h>

#include "chi_square.h"
#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/infer/engine.h"
#include "yak/infer/vision_prompt.h"
#include "yak/io/safetensors.h"
#include "yak/model/init.h"
#include "yak/serve/scheduler.h"
#include "yak/tokenizer/tokenizer.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kDir = fs::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat";

std::vector<int32_t> random_prompt(std::mt19937& rng, size_t n, int32_t vocab) {
  std::vector<int32_t> p(n);
  for (auto& t : p) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab - 10)) + 5;
  return p;
}

struct Collected {
  std::vector<int32_t> tokens;  // from logprobs events
  std::vector<float> logprobs;  // of those tokens
  std::string text;
  serve::Event last;
};

Collected collect(serve::RequestHandle& h) {
  Collected c;
  serve::Event e;
  for (;;) {
    EXPECT_TRUE(h.next(e, std::chrono::seconds(120))) << "no event within 120 s";
    c.text += e.text;
    for (auto& lp : e.logprobs) c.tokens.push_back(lp.id), c.logprobs.push_back(lp.logprob);
    if (e.done) break;
  }
  c.last = e;
  return c;
}

infer::GenerateRequest request(std::vector<int32_t> prompt, int64_t n, bool sample, uint64_t seed) {
  infer::GenerateRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = n;
  r.ignore_eos = true;
  r.sampling.do_sample = sample;
  r.sampling.temperature = 0.9f;
  r.sampling.top_k = 40;
  r.sampling.seed = seed;
  return r;
}

class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = model::DecoderModel::load(kDir);
    engine_ = std::make_unique<infer::Engine>(*model_, nullptr);
  }
  // What the engine alone generates for each request.
  std::vector<std::vector<int32_t>> reference(const std::vector<infer::GenerateRequest>& reqs) {
    std::vector<std::vector<int32_t>> out;
    for (auto& r : reqs) out.push_back(engine_->generate({r})[0].tokens);
    return out;
  }
  std::unique_ptr<model::DecoderModel> model_;
  std::unique_ptr<infer::Engine> engine_;
};

TEST_F(SchedulerTest, ContinuousBatchingMatchesTheEngine) {
  std::mt19937 rng(7);
  const auto V = static_cast<int32_t>(model_->config().vocab_size);
  std::vector<infer::GenerateRequest> reqs;
  const size_t lens[] = {3, 70, 17, 130, 1, 64, 9, 100};
  for (size_t i = 0; i < std::size(lens); ++i)
    reqs.push_back(request(random_prompt(rng, lens[i], V), 12 + static_cast<int64_t>(i) * 3, i % 2 == 1, 100 + i));
  const auto want = reference(reqs);
  for (bool prefix : {true, false})
    for (int64_t chunk : {int64_t{7}, int64_t{256}}) {
      serve::SchedulerOptions o;
      o.parallel = 3;  // fewer slots than requests: some wait, then join a running batch
      o.ctx = 256;
      o.prefill_chunk = chunk;
      o.prefix_cache = prefix;
      serve::Scheduler sched(*model_, nullptr, engine_->eos_ids(), o);
      std::vector<std::shared_ptr<serve::RequestHandle>> hs;
      for (size_t i = 0; i < reqs.size(); ++i) {
        hs.push_back(sched.submit(reqs[i], 0));
        if (i == 4) (void)collect(*hs[1]);  // later arrivals join while others decode
      }
      for (size_t i = 0; i < reqs.size(); ++i) {
        if (i == 1) continue;
        auto c = collect(*hs[i]);
        EXPECT_EQ(c.tokens, want[i]) << "request " << i << " chunk " << chunk << " prefix cache " << prefix;
        EXPECT_EQ(c.last.finish, infer::FinishReason::Length);
        EXPECT_EQ(c.last.completion_tokens, static_cast<int64_t>(want[i].size()));
        EXPECT_TRUE(c.last.error.empty()) << c.last.error;
      }
      const auto m = sched.metrics();
      EXPECT_EQ(m.requests_finished, static_cast<int64_t>(reqs.size()));
      EXPECT_EQ(m.pages.in_use, 0) << "every page came back";
    }
}

TEST_F(SchedulerTest, SharedPrefixIsComputedOnceAndChangesNothing) {
  std::mt19937 rng(11);
  const auto V = static_cast<int32_t>(model_->config().vocab_size);
  const auto system = random_prompt(rng, 150, V);  // two full pages and a part of a third
  std::vector<infer::GenerateRequest> reqs;
  for (int i = 0; i < 4; ++i) {
    auto p = system;
    auto tail = random_prompt(rng, 5 + static_cast<size_t>(i), V);
    p.insert(p.end(), tail.begin(), tail.end());
    reqs.push_back(request(p, 10, i % 2 == 0, 7 + static_cast<uint64_t>(i)));
  }
  const auto want = reference(reqs);
  serve::SchedulerOptions o;
  o.parallel = 2;
  o.ctx = 256;
  serve::Scheduler sched(*model_, nullptr, engine_->eos_ids(), o);
  auto first = collect(*sched.submit(reqs[0], 0));
  EXPECT_EQ(first.tokens, want[0]);
  EXPECT_EQ(first.last.cached_tokens, 0);
  for (size_t i = 1; i < reqs.size(); ++i) {
    auto c = collect(*sched.submit(reqs[i], 0));
    EXPECT_EQ(c.tokens, want[i]) << "request " << i;
    EXPECT_EQ(c.last.cached_tokens, 128) << "two full pages of the shared prefix";
  }
  const auto m = sched.metrics();
  EXPECT_EQ(m.pages.hit_tokens, 3 * 128);
  // Prefill computed everything but the cached pages.
  int64_t prompt = 0;
  for (auto& r : reqs) prompt += static_cast<int64_t>(r.prompt.size());
  EXPECT_EQ(m.prefill_tokens, prompt - 3 * 128);
}

TEST_F(SchedulerTest, SamplesOfOnePromptShareItsPages) {
  std::mt19937 rng(5);
  const auto prompt = random_prompt(rng, 140, static_cast<int32_t>(model_->config().vocab_size));
  serve::SchedulerOptions o;
  o.parallel = 4;
  o.ctx = 256;
  serve::Scheduler sched(*model_, nullptr, engine_->eos_ids(), o);
  std::vector<infer::GenerateRequest> reqs;
  std::vector<std::shared_ptr<serve::RequestHandle>> hs;
  for (int i = 0; i < 4; ++i) {
    reqs.push_back(request(prompt, 8, true, 40 + static_cast<uint64_t>(i)));
    hs.push_back(sched.submit(reqs.back(), 0, /*group=*/1));
  }
  const auto want = reference(reqs);
  for (size_t i = 0; i < hs.size(); ++i) EXPECT_EQ(collect(*hs[i]).tokens, want[i]) << "sample " << i;
  EXPECT_EQ(sched.metrics().pages.hit_tokens, 3 * 128) << "the three later samples reuse two full pages";
}

TEST_F(SchedulerTest, CancelFreesTheSlotAndFullQueueRefuses) {
  std::mt19937 rng(3);
  const auto V = static_cast<int32_t>(model_->config().vocab_size);
  serve::SchedulerOptions o;
  o.parallel = 1;
  o.ctx = 256;
  o.queue = 1;
  serve::Scheduler sched(*model_, nullptr, engine_->eos_ids(), o);
  auto long_req = request(random_prompt(rng, 10, V), 240, false, 1);
  auto a = sched.submit(long_req, 0);
  serve::Event e;
  ASSERT_TRUE(a->next(e, std::chrono::seconds(60)));  // a is running
  auto b = sched.submit(request(random_prompt(rng, 10, V), 5, false, 2), 0);  // waits
  EXPECT_THROW(sched.submit(request(random_prompt(rng, 10, V), 5, false, 3), 0), serve::Unavailable);
  a->cancel();
  for (;;) {
    ASSERT_TRUE(a->next(e, std::chrono::seconds(60)));
    if (e.done) break;
  }
  EXPECT_EQ(e.error, "cancelled");
  EXPECT_LT(e.completion_tokens, 240);
  auto cb = collect(*b);
  EXPECT_EQ(cb.tokens.size(), 5u);
  EXPECT_TRUE(cb.last.error.empty());
  const auto m = sched.metrics();
  EXPECT_EQ(m.requests_cancelled, 1);
  EXPECT_EQ(m.requests_finished, 1);
}

TEST_F(SchedulerTest, RefusesWhatCannotFit) {
  serve::SchedulerOptions o;
  o.parallel = 1;
  o.ctx = 100;
  serve::Scheduler sched(*model_, nullptr, engine_->eos_ids(), o);
  EXPECT_THROW(sched.submit(request(std::vector<int32_t>(90, 5), 20, false, 1)), Error);
  EXPECT_THROW(sched.submit(request({}, 5, false, 1)), Error);
  EXPECT_THROW(sched.submit(request({5, 100000}, 5, false, 1)), Error);
}

TEST_F(SchedulerTest, ShutdownEndsQueuedAndRunningRequests) {
  std::mt19937 rng(9);
  const auto V = static_cast<int32_t>(model_->config().vocab_size);
  serve::SchedulerOptions o;
  o.parallel = 1;
  o.ctx = 256;
  serve::Scheduler sched(*model_, nullptr, engine_->eos_ids(), o);
  auto a = sched.submit(request(random_prompt(rng, 10, V), 240, false, 1), 0);
  auto b = sched.submit(request(random_prompt(rng, 10, V), 5, false, 2), 0);
  serve::Event e;
  ASSERT_TRUE(a->next(e, std::chrono::seconds(60)));
  sched.shutdown(std::chrono::milliseconds(0));
  EXPECT_EQ(collect(*b).last.error, "the server is shutting down");
  EXPECT_EQ(collect(*a).last.error, "the server is shutting down");
  EXPECT_THROW(sched.submit(request(random_prompt(rng, 10, V), 5, false, 3)), serve::Unavailable);
}

// A random draft over the target's vocabulary: one layer, its own seed.
fs::path make_draft(const fs::path& target, uint64_t seed) {
  Json cfg = read_json_file(target / "config.json");
  cfg["num_hidden_layers"] = 1;
  cfg["layer_types"] = Json::array({"full_attention"});
  cfg["initializer_range"] = 0.2;  // sharper than the target's logits: many drafts are wrong
  const auto dir = fs::temp_directory_path() / ("yak_sched_draft_" + std::to_string(::getpid()) + "_" + std::to_string(seed));
  fs::remove_all(dir);
  model::init_random_checkpoint(cfg, dir, seed);
  return dir;
}

// The target with every weight scaled by 1 + noise * N(0, 1) and its final norm by `sharpen`
// (logits times sharpen, as a temperature of 1 / sharpen would): a draft that is often, not
// always, right, and more confident than the target.
fs::path make_noisy_copy(const fs::path& target, float noise, float sharpen, uint64_t seed) {
  const auto dir = fs::temp_directory_path() / ("yak_sched_noisy_" + std::to_string(::getpid()) + "_" + std::to_string(seed));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(target / "config.json", dir / "config.json");
  auto store = io::WeightStore::open_dir(target);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& name : store.names()) {
    Tensor t = store.get(name).to_f32();
    float* x = t.data<float>();
    const float scale = name == "model.norm.weight" ? sharpen : 1.0f;
    for (int64_t i = 0; i < t.numel(); ++i) x[i] *= scale * (1.0f + noise * n(rng));
    out.emplace_back(name, t);
  }
  io::write_safetensors(dir / "model.safetensors", out);
  return dir;
}

TEST_F(SchedulerTest, SpeculativeGreedyIsTheTargetsOutput) {
  std::mt19937 rng(21);
  const auto V = static_cast<int32_t>(model_->config().vocab_size);
  std::vector<infer::GenerateRequest> reqs;
  const size_t lens[] = {4, 70, 12, 130, 1, 33};
  for (size_t i = 0; i < std::size(lens); ++i) {
    reqs.push_back(request(random_prompt(rng, lens[i], V), 9 + static_cast<int64_t>(i) * 4, false, 0));
    if (i == 2) reqs.back().sampling.repetition_penalty = 1.3f;  // penalties see the drafts as generated
    if (i == 3) reqs.back().sampling.frequency_penalty = 0.5f;
  }
  const auto want = reference(reqs);
  const auto random_draft = make_draft(kDir, 3);
  auto random = model::DecoderModel::load(random_draft);
  struct Case {
    const char* name;
    model::DecoderModel* draft;
    int k;
    float p_min;
  };
  // Every draft (p_min 0), then the confidence cut-off: at 1 nothing is ever drafted, at 0.3
  // fewer than at 0 (the output is the same either way).
  std::map<model::DecoderModel*, int64_t> every;
  for (const Case& c : {Case{"the target itself", model_.get(), 4, 0.0f}, Case{"a random model", random.get(), 3, 0.0f},
                        Case{"the target, p >= 1", model_.get(), 4, 1.0f}, Case{"a random model, p >= 0.3", random.get(), 3, 0.3f}}) {
    serve::SchedulerOptions o;
    o.parallel = 3;
    o.ctx = 256;
    o.prefill_chunk = 50;
    o.draft_max = c.k;
    o.draft_p_min = c.p_min;
    serve::Scheduler sched(*model_, nullptr, engine_->eos_ids(), o, c.draft);
    std::vector<std::shared_ptr<serve::RequestHandle>> hs;
    for (auto& r : reqs) hs.push_back(sched.submit(r, 0));
    for (size_t i = 0; i < reqs.size(); ++i) {
      auto got = collect(*hs[i]);
      EXPECT_EQ(got.tokens, want[i]) << "request " << i << ", draft: " << c.name;
      EXPECT_EQ(got.last.completion_tokens, static_cast<int64_t>(want[i].size()));
    }
    const auto m = sched.metrics();
    EXPECT_EQ(m.pages.in_use, 0);
    if (c.p_min >= 1.0f) {
      EXPECT_EQ(m.draft_tokens, 0) << c.name;
      continue;
    }
    if (c.p_min > 0.0f) {
      EXPECT_LT(m.draft_tokens, every.at(c.draft)) << c.name << ": the cut-off stopped some rounds";
      continue;
    }
    every[c.draft] = m.draft_tokens;
    EXPECT_GT(m.draft_tokens, 0) << c.name;
    if (c.draft == model_.get()) {
      EXPECT_GE(m.draft_accepted, m.draft_tokens * 9 / 10) << "the target drafting for itself is almost always right";
      EXPECT_LT(m.steps, m.generated_tokens / 2) << "several tokens per step";
    } else {
      EXPECT_LT(m.draft_accepted, m.draft_tokens / 2) << "a random draft is mostly wrong";
    }
  }
  fs::remove_all(random_draft);
}

using yak::testing_stats::chi2_quantile;

TEST_F(SchedulerTest, SpeculativeSamplingFollowsTheTargetsDistribution) {
  // Three tokens at top-k 3: the first from the prompt's row, the second from the target's
  // verdict on one draft (at most remaining - 1 are drafted), the third its bonus token or, after
  // a rejection, a plain step. The law of all 27 outcomes is known from 13 forwards here.
  const std::vector<int32_t> prompt = {17, 230, 5, 99, 310, 41};
  infer::SamplingParams sp;
  sp.do_sample = true;
  sp.temperature = 1.0f;
  sp.top_k = 3;
  auto law = [&](const std::vector<int32_t>& seq) {
    model::Batch b;
    for (size_t i = 0; i < seq.size(); ++i) {
      b.ids.push_back(seq[i]);
      b.pos.push_back(static_cast<int32_t>(i));
      b.slot.push_back(0);
    }
    b.logits_for.push_back(static_cast<int32_t>(seq.size() - 1));
    auto cache = engine_->make_cache(1, 64);
    Tensor lg = model_->forward(b, cache).to(cpu_device());
    std::vector<float> row(lg.data<float>(), lg.data<float>() + model_->config().vocab_size);
    infer::Sampler s(sp);
    const auto d = s.distribution(row, seq, 0);
    return std::vector<infer::SamplerCandidate>(d.begin(), d.end());
  };
  std::map<std::vector<int32_t>, double> expected;
  for (const auto& a : law(prompt)) {
    auto pa = prompt;
    pa.push_back(a.id);
    for (const auto& b : law(pa)) {
      auto pb = pa;
      pb.push_back(b.id);
      for (const auto& c : law(pb)) expected[{a.id, b.id, c.id}] = static_cast<double>(a.prob) * b.prob * c.prob;
    }
  }
  ASSERT_EQ(expected.size(), 27u);

  const auto draft_dir = make_noisy_copy(kDir, 0.03f, 2.0f, 8);
  auto draft = model::DecoderModel::load(draft_dir);
  serve::SchedulerOptions o;
  o.parallel = 8;
  o.ctx = 64;
  o.draft_max = 4;
  o.draft_p_min = 0.0f;  // one draft per request, whatever the draft's confidence
  serve::Scheduler sched(*model_, nullptr, engine_->eos_ids(), o, draft.get());
  const int trials = 3000;
  std::map<std::vector<int32_t>, double> counts;
  std::deque<std::shared_ptr<serve::RequestHandle>> live;
  auto drain = [&] {
    auto got = collect(*live.front());
    live.pop_front();
    ASSERT_EQ(got.tokens.size(), 3u);
    counts[got.tokens] += 1;
  };
  for (int t = 0; t < trials; ++t) {
    auto r = request(prompt, 3, true, 9000 + static_cast<uint64_t>(t));
    r.sampling = sp;
    r.sampling.seed = 9000 + static_cast<uint64_t>(t);
    live.push_back(sched.submit(r, 0));
    if (live.size() >= 32) drain();
  }
  while (!live.empty()) drain();
  double x = 0;
  for (auto& [seq, p] : expected) {
    const double e = p * trials, n = counts.count(seq) ? counts[seq] : 0.0;
    x += (n - e) * (n - e) / e;
  }
  for (auto& [seq, n] : counts) EXPECT_TRUE(expected.count(seq)) << "an outcome the target cannot produce";
  EXPECT_LT(x, chi2_quantile(26, 3.72)) << "chi-square over the 27 outcomes";
  const auto m = sched.metrics();
  std::printf("chi-square %.1f on 26 degrees of freedom; %lld of %lld drafts kept\n", x,
              static_cast<long long>(m.draft_accepted), static_cast<long long>(m.draft_tokens));
  EXPECT_EQ(m.draft_tokens, trials) << "one draft per request";
  EXPECT_GT(m.draft_accepted, 0);
  EXPECT_LT(m.draft_accepted, m.draft_tokens);
  fs::remove_all(draft_dir);
}

// The page pool alone, on a cache of 6 pages for 2 slots.
namespace {
// Chat prompts with pictures on the tiny Qwen3-VL of tools/golden/make_vl_goldens.py.
struct VisionPrompts {
  const fs::path dir = fs::path(YAK_GOLDEN_DIR) / "vision" / "qwen3_vl";
  std::unique_ptr<model::DecoderModel> model = model::DecoderModel::load(dir);
  std::unique_ptr<tok::Tokenizer> tok = tok::load_tokenizer(dir);
  const io::VisionConfig& v = *model->config().vision;
  model::ImageProcessorConfig pc = model::ImageProcessorConfig::load(dir, v);

  infer::PromptImages images(const std::vector<std::string>& files) {
    std::vector<std::string> paths;
    for (auto& f : files) paths.push_back((dir.parent_path() / "images" / f).string());
    return infer::load_prompt_images(paths, pc);
  }
  // `yak generate --chat-template auto`'s rendering (with an optional system message).
  infer::GenerateRequest request(const std::string& system, const std::string& text, const infer::PromptImages& im,
                                 int64_t n = 12) {
    std::string rendered = system.empty() ? "" : "<|im_start|>system\n" + system + "<|im_end|>\n";
    rendered += "<|im_start|>user\n" + infer::place_images(text, im.grids.size(), *tok, v) +
                "<|im_end|>\n<|im_start|>assistant\n";
    infer::GenerateRequest r;
    r.prompt = infer::encode_with_images(rendered, im.grids, *tok, v, false);
    if (!im.grids.empty()) r.visual = infer::visual_prompt(*model, r.prompt, im);
    r.max_new_tokens = n;
    r.ignore_eos = true;
    return r;
  }
};
}  // namespace

TEST(SchedulerVision, PromptsWithPicturesGetTheEnginesTokens) {
  VisionPrompts vp;
  std::ifstream gf(vp.dir / "golden.json");
  const Json golden = Json::parse(gf);
  std::vector<infer::GenerateRequest> reqs;
  std::vector<std::vector<int32_t>> from_transformers;
  const auto n = golden["new_tokens"].get<int64_t>();
  for (const auto& c : golden["end_to_end"]) {
    reqs.push_back(
        vp.request("", c["text"].get<std::string>(), vp.images(c["images"].get<std::vector<std::string>>()), n));
    from_transformers.push_back(c["greedy"].get<std::vector<int32_t>>());
  }
  reqs.push_back(vp.request("", "Describe the picture.", vp.images({"grey_13x9.png"})));
  reqs.push_back(vp.request("Be brief.", "Hello there, who are you?", {}));  // text on the same model
  auto sampled = vp.request("", "Tell a story about it.", vp.images({"palette_40x40.png"}), 10);
  sampled.sampling.do_sample = true;
  sampled.sampling.temperature = 0.9f;
  sampled.sampling.seed = 5;
  reqs.push_back(sampled);
  infer::Engine engine(*vp.model, nullptr);
  std::vector<std::vector<int32_t>> want;
  for (auto& r : reqs) want.push_back(engine.generate({r})[0].tokens);
  EXPECT_EQ(want[0], from_transformers[0]);
  EXPECT_EQ(want[1], from_transformers[1]);
  for (int64_t chunk : {int64_t{5}, int64_t{256}}) {
    serve::SchedulerOptions o;
    o.parallel = 3;  // fewer slots than requests
    o.ctx = 256;
    o.prefill_chunk = chunk;  // 5: image rows split over steps, two prompts' images in line for one step
    serve::Scheduler sched(*vp.model, nullptr, engine.eos_ids(), o);
    std::vector<std::shared_ptr<serve::RequestHandle>> hs;
    for (auto& r : reqs) hs.push_back(sched.submit(r, 0));
    for (size_t i = 0; i < reqs.size(); ++i) {
      auto c = collect(*hs[i]);
      EXPECT_EQ(c.tokens, want[i]) << "request " << i << " chunk " << chunk;
      EXPECT_TRUE(c.last.error.empty()) << c.last.error;
    }
    EXPECT_EQ(sched.metrics().pages.in_use, 0);
  }
}

TEST(SchedulerVision, CachedPagesOfAPictureServeOnlyThatPicture) {
  VisionPrompts vp;
  // A system prompt of more than a page, then the picture inside the second page.
  const std::string system =
      "You look at pictures and answer questions about them, carefully and in few words, as a patient guide would.";
  const auto pic = vp.images({"rgb_96x64.png"});
  auto other = pic;  // the same grid (so the same tokens), other pixels
  other.patches = pic.patches.clone();
  for (int64_t i = 0; i < other.patches.numel(); ++i) other.patches.data<float>()[i] *= -0.5f;
  auto a = vp.request(system, "What is in the picture? Answer in one short sentence, please.", pic, 8);
  auto b = vp.request(system, "What is in the picture? Answer in one short sentence, please.", other, 8);

  ASSERT_EQ(a.prompt, b.prompt);
  ASSERT_GT(a.prompt.size(), 128u);
  const int32_t first_image = a.visual->rows.front(), last_image = a.visual->rows.back();
  ASSERT_GE(first_image, 64);
  ASSERT_LT(last_image, 128) << "the picture lies in the second page";
  infer::Engine engine(*vp.model, nullptr);
  const auto want_a = engine.generate({a})[0].tokens, want_b = engine.generate({b})[0].tokens;
  // The tiny model's greedy tokens hardly feel a picture this far from the end; its log-probs do.
  auto max_diff = [](const std::vector<float>& x, const std::vector<float>& y) {
    float d = x.size() == y.size() ? 0.0f : INFINITY;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) d = std::max(d, std::abs(x[i] - y[i]));
    return d;
  };
  std::vector<float> alone_a, alone_b;
  {
    serve::SchedulerOptions o;
    o.parallel = 1;
    o.ctx = 256;
    o.prefix_cache = false;
    serve::Scheduler sched(*vp.model, nullptr, engine.eos_ids(), o);
    auto ca = collect(*sched.submit(a, 0)), cb = collect(*sched.submit(b, 0));
    EXPECT_EQ(ca.tokens, want_a);
    EXPECT_EQ(cb.tokens, want_b);
    alone_a = ca.logprobs;
    alone_b = cb.logprobs;
  }
  ASSERT_GT(max_diff(alone_a, alone_b), 1e-3f) << "the pictures must make a difference for this test to mean anything";

  serve::SchedulerOptions o;
  o.parallel = 2;
  o.ctx = 256;
  serve::Scheduler sched(*vp.model, nullptr, engine.eos_ids(), o);
  auto first = collect(*sched.submit(a, 0));
  EXPECT_EQ(first.tokens, want_a);
  EXPECT_EQ(first.last.cached_tokens, 0);
  auto again = collect(*sched.submit(a, 0));
  EXPECT_EQ(again.tokens, want_a);
  EXPECT_EQ(again.last.cached_tokens, 128) << "the same picture: both pages come from the cache";
  EXPECT_LT(max_diff(again.logprobs, alone_a), 1e-5f);
  auto changed = collect(*sched.submit(b, 0));
  EXPECT_EQ(changed.tokens, want_b);
  EXPECT_EQ(changed.last.cached_tokens, 64) << "another picture: only the page before it is shared";
  EXPECT_LT(max_diff(changed.logprobs, alone_b), 1e-5f) << "the other picture's own numbers, not the cached one's";
  // n samples of one prompt with a picture share its pages and keep their own draws.
  std::vector<infer::GenerateRequest> samples;
  std::vector<std::shared_ptr<serve::RequestHandle>> hs;
  for (int i = 0; i < 3; ++i) {
    auto r = vp.request(system, "And the colours?", other, 6);
    r.sampling.do_sample = true;
    r.sampling.seed = 70 + static_cast<uint64_t>(i);
    samples.push_back(r);
    hs.push_back(sched.submit(r, 0, /*group=*/4));
  }
  for (size_t i = 0; i < hs.size(); ++i)
    EXPECT_EQ(collect(*hs[i]).tokens, engine.generate({samples[i]})[0].tokens) << "sample " << i;
}

TEST(PagePool, SharesEvictsAndInvalidates) {
  auto model = model::DecoderModel::load(kDir);
  model::KVCache cache(model->config(), 2, 7 * 64, 6, DType::F32);
  serve::PagePool pool(cache);
  const int64_t P = serve::PagePool::kPage;
  std::vector<int32_t> a(3 * P), b(3 * P);
  for (int64_t i = 0; i < 3 * P; ++i) a[static_cast<size_t>(i)] = static_cast<int32_t>(i % 97), b[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7 + 3) % 89);
  EXPECT_EQ(pool.attach_prefix(0, a, static_cast<int64_t>(a.size()) - 1), 0);
  ASSERT_TRUE(pool.reserve(0, 3 * P));
  EXPECT_EQ(pool.pages_of(0), 3);
  pool.commit(0, a, 2 * P + 5);  // two full pages written
  EXPECT_EQ(pool.cached_prefix(a, 3 * P), 2 * P);
  // A second slot shares them while the first still runs.
  EXPECT_EQ(pool.attach_prefix(1, a, 3 * P - 1), 2 * P);
  EXPECT_EQ(pool.stats().in_use, 3);
  pool.release(1);
  pool.release(0);
  auto s = pool.stats();
  EXPECT_EQ(s.in_use, 0);
  EXPECT_EQ(s.cached, 2);  // the two registered pages stay cached
  // Another prefix takes every page: the cached ones are evicted, deepest first.
  EXPECT_EQ(pool.attach_prefix(0, b, 3 * P), 0);
  ASSERT_TRUE(pool.reserve(0, 4 * P));  // the four free pages
  EXPECT_EQ(pool.cached_prefix(a, 3 * P), 2 * P);
  ASSERT_TRUE(pool.reserve(0, 4 * P + 1));
  EXPECT_EQ(pool.cached_prefix(a, 3 * P), P) << "the second page of a went first";
  ASSERT_TRUE(pool.reserve(0, 5 * P + 1));  // now the first page of a as well
  EXPECT_EQ(pool.cached_prefix(a, 3 * P), 0);
  EXPECT_FALSE(pool.reserve(0, 6 * P + 1)) << "past the pool";
  EXPECT_EQ(pool.stats().evictions, 2);
  std::vector<int32_t> b6(b);
  b6.resize(6 * P, 3);
  pool.commit(0, b6, 4 * P);
  EXPECT_EQ(pool.cached_prefix(b6, 6 * P), 4 * P);
  pool.release(0);
}

}  // namespace
