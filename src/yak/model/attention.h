// Causal attention over a sequence slot's KV cache as a differentiable op: the forward writes this
// batch's keys/values into the cache and attends (ops::attention); the backward recomputes the
// probabilities from the cache and returns gradients for q and for the keys/values this batch wrote.
#pragma once
#include <cstdint>
#include <vector>

#include "yak/autograd/var.h"
#include "yak/model/kv_cache.h"

namespace yak::model {

struct Batch;

struct AttentionShape {
  int64_t heads, kv_heads, head_dim;
  int64_t window = 0;  // sliding window in tokens; 0 = attend to the whole prefix
  bool causal = true;  // false: each row sees every key of its run (a vision tower's image)
};

// q: [T, heads*hd]; k, v: [T, kv_heads*hd] for the batch's tokens. Returns [T, heads*hd].
ag::Var attention(const ag::Var& q, const ag::Var& k, const ag::Var& v, const Batch& batch, KVCache& cache,
                  int64_t layer, const AttentionShape& shape);

}  // namespace yak::model
