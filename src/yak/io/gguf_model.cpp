#include "yak/io/gguf_model.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "yak/base/error.h"
#include "yak/base/mmap.h"
#include "yak/io/gguf_writer.h"

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

// The converter's per-head interleave of q/k rows: Hugging Face row h*hd + p*hd/2 + j is GGUF
// row h*hd + 2j + p. `to_hf` reads a GGUF matrix back in Hugging Face order; otherwise the reverse.
Tensor interleave_heads(const Tensor& t, int64_t heads, bool to_hf, const std::string& where, const std::string& name) {
  const int64_t rows = t.dim(0), hd = rows / heads;
  if (rows % heads != 0 || hd % 2 != 0)
    throw Error(where + ": tensor '" + name + "' has " + std::to_string(rows) + " rows, not whole heads of even size");
  const size_t row_bytes = dtype_bytes(t.dtype(), t.dim(1));
  Tensor out = Tensor::empty(t.shape(), t.dtype());
  const auto* src = static_cast<const uint8_t*>(t.raw());
  auto* dst = static_cast<uint8_t*>(out.raw());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < hd / 2; ++j)
      for (int64_t p = 0; p < 2; ++p) {
        const int64_t hf = h * hd + p * hd / 2 + j, gg = h * hd + 2 * j + p;
        std::memcpy(dst + (to_hf ? hf : gg) * row_bytes, src + (to_hf ? gg : hf) * row_bytes, row_bytes);
      }
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
  if (const GgufValue* t = g.find("tokenizer.ggml.tokens")) {
    // the count only (no copy of the strings); a value of another shape gets the typed getter's error
    if (t->type != GgufType::ARRAY || t->elem_type != GgufType::STRING)
      (void)g.get_string_array("tokenizer.ggml.tokens");
    c.vocab_size = static_cast<int64_t>(t->arr.size());
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
  return weights_from_gguf(std::vector<GgufFile>{g}, cfg);
}

WeightStore weights_from_gguf(const std::vector<GgufFile>& files, const ModelConfig& cfg) {
  if (files.empty()) throw Error("GGUF model: no files");
  std::map<std::string, std::string> hf_of;
  for (const auto& m : kGlobalNames) hf_of[m.gguf] = m.hf;
  for (int64_t i = 0; i < cfg.num_layers; ++i)
    for (const auto& m : kLayerNames)
      hf_of["blk." + std::to_string(i) + "." + m.gguf] = "model.layers." + std::to_string(i) + "." + m.hf;
  std::map<std::string, Tensor> out;
  for (const GgufFile& g : files) {
    const std::string where = g.where();
    if (!g.mapping()) throw Error(where + ": GGUF tensors need a file (not a parsed buffer)");
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
          (t.name.ends_with(".attn_q.weight") || t.name.ends_with(".attn_k.weight"))) {
        const Tensor mapped = v;
        v = interleave_heads(v, t.name.ends_with(".attn_q.weight") ? cfg.num_heads : cfg.num_kv_heads, true, where,
                             t.name);
        // The mapped original is never read again: its pages leave memory, so the copy replaces
        // them instead of doubling q and k (a 7B Q4_K_M file: 600 MB).
        advise_cold(mapped.raw(), mapped.nbytes());
      }
      if (!out.emplace(it->second, std::move(v)).second)
        throw Error(where + ": tensor '" + t.name + "' appears in more than one file of the split model");
    }
  }
  return WeightStore::of_tensors(files[0].where(), std::move(out));
}

