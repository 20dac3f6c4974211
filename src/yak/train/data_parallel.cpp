#include "yak/train/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "yak/base/error.h"
#include "yak/ops/ops.h"

namespace yak::train {

dist::Communicator& communicator_or_world(dist::Communicator* given) {
  return given ? *given : dist::world();
}

void check_micro_batches_cover_ranks(const dist::Communicator& comm, int64_t micro_batches_per_step) {
  check(micro_batches_per_step >= comm.size(),
        "--train_batch_size / --micro_train_batch_size gives " + std::to_string(micro_batches_per_step) +
            " micro-batches a step, fewer than the " + std::to_string(comm.size()) +
            " ranks; --train_batch_size is the global batch: make it at least --micro_train_batch_size x ranks");
}

namespace {

// 1 for each parameter with a gradient on any rank, else 0 (the same on every rank).
std::vector<double> gradient_anywhere(dist::Communicator& comm, const std::vector<model::NamedParam>& params) {
  std::vector<double> has(params.size());
  for (size_t i = 0; i < params.size(); ++i) has[i] = params[i].var.has_grad() ? 1.0 : 0.0;
  comm.all_reduce_max(has.data(), has.size());
  return has;
}

}  // namespace

void all_reduce_gradients(dist::Communicator& comm, const std::vector<model::NamedParam>& params,
                          size_t bucket_floats) {
  if (comm.size() == 1) return;
  const std::vector<double> has = gradient_anywhere(comm, params);
  std::vector<float> bucket;
  bucket.reserve(bucket_floats);
  std::vector<size_t> members;  // parameters whose gradients are in the bucket, in order
  auto flush = [&]() {
    if (bucket.empty()) return;
    comm.all_reduce_sum(bucket.data(), bucket.size());
    size_t off = 0;
    for (size_t i : members) {
      Tensor& g = params[i].var.grad();
      const size_t n = static_cast<size_t>(g.numel());
      std::memcpy(g.data<float>(), bucket.data() + off, n * sizeof(float));
      off += n;
    }
    bucket.clear();
    members.clear();
  };
  for (size_t i = 0; i < params.size(); ++i) {
    if (has[i] == 0.0) continue;
    Tensor& g = params[i].var.grad();  // zeros where this rank had none
    const size_t n = static_cast<size_t>(g.numel());
    if (n >= bucket_floats) {  // a large gradient goes on its own, in place
      flush();
      comm.all_reduce_sum(g.data<float>(), n);
      continue;
    }
    if (bucket.size() + n > bucket_floats) flush();
    const float* p = g.data<float>();
    bucket.insert(bucket.end(), p, p + n);
    members.push_back(i);
  }
  flush();
}

double reduce_and_clip_gradients(dist::Communicator& comm, AdamW& opt, double max_norm) {
  const auto& params = opt.params();
  if (opt.zero_stage() < 2) {
    all_reduce_gradients(comm, params);
    return clip_grad_norm(params, max_norm);
  }
  // Stage 2: one flat reduce-scatter in the optimizer's layout (every rank's share the same size).
  const std::vector<double> has = gradient_anywhere(comm, params);
  const int64_t share = opt.shard_floats(), start = comm.rank() * share;
  std::vector<float> flat(static_cast<size_t>(share * comm.size()), 0.0f), mine(static_cast<size_t>(share));
  for (size_t k = 0; k < params.size(); ++k) {
    if (has[k] == 0.0) continue;
    const Tensor& g = params[k].var.grad();  // zeros where this rank had none
    std::copy(g.data<float>(), g.data<float>() + g.numel(), flat.data() + opt.flat_offset(k));
  }
  comm.reduce_scatter_sum(flat.data(), mine.data(), static_cast<size_t>(share));
  double total = 0;
  for (size_t k = 0; k < params.size(); ++k) {
    if (has[k] == 0.0) continue;
    const auto [b, e] = opt.owned(k);
    float* g = params[k].var.grad().data<float>();
    // Only the owned elements hold sums from here on; the rest of the buffer is not read.
    std::copy(mine.data() + (opt.flat_offset(k) + b - start), mine.data() + (opt.flat_offset(k) + e - start), g + b);
    for (int64_t i = b; i < e; ++i) total += static_cast<double>(g[i]) * g[i];
  }
  comm.all_reduce_sum(&total, 1);
  const double norm = std::sqrt(total);
  if (const double coef = clip_coefficient(norm, max_norm); coef < 1.0)
      for (size_t k = 0; k < params.size(); ++k) {
        if (has[k] == 0.0) continue;
        const auto [b, e] = opt.owned(k);
        float* g = params[k].var.grad().data<float>();
        for (int64_t i = b; i < e; ++i) g[i] *= static_cast<float>(coef);
      }
  return norm;
}

}  // namespace yak::train
