#include "yak/io/gguf_model.h"

#include <cstring>

#include "yak/base/error.h"

namespace yak::io {
namespace fs = std::filesystem;

namespace {

// GGUF tensor name suffixes per layer and their Hugging Face names.
struct NameMap {
  const char* gguf;
  const char* hf;
};
constexpr NameMap kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};
constexpr NameMap kGlobalNames[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

int64_t need_int(const GgufFile& g, const std::string& key) {
  if (!g.has(key)) throw Error(g.where() + ": GGUF metadata has no '" + key + "'");
  const int64_t v = g.get_int(key);
  if (v <= 0) throw Error(g.where() + ": GGUF metadata '" + key + "' must be positive (got " + std::to_string(v) + ")");
  return v;
}

double get_number(const GgufFile& g, const std::string& key, double dflt) {
  const GgufValue* v = g.find(key);
  if (!v) return dflt;
  if (!v->is_number()) throw Error(g.where() + ": GGUF metadata '" + key + "' must be a number");
  if (v->type == GgufType::F32 || v->type == GgufType::F64) return v->f;
  return v->is_integer() && (v->type == GgufType::U64 || v->type == GgufType::U32 || v->type == GgufType::U16 ||
                             v->type == GgufType::U8)
             ? static_cast<double>(v->u)
             : static_cast<double>(v->i);
}

// Hugging Face row order of a q/k matrix stored with the converter's per-head interleave.
Tensor unpermute_heads(const Tensor& t, int64_t heads, const std::string& where, const std::string& name) {
  const int64_t rows = t.dim(0), hd = rows / heads;
  if (rows % heads != 0 || hd % 2 != 0)
    throw Error(where + ": tensor '" + name + "' has " + std::to_string(rows) + " rows, not whole heads of even size");
  const size_t row_bytes = dtype_bytes(t.dtype(), t.dim(1));
  Tensor out = Tensor::empty(t.shape(), t.dtype());
  const auto* src = static_cast<const uint8_t*>(t.raw());
  auto* dst = static_cast<uint8_t*>(out.raw());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < hd / 2; ++j)
      for (int64_t p = 0; p < 2; ++p)
        std::memcpy(dst + (h * hd + p * hd / 2 + j) * row_bytes, src + (h * hd + 2 * j + p) * row_bytes, row_bytes);
  return out;
}

}  // namespace

bool is_gguf_path(const fs::path& p) {
  return p.extension() == ".gguf" && !fs::is_directory(p);
}

