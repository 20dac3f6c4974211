#include "yak/model/init.h"

#include <random>

#include "yak/base/error.h"
#include "yak/io/hf_config.h"
#include "yak/io/safetensors.h"

namespace yak::model {
namespace fs = std::filesystem;

void init_random_checkpoint(const Json& config, const fs::path& out, uint64_t seed) {
  const auto cfg = io::ModelConfig::from_json(config, "model config");
  if (fs::exists(out) && !fs::is_directory(out)) throw Error(out.string() + ": exists and is not a folder");
  fs::create_directories(out);
  const double sd = json_get_or<double>(config, "initializer_range", 0.02, "model config");
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, static_cast<float>(sd));
  std::vector<std::pair<std::string, Tensor>> ts;
  auto normal = [&](const std::string& name, Shape shape) {
    Tensor t = Tensor::empty(std::move(shape));
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = nd(rng);
    ts.emplace_back(name, t);
  };
  auto ones = [&](const std::string& name, Shape shape) {
    Tensor t = Tensor::empty(std::move(shape));
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = 1.0f;
    ts.emplace_back(name, t);
  };
  auto zeros = [&](const std::string& name, Shape shape) { ts.emplace_back(name, Tensor::zeros(std::move(shape))); };
  const int64_t D = cfg.hidden_size, I = cfg.intermediate_size, hd = cfg.head_dim;
  const int64_t qd = cfg.num_heads * hd, kvd = cfg.num_kv_heads * hd;
  normal("model.embed_tokens.weight", {cfg.vocab_size, D});
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    ones(p + "input_layernorm.weight", {D});
    ones(p + "post_attention_layernorm.weight", {D});
    normal(p + "self_attn.q_proj.weight", {qd, D});
    normal(p + "self_attn.k_proj.weight", {kvd, D});
    normal(p + "self_attn.v_proj.weight", {kvd, D});
    normal(p + "self_attn.o_proj.weight", {D, qd});
    if (cfg.attention_bias) {
      zeros(p + "self_attn.q_proj.bias", {qd});
      zeros(p + "self_attn.k_proj.bias", {kvd});
      zeros(p + "self_attn.v_proj.bias", {kvd});
    }
    if (cfg.qk_norm) {
      ones(p + "self_attn.q_norm.weight", {hd});
      ones(p + "self_attn.k_norm.weight", {hd});
    }
    normal(p + "mlp.gate_proj.weight", {I, D});
    normal(p + "mlp.up_proj.weight", {I, D});
    normal(p + "mlp.down_proj.weight", {D, I});
  }
  ones("model.norm.weight", {D});
  if (!cfg.tie_word_embeddings) normal("lm_head.weight", {cfg.vocab_size, D});
  Json c = config;
  c["torch_dtype"] = "float32";
  io::write_safetensors(out / "model.safetensors", ts, {{"format", "pt"}});
  io::write_file_atomic(out / "config.json", c.dump(2));
}

}  // namespace yak::model
