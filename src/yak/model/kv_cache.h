// Per-layer key/value storage for a fixed number of sequence slots. The engine owns one and
// assigns slots to sequences; the decoder writes new keys/values and reads the past from it.
#pragma once
#include <cstdint>
#include <vector>

#include "yak/io/hf_config.h"

namespace yak::model {

class KVCache {
 public:
  KVCache(const io::ModelConfig& cfg, int64_t slots, int64_t capacity);
  int64_t slots() const { return slots_; }
  int64_t capacity() const { return capacity_; }
  // [capacity, kv_heads, head_dim] block for (layer, slot).
  float* keys(int64_t layer, int64_t slot) { return k_[layer].data() + slot * stride_; }
  float* values(int64_t layer, int64_t slot) { return v_[layer].data() + slot * stride_; }
  size_t bytes() const { return 2 * k_.size() * static_cast<size_t>(slots_ * stride_) * sizeof(float); }

 private:
  int64_t slots_, capacity_, stride_;
  std::vector<std::vector<float>> k_, v_;
};

}  // namespace yak::model
