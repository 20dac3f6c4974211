#include "yak/train/optimizer.h"

#include <cmath>

#include "yak/base/error.h"
#include "yak/ops/ops.h"

namespace yak::train {

bool decays_by_default(const std::string& name) {
  for (const char* s : {"bias", "layer_norm.weight", "layernorm.weight", "norm.weight", "ln_f.weight"})
    if (name.find(s) != std::string::npos) return false;
  return true;
}

AdamW::AdamW(std::vector<model::NamedParam> params, AdamWConfig cfg, std::function<bool(const std::string&)> decays)
    : params_(std::move(params)), cfg_(cfg) {
  for (auto& p : params_) {
    check(p.var.value().dtype() == DType::F32, "AdamW: parameter '" + p.name + "' must be f32 (master weights)");
    decay_.push_back(decays(p.name));
    m_.push_back(Tensor::zeros(p.var.value().shape(), DType::F32, p.var.device()));
    v_.push_back(Tensor::zeros(p.var.value().shape(), DType::F32, p.var.device()));
  }
}

void AdamW::step(double lr) {
  ++t_;
  for (size_t k = 0; k < params_.size(); ++k) {
    auto& var = params_[k].var;
    if (!var.has_grad()) continue;
    ops::AdamWArgs a{lr, cfg_.beta1, cfg_.beta2, cfg_.eps, cfg_.weight_decay, t_, decay_[k]};
    ops::adamw(var.value(), var.grad(), m_[k], v_[k], a);
  }
}

void AdamW::zero_grad() {
  for (auto& p : params_) p.var.zero_grad();
}

double clip_grad_norm(const std::vector<model::NamedParam>& params, double max_norm) {
  double total = 0;
  for (auto& p : params)
    if (p.var.has_grad()) total += ops::sum_squares(p.var.grad());
  const double norm = std::sqrt(total);
  if (max_norm > 0) {
    const double coef = std::min(1.0, max_norm / (norm + 1e-6));
    if (coef < 1.0)
      for (auto& p : params)
        if (p.var.has_grad()) ops::scale(p.var.grad(), static_cast<float>(coef), p.var.grad());
  }
  return norm;
}

LrSchedule::LrSchedule(std::string name, int64_t warmup_steps, int64_t total_steps, double min_lr_ratio)
    : name_(std::move(name)), warmup_(warmup_steps), total_(total_steps), min_ratio_(min_lr_ratio) {
  static const char* known[] = {"constant", "constant_with_warmup", "linear", "cosine", "cosine_with_min_lr"};
  bool ok = false;
  for (auto k : known) ok |= name_ == k;
  if (!ok)
    throw Error("--lr_scheduler: unknown schedule '" + name_ +
                "' (expected constant, constant_with_warmup, linear, cosine or cosine_with_min_lr)");
  check(warmup_ >= 0 && total_ >= 0, "learning-rate schedule: step counts must be non-negative");
}

double LrSchedule::multiplier(int64_t step) const {
  if (name_ == "constant") return 1.0;
  if (step < warmup_) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_));
  if (name_ == "constant_with_warmup") return 1.0;
  const double progress =
      static_cast<double>(step - warmup_) / static_cast<double>(std::max<int64_t>(1, total_ - warmup_));
  if (name_ == "linear")
    return std::max(0.0,
                    static_cast<double>(total_ - step) / static_cast<double>(std::max<int64_t>(1, total_ - warmup_)));
  double f = 0.5 * (1.0 + std::cos(M_PI * 2.0 * 0.5 * progress));  // num_cycles = 0.5
  if (name_ == "cosine_with_min_lr") f = f * (1.0 - min_ratio_) + min_ratio_;
  return std::max(0.0, f);
}

}  // namespace yak::train
