// AdamW with decoupled weight decay and bias correction (torch.optim.AdamW), global grad-norm
// clipping (torch.nn.utils.clip_grad_norm_), and transformers' learning-rate schedules.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "yak/dist/comm.h"
#include "yak/model/decoder.h"

namespace yak::train {

struct AdamWConfig {
  double lr = 1e-5;
  double beta1 = 0.9, beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// OpenRLHF's grouping: no weight decay for biases and norm weights (substring match on the name).
bool decays_by_default(const std::string& name);

class AdamW {
 public:
  AdamW(std::vector<model::NamedParam> params, AdamWConfig cfg,
        std::function<bool(const std::string&)> decays = decays_by_default);
  // One update of every parameter that has a gradient, at learning rate lr. Sharded: each rank
  // updates its share of the elements, then the weights are all-gathered (collective).
  void step(double lr);
  void zero_grad();
  int64_t steps() const { return t_; }
  const std::vector<model::NamedParam>& params() const { return params_; }
  void set_steps(int64_t t) { t_ = t; }

  // ZeRO (OpenRLHF's --zero_stage) over comm's ranks: stage 1 shards the moments (every rank
  // keeps m and v for its contiguous share of all parameters' elements, laid end to end), stage 2
  // also reduce-scatters the gradients (reduce_and_clip_gradients in train/data_parallel.h). Stage
  // 0 or a single rank shards nothing. comm must outlive the optimizer; call before step().
  void set_communicator(dist::Communicator* comm, int zero_stage);
  dist::Communicator* communicator() const { return comm_; }
  int zero_stage() const { return sharded() ? stage_ : 0; }
  bool sharded() const { return comm_ && comm_->size() > 1 && stage_ > 0; }
  // Rank 0 (or no communicator) writes checkpoints.
  bool writes_checkpoints() const { return !comm_ || comm_->is_root(); }
  // The elements [begin, end) of parameter k this rank updates (all of them unless sharded), and
  // its whole share in the flat layout (floats per rank; every rank's is the same size).
  std::pair<int64_t, int64_t> owned(size_t k) const { return own_[k]; }
  int64_t shard_floats() const { return shard_; }
  int64_t flat_offset(size_t k) const { return offset_[k]; }
  // Moments at full size, in params() order (a collective when sharded: every rank calls it).
  std::pair<std::vector<Tensor>, std::vector<Tensor>> full_moments() const;
  // Sets parameter k's moments from full-size tensors (this rank keeps its share).
  void set_moments(size_t k, const Tensor& m, const Tensor& v);
  // Bytes of moments this rank holds.
  size_t moment_bytes() const;

 private:
  // Every rank's share (share_of(k): parameter k's owned elements, own_[k] long) laid end to end
  // in the flat layout, on every rank (collective).
  std::vector<float> gather_shares(const std::function<const float*(size_t)>& share_of) const;
  // Copies every rank's updated share of the weights to every rank.
  void gather_weights();

  std::vector<model::NamedParam> params_;
  AdamWConfig cfg_;
  std::vector<bool> decay_;
  std::vector<Tensor> m_, v_;  // per parameter: its owned elements only
  int64_t t_ = 0;
  dist::Communicator* comm_ = nullptr;
  int stage_ = 0;
  std::vector<std::pair<int64_t, int64_t>> own_;
  std::vector<int64_t> offset_;
  int64_t shard_ = 0, total_ = 0;
};

// Scales all gradients so their global L2 norm is at most max_norm (coef = max_norm / (norm + 1e-6),
// capped at 1, as torch does). Returns the norm before clipping. max_norm <= 0 only measures.
double clip_grad_norm(const std::vector<model::NamedParam>& params, double max_norm);
// The factor clipping multiplies gradients of global norm `norm` by (1: no clipping).
double clip_coefficient(double norm, double max_norm);

// transformers.get_scheduler: constant, constant_with_warmup, linear, cosine, cosine_with_min_lr.
class LrSchedule {
 public:
  LrSchedule(std::string name, int64_t warmup_steps, int64_t total_steps, double min_lr_ratio = 0.0);
  // Multiplier of the base learning rate for optimizer step `step` (0-based).
  double multiplier(int64_t step) const;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  int64_t warmup_, total_;
  double min_ratio_;
};

}  // namespace yak::train
