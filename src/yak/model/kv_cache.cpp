#include "yak/model/kv_cache.h"

#include "yak/base/error.h"

namespace yak::model {

KVCache::KVCache(const io::ModelConfig& cfg, int64_t slots, int64_t capacity, DType dtype, Device device)
    : slots_(slots), capacity_(capacity), dtype_(dtype), device_(device) {
  check(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16,
        std::string("KV cache type ") + dtype_name(dtype) + " is not supported (expected f32, f16 or bf16)");
  check(slots >= 1 && capacity >= 1, "KV cache: slots and capacity must be positive");
  const int64_t pps = (capacity + kPageSize - 1) / kPageSize;
  Tensor table = Tensor::empty({slots, pps}, DType::I32);
  for (int64_t i = 0; i < slots * pps; ++i) table.data<int32_t>()[i] = static_cast<int32_t>(i);
  if (!device.is_host()) table = table.to(device);
  const Shape shape{slots * pps, cfg.num_kv_heads, kPageSize, cfg.head_dim};
  for (int64_t l = 0; l < cfg.num_layers; ++l) {
    // Zeroed so that a read of a position nobody wrote (a bug) sees finite values.
    ops::KvPages p{Tensor::zeros(shape, dtype, device), Tensor::zeros(shape, dtype, device), table, kPageSize};
    bytes_ += 2 * p.k.nbytes();
    layers_.push_back(std::move(p));
  }
}

}  // namespace yak::model
