// The decoder-only transformer shared by LLaMA, Mistral, Qwen2 and Qwen3: loaded from a Hugging
// Face folder, run over a ragged batch of tokens (prefill and decode alike) with a KV cache.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "yak/autograd/var.h"
#include "yak/io/hf_config.h"
#include "yak/io/safetensors.h"
#include "yak/model/kv_cache.h"
#include "yak/model/lora.h"
#include "yak/model/rope.h"
#include "yak/model/vision.h"
#include "yak/tensor/tensor.h"

namespace yak::model {

// Weights are Vars: views of the mapped checkpoint for inference, f32 copies that require grad
// once make_trainable() ran. Undefined Vars are absent (no bias, no q/k norm).
struct LayerWeights {
  ag::Var attn_norm, q, k, v, o;   // projections: [out, in]
  ag::Var q_bias, k_bias, v_bias;  // Qwen2
  ag::Var q_norm, k_norm;          // Qwen3, [head_dim]
  ag::Var mlp_norm, gate, up, down;
  std::array<LoraAdapter, kProjCount> lora;  // indexed by Proj; undefined = no adapter
};

struct NamedParam {
  std::string name;  // the checkpoint's tensor name
  ag::Var var;
};

// One forward call's tokens: token i is ids[i] at position pos[i] of sequence slot slot[i].
// Tokens of a slot must be in increasing position order and follow what the cache already holds.
// Image features a vision-language model puts into its decoder: the embeddings of the image tokens
// at batch rows `rows` replace those tokens' embeddings, and deepstack[k] is added to the same rows
// after decoder layer k (Qwen3-VL's DeepStack).
struct VisualInput {
  std::vector<int32_t> rows;
  ag::Var embeds;                  // [rows, hidden]
  std::vector<ag::Var> deepstack;  // each [rows, hidden]
};

struct Batch {
  std::vector<int32_t> ids, pos, slot;
  std::vector<int32_t> logits_for;  // indices into ids whose logits are returned
  // M-RoPE models: (temporal, height, width) rotary position of each token, 3 per token; empty:
  // pos on every axis. pos stays the token's place in its slot's KV cache.
  std::vector<int32_t> mrope_pos;
  const VisualInput* visual = nullptr;
};

class DecoderModel {
 public:
  static std::unique_ptr<DecoderModel> load(const std::filesystem::path& dir);
  DecoderModel(io::ModelConfig cfg, io::WeightStore store);

  const io::ModelConfig& config() const { return cfg_; }
  // The vision tower of a vision-language checkpoint (Qwen3-VL); null for text models.
  const VisionModel* vision() const { return vision_.get(); }
  // Replaces the rope settings the checkpoint gave (e.g. with_ntk_alpha's) before any forward.
  void set_rope(const io::RopeConfig& rope) {
    cfg_.rope = rope;
    rope_ = Rope(rope, cfg_.head_dim, cfg_.max_position_embeddings);
  }
  int64_t parameter_count() const;
  // dtype name -> bytes of weights, for `yak info`
  std::vector<std::pair<std::string, size_t>> weight_bytes_by_dtype() const;
  DType weight_dtype() const { return layers_.at(0).q.value().dtype(); }
  // Where the weights live; activations and caches of its forwards go there too.
  Device device() const { return embed_.device(); }
  // Moves every weight (and adapter) to `device` (a copy; mapped host weights stay mapped until
  // nothing refers to them). Trainable weights stay trainable.
  void to(Device device);

  // Logits [batch.logits_for.size(), vocab] f32.
  Tensor forward(const Batch& batch, KVCache& cache) { return forward_var(batch, cache).value(); }
  // The same forward as a Var: with an open ag::Tape and trainable weights it records the
  // backward. The cache must live until the tape's backward ran (attention reads it there).
  ag::Var forward_var(const Batch& batch, KVCache& cache);

