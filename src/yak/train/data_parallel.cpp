#include "yak/train/data_parallel.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "yak/base/error.h"

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

void all_reduce_gradients(dist::Communicator& comm, const std::vector<model::NamedParam>& params,
                          size_t bucket_floats) {
  if (comm.size() == 1) return;
  std::vector<double> has(params.size());
  for (size_t i = 0; i < params.size(); ++i) has[i] = params[i].var.has_grad() ? 1.0 : 0.0;
  comm.all_reduce_max(has.data(), has.size());
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

}  // namespace yak::train
