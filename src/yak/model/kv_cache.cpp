#include "yak/model/kv_cache.h"

#include "yak/base/error.h"

namespace yak::model {

KVCache::KVCache(const io::ModelConfig& cfg, int64_t slots, int64_t capacity, DType dtype, Device device)
    : slots_(slots), capacity_(capacity), dtype_(dtype), device_(device) {
  check(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16,
        std::string("KV cache type ") + dtype_name(dtype) + " is not supported (expected f32, f16 or bf16)");
  check(slots >= 1 && capacity >= 1, "KV cache: slots and capacity must be positive");
  const int64_t pps = pages_per_slot();
  pages_ = slots * pps;
  Tensor table = Tensor::empty({slots, pps}, DType::I32);
  for (int64_t i = 0; i < slots * pps; ++i) table.data<int32_t>()[i] = static_cast<int32_t>(i);
  if (!device.is_host()) table = table.to(device);
  allocate(cfg, std::move(table));
}

KVCache::KVCache(const io::ModelConfig& cfg, int64_t slots, int64_t capacity, int64_t pages, DType dtype,
                 Device device)
    : slots_(slots), capacity_(capacity), pages_(pages), dtype_(dtype), device_(device) {
  check(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16,
        std::string("KV cache type ") + dtype_name(dtype) + " is not supported (expected f32, f16 or bf16)");
  check(slots >= 1 && capacity >= 1 && pages >= 1, "KV cache: slots, capacity and pages must be positive");
  check(device.is_host(), "a paged KV cache keeps its page table on the host");
  Tensor table = Tensor::zeros({slots, pages_per_slot()}, DType::I32);
  allocate(cfg, std::move(table));
}

void KVCache::set_page(int64_t slot, int64_t logical, int32_t physical) {
  check(slot >= 0 && slot < slots_ && logical >= 0 && logical < pages_per_slot() && physical >= 0 && physical < pages_,
        "KVCache::set_page: slot, page or physical page out of range");
  // Every layer's table is a view of one buffer.
  layers_.at(0).page_table.data<int32_t>()[slot * pages_per_slot() + logical] = physical;
}

void KVCache::allocate(const io::ModelConfig& cfg, Tensor table) {
  const Shape shape{pages_, cfg.num_kv_heads, kPageSize, cfg.head_dim};
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    // Zeroed so that a read of a position nobody wrote (a bug) sees finite values.
    ops::KvPages p{Tensor::zeros(shape, dtype_, device_), Tensor::zeros(shape, dtype_, device_), table, kPageSize};
    bytes_ += 2 * p.k.nbytes();
    layers_.push_back(std::move(p));
  }
}

}  // namespace yak::model
