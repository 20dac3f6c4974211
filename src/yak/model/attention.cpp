#include "yak/model/attention.h"

#include <cmath>
#include <memory>

#include "yak/model/decoder.h"
#include "yak/ops/ops.h"

namespace yak::model {

ag::Var attention(const ag::Var& q, const ag::Var& k, const ag::Var& v, const Batch& batch, KVCache& cache,
                  int64_t layer, const AttentionShape& sh) {
  const int64_t T = q.dim(0);
  ops::AttentionArgs args{
      sh.heads,  sh.kv_heads, sh.head_dim, sh.window, 1.0f / std::sqrt(static_cast<float>(sh.head_dim)),
      batch.pos, batch.slot, sh.causal};
  ops::KvPages& pages = cache.layer(layer);
  ops::kv_write(k.value(), v.value(), args, pages);
  const bool rec = ag::recording({&q, &k, &v});
  ag::Var out(Tensor::empty({T, sh.heads * sh.head_dim}, DType::F32, q.device()), rec);
  if (!rec) {
    ops::attention(q.value(), pages, args, out.value(), nullptr);
    return out;
  }
  Tensor lse = Tensor::empty({T, sh.heads}, DType::F32, q.device());
  ops::attention(q.value(), pages, args, out.value(), &lse);
  // The backward reads keys and values back from the cache (the cache is the saved activation).
  auto where = std::make_shared<std::pair<std::vector<int32_t>, std::vector<int32_t>>>(batch.pos, batch.slot);
  ag::active_tape()->push([q, k, v, out, lse, where, &pages, args]() mutable {
    if (!out.has_grad()) return;
    args.pos = where->first;
    args.slot = where->second;
    ops::attention_backward(out.grad(), q.value(), out.value(), lse, pages, args,
                            q.requires_grad() ? &q.grad() : nullptr, k.requires_grad() ? &k.grad() : nullptr,
                            v.requires_grad() ? &v.grad() : nullptr);
  });
  return out;
}

}  // namespace yak::model
