// One GRPO step of a fixed tiny config, split into generation, reward, experience forwards and
// training, with the training half held against a physical bound measured in the same run: the
// FLOPs of forward + backward (6 x parameters x tokens, plus attention) at this machine's OpenBLAS
// sgemm rate on the model's own projection shapes.
//   bench_grpo [-t threads] [--steps N]
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "yak/base/json.h"
#include "yak/io/safetensors.h"
#include "yak/model/init.h"
#include "yak/ops/ops.h"
#include "yak/tokenizer/tokenizer.h"
#include "yak/train/ppo_trainer.h"
#include "yak/train/reward.h"

using namespace yak;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kHidden = 512, kInter = 1408, kLayers = 4, kHeads = 8, kKv = 4;

// sgemm GFLOP/s on this model's projections with M rows (what forward and backward are made of).
double sgemm_gflops(int64_t M) {
  const int64_t hd = kHidden / kHeads;
  const std::pair<int64_t, int64_t> nk[] = {
      {kHidden, kHidden}, {kKv * hd, kHidden}, {kInter, kHidden}, {kHidden, kInter}};
  std::vector<float> x(static_cast<size_t>(M * kInter), 0.5f), y(static_cast<size_t>(M * kInter));
  std::vector<std::vector<float>> w;
  for (auto [n, k] : nk) w.emplace_back(static_cast<size_t>(n * k), 0.01f);
  double flops = 0, best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = Clock::now();
    double f = 0;
    for (size_t i = 0; i < 4; ++i) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(nk[i].first),
                  static_cast<int>(nk[i].second), 1.0f, x.data(), static_cast<int>(nk[i].second), w[i].data(),
                  static_cast<int>(nk[i].second), 0.0f, y.data(), static_cast<int>(nk[i].first));
      f += 2.0 * static_cast<double>(M * nk[i].first * nk[i].second);
    }
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    flops = f;
  }
  return flops / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, steps = 3;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "-t")) threads = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[++i]);
  }
  ops::set_num_threads(threads);
  openblas_set_num_threads(ops::num_threads());
  // A random model with the vocabulary of the tiny test tokenizer (byte-level BPE, 501 ids).
  const fs::path tok_dir = fs::path(YAK_SOURCE_DIR) / "tests" / "golden" / "models" / "qwen2_chat";
  const fs::path dir = fs::temp_directory_path() / "yak-bench-grpo";
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(tok_dir / f, dir / f, fs::copy_options::overwrite_existing);
  auto tok = tok::load_tokenizer(dir);
  Json cfg = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
              {"vocab_size", tok->vocab_size()},       {"hidden_size", kHidden},
              {"intermediate_size", kInter},           {"num_hidden_layers", kLayers},
              {"num_attention_heads", kHeads},         {"num_key_value_heads", kKv},
              {"max_position_embeddings", 512},        {"rms_norm_eps", 1e-5},
              {"tie_word_embeddings", true},           {"initializer_range", 0.02},
              {"eos_token_id", *tok->eos_id()}};
  model::init_random_checkpoint(cfg, dir, 7);
  auto actor = model::DecoderModel::load(dir);
  const double params = static_cast<double>(actor->parameter_count());

  std::vector<train::Record> recs;
  for (int i = 0; i < 64; ++i)
    recs.push_back({Json{{"input", "Write a short word about thing number " + std::to_string(i) + ":"}}, "bench"});
  auto prompts = train::build_prompts(recs, *tok, nullptr, {});
  train::RewardSet reward;
  reward.add(train::make_rule_reward("format:\\s*[a-mA-M][\\s\\S]*"));
  train::PpoOptions o;
  o.advantage_estimator = "group_norm";
  o.n_samples_per_prompt = 8;
  o.rollout_batch_size = 16;
  o.micro_rollout_batch_size = 128;
  o.generate_max_len = 32;
  o.temperature = 1.0f;
  o.init_kl_coef = 0;
  o.max_steps = steps;
  o.num_episodes = 100;
  o.actor.train_batch_size = 128;
  o.actor.micro_train_batch_size = 32;
  o.actor.learning_rate = 1e-5;
  o.actor.quiet = true;
  auto res = train::train_ppo(*actor, nullptr, nullptr, *tok, prompts, reward, o);

  const double gf = sgemm_gflops(1024);
  std::printf(
      "GRPO step, %.1fM-parameter LLaMA (hidden %lld, %lld layers, vocab %lld), %lld prompts x %lld samples, "
      "up to %d new tokens, %d threads\n\n",
      params / 1e6, static_cast<long long>(kHidden), static_cast<long long>(kLayers),
      static_cast<long long>(tok->vocab_size()), static_cast<long long>(o.rollout_batch_size),
      static_cast<long long>(o.n_samples_per_prompt), o.generate_max_len, ops::num_threads());
  std::printf(
      "| step | generate s | reward s | experience s | train s | total s | generation share | "
      "response tokens | train tok/s | train bound tok/s | train / bound |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < res.steps.size(); ++i) {
    const auto& s = res.steps[i];
    const double total = s.generate_s + s.reward_s + s.forward_s + s.train_s;
    // Tokens through the trainer: prompt + response of every sample (the forward runs them all).
    const double resp = s.response_len * static_cast<double>(s.samples);
    const double all_tokens = resp + static_cast<double>(s.samples) * static_cast<double>(prompts[0].ids.size());
    const double bound = gf * 1e9 / (6.0 * params);  // tokens/s if fwd+bwd ran at sgemm speed
    std::printf("| %zu | %.2f | %.3f | %.2f | %.2f | %.2f | %.0f%% | %.0f | %.0f | %.0f | %.0f%% |\n", i + 1,
                s.generate_s, s.reward_s, s.forward_s, s.train_s, total, 100 * s.generate_s / total, resp,
                all_tokens / s.train_s, bound, 100 * all_tokens / s.train_s / bound);
  }
  std::printf("\nsgemm on the model's projection shapes (1024 rows): %.1f GFLOP/s\n", gf);
  fs::remove_all(dir);
}
