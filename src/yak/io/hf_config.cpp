#include "yak/io/hf_config.h"

#include <cmath>

namespace yak::io {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Llama:
      return "LlamaForCausalLM";
    case Arch::Mistral:
      return "MistralForCausalLM";
    case Arch::Qwen2:
      return "Qwen2ForCausalLM";
    case Arch::Qwen3VL:
      return "Qwen3VLForConditionalGeneration";
    case Arch::Qwen3:
      return "Qwen3ForCausalLM";
  }
  return "?";
}

const char* rope_type_name(RopeType t) {
  switch (t) {
    case RopeType::Default:
      return "default";
    case RopeType::Linear:
      return "linear";
    case RopeType::Dynamic:
      return "dynamic";
    case RopeType::Yarn:
      return "yarn";
    case RopeType::Llama3:
      return "llama3";
  }
  return "?";
}

namespace {

std::vector<int64_t> id_list(const Json& j, const std::string& key, const std::string& where) {
  std::vector<int64_t> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (it->is_number_integer()) {
    out.push_back(it->get<int64_t>());
  } else if (it->is_array()) {
    for (auto& v : *it) {
      if (!v.is_number_integer()) throw Error(where + ": field '" + key + "' must hold integer ids");
      out.push_back(v.get<int64_t>());
    }
  } else {
    throw Error(where + ": field '" + key + "' must be an integer or a list of integers");
  }
  return out;
}

std::optional<int64_t> opt_int(const Json& j, const std::string& key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) throw Error(where + ": field '" + key + "' must be an integer");
  return it->get<int64_t>();
}

std::optional<double> opt_num(const Json& j, const std::string& key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) throw Error(where + ": field '" + key + "' must be a number");
  return it->get<double>();
}

void parse_rope(const Json& j, const std::string& where, RopeConfig& r) {
  // v4: rope_theta at the top, rope_scaling {type|rope_type, factor, ...} or null.
  // v5: rope_parameters {rope_type, rope_theta, factor, ...}.
  if (auto t = opt_num(j, "rope_theta", where)) r.theta = *t;
  const Json* s = nullptr;
  std::string field = "rope_scaling";
  if (auto it = j.find("rope_parameters"); it != j.end() && it->is_object()) {
    s = &*it;
    field = "rope_parameters";
  } else if (auto it2 = j.find("rope_scaling"); it2 != j.end() && it2->is_object()) {
    s = &*it2;
  }
  if (!s) return;
  const std::string w = where + ": " + field;
  if (auto t = opt_num(*s, "rope_theta", w)) r.theta = *t;
  std::string type = json_get_or<std::string>(*s, "rope_type", "", w);
  if (type.empty()) type = json_get_or<std::string>(*s, "type", "default", w);
  if (type == "default")
    r.type = RopeType::Default;
  else if (type == "linear")
    r.type = RopeType::Linear;
  else if (type == "dynamic")
    r.type = RopeType::Dynamic;
  else if (type == "yarn")
    r.type = RopeType::Yarn;
  else if (type == "llama3")
    r.type = RopeType::Llama3;
  else
    throw Error(w + ": unsupported rope type '" + type + "' (expected default, linear, dynamic, yarn or llama3)");
  r.original_max_position_embeddings = opt_int(*s, "original_max_position_embeddings", w);
  // A top-level original_max_position_embeddings wins over the one in the rope dict (transformers).
  if (auto top = opt_int(j, "original_max_position_embeddings", where)) r.original_max_position_embeddings = top;
  if (r.type != RopeType::Default) {
    auto f = opt_num(*s, "factor", w);
    if (!f && r.type == RopeType::Yarn && r.original_max_position_embeddings && *r.original_max_position_embeddings > 0)
      f = static_cast<double>(json_get_or<int64_t>(j, "max_position_embeddings", 2048, where)) /
          static_cast<double>(*r.original_max_position_embeddings);
    if (!f) throw Error(w + ": rope type '" + type + "' needs a numeric 'factor'");
    if (!(*f > 0)) throw Error(w + ": 'factor' must be positive");
    r.factor = *f;
  }
  r.attention_factor = opt_num(*s, "attention_factor", w);
  // transformers reads these with `or`: 0 means the default too.
  if (auto v = opt_num(*s, "beta_fast", w); v && *v != 0) r.beta_fast = *v;
  if (auto v = opt_num(*s, "beta_slow", w); v && *v != 0) r.beta_slow = *v;
  r.mscale = opt_num(*s, "mscale", w);
  r.mscale_all_dim = opt_num(*s, "mscale_all_dim", w);
  r.truncate = json_get_or<bool>(*s, "truncate", true, w);
  if (auto v = opt_num(*s, "low_freq_factor", w)) r.low_freq_factor = *v;
  if (auto v = opt_num(*s, "high_freq_factor", w)) r.high_freq_factor = *v;
  if (r.type == RopeType::Llama3 && !r.original_max_position_embeddings)
    throw Error(w + ": rope type 'llama3' needs 'original_max_position_embeddings'");
  if (auto it = s->find("mrope_section"); it != s->end() && !it->is_null()) {
    if (!it->is_array() || it->size() != 3)
      throw Error(w + ": field 'mrope_section' must be a list of 3 integers (temporal, height, width)");
    for (auto& v : *it) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0)
        throw Error(w + ": field 'mrope_section' must hold non-negative integers");
      r.mrope_section.push_back(v.get<int64_t>());
    }
    r.mrope_interleaved = json_get_or<bool>(*s, "mrope_interleaved", false, w);
  }
}

