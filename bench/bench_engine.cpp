// Engine speed beside physical bounds measured in the same run, on a random model with the
// Qwen2.5-0.5B shape (24 layers, hidden 896, intermediate 4864, 14 / 2 heads, vocab 151936, tied,
// bf16 weights: 988 MB):
//   decode tok/s (128 greedy tokens after a 512-token prompt) vs the read bandwidth bound =
//     (GB/s of a vector read sweep on the same threads) / (weight + KV-cache bytes per token);
//   prefill tok/s (one 512-token prompt) vs the compute bound = (peak of the instructions the
//     projections run on, same threads: f32 FMA, or on AMX tile products / 3 for the three bf16
//     parts of the activations) / (2 x projection parameters flops per token).
// --long N prefills an N-token prompt once and reports the peak resident memory beside the
// weights + KV cache. --model takes any folder or GGUF file (the bounds use its own shape; a
// 7B-shaped GGUF is what scripts/bench-peers.sh BENCH_7B=1 runs); the decode report also gives
// the peak resident memory beside the file size + the KV cache.
//   bench_engine [--model DIR|FILE | --write-model DIR] [-t 1,2] [--json] [--long 16384]
//                [--prompt 512] [--decode 128]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_common.h"
#include "yak/base/json.h"
#include "yak/infer/engine.h"
#include "yak/io/gguf_model.h"
#include "yak/io/safetensors.h"
#include "yak/model/decoder.h"
#include "yak/tensor/half.h"

namespace fs = std::filesystem;
using namespace yak;

namespace {

struct Shape05B {
  int64_t vocab = 151936, hidden = 896, inter = 4864, layers = 24, heads = 14, kv = 2, hd = 64;
};

void write_model(const fs::path& dir, const Shape05B& s) {
  fs::create_directories(dir);
  Json cfg = {{"architectures", {"Qwen2ForCausalLM"}},
              {"model_type", "qwen2"},
              {"vocab_size", s.vocab},
              {"hidden_size", s.hidden},
              {"intermediate_size", s.inter},
              {"num_hidden_layers", s.layers},
              {"num_attention_heads", s.heads},
              {"num_key_value_heads", s.kv},
              {"rms_norm_eps", 1e-6},
              {"rope_theta", 1000000.0},
              {"max_position_embeddings", 32768},
              {"tie_word_embeddings", true},
              {"torch_dtype", "bfloat16"},
              {"hidden_act", "silu"},
              {"bos_token_id", 151643},
              {"eos_token_id", 151643}};
  io::write_file_atomic(dir / "config.json", cfg.dump(2));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<std::pair<std::string, Tensor>> ts;
  auto bf16 = [&](Shape shape, float mean = 0.0f) {
    Tensor t = Tensor::empty(shape, DType::BF16);
    auto* p = t.data<uint16_t>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = f32_to_bf16(mean + nd(rng));
    return t;
  };
  const int64_t D = s.hidden, qd = s.heads * s.hd, kvd = s.kv * s.hd;
  ts.emplace_back("model.embed_tokens.weight", bf16({s.vocab, D}));
  ts.emplace_back("model.norm.weight", bf16({D}, 1.0f));
  for (int64_t l = 0; l < s.layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    ts.emplace_back(p + "input_layernorm.weight", bf16({D}, 1.0f));
    ts.emplace_back(p + "post_attention_layernorm.weight", bf16({D}, 1.0f));
    ts.emplace_back(p + "self_attn.q_proj.weight", bf16({qd, D}));
    ts.emplace_back(p + "self_attn.k_proj.weight", bf16({kvd, D}));
    ts.emplace_back(p + "self_attn.v_proj.weight", bf16({kvd, D}));
    ts.emplace_back(p + "self_attn.q_proj.bias", bf16({qd}));
    ts.emplace_back(p + "self_attn.k_proj.bias", bf16({kvd}));
    ts.emplace_back(p + "self_attn.v_proj.bias", bf16({kvd}));
    ts.emplace_back(p + "self_attn.o_proj.weight", bf16({D, qd}));
    ts.emplace_back(p + "mlp.gate_proj.weight", bf16({s.inter, D}));
    ts.emplace_back(p + "mlp.up_proj.weight", bf16({s.inter, D}));
    ts.emplace_back(p + "mlp.down_proj.weight", bf16({D, s.inter}));
  }
  io::write_safetensors(dir / "model.safetensors", ts);
  io::write_file_atomic(dir / "generation_config.json", Json{{"eos_token_id", 151643}}.dump(2));
}

std::vector<int32_t> random_prompt(int64_t n, uint32_t seed, int64_t vocab) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i) p.push_back(static_cast<int32_t>(rng() % (vocab - 1000)));
  return p;
}

