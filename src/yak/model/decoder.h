// The decoder-only transformer shared by LLaMA, Mistral, Qwen2 and Qwen3: loaded from a Hugging
// Face folder, run over a ragged batch of tokens (prefill and decode alike) with a KV cache.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "yak/io/hf_config.h"
#include "yak/io/safetensors.h"
#include "yak/model/kv_cache.h"
#include "yak/model/rope.h"
#include "yak/tensor/tensor.h"

namespace yak::model {

struct LayerWeights {
  Tensor attn_norm, q, k, v, o;   // projections: [out, in], checkpoint dtype
  Tensor q_bias, k_bias, v_bias;  // f32, Qwen2 (empty otherwise)
  Tensor q_norm, k_norm;          // f32 [head_dim], Qwen3 (empty otherwise)
  Tensor mlp_norm, gate, up, down;
};

// One forward call's tokens: token i is ids[i] at position pos[i] of sequence slot slot[i].
// Tokens of a slot must be in increasing position order and follow what the cache already holds.
struct Batch {
  std::vector<int32_t> ids, pos, slot;
  std::vector<int32_t> logits_for;  // indices into ids whose logits are returned
};

class DecoderModel {
 public:
  static std::unique_ptr<DecoderModel> load(const std::filesystem::path& dir);
  DecoderModel(io::ModelConfig cfg, io::WeightStore store);

  const io::ModelConfig& config() const { return cfg_; }
  int64_t parameter_count() const;
  // dtype name -> bytes of weights, for `yak info`
  std::vector<std::pair<std::string, size_t>> weight_bytes_by_dtype() const;
  DType weight_dtype() const { return layers_.at(0).q.dtype(); }

  // Logits [batch.logits_for.size(), vocab] f32.
  Tensor forward(const Batch& batch, KVCache& cache);

 private:
  void attention(const Batch& batch, KVCache& cache, int64_t layer, const float* q, float* out);

  io::ModelConfig cfg_;
  io::WeightStore store_;
  Tensor embed_, final_norm_, lm_head_;
  std::vector<LayerWeights> layers_;
  Rope rope_;
};

}  // namespace yak::model
