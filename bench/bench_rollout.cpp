// RL rollouts with and without prompt sharing: the n samples of each prompt generated as PPO /
// GRPO generate them (infer::Engine::generate_in_chunks over consecutive samples of a prompt,
// micro_rollout_batch_size per chunk), once with the samples computing the prompt's KV pages once
// (Engine::share_prompts, the default) and once with every sample computing its own. Reports
// rollout tokens/s of both, the speed-up, prompt tokens computed, and whether the samples are
// the same tokens (they must be: sharing changes no number).
//   bench_rollout [-t threads] [--prompts 4] [--n 8] [--prompt-len 256] [--new 64] [--micro 16]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "yak/base/json.h"
#include "yak/infer/engine.h"
#include "yak/model/init.h"
#include "yak/ops/ops.h"

using namespace yak;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  int threads = 0;
  int64_t prompts = 4, n = 8, prompt_len = 256, new_tokens = 64, micro = 16;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int64_t v = std::stoll(argv[i + 1]);
    if (a == "-t") threads = static_cast<int>(v);
    else if (a == "--prompts") prompts = v;
    else if (a == "--n") n = v;
    else if (a == "--prompt-len") prompt_len = v;
    else if (a == "--new") new_tokens = v;
    else if (a == "--micro") micro = v;
    else {
      std::fprintf(stderr, "bench_rollout: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  ops::set_num_threads(threads);
  // An actor of a size RL on a CPU trains: 44M parameters (LLaMA shape, random weights).
  const Json cfg = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 768},
                    {"intermediate_size", 2048}, {"num_hidden_layers", 6}, {"num_attention_heads", 12},
                    {"num_key_value_heads", 4}, {"vocab_size", 16000}, {"max_position_embeddings", 2048},
                    {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"tie_word_embeddings", true},
                    {"eos_token_id", 2}};
  const fs::path dir = fs::temp_directory_path() / ("yak_bench_rollout_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  model::init_random_checkpoint(cfg, dir, 5);
  auto actor = model::DecoderModel::load(dir);
  infer::Engine engine(*actor, nullptr);

  std::mt19937 rng(3);
  std::vector<infer::GenerateRequest> reqs;
  for (int64_t p = 0; p < prompts; ++p) {
    std::vector<int32_t> ids(static_cast<size_t>(prompt_len));
    for (auto& t : ids) t = static_cast<int32_t>(3 + rng() % 15000);
    for (int64_t j = 0; j < n; ++j) {
      infer::GenerateRequest r;
      r.prompt = ids;
      r.max_new_tokens = new_tokens;
      r.ignore_eos = true;
      r.sampling.do_sample = true;
      r.sampling.temperature = 1.0f;
      r.sampling.seed = static_cast<uint64_t>(p * n + j);
      reqs.push_back(std::move(r));
    }
  }
  (void)engine.generate({reqs[0]});  // warm-up: buffer pool, thread pool

  std::vector<std::vector<int32_t>> tokens[2];
  double secs[2] = {0, 0};
  int64_t prefill[2] = {0, 0};
  for (int rep = 0; rep < 2; ++rep)
    for (int share = 0; share < 2; ++share) {
      engine.share_prompts = share == 1;
      const auto t0 = std::chrono::steady_clock::now();
      int64_t computed = 0;
      std::vector<std::vector<int32_t>> out;
      for (size_t i = 0; i < reqs.size(); i += static_cast<size_t>(micro)) {
        const size_t e = std::min(reqs.size(), i + static_cast<size_t>(micro));
        for (auto& r : engine.generate({reqs.begin() + static_cast<long>(i), reqs.begin() + static_cast<long>(e)}))
          out.push_back(r.tokens);
        computed += engine.last_stats().prefill_tokens;
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep == 0 || s < secs[share]) secs[share] = s;
      prefill[share] = computed;
      tokens[share] = std::move(out);
    }
  fs::remove_all(dir);
  const double generated = static_cast<double>(reqs.size() * static_cast<size_t>(new_tokens));
  size_t same = 0;
  for (size_t i = 0; i < reqs.size(); ++i) same += tokens[0][i] == tokens[1][i];
  std::printf("rollouts: %lld prompts x %lld samples, prompt %lld + %lld new tokens, micro batch %lld, %d threads\n",
              static_cast<long long>(prompts), static_cast<long long>(n), static_cast<long long>(prompt_len),
              static_cast<long long>(new_tokens), static_cast<long long>(micro), ops::num_threads());
  std::printf("  every sample computes its prompt: %.2f s, %.1f rollout tok/s, %lld prompt tokens computed\n", secs[0],
              generated / secs[0], static_cast<long long>(prefill[0]));
  std::printf("  samples share the prompt's pages: %.2f s, %.1f rollout tok/s, %lld prompt tokens computed\n", secs[1],
              generated / secs[1], static_cast<long long>(prefill[1]));
  std::printf("  speed-up %.2fx; samples identical: %zu/%zu\n", secs[0] / secs[1], same, reqs.size());
  return same == reqs.size() ? 0 : 1;
}
