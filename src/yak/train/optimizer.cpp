#include "yak/train/optimizer.h"

#include <cmath>

#include "yak/base/error.h"
#include "yak/base/thread_pool.h"

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
    m_.push_back(Tensor::zeros(p.var.value().shape()));
    v_.push_back(Tensor::zeros(p.var.value().shape()));
  }
}

void AdamW::step(double lr) {
  ++t_;
  const double c1 = 1.0 - std::pow(cfg_.beta1, static_cast<double>(t_));
  const double c2 = 1.0 - std::pow(cfg_.beta2, static_cast<double>(t_));
  const float b1 = static_cast<float>(cfg_.beta1), b2 = static_cast<float>(cfg_.beta2);
  const float step_size = static_cast<float>(lr / c1), sqrt_c2 = static_cast<float>(std::sqrt(c2));
  const float eps = static_cast<float>(cfg_.eps);
  for (size_t k = 0; k < params_.size(); ++k) {
    auto& var = params_[k].var;
    if (!var.has_grad()) continue;
    const float keep = decay_[k] ? static_cast<float>(1.0 - lr * cfg_.weight_decay) : 1.0f;
    float* p = var.f32();
    const float* g = var.grad_f32();
    float* m = m_[k].data<float>();
    float* v = v_[k].data<float>();
    parallel_for(var.numel(), 4096, [&](int64_t a, int64_t b) {
      for (int64_t i = a; i < b; ++i) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        p[i] *= keep;
        p[i] -= step_size * m[i] / (std::sqrt(v[i]) / sqrt_c2 + eps);
      }
    });
  }
}

void AdamW::zero_grad() {
  for (auto& p : params_) p.var.zero_grad();
}

double clip_grad_norm(const std::vector<model::NamedParam>& params, double max_norm) {
  double total = 0;
  for (auto& p : params) {
    if (!p.var.has_grad()) continue;
    const float* g = p.var.grad_f32();
    for (int64_t i = 0; i < p.var.numel(); ++i) total += static_cast<double>(g[i]) * g[i];
  }
  const double norm = std::sqrt(total);
  if (max_norm > 0) {
    const double coef = std::min(1.0, max_norm / (norm + 1e-6));
    if (coef < 1.0)
      for (auto& p : params) {
        if (!p.var.has_grad()) continue;
        float* g = p.var.grad_f32();
        for (int64_t i = 0; i < p.var.numel(); ++i) g[i] = static_cast<float>(g[i] * coef);
      }
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