std::vector<GgufFile> open_gguf_model(const fs::path& path) {
  std::vector<GgufFile> files;
  files.push_back(GgufFile::open(path));
  const auto count = files[0].get_int_opt("split.count");
  if (!count || *count <= 1) return files;
  if (*count > 99999) throw Error(path.string() + ": split.count " + std::to_string(*count) + " is out of range");
  // NAME-00001-of-00003.gguf: the siblings differ in the first number
  const std::string name = path.filename().string();
  const std::string tail = "-of-" + std::string(5 - std::min<size_t>(5, std::to_string(*count).size()), '0') +
                           std::to_string(*count) + ".gguf";
  if (name.size() < tail.size() + 6 || !name.ends_with(tail))
    throw Error(path.string() + ": split.count is " + std::to_string(*count) + " but the name does not end in -NNNNN" +
                tail);
  const std::string stem = name.substr(0, name.size() - tail.size() - 6);
  const auto no0 = files[0].get_int_opt("split.no").value_or(0);
  std::vector<GgufFile> ordered(static_cast<size_t>(*count));
  for (int64_t i = 0; i < *count; ++i) {
    char num[24];
    std::snprintf(num, sizeof num, "-%05lld", static_cast<long long>(i + 1));
    const fs::path p = path.parent_path() / (stem + num + tail);
    if (i == no0) {
      ordered[static_cast<size_t>(i)] = files[0];
      continue;
    }
    if (!fs::exists(p)) throw Error(p.string() + ": missing file " + std::to_string(i + 1) + " of the split model");
    GgufFile g = GgufFile::open(p);
    if (g.get_int_opt("split.no").value_or(-1) != i || g.get_int_opt("split.count").value_or(-1) != *count)
      throw Error(p.string() + ": split.no / split.count do not say file " + std::to_string(i + 1) + " of " +
                  std::to_string(*count));
    ordered[static_cast<size_t>(i)] = std::move(g);
  }
  return ordered;
}

std::string gguf_chat_template(const GgufFile& g) {
  return g.get_string_opt("tokenizer.chat_template").value_or("");
}

}  // namespace yak::io

// --- writing -----------------------------------------------------------------------------------

namespace yak::io {
namespace {

struct FileTypeInfo {
  GgufFileType type;
  const char* name;
  uint32_t ftype;  // llama_ftype, general.file_type
  DType base;
};
constexpr FileTypeInfo kFileTypes[] = {
    {GgufFileType::F32, "f32", 0, DType::F32},         {GgufFileType::F16, "f16", 1, DType::F16},
    {GgufFileType::BF16, "bf16", 32, DType::BF16},     {GgufFileType::Q8_0, "q8_0", 7, DType::Q8_0},
    {GgufFileType::Q4_0, "q4_0", 2, DType::Q4_0},      {GgufFileType::Q4_1, "q4_1", 3, DType::Q4_1},
    {GgufFileType::Q5_0, "q5_0", 8, DType::Q5_0},      {GgufFileType::Q5_1, "q5_1", 9, DType::Q5_1},
    {GgufFileType::Q4_K_M, "q4_k_m", 15, DType::Q4_K}, {GgufFileType::Q5_K_M, "q5_k_m", 17, DType::Q5_K},
    {GgufFileType::Q6_K, "q6_k", 18, DType::Q6_K},
};
const FileTypeInfo& file_type_info(GgufFileType t) {
  for (const auto& f : kFileTypes)
    if (f.type == t) return f;
  throw Error("unknown GGUF file type");
}

bool use_more_bits(int64_t i, int64_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

DType fallback(DType t, int64_t row) {
  if (row % dtype_info(t).block == 0) return t;
  DType f = t;
  switch (t) {
    case DType::Q4_K:
      f = DType::Q5_0;
      break;
    case DType::Q5_K:
      f = DType::Q5_1;
      break;
    case DType::Q6_K:
      f = DType::Q8_0;
      break;
    default:
      break;
  }
  return row % dtype_info(f).block == 0 ? f : DType::F16;
}

}  // namespace

std::optional<GgufFileType> gguf_file_type_from_name(std::string_view name) {
  for (const auto& f : kFileTypes)
    if (name == f.name) return f.type;
  return std::nullopt;
}

const char* gguf_file_type_name(GgufFileType t) {
  return file_type_info(t).name;
}

DType gguf_tensor_type(GgufFileType ft, const std::string& name, int64_t layer, int64_t n_layers, int64_t row,
                       bool tied) {
  const FileTypeInfo& f = file_type_info(ft);
  DType t = f.base;
  const bool quantized = dtype_is_quantized(f.base);
  const bool output = name == "output.weight" || (tied && name == "token_embd.weight");
  if (quantized && output) {
    t = row % dtype_info(f.base).block != 0 ? DType::Q8_0 : f.base == DType::Q8_0 ? DType::Q8_0 : DType::Q6_K;
  } else if ((ft == GgufFileType::Q4_K_M || ft == GgufFileType::Q5_K_M) &&
             (name.ends_with(".attn_v.weight") || name.ends_with(".ffn_down.weight")) &&
             use_more_bits(layer, n_layers)) {
    t = DType::Q6_K;
  }
  return quantized ? fallback(t, row) : t;
}

void add_gguf_model(GgufWriter& w, const ModelConfig& cfg, const WeightStore& store, GgufFileType ft,
                    const std::string& model_name, const std::function<void(size_t, size_t)>& progress) {
  const char* arch = cfg.arch == Arch::Qwen2 ? "qwen2" : cfg.arch == Arch::Qwen3 ? "qwen3" : "llama";
  if (cfg.rope.type != RopeType::Default && cfg.rope.type != RopeType::Linear)
    throw Error(std::string("GGUF export: rope type ") + rope_type_name(cfg.rope.type) +
                " is not supported yet (default and linear are)");
  if (cfg.sequence_classifier) throw Error("GGUF export: sequence classifiers (reward models) are not supported");
  const std::string a = arch;
  w.add_string("general.architecture", a);
  w.add_string("general.type", "model");
  w.add_string("general.name", model_name);
  w.add_u32(a + ".block_count", static_cast<uint32_t>(cfg.num_layers));
  w.add_u32(a + ".context_length", static_cast<uint32_t>(cfg.max_position_embeddings));
  w.add_u32(a + ".embedding_length", static_cast<uint32_t>(cfg.hidden_size));
  w.add_u32(a + ".feed_forward_length", static_cast<uint32_t>(cfg.intermediate_size));
  w.add_u32(a + ".attention.head_count", static_cast<uint32_t>(cfg.num_heads));
  w.add_u32(a + ".attention.head_count_kv", static_cast<uint32_t>(cfg.num_kv_heads));
  w.add_f32(a + ".rope.freq_base", static_cast<float>(cfg.rope.theta));
  w.add_f32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(cfg.rms_norm_eps));
  if (cfg.head_dim != cfg.hidden_size / cfg.num_heads || cfg.arch == Arch::Llama) {
    w.add_u32(a + ".attention.key_length", static_cast<uint32_t>(cfg.head_dim));
    w.add_u32(a + ".attention.value_length", static_cast<uint32_t>(cfg.head_dim));
  }
  if (cfg.rope.type == RopeType::Linear) {
    w.add_string(a + ".rope.scaling.type", "linear");
    w.add_f32(a + ".rope.scaling.factor", static_cast<float>(cfg.rope.factor));
  }
  w.add_u32("general.file_type", file_type_info(ft).ftype);
  if (cfg.arch == Arch::Llama) {
    w.add_u32(a + ".vocab_size", static_cast<uint32_t>(cfg.vocab_size));
    w.add_u32(a + ".rope.dimension_count", static_cast<uint32_t>(cfg.head_dim));
  }
  w.add_u32("general.quantization_version", 2);

