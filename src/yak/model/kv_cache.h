// Per-layer key/value storage for a fixed number of sequence slots, preallocated as tensors of a
// chosen dtype (f32, f16, bf16) on a device. Memory is laid out in pages of page_size positions
// ([pages, kv_heads, page_size, head_dim] per layer) with a page table per slot, the layout a
// paged cache needs. By default every slot owns its pages from the start; a paged cache (the
// `pages` constructor) holds a pool of physical pages that its owner hands out to slots with
// set_page (yak serve: pages on demand, prompt prefixes shared between slots).
#pragma once
#include <cstdint>
#include <vector>

#include "yak/io/hf_config.h"
#include "yak/ops/backend.h"

namespace yak::model {

class KVCache {
 public:
  static constexpr int64_t kPageSize = 64;
  KVCache(const io::ModelConfig& cfg, int64_t slots, int64_t capacity, DType dtype = DType::F32, Device device = {});
  // A pool of `pages` physical pages for `slots` slots of up to `capacity` positions; every page
  // table entry starts at page 0 until set_page maps it. Host page table only.
  KVCache(const io::ModelConfig& cfg, int64_t slots, int64_t capacity, int64_t pages, DType dtype, Device device = {});
  // Maps the slot's positions [logical * kPageSize, (logical + 1) * kPageSize) to a physical page.
  void set_page(int64_t slot, int64_t logical, int32_t physical);
  int64_t pages() const { return pages_; }
  int64_t pages_per_slot() const { return (capacity_ + kPageSize - 1) / kPageSize; }
  int64_t slots() const { return slots_; }
  // Positions each slot can hold.
  int64_t capacity() const { return capacity_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  // Layer `layer` as attention reads it.
  ops::KvPages& layer(int64_t l) { return layers_[static_cast<size_t>(l)]; }
  size_t bytes() const { return bytes_; }

 private:
  void allocate(const io::ModelConfig& cfg, Tensor table);
  int64_t slots_, capacity_, pages_ = 0;
  DType dtype_;
  Device device_;
  size_t bytes_ = 0;
  std::vector<ops::KvPages> layers_;
};

}  // namespace yak::model