ModelConfig config_from_gguf(const GgufFile& g) {
  const std::string where = g.where();
  const std::string a = g.get_string("general.architecture");
  ModelConfig c;
  if (a == "llama") {
    c.arch = Arch::Llama;
  } else if (a == "qwen2") {
    c.arch = Arch::Qwen2;
  } else if (a == "qwen3") {
    c.arch = Arch::Qwen3;
  } else {
    throw Error(where + ": GGUF architecture '" + a + "' is not supported (expected llama, qwen2 or qwen3)");
  }
  c.model_type = a;
  c.hidden_size = need_int(g, a + ".embedding_length");
  c.intermediate_size = need_int(g, a + ".feed_forward_length");
  c.num_layers = need_int(g, a + ".block_count");
  c.num_heads = need_int(g, a + ".attention.head_count");
  c.num_kv_heads = g.has(a + ".attention.head_count_kv") ? need_int(g, a + ".attention.head_count_kv") : c.num_heads;
  if (c.num_heads % c.num_kv_heads != 0)
    throw Error(where + ": attention.head_count " + std::to_string(c.num_heads) +
                " is not a multiple of head_count_kv " + std::to_string(c.num_kv_heads));
  c.head_dim =
      g.has(a + ".attention.key_length") ? need_int(g, a + ".attention.key_length") : c.hidden_size / c.num_heads;
  if (g.has(a + ".attention.value_length") && need_int(g, a + ".attention.value_length") != c.head_dim)
    throw Error(where + ": attention.value_length differs from key_length (not supported)");
  if (g.has(a + ".rope.dimension_count") && need_int(g, a + ".rope.dimension_count") != c.head_dim)
    throw Error(where + ": rope.dimension_count differs from the head size (partial rotary is not supported)");
  c.rms_norm_eps = get_number(g, a + ".attention.layer_norm_rms_epsilon", 1e-6);
  c.max_position_embeddings = g.has(a + ".context_length") ? need_int(g, a + ".context_length") : 2048;
  c.rope.theta = get_number(g, a + ".rope.freq_base", 10000.0);
  const std::string scaling = g.get_string_opt(a + ".rope.scaling.type").value_or("none");
  if (scaling == "linear") {
    c.rope.type = RopeType::Linear;
    c.rope.factor = get_number(g, a + ".rope.scaling.factor", 1.0);
  } else if (scaling != "none") {
    throw Error(where + ": rope scaling '" + scaling + "' in GGUF files is not supported yet (linear and none are)");
  }
  if (g.find_tensor("rope_freqs.weight"))
    throw Error(where + ": per-frequency rope factors (rope_freqs.weight, llama3 rope) are not supported yet");
  if (g.has("tokenizer.ggml.tokens")) {
    c.vocab_size = static_cast<int64_t>(g.get_string_array("tokenizer.ggml.tokens").size());
  } else if (const GgufTensorInfo* e = g.find_tensor("token_embd.weight"); e && e->dims.size() == 2) {
    c.vocab_size = static_cast<int64_t>(e->dims[1]);
  }
  if (g.has(a + ".vocab_size")) c.vocab_size = need_int(g, a + ".vocab_size");
  if (c.vocab_size <= 0) throw Error(where + ": no vocabulary size (tokenizer.ggml.tokens or " + a + ".vocab_size)");
  c.tie_word_embeddings = g.find_tensor("output.weight") == nullptr;
  c.attention_bias = g.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = g.find_tensor("blk.0.attn_q_norm.weight") != nullptr;
  c.sliding_layers.assign(static_cast<size_t>(c.num_layers), false);
  c.torch_dtype = "gguf";
  if (auto b = g.get_int_opt("tokenizer.ggml.bos_token_id")) c.bos_token_id = *b;
  if (auto p = g.get_int_opt("tokenizer.ggml.padding_token_id")) c.pad_token_id = *p;
  if (auto e = g.get_int_opt("tokenizer.ggml.eos_token_id")) c.eos_token_ids.push_back(*e);
  if (auto e = g.get_int_opt("tokenizer.ggml.eot_token_id"); e && (c.eos_token_ids.empty() || *e != c.eos_token_ids[0]))
    c.eos_token_ids.push_back(*e);
  return c;
}

WeightStore weights_from_gguf(const GgufFile& g, const ModelConfig& cfg) {
  const std::string where = g.where();
  if (!g.mapping()) throw Error(where + ": GGUF tensors need a file (not a parsed buffer)");
  std::map<std::string, std::string> hf_of;
  for (const auto& m : kGlobalNames) hf_of[m.gguf] = m.hf;
  for (int64_t i = 0; i < cfg.num_layers; ++i)
    for (const auto& m : kLayerNames)
      hf_of["blk." + std::to_string(i) + "." + m.gguf] = "model.layers." + std::to_string(i) + "." + m.hf;
  std::map<std::string, Tensor> out;
  for (const GgufTensorInfo& t : g.tensors()) {
    auto it = hf_of.find(t.name);
    if (it == hf_of.end()) continue;  // tensors this model code does not use
    const auto dt = dtype_from_ggml(t.ggml_type);
    if (!dt || !dtype_info(*dt).is_float)
      throw Error(where + ": tensor '" + t.name + "' has ggml type " + std::to_string(t.ggml_type) +
                  ", which yak does not read");
    if (t.dims.empty() || t.dims.size() > 2)
      throw Error(where + ": tensor '" + t.name + "' has " + std::to_string(t.dims.size()) +
                  " dimensions (expected 1 or 2)");
    Shape shape;
    for (size_t d = t.dims.size(); d-- > 0;) shape.push_back(static_cast<int64_t>(t.dims[d]));
    if (t.dims[0] % static_cast<uint64_t>(dtype_info(*dt).block) != 0)
      throw Error(where + ": tensor '" + t.name + "' rows of " + std::to_string(t.dims[0]) +
                  " are not whole blocks of " + dtype_name(*dt));
    Tensor v = Tensor::view(shape, *dt, g.tensor_data(t), g.mapping());
    if (cfg.arch == Arch::Llama && t.dims.size() == 2 &&
        (t.name.ends_with(".attn_q.weight") || t.name.ends_with(".attn_k.weight")))
      v = unpermute_heads(v, t.name.ends_with(".attn_q.weight") ? cfg.num_heads : cfg.num_kv_heads, where, t.name);
    out.emplace(it->second, std::move(v));
  }
  return WeightStore::of_tensors(g.where(), std::move(out));
}

std::string gguf_chat_template(const GgufFile& g) {
  return g.get_string_opt("tokenizer.chat_template").value_or("");
}

}  // namespace yak::io