VisionConfig parse_vision(const Json& v, const std::string& w) {
  if (!v.is_object()) throw Error(w + ": expected a JSON object");
  VisionConfig c;
  c.depth = json_get<int64_t>(v, "depth", w);
  c.hidden_size = json_get<int64_t>(v, "hidden_size", w);
  c.num_heads = json_get<int64_t>(v, "num_heads", w);
  c.intermediate_size = json_get<int64_t>(v, "intermediate_size", w);
  c.in_channels = json_get_or<int64_t>(v, "in_channels", 3, w);
  c.patch_size = json_get_or<int64_t>(v, "patch_size", 16, w);
  c.temporal_patch_size = json_get_or<int64_t>(v, "temporal_patch_size", 2, w);
  c.spatial_merge_size = json_get_or<int64_t>(v, "spatial_merge_size", 2, w);
  c.out_hidden_size = json_get<int64_t>(v, "out_hidden_size", w);
  c.num_position_embeddings = json_get<int64_t>(v, "num_position_embeddings", w);
  c.hidden_act = json_get_or<std::string>(v, "hidden_act", "gelu_pytorch_tanh", w);
  for (const char* name : {"depth", "hidden_size", "num_heads", "intermediate_size", "in_channels", "patch_size",
                           "temporal_patch_size", "spatial_merge_size", "out_hidden_size", "num_position_embeddings"})
    if (json_get_or<int64_t>(v, name, 1, w) <= 0) throw Error(w + ": field '" + name + "' must be positive");
  if (c.hidden_size % c.num_heads != 0 || c.head_dim() % 4 != 0)
    throw Error(w + ": hidden_size / num_heads must be a multiple of 4 (2-D rotary embedding)");
  if (c.hidden_act != "gelu_pytorch_tanh" && c.hidden_act != "gelu")
    throw Error(w + ": field 'hidden_act': expected 'gelu_pytorch_tanh' or 'gelu', got '" + c.hidden_act + "'");
  if (auto it = v.find("deepstack_visual_indexes"); it != v.end() && !it->is_null()) {
    if (!it->is_array()) throw Error(w + ": field 'deepstack_visual_indexes' must be a list of layer indexes");
    for (auto& x : *it) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= c.depth)
        throw Error(w + ": field 'deepstack_visual_indexes' must hold layer indexes below depth " +
                    std::to_string(c.depth));
      c.deepstack_visual_indexes.push_back(x.get<int64_t>());
    }
  }
  if (auto it = v.find("rope_parameters"); it != v.end() && it->is_object()) {
    const std::string type = json_get_or<std::string>(*it, "rope_type", "axial", w + ": rope_parameters");
    if (type != "axial" && type != "default")
      throw Error(w + ": rope_parameters: unsupported vision rope type '" + type + "' (expected axial)");
    c.rope_theta = json_get_or<double>(*it, "rope_theta", 10000.0, w + ": rope_parameters");
  }
  c.grid_side();
  return c;
}

}  // namespace

