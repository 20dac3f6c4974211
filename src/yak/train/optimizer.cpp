#include "yak/train/optimizer.h"

#include <algorithm>
#include <cmath>

#include "yak/base/error.h"
#include "yak/base/log.h"
#include "yak/ops/ops.h"

namespace yak::train {

bool decays_by_default(const std::string& name) {
  for (const char* s : {"bias", "layer_norm.weight", "layernorm.weight", "norm.weight", "ln_f.weight"})
    if (name.find(s) != std::string::npos) return false;
  return true;
}

namespace {

// Elements [b, e) of a contiguous f32 tensor as a 1-D view (the tensor keeps the memory).
Tensor flat_part(const Tensor& t, int64_t b, int64_t e) {
  return Tensor::view({e - b}, DType::F32, t.data<float>() + b, nullptr);
}

}  // namespace

AdamW::AdamW(std::vector<model::NamedParam> params, AdamWConfig cfg, std::function<bool(const std::string&)> decays)
    : params_(std::move(params)), cfg_(cfg) {
  for (auto& p : params_) {
    check(p.var.value().dtype() == DType::F32, "AdamW: parameter '" + p.name + "' must be f32 (master weights)");
    decay_.push_back(decays(p.name));
    m_.push_back(Tensor::zeros(p.var.value().shape(), DType::F32, p.var.device()));
    v_.push_back(Tensor::zeros(p.var.value().shape(), DType::F32, p.var.device()));
    offset_.push_back(total_);
    own_.emplace_back(0, p.var.value().numel());
    total_ += p.var.value().numel();
  }
  shard_ = total_;
}

void AdamW::set_communicator(dist::Communicator* comm, int zero_stage) {
  check(zero_stage >= 0 && zero_stage <= 3, "--zero_stage " + std::to_string(zero_stage) + ": expected 0 to 3");
  check(t_ == 0, "AdamW: the communicator is set before the first step");
  comm_ = comm;
  stage_ = std::min(zero_stage, 2);
  // OpenRLHF's scripts mostly say 3: the weights are not sharded here, stage 2's sharding runs.
  if (zero_stage == 3 && comm_ && comm_->size() > 1 && comm_->is_root())
    log::warn("--zero_stage 3: the weights are not sharded (stage 3 is not supported); running ZeRO stage 2");
  if (!sharded()) return;
  const int64_t n = comm_->size(), r = comm_->rank();
  shard_ = (total_ + n - 1) / n;
  shard_ = (shard_ + 15) / 16 * 16;  // whole cache lines of floats
  const int64_t lo = r * shard_, hi = std::min(total_, lo + shard_);
  for (size_t k = 0; k < params_.size(); ++k) {
    const int64_t b = std::clamp(lo - offset_[k], int64_t{0}, params_[k].var.value().numel()),
                  e = std::clamp(hi - offset_[k], int64_t{0}, params_[k].var.value().numel());
    own_[k] = {b, std::max(b, e)};
    m_[k] = Tensor::zeros({own_[k].second - own_[k].first}, DType::F32, params_[k].var.device());
    v_[k] = Tensor::zeros({own_[k].second - own_[k].first}, DType::F32, params_[k].var.device());
  }
}

void AdamW::step(double lr) {
  ++t_;
  for (size_t k = 0; k < params_.size(); ++k) {
    auto& var = params_[k].var;
    if (!var.has_grad()) continue;
    ops::AdamWArgs a{lr, cfg_.beta1, cfg_.beta2, cfg_.eps, cfg_.weight_decay, t_, decay_[k]};
    if (!sharded()) {
      ops::adamw(var.value(), var.grad(), m_[k], v_[k], a);
      continue;
    }
    const auto [b, e] = own_[k];
    if (b == e) continue;
    Tensor w = flat_part(var.value(), b, e);
    ops::adamw(w, flat_part(var.grad(), b, e), m_[k], v_[k], a);
  }
  if (sharded()) gather_weights();
}

std::vector<float> AdamW::gather_shares(const std::function<const float*(size_t)>& share_of) const {
  std::vector<float> mine(static_cast<size_t>(shard_), 0.0f), all(static_cast<size_t>(shard_ * comm_->size()));
  for (size_t k = 0; k < params_.size(); ++k) {
    const auto [b, e] = own_[k];
    if (b == e) continue;
    const float* src = share_of(k);
    std::copy(src, src + (e - b), mine.data() + (offset_[k] + b - comm_->rank() * shard_));
  }
  comm_->all_gather(mine.data(), all.data(), static_cast<size_t>(shard_));
  return all;
}

void AdamW::gather_weights() {
  const std::vector<float> all =
      gather_shares([&](size_t k) { return params_[k].var.value().data<float>() + own_[k].first; });
  for (size_t k = 0; k < params_.size(); ++k) {
    const float* src = all.data() + offset_[k];
    std::copy(src, src + params_[k].var.value().numel(), params_[k].var.value().data<float>());
  }
}

std::pair<std::vector<Tensor>, std::vector<Tensor>> AdamW::full_moments() const {
  if (!sharded()) return {m_, v_};
  std::vector<Tensor> full[2];
  for (int which = 0; which < 2; ++which) {
    const auto& held = which == 0 ? m_ : v_;
    const std::vector<float> all = gather_shares([&](size_t k) { return held[k].data<float>(); });
    for (size_t k = 0; k < params_.size(); ++k) {
      Tensor t = Tensor::empty(params_[k].var.value().shape());
      std::copy(all.data() + offset_[k], all.data() + offset_[k] + t.numel(), t.data<float>());
      full[which].push_back(std::move(t));
    }
  }
  return {std::move(full[0]), std::move(full[1])};
}

void AdamW::set_moments(size_t k, const Tensor& m, const Tensor& v) {
  const auto [b, e] = own_[k];
  std::copy(m.data<float>() + b, m.data<float>() + e, m_[k].data<float>());
  std::copy(v.data<float>() + b, v.data<float>() + e, v_[k].data<float>());
}

size_t AdamW::moment_bytes() const {
  size_t n = 0;
  for (size_t k = 0; k < m_.size(); ++k) n += m_[k].nbytes() + v_[k].nbytes();
  return n;
}

void AdamW::zero_grad() {
  for (auto& p : params_) p.var.zero_grad();
}

double clip_grad_norm(const std::vector<model::NamedParam>& params, double max_norm) {
  double total = 0;
  for (auto& p : params)
    if (p.var.has_grad()) total += ops::sum_squares(p.var.grad());
  const double norm = std::sqrt(total);
  if (const double coef = clip_coefficient(norm, max_norm); coef < 1.0)
    for (auto& p : params)
      if (p.var.has_grad()) ops::scale(p.var.grad(), static_cast<float>(coef), p.var.grad());
  return norm;
}

double clip_coefficient(double norm, double max_norm) {
  return max_norm > 0 ? std::min(1.0, max_norm / (norm + 1e-6)) : 1.0;
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
