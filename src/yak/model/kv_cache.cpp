#include "yak/model/kv_cache.h"

namespace yak::model {

KVCache::KVCache(const io::ModelConfig& cfg, int64_t slots, int64_t capacity)
    : slots_(slots), capacity_(capacity), stride_(capacity * cfg.num_kv_heads * cfg.head_dim) {
  k_.resize(cfg.num_layers);
  v_.resize(cfg.num_layers);
  for (auto& k : k_) k.resize(static_cast<size_t>(slots_ * stride_));
  for (auto& v : v_) v.resize(static_cast<size_t>(slots_ * stride_));
}

}  // namespace yak::model