ModelConfig ModelConfig::from_json(const Json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": expected a JSON object");
  ModelConfig c;
  std::string arch;
  if (auto it = j.find("architectures"); it != j.end() && it->is_array() && !it->empty() && (*it)[0].is_string())
    arch = (*it)[0].get<std::string>();
  c.model_type = json_get_or<std::string>(j, "model_type", "", where);
  if (arch.empty()) {
    static const std::pair<const char*, const char*> by_type[] = {{"llama", "LlamaForCausalLM"},
                                                                  {"mistral", "MistralForCausalLM"},
                                                                  {"qwen2", "Qwen2ForCausalLM"},
                                                                  {"qwen3", "Qwen3ForCausalLM"}};
    for (auto& [t, a] : by_type)
      if (c.model_type == t) arch = a;
  }
  // Reward models: the same decoder with a `score` head instead of lm_head.
  const std::string cls = "ForSequenceClassification";
  if (arch.size() > cls.size() && arch.compare(arch.size() - cls.size(), cls.size(), cls) == 0) {
    arch = arch.substr(0, arch.size() - cls.size()) + "ForCausalLM";
    c.sequence_classifier = true;
    if (auto it = j.find("id2label"); it != j.end() && it->is_object() && !it->empty())
      c.num_labels = static_cast<int64_t>(it->size());
    else
      c.num_labels = json_get_or<int64_t>(j, "num_labels", 1, where);
  }
  if (arch == "Qwen3VLMoeForConditionalGeneration")
    throw Error(where + ": field 'architectures': the Qwen3-VL mixture-of-experts model (" + arch +
                ") is not supported; the dense Qwen3VLForConditionalGeneration is");
  if (arch == "Qwen3VLForConditionalGeneration") {
    // The decoder is a Qwen3 described by text_config; the vision tower by vision_config.
    auto text = j.find("text_config");
    if (text == j.end() || !text->is_object())
      throw Error(where + ": Qwen3VLForConditionalGeneration needs an object 'text_config'");
    Json tj = *text;
    tj["architectures"] = Json::array({"Qwen3ForCausalLM"});
    ModelConfig t = from_json(tj, where + ": text_config");
    t.arch = Arch::Qwen3VL;
    t.model_type = c.model_type;
    t.weight_prefix = "model.language_model.";
    t.tie_word_embeddings = json_get_or<bool>(j, "tie_word_embeddings", false, where);
    auto vis = j.find("vision_config");
    if (vis == j.end()) throw Error(where + ": Qwen3VLForConditionalGeneration needs 'vision_config'");
    VisionConfig v = parse_vision(*vis, where + ": vision_config");
    v.image_token_id = json_get_or<int64_t>(j, "image_token_id", 151655, where);
    v.video_token_id = json_get_or<int64_t>(j, "video_token_id", 151656, where);
    v.vision_start_token_id = json_get_or<int64_t>(j, "vision_start_token_id", 151652, where);
    v.vision_end_token_id = json_get_or<int64_t>(j, "vision_end_token_id", 151653, where);
    if (v.out_hidden_size != t.hidden_size)
      throw Error(where + ": vision_config.out_hidden_size (" + std::to_string(v.out_hidden_size) +
                  ") must equal text_config.hidden_size (" + std::to_string(t.hidden_size) + ")");
    if (static_cast<int64_t>(v.deepstack_visual_indexes.size()) > t.num_layers)
      throw Error(where + ": more DeepStack layers than decoder layers");
    if (!t.rope.mrope_section.empty()) {
      int64_t sum = 0;
      for (auto x : t.rope.mrope_section) sum += x;
      if (sum != t.head_dim / 2)
        throw Error(where + ": text_config rope mrope_section sums to " + std::to_string(sum) +
                    " but head_dim / 2 is " + std::to_string(t.head_dim / 2));
    }
    if (t.rope.type != RopeType::Default)
      throw Error(where + ": text_config: only the default rope type is supported with M-RoPE");
    if (auto e = j.find("eos_token_id"); e != j.end()) t.eos_token_ids = id_list(j, "eos_token_id", where);
    t.vision = v;
    return t;
  }
  if (arch == "LlamaForCausalLM")
    c.arch = Arch::Llama;
  else if (arch == "MistralForCausalLM")
    c.arch = Arch::Mistral;
  else if (arch == "Qwen2ForCausalLM")
    c.arch = Arch::Qwen2;
  else if (arch == "Qwen3ForCausalLM")
    c.arch = Arch::Qwen3;
  else
    throw Error(where + ": field 'architectures': unsupported architecture '" + arch +
                "' (expected LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM or "
                "Qwen3VLForConditionalGeneration)");

  c.vocab_size = json_get<int64_t>(j, "vocab_size", where);
  c.hidden_size = json_get<int64_t>(j, "hidden_size", where);
  c.intermediate_size = json_get<int64_t>(j, "intermediate_size", where);
  c.num_layers = json_get<int64_t>(j, "num_hidden_layers", where);
  c.num_heads = json_get<int64_t>(j, "num_attention_heads", where);
  c.num_kv_heads = json_get_or<int64_t>(j, "num_key_value_heads", c.num_heads, where);
  auto positive = [&](int64_t v, const char* name) {
    if (v <= 0) throw Error(where + ": field '" + name + "' must be positive, got " + std::to_string(v));
  };
  positive(c.vocab_size, "vocab_size");
  positive(c.hidden_size, "hidden_size");
  positive(c.intermediate_size, "intermediate_size");
  positive(c.num_layers, "num_hidden_layers");
  positive(c.num_heads, "num_attention_heads");
  positive(c.num_kv_heads, "num_key_value_heads");
  if (c.num_heads % c.num_kv_heads != 0)
    throw Error(where + ": num_attention_heads (" + std::to_string(c.num_heads) +
                ") must be a multiple of num_key_value_heads (" + std::to_string(c.num_kv_heads) + ")");
  auto hd = opt_int(j, "head_dim", where);
  if (hd) {
    c.head_dim = *hd;
  } else {
    if (c.hidden_size % c.num_heads != 0)
      throw Error(where + ": hidden_size must be divisible by num_attention_heads when head_dim is absent");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  positive(c.head_dim, "head_dim");
  if (c.head_dim % 2 != 0) throw Error(where + ": field 'head_dim' must be even for RoPE");
  c.rms_norm_eps = json_get_or<double>(j, "rms_norm_eps", 1e-6, where);
  c.max_position_embeddings = json_get_or<int64_t>(j, "max_position_embeddings", 2048, where);
  c.tie_word_embeddings = json_get_or<bool>(j, "tie_word_embeddings", false, where);
  c.hidden_act = json_get_or<std::string>(j, "hidden_act", "silu", where);
  if (c.hidden_act != "silu")
    throw Error(where + ": field 'hidden_act': only 'silu' is supported, got '" + c.hidden_act + "'");
  c.torch_dtype =
      json_get_or<std::string>(j, "torch_dtype", json_get_or<std::string>(j, "dtype", "float32", where), where);
  if (json_get_or<bool>(j, "mlp_bias", false, where))
    throw Error(where + ": field 'mlp_bias': MLP biases are not supported");
  c.attention_bias = c.arch == Arch::Qwen2 || json_get_or<bool>(j, "attention_bias", false, where);
  c.qk_norm = c.arch == Arch::Qwen3;
  parse_rope(j, where, c.rope);
  if (c.arch == Arch::Mistral) {
    // MistralConfig's default is a 4096-token window; an explicit null turns it off.
    c.sliding_window =
        j.contains("sliding_window") ? opt_int(j, "sliding_window", where) : std::optional<int64_t>(4096);
  } else if (c.arch == Arch::Qwen2 || c.arch == Arch::Qwen3) {
    // Qwen ignores sliding_window unless use_sliding_window is set, and then only from layer
    // max_window_layers on.
    if (json_get_or<bool>(j, "use_sliding_window", false, where)) {
      c.sliding_window = opt_int(j, "sliding_window", where);
      c.sliding_window_from_layer = json_get_or<int64_t>(j, "max_window_layers", 0, where);
    }
  }
  // v5 configs list each layer's attention kind; that list, when present, is the truth.
  c.sliding_layers.assign(static_cast<size_t>(c.num_layers), false);
  if (c.sliding_window) {
    auto lt = j.find("layer_types");
    if (lt != j.end() && lt->is_array()) {
      if (lt->size() != static_cast<size_t>(c.num_layers))
        throw Error(where + ": field 'layer_types' has " + std::to_string(lt->size()) + " entries for " +
                    std::to_string(c.num_layers) + " layers");
      for (size_t i = 0; i < lt->size(); ++i) c.sliding_layers[i] = (*lt)[i] == "sliding_attention";
    } else {
      for (int64_t i = c.sliding_window_from_layer; i < c.num_layers; ++i)
        c.sliding_layers[static_cast<size_t>(i)] = true;
    }
  }
  c.bos_token_id = opt_int(j, "bos_token_id", where);
  c.pad_token_id = opt_int(j, "pad_token_id", where);
  c.eos_token_ids = id_list(j, "eos_token_id", where);
  return c;
}

