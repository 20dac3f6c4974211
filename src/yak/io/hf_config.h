// config.json and generation_config.json of a Hugging Face checkpoint as typed structs.
// Accepts both the v4 spelling (rope_theta, rope_scaling) and the v5 one (rope_parameters).
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "yak/base/json.h"
#include "yak/tensor/dtype.h"

namespace yak::io {

enum class Arch { Llama, Mistral, Qwen2, Qwen3, Qwen3VL };
const char* arch_name(Arch a);  // the HF class name, e.g. "Qwen2ForCausalLM"

enum class RopeType { Default, Linear, Dynamic, Yarn, Llama3 };
const char* rope_type_name(RopeType t);

struct RopeConfig {
  RopeType type = RopeType::Default;
  double theta = 10000.0;
  double factor = 1.0;
  // yarn / llama3 / dynamic: the context length the model was trained with.
  std::optional<int64_t> original_max_position_embeddings;
  // yarn
  std::optional<double> attention_factor;
  double beta_fast = 32.0, beta_slow = 1.0;
  std::optional<double> mscale, mscale_all_dim;
  bool truncate = true;
  // llama3
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  // M-RoPE (Qwen3-VL): frequencies split between the temporal, height and width position of each
  // token, mrope_section[a] of them for axis a; interleaved: T H W T H W ... (Qwen3-VL), else in
  // three chunks (Qwen2-VL). Empty: one position per token.
  std::vector<int64_t> mrope_section;
  bool mrope_interleaved = false;
};

// Qwen3-VL's vision tower (vision_config).
struct VisionConfig {
  int64_t depth = 0, hidden_size = 0, num_heads = 0, intermediate_size = 0;
  int64_t in_channels = 3, patch_size = 16, temporal_patch_size = 2, spatial_merge_size = 2;
  int64_t out_hidden_size = 0, num_position_embeddings = 0;
  std::vector<int64_t> deepstack_visual_indexes;
  std::string hidden_act = "gelu_pytorch_tanh";
  double rope_theta = 10000.0;
  int64_t image_token_id = 0, video_token_id = 0, vision_start_token_id = 0, vision_end_token_id = 0;
  int64_t head_dim() const { return hidden_size / num_heads; }
  int64_t patch_values() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
  int64_t grid_side() const;  // sqrt(num_position_embeddings), checked to be whole
};

struct ModelConfig {
  Arch arch = Arch::Llama;
  std::string model_type;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  int64_t max_position_embeddings = 2048;
  bool tie_word_embeddings = false;
  bool attention_bias = false;       // q/k/v biases (Qwen2 always; LLaMA when attention_bias=true)
  bool qk_norm = false;              // per-head RMSNorm on q and k before RoPE (Qwen3)
  bool sequence_classifier = false;  // *ForSequenceClassification: a `score` head, no lm_head
  int64_t num_labels = 1;
  std::optional<int64_t> sliding_window;  // only when the checkpoint enables it
  int64_t sliding_window_from_layer = 0;  // layers below this index attend to everything
  std::vector<bool> sliding_layers;       // per layer: does the window apply
  std::string hidden_act = "silu";
  std::string torch_dtype = "float32";
  std::optional<int64_t> bos_token_id, pad_token_id;
  std::vector<int64_t> eos_token_ids;
  // Where the decoder's tensors live: "model." (…ForCausalLM) or "model.language_model."
  // (Qwen3-VL, whose vision tower is under "model.visual.").
  std::string weight_prefix = "model.";
  std::optional<VisionConfig> vision;  // vision-language models only

  static ModelConfig from_json(const Json& j, const std::string& where);
  // config.json as transformers writes it for this model (v4 spelling: rope_theta, rope_scaling).
  Json to_json() const;
  static ModelConfig load(const std::filesystem::path& dir);  // reads dir/config.json
};

struct GenerationDefaults {
  std::optional<bool> do_sample;
  std::optional<double> temperature, top_p, min_p, repetition_penalty;
  std::optional<int64_t> top_k, max_new_tokens;
  std::vector<int64_t> eos_token_ids;
  std::optional<int64_t> bos_token_id, pad_token_id;
  // Reads dir/generation_config.json when present (all fields optional).
  static GenerationDefaults load(const std::filesystem::path& dir);
};

}  // namespace yak::io