  // GGUF names of the tensors the model code uses, in the converter's order.
  std::vector<std::pair<std::string, std::string>> names;  // gguf, hf
  for (const auto& m : kGlobalNames)
    if (store.has(m.hf)) names.emplace_back(m.gguf, m.hf);
  for (int64_t i = 0; i < cfg.num_layers; ++i)
    for (const auto& m : kLayerNames) {
      const std::string hf = "model.layers." + std::to_string(i) + "." + m.hf;
      if (store.has(hf)) names.emplace_back("blk." + std::to_string(i) + "." + m.gguf, hf);
    }
  const bool tied = !store.has("lm_head.weight");
  size_t done = 0;
  for (const auto& [gname, hf] : names) {
    Tensor t = store.get(hf);
    if (!t.is_host()) t = t.to(cpu_device());
    t = t.contiguous();
    int64_t layer = -1;
    if (gname.starts_with("blk.")) layer = std::stoll(gname.substr(4));
    const DType to = t.ndim() == 1 ? DType::F32 : gguf_tensor_type(ft, gname, layer, cfg.num_layers, t.dim(1), tied);
    t = convert_rows(t, to);
    if (a == "llama" && (gname.ends_with(".attn_q.weight") || gname.ends_with(".attn_k.weight")))
      t = interleave_heads(t, gname.ends_with(".attn_q.weight") ? cfg.num_heads : cfg.num_kv_heads, false,
                           "GGUF export", gname);
    w.add_tensor(gname, t);
    if (progress) progress(++done, names.size());
  }
}

}  // namespace yak::io