Json ModelConfig::to_json() const {
  static const char* kModelTypes[] = {"llama", "mistral", "qwen2", "qwen3", "qwen3_vl"};
  if (arch == Arch::Qwen3VL)
    throw Error("config.json: writing a Qwen3-VL configuration is not supported yet (copy the original)");
  Json j = {{"architectures", {arch_name(arch)}},
            {"model_type", kModelTypes[static_cast<int>(arch)]},
            {"vocab_size", vocab_size},
            {"hidden_size", hidden_size},
            {"intermediate_size", intermediate_size},
            {"num_hidden_layers", num_layers},
            {"num_attention_heads", num_heads},
            {"num_key_value_heads", num_kv_heads},
            {"head_dim", head_dim},
            {"hidden_act", hidden_act},
            {"rms_norm_eps", rms_norm_eps},
            {"max_position_embeddings", max_position_embeddings},
            {"rope_theta", rope.theta},
            {"tie_word_embeddings", tie_word_embeddings},
            {"torch_dtype", torch_dtype}};
  if (arch == Arch::Llama) j["attention_bias"] = attention_bias;
  if (rope.type == RopeType::Linear) j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rope.factor}};
  if (rope.type != RopeType::Default && rope.type != RopeType::Linear)
    throw Error(std::string("config.json: writing rope type ") + rope_type_name(rope.type) + " is not supported yet");
  if (bos_token_id) j["bos_token_id"] = *bos_token_id;
  if (pad_token_id) j["pad_token_id"] = *pad_token_id;
  if (eos_token_ids.size() == 1) j["eos_token_id"] = eos_token_ids[0];
  if (eos_token_ids.size() > 1) j["eos_token_id"] = eos_token_ids;
  return j;
}

