// Rotary position embedding tables for every rope_scaling type transformers implements
// (default, linear, dynamic NTK, YaRN, llama3): inverse frequencies plus the cos/sin scale.
#pragma once
#include <cstdint>
#include <string>
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
  // M-RoPE: frequency i turns with the temporal, height or width position of thw as `cfg`'s
  // mrope_section assigns it (interleaved T H W T H W ..., or three chunks).
  static void angles_mrope(const RopeTable& t, const io::RopeConfig& cfg, const int32_t thw[3], float* cos,
                           float* sin);

 private:
  io::RopeConfig cfg_;
  int64_t dim_, max_pos_;
  RopeTable base_, dynamic_;
  int64_t dynamic_len_ = -1;
};

// Chinese-LLaMA-Alpaca-2's NTK scaling (its scripts' --alpha, attn_and_long_ctx_patches.py):
// a number a > 0 raises the base at every length, theta * a^(d/(d-2)) (d = head_dim), on top of
// a default or linear rope; "auto" rescales past the trained context with
// alpha = seq_len / (max_position_embeddings / 2) - 1, which is exactly transformers' dynamic NTK
// with factor 2 (both give theta * (2 s / m - 1)^(d/(d-2))), so it becomes that. Throws
// yak::Error for other rope types, for "auto" over a linear rope (not combined here), and for
// values that are neither.
io::RopeConfig with_ntk_alpha(io::RopeConfig rope, const std::string& alpha, int64_t head_dim);

}  // namespace yak::model
