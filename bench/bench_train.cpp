// Training speed of the bench LLaMA (vocab 32000, hidden 512, 6 layers, 8 heads, intermediate
// 1408, tied embeddings: 35.7M parameters; bench/peers/torch_train.py builds the same model in
// PyTorch): forward, backward, gradient clipping and AdamW on random tokens, batch 8 x 256, f32.
// Reports tokens/s and the step's peak host memory, beside the physical bound measured in the
// same run (6 x parameters FLOPs per token at this machine's f32 FMA peak).
//   bench_train [-t threads] [--steps N] [--json]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include <sys/resource.h>

#include "bench_common.h"
#include "yak/autograd/functions.h"
#include "yak/base/json.h"
#include "yak/model/decoder.h"
#include "yak/model/init.h"
#include "yak/ops/ops.h"
#include "yak/train/lm_loss.h"
#include "yak/train/optimizer.h"

using namespace yak;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  int threads = 0, steps = 6, warmup = 2;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "-t") && i + 1 < argc) threads = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--json")) json = true;
  }
  ops::set_num_threads(threads);
  const int64_t batch = 8, seq = 256;
  Json cfg = {{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"vocab_size", 32000},
              {"hidden_size", 512},
              {"intermediate_size", 1408},
              {"num_hidden_layers", 6},
              {"num_attention_heads", 8},
              {"num_key_value_heads", 8},
              {"max_position_embeddings", 1024},
              {"rms_norm_eps", 1e-5},
              {"tie_word_embeddings", true},
              {"hidden_act", "silu"}};
  const fs::path dir = fs::temp_directory_path() / "yak-bench-train-llama36m";
  if (!fs::exists(dir / "model.safetensors")) model::init_random_checkpoint(cfg, dir, 1);
  auto model = model::DecoderModel::load(dir);
  model->make_trainable();
  auto params = model->trainable_parameters();
  int64_t n_params = 0;
  for (auto& p : params) n_params += p.var.numel();
  train::AdamW opt(params, {1e-4, 0.9, 0.95, 1e-8, 0.0});

  std::mt19937 rng(0);
  double seconds = 0, peak_mb = 0;
  for (int step = 0; step < warmup + steps; ++step) {
    model::Batch b;
    std::vector<int32_t> targets;
    for (int64_t s = 0; s < batch; ++s)
      for (int64_t t = 0; t < seq; ++t) {
        b.ids.push_back(static_cast<int32_t>(rng() % 32000));
        b.pos.push_back(static_cast<int32_t>(t));
        b.slot.push_back(static_cast<int32_t>(s));
      }
    for (size_t i = 0; i < b.ids.size(); ++i)
      targets.push_back(b.pos[i] + 1 < seq ? b.ids[i + 1] : train::kIgnoreIndex);
    reset_host_memory_peak();
    const uint64_t fresh0 = host_memory_stats().fresh;
    rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    const auto t0 = Clock::now();
    {
      model::KVCache cache(model->config(), batch, seq);
      ag::Tape tape;
      train::LmLoss loss;
      {
        ag::TapeScope scope(tape);
        loss = train::lm_loss(*model, b, targets, cache);
      }
      tape.backward(loss.sum, 1.0f / static_cast<float>(loss.n_targets));
      train::clip_grad_norm(params, 1.0);
      opt.step(1e-4);
      opt.zero_grad();
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    rusage ru1;
    getrusage(RUSAGE_SELF, &ru1);
    if (!json)
      std::printf("step %d: %.2f s, %llu buffers from the system, %ld page faults, in use %.0f MB, cached %.0f MB\n",
                  step, s, static_cast<unsigned long long>(host_memory_stats().fresh - fresh0),
                  ru1.ru_minflt - ru0.ru_minflt, host_memory_stats().in_use / 1e6, host_memory_stats().cached / 1e6);
    if (step >= warmup) {
      seconds += s;
      peak_mb = std::max(peak_mb, static_cast<double>(host_memory_stats().peak) / 1e6);
    }
  }
  const double tps = static_cast<double>(batch * seq * steps) / seconds;
  const double fma_gflops = bench::fma_peak_gflops(ops::num_threads());
  const double bound = fma_gflops * 1e9 / (6.0 * static_cast<double>(n_params));
  if (json) {
    std::printf("%s\n", Json{{"peer", "yak"},
                             {"matmul_precision", ops::matmul_precision() == ops::MatmulPrecision::Medium ? "medium"
                                                  : ops::matmul_precision() == ops::MatmulPrecision::High ? "high"
                                                                                                          : "highest"},
                             {"threads", ops::num_threads()},
                             {"params", n_params},
                             {"train_tokens_per_s", tps},
                             {"step_peak_mb", peak_mb},
                             {"fma_peak_gflops", fma_gflops},
                             {"bound_tokens_per_s", bound}}
                            .dump()
                            .c_str());
  } else {
    std::printf(
        "threads %d, %lld parameters, batch %lld x %lld: %.0f tokens/s (%.2f s/step), step peak %.0f MB; "
        "f32 FMA peak %.1f GFLOP/s -> bound %.0f tokens/s (%.0f%%)\n",
        ops::num_threads(), static_cast<long long>(n_params), static_cast<long long>(batch),
        static_cast<long long>(seq), tps, seconds / steps, peak_mb, fma_gflops, bound, 100.0 * tps / bound);
  }
  return 0;
}