ModelConfig ModelConfig::load(const std::filesystem::path& dir) {
  auto path = dir / "config.json";
  if (!std::filesystem::exists(path))
    throw Error(dir.string() + ": no config.json (is this a Hugging Face model folder?)");
  return from_json(read_json_file(path), path.string());
}

GenerationDefaults GenerationDefaults::load(const std::filesystem::path& dir) {
  GenerationDefaults g;
  auto path = dir / "generation_config.json";
  if (!std::filesystem::exists(path)) return g;
  Json j = read_json_file(path);
  const std::string w = path.string();
  if (!j.is_object()) throw Error(w + ": expected a JSON object");
  if (auto it = j.find("do_sample"); it != j.end() && it->is_boolean()) g.do_sample = it->get<bool>();
  g.temperature = opt_num(j, "temperature", w);
  g.top_p = opt_num(j, "top_p", w);
  g.min_p = opt_num(j, "min_p", w);
  g.repetition_penalty = opt_num(j, "repetition_penalty", w);
  g.top_k = opt_int(j, "top_k", w);
  g.max_new_tokens = opt_int(j, "max_new_tokens", w);
  g.eos_token_ids = id_list(j, "eos_token_id", w);
  g.bos_token_id = opt_int(j, "bos_token_id", w);
  g.pad_token_id = opt_int(j, "pad_token_id", w);
  return g;
}

int64_t VisionConfig::grid_side() const {
  int64_t side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(num_position_embeddings))));
  if (side * side != num_position_embeddings)
    throw Error("vision_config: num_position_embeddings (" + std::to_string(num_position_embeddings) +
                ") must be a square");
  return side;
}

}  // namespace yak::io