// Peak resident set (VmHWM) and current (VmRSS) of this process, in bytes.
std::pair<double, double> resident() {
  std::ifstream f("/proc/self/status");
  std::string line;
  double hwm = 0, rss = 0;
  while (std::getline(f, line)) {
    std::istringstream in(line.substr(line.find(':') + 1));
    double kb = 0;
    in >> kb;
    if (line.rfind("VmHWM:", 0) == 0) hwm = kb * 1024;
    if (line.rfind("VmRSS:", 0) == 0) rss = kb * 1024;
  }
  return {hwm, rss};
}

// Restarts VmHWM at the current resident size (Linux: "5" into /proc/self/clear_refs).
void reset_peak_resident() {
  std::ofstream("/proc/self/clear_refs") << "5";
}

std::vector<int> parse_threads(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, ',');) out.push_back(std::atoi(part.c_str()));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path dir = fs::temp_directory_path() / "yak-bench-qwen2.5-0.5b-shape";
  std::vector<int> threads = {1, 2};
  bool json = false, write_only = false;
  int64_t long_prompt = 0, prompt_len = 512, decode_len = 128;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--model") dir = next();
    if (a == "--write-model") dir = next(), write_only = true;
    if (a == "-t") threads = parse_threads(next());
    if (a == "--json") json = true;
    if (a == "--long") long_prompt = std::atoll(next().c_str());
    if (a == "--prompt") prompt_len = std::atoll(next().c_str());
    if (a == "--decode") decode_len = std::atoll(next().c_str());
  }
  if (!io::is_gguf_path(dir) && !fs::exists(dir / "model.safetensors")) {
    std::fprintf(stderr, "writing a random bf16 model with the Qwen2.5-0.5B shape to %s ...\n", dir.c_str());
    write_model(dir, Shape05B{});
  }
  if (write_only) return 0;
  auto model = model::DecoderModel::load(dir);
  const io::ModelConfig& cfg = model->config();
  const Shape05B s{cfg.vocab_size,    cfg.hidden_size, cfg.intermediate_size, cfg.num_layers,
                   cfg.num_heads,     cfg.num_kv_heads, cfg.head_dim};
  const double file_bytes = io::is_gguf_path(dir) ? static_cast<double>(fs::file_size(dir)) : 0.0;
  double weight_bytes = 0;  // streamed per decoded token: every layer weight and the tied embedding
  for (auto& [name, b] : model->weight_bytes_by_dtype()) weight_bytes += static_cast<double>(b);
  if (!cfg.tie_word_embeddings)  // an untied embedding matrix is read one row a token, not whole
    for (const auto& p : model->parameters())
      if (p.name == "model.embed_tokens.weight")
        weight_bytes -= static_cast<double>(dtype_bytes(p.var.value().dtype(), p.var.value().numel()));
  const double layer_params =
      static_cast<double>(s.hidden) * (s.heads * s.hd * 2 + s.kv * s.hd * 2) + 3.0 * s.hidden * s.inter;
  const double flops_per_token = 2.0 * layer_params * s.layers;  // lm_head runs once per prompt
  // K and V of every layer, f32, read once per decoded token over the average context
  const double kv_per_position = 2.0 * s.layers * s.kv * s.hd * sizeof(float);
  const double avg_context = prompt_len + decode_len / 2.0;

  if (long_prompt > 0) {
    ops::set_num_threads(threads.back());
    infer::Engine engine(*model, nullptr);
    infer::GenerateRequest req;
    req.prompt = random_prompt(long_prompt, 9, s.vocab);
    req.max_new_tokens = 1;
    req.ignore_eos = true;
    const auto before = resident();
    const auto t0 = std::chrono::steady_clock::now();
    engine.generate({req});
    const double secs = bench::seconds_since(t0);
    const auto after = resident();
    const double kv_bytes = kv_per_position * static_cast<double>(long_prompt + 1);
    const double budget = weight_bytes + kv_bytes;
    Json j = {{"prompt_tokens", long_prompt},
              {"threads", threads.back()},
              {"seconds", secs},
              {"prefill_tokens_per_s", long_prompt / secs},
              {"peak_resident_mb", after.first / 1e6},
              {"resident_before_mb", before.second / 1e6},
              {"weights_mb", weight_bytes / 1e6},
              {"kv_cache_mb", kv_bytes / 1e6},
              {"peak_over_weights_plus_kv", after.first / budget}};
    if (json) {
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf(
          "%lld-token prompt, %d threads: %.1f s (%.1f tok/s); peak resident %.0f MB = %.3f x (weights %.0f MB "
          "+ KV cache %.0f MB)\n",
          static_cast<long long>(long_prompt), threads.back(), secs, long_prompt / secs, after.first / 1e6,
          after.first / budget, weight_bytes / 1e6, kv_bytes / 1e6);
    }
    return 0;
  }

  if (!json) {
    std::printf(
        "| threads | decode tok/s | read GB/s | decode bound tok/s | decode / bound | prefill tok/s | peak GFLOP/s | "
        "prefill bound tok/s | prefill / bound | peak resident MB | file + KV MB |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n");
  }
  for (int t : threads) {
    ops::set_num_threads(t);
    const double read_gbs = bench::read_bandwidth_gbs();
    const double fma = bench::fma_peak_gflops(t),
                 amx = bench::amx_peak_gflops(t, ops::matmul_precision() == ops::MatmulPrecision::High ? 3 : 1);
    const double peak = std::max(fma, amx);
    // The sweeps' 1 GiB goes back to the system and the peak restarts here, so the resident
    // figure below is the model's and the engine's alone.
    release_cached_host_memory();
    reset_peak_resident();
    infer::Engine engine(*model, nullptr);
    infer::GenerateRequest req;
    req.prompt = random_prompt(prompt_len, 7, s.vocab);
    req.max_new_tokens = decode_len;
    req.ignore_eos = true;
    engine.generate({req});  // warm-up: pages of the mapping, the buffer pool
    double decode = 0, prefill = 0;
    for (int rep = 0; rep < 2; ++rep) {
      engine.generate({req});
      decode = std::max(decode, engine.last_stats().decode_tps());
      prefill = std::max(prefill, engine.last_stats().prefill_tps());
    }
    const double decode_bound = read_gbs * 1e9 / (weight_bytes + kv_per_position * avg_context);
    // What the process holds after three generations beside what it must: the file (or the
    // weights) plus the KV cache of the longest sequence.
    const double peak_mb = resident().first / 1e6;
    const double need_mb = ((file_bytes > 0 ? file_bytes : weight_bytes) +
                            kv_per_position * static_cast<double>(prompt_len + decode_len)) / 1e6;
    const double prefill_bound = peak * 1e9 / flops_per_token;
    if (json) {
      std::printf("%s\n",
                  Json{{"peer", "yak"},
                       {"matmul_precision", ops::matmul_precision() == ops::MatmulPrecision::Medium ? "medium"
                                            : ops::matmul_precision() == ops::MatmulPrecision::High ? "high"
                                                                                                    : "highest"},
                       {"threads", t},
                       {"isa", ops::cpu::isa_name(ops::cpu::kernels().isa)},
                       {"decode_tokens_per_s", decode},
                       {"weights_mb", weight_bytes / 1e6},
                       {"prefill_tokens_per_s", prefill},
                       {"read_gbs", read_gbs},
                       {"decode_bound_tokens_per_s", decode_bound},
                       {"fma_gflops", fma},
                       {"amx_f32_accurate_gflops", amx},
                       {"prefill_bound_tokens_per_s", prefill_bound},
                       {"peak_resident_mb", peak_mb},
                       {"file_plus_kv_mb", need_mb}}
                      .dump()
                      .c_str());
    } else {
      std::printf("| %d | %.2f | %.2f | %.2f | %.0f%% | %.1f | %.1f | %.1f | %.0f%% | %.0f | %.0f |\n", t, decode,
                  read_gbs, decode_bound, 100.0 * decode / decode_bound, prefill, peak, prefill_bound,
                  100.0 * prefill / prefill_bound, peak_mb, need_mb);
    }
    std::fflush(stdout);
  }
  if (!json)
    std::printf(
        "\nmodel: %s, %lld layers, hidden %lld, %.0f MB of weights read per token; prompt %lld tokens, decode %lld "
        "tokens (greedy, best of 2); instruction set %s\n",
        dir.filename().c_str(), static_cast<long long>(s.layers), static_cast<long long>(s.hidden), weight_bytes / 1e6, static_cast<long long>(prompt_len), static_cast<long long>(decode_len),
        ops::cpu::isa_name(ops::cpu::kernels().isa));
  return 0;
}
