// AdamW with decoupled weight decay and bias correction (torch.optim.AdamW), global grad-norm
// clipping (torch.nn.utils.clip_grad_norm_), and transformers' learning-rate schedules.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

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
  // One update of every parameter that has a gradient, at learning rate lr.
  void step(double lr);
  void zero_grad();
  int64_t steps() const { return t_; }
  const std::vector<model::NamedParam>& params() const { return params_; }
  // Moments, for checkpoints: m and v per parameter, in params() order.
  std::vector<Tensor>& first_moments() { return m_; }
  std::vector<Tensor>& second_moments() { return v_; }
  void set_steps(int64_t t) { t_ = t; }

 private:
  std::vector<model::NamedParam> params_;
  AdamWConfig cfg_;
  std::vector<bool> decay_;
  std::vector<Tensor> m_, v_;
  int64_t t_ = 0;
};

// Scales all gradients so their global L2 norm is at most max_norm (coef = max_norm / (norm + 1e-6),
// capped at 1, as torch does). Returns the norm before clipping. max_norm <= 0 only measures.
double clip_grad_norm(const std::vector<model::NamedParam>& params, double max_norm);

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
