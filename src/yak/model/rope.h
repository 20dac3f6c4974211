// Rotary position embedding tables for every rope_scaling type transformers implements
// (default, linear, dynamic NTK, YaRN, llama3): inverse frequencies plus the cos/sin scale.
#pragma once
#include <cstdint>
#include <vector>

#include "yak/io/hf_config.h"

namespace yak::model {

struct RopeTable {
  std::vector<float> inv_freq;   // head_dim / 2 entries
  float attention_scale = 1.0f;  // multiplies cos and sin (YaRN)
};

class Rope {
 public:
  Rope(const io::RopeConfig& cfg, int64_t head_dim, int64_t max_position_embeddings);
  // Table for a forward pass whose longest sequence is seq_len tokens. Only "dynamic" depends on
  // seq_len: past the trained context it rescales the base, as transformers does per forward.
  const RopeTable& table(int64_t seq_len);
  // cos/sin for position pos into out arrays of head_dim/2.
  static void angles(const RopeTable& t, int64_t pos, float* cos, float* sin);

 private:
  io::RopeConfig cfg_;
  int64_t dim_, max_pos_;
  RopeTable base_, dynamic_;
  int64_t dynamic_len_ = -1;
};

}  // namespace yak::model
