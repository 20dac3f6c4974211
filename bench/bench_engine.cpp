// Engine speed beside the machine's own bounds, measured in the same run:
//   decode tokens/s vs (memory bandwidth from a STREAM-style copy) / (weight bytes per token),
//   prefill tokens/s vs OpenBLAS sgemm GFLOP/s on the very shapes of the model's projections.
// The model is random with the Qwen2.5-0.5B shape and bf16 weights, written to a temp folder.
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "yak/base/json.h"
#include "yak/infer/engine.h"
#include "yak/io/safetensors.h"
#include "yak/model/decoder.h"
#include "yak/ops/cpu/thread_pool.h"
#include "yak/ops/ops.h"
#include "yak/tensor/half.h"

namespace fs = std::filesystem;
using namespace yak;
using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::time_point a) {
  return std::chrono::duration<double>(Clock::now() - a).count();
}

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
}

// STREAM "copy" (c[i] = a[i] with plain vector loads and stores, bytes read + written) and a
// read-only sweep (sum of a[i]), each over buffers far larger than the caches; best of 5.
struct Bandwidth {
  double copy_gbs = 0, read_gbs = 0;
};

Bandwidth measure_bandwidth() {
  const int64_t n = int64_t(1) << 27;  // 512 MiB per array
  std::vector<float> a(static_cast<size_t>(n), 1.0f), c(static_cast<size_t>(n), 0.0f);
  Bandwidth bw;
  std::vector<double> sums(64);
  for (int rep = 0; rep < 5; ++rep) {
    auto t = Clock::now();
    ops::cpu::parallel_for(n, 1 << 16, [&](int64_t x, int64_t y) {
      std::memcpy(c.data() + x, a.data() + x, static_cast<size_t>(y - x) * sizeof(float));
    });
    bw.copy_gbs = std::max(bw.copy_gbs, 2.0 * n * sizeof(float) / secs(t) / 1e9);
    t = Clock::now();
    ops::cpu::parallel_for(n, 1 << 16, [&](int64_t x, int64_t y) {
      float s[16] = {};
      for (int64_t i = x; i + 16 <= y; i += 16)
        for (int k = 0; k < 16; ++k) s[k] += a[static_cast<size_t>(i + k)];
      sums[static_cast<size_t>(x * 63 / n)] += s[0] + s[15];  // keep the loads alive
    });
    bw.read_gbs = std::max(bw.read_gbs, 1.0 * n * sizeof(float) / secs(t) / 1e9);
  }
  return bw;
}

// sgemm GFLOP/s over the projection shapes of one layer with M prompt rows.
double sgemm_gflops(const Shape05B& s, int64_t M) {
  const int64_t D = s.hidden;
  std::vector<std::pair<int64_t, int64_t>> nk = {{s.heads * s.hd, D}, {s.kv * s.hd, D}, {s.kv * s.hd, D},
                                                 {D, s.heads * s.hd}, {s.inter, D},     {s.inter, D},
                                                 {D, s.inter}};
  std::vector<float> x(static_cast<size_t>(M * s.inter), 0.5f), y(static_cast<size_t>(M * s.inter));
  std::vector<std::vector<float>> w;
  for (auto [n, k] : nk) w.emplace_back(static_cast<size_t>(n * k), 0.01f);
  double flops = 0;
  for (auto [n, k] : nk) flops += 2.0 * M * n * k;
  double best = 0;
  for (int rep = 0; rep < 4; ++rep) {
    auto t = Clock::now();
    for (size_t i = 0; i < nk.size(); ++i)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nk[i].first, nk[i].second, 1.0f, x.data(), nk[i].second,
                  w[i].data(), nk[i].second, 0.0f, y.data(), nk[i].first);
    best = std::max(best, flops / secs(t) / 1e9);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path dir = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "yak-bench-qwen2.5-0.5b-shape";
  Shape05B s;
  if (!fs::exists(dir / "model.safetensors")) {
    std::fprintf(stderr, "writing a random bf16 model with the Qwen2.5-0.5B shape to %s ...\n", dir.c_str());
    write_model(dir, s);
  }
  auto model = model::DecoderModel::load(dir);
  const int64_t prompt_len = 512, decode_len = 128;
  // Bytes streamed per decoded token: every layer weight plus the (tied) output embedding.
  double weight_bytes = 0;
  for (auto& [name, b] : model->weight_bytes_by_dtype()) weight_bytes += static_cast<double>(b);
  // flops per prompt token: the projections (2 per weight) of all layers; lm_head runs once per prompt.
  const double layer_params =
      static_cast<double>(s.hidden) * (s.heads * s.hd * 2 + s.kv * s.hd * 2) + 3.0 * s.hidden * s.inter;
  const double flops_per_token = 2.0 * layer_params * s.layers;

  std::printf(
      "| threads | decode tok/s | copy GB/s | decode bound (copy) tok/s | decode / bound (copy) | read GB/s | decode / "
      "bound (read) | prefill tok/s | sgemm GFLOP/s | prefill bound tok/s | prefill / bound |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int threads : {1, 2}) {
    ops::set_num_threads(threads);
    Bandwidth bw = measure_bandwidth();
    double gf = sgemm_gflops(s, prompt_len);
    infer::Engine engine(*model, nullptr);
    std::mt19937 rng(7);
    infer::GenerateRequest req;
    for (int64_t i = 0; i < prompt_len; ++i) req.prompt.push_back(static_cast<int32_t>(rng() % 150000));
    req.max_new_tokens = decode_len;
    req.ignore_eos = true;
    engine.generate({req});
    auto st = engine.last_stats();
    double decode_bound = bw.copy_gbs * 1e9 / weight_bytes;
    double read_bound = bw.read_gbs * 1e9 / weight_bytes;
    double prefill_bound = gf * 1e9 / flops_per_token;
    std::printf("| %d | %.2f | %.2f | %.2f | %.0f%% | %.2f | %.0f%% | %.1f | %.1f | %.1f | %.0f%% |\n", threads,
                st.decode_tps(), bw.copy_gbs, decode_bound, 100.0 * st.decode_tps() / decode_bound, bw.read_gbs,
                100.0 * st.decode_tps() / read_bound, st.prefill_tps(), gf, prefill_bound,
                100.0 * st.prefill_tps() / prefill_bound);
    std::fflush(stdout);
  }
  std::printf(
      "\nmodel: random Qwen2.5-0.5B shape, bf16, %.0f MB of weights; prompt %lld tokens, decode %lld tokens (greedy)\n",
      weight_bytes / 1e6, static_cast<long long>(prompt_len), static_cast<long long>(decode_len));
  return 0;
}