  // Final-normed hidden states [logits_for.size(), hidden] f32 (sentence embeddings, probes).
  Tensor hidden_states(const Batch& batch, KVCache& cache) { return trunk(batch, cache).value(); }

  // Reward model: scores [logits_for, num_labels] from the `score` head on the final hidden states
  // (the checkpoint's score.weight, or one made by add_score_head).
  ag::Var forward_scores(const Batch& batch, KVCache& cache);
  // A new score head (normal, std 1 / (hidden + 1), as OpenRLHF's value head); makes the model a
  // sequence classifier whose save has no lm_head.
  void add_score_head(int64_t num_labels, uint64_t seed);
  bool has_score_head() const { return score_.defined(); }

  // Replaces every weight by an f32 copy that requires grad (master weights for training).
  void make_trainable();
  // Every distinct weight with its checkpoint name (tied lm_head appears once, as embed_tokens).
  // LoRA matrices are not included (see lora_parameters()).
  std::vector<NamedParam> parameters() const;

  // LoRA. add_lora makes a fresh adapter (A Kaiming-uniform as PEFT, B = 0); load_lora reads a
  // PEFT folder and checks it fits this base; save_lora writes one; merge_lora folds B A into the
  // weights (f32) and drops the adapter. make_lora_trainable freezes the base and trains A, B and
  // the modules_to_save copies.
  void add_lora(const LoraConfig& cfg, uint64_t seed);
  // QLoRA (OpenRLHF's --load_in_4bit): every layer's seven projection weights converted to `type`
  // and frozen (a block format whose block does not divide a row falls back to Q4_0, else the
  // weight stays as it is); embeddings, norms and lm_head keep their dtype. Returns the
  // projections' bytes before and after.
  std::pair<size_t, size_t> convert_projections(DType type);
  void load_lora(const std::filesystem::path& dir);
  void save_lora(const std::filesystem::path& dir) const;
  void merge_lora();
  void make_lora_trainable();
  bool has_lora() const { return lora_.has_value(); }
  // Off: forwards skip the adapter's B A term (the base model, e.g. as a DPO reference while
  // training LoRA). modules_to_save copies replace the base weights and stay in effect.
  void set_lora_enabled(bool on) { lora_enabled_ = on; }
  bool lora_enabled() const { return lora_enabled_; }
  const std::optional<LoraConfig>& lora_config() const { return lora_; }
  // A and B of every adapter (names in PEFT's adapter_model.safetensors spelling), then the
  // modules_to_save copies.
  std::vector<NamedParam> lora_parameters() const;
  // Everything that requires grad: parameters() after make_trainable(), lora_parameters() after
  // make_lora_trainable().
  std::vector<NamedParam> trainable_parameters() const;
  // Gradient checkpointing: while training, each layer's activations are dropped after its forward
  // and recomputed in the backward (memory per layer instead of per op).
  void set_gradient_checkpointing(bool on) { checkpointing_ = on; }
  // LoRA dropout draws from this seed (set per step by the trainer so resumed runs repeat).
  void set_dropout_seed(uint64_t seed) { dropout_seed_ = seed; }

 private:
  io::ModelConfig cfg_;
  io::WeightStore store_;
  ag::Var embed_, final_norm_, lm_head_, score_;
  ag::Var trunk(const Batch& batch, KVCache& cache);  // final-normed hidden states of logits_for rows
  std::vector<LayerWeights> layers_;
  std::unique_ptr<VisionModel> vision_;
  Rope rope_;
  std::optional<LoraConfig> lora_;
  uint64_t dropout_seed_ = 0;
  bool checkpointing_ = false;
  bool lora_enabled_ = true;
  ag::Var layer_forward(const ag::Var& x, int64_t l, const Batch& batch, KVCache& cache, const Tensor& cs) const;
  ag::Var proj(const ag::Var& x, const ag::Var& w, const ag::Var* bias, const LoraAdapter& lora, uint64_t salt) const;
};

}  // namespace yak::model
