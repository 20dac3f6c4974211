#include "yak/train/rl_losses.h"

#include <algorithm>
#include <cmath>

#include "yak/base/error.h"

namespace yak::train {

namespace {

double sigmoid(double x) {
  return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
}
double softplus(double x) {
  return x > 30 ? x : std::log1p(std::exp(x));
}  // log(1 + e^x)

ag::Var scalar(double v, bool rec) {
  ag::Var out(Tensor::empty({1}), rec);
  out.f32()[0] = static_cast<float>(v);
  return out;
}

// Per-token weights of OpenRLHF's aggregate_loss: token level = 1 / Σ mask; sequence level =
// 1 / (count_b + 1e-8) per row, then the mean over rows that have any action token.
std::vector<double> mean_weights(const std::vector<uint8_t>& mask, int64_t B, int64_t T, bool token_level) {
  std::vector<double> w(static_cast<size_t>(B * T), 0.0);
  if (token_level) {
    double n = 0;
    for (auto m : mask) n += m;
    for (size_t i = 0; i < w.size(); ++i) w[i] = n > 0 && mask[i] ? 1.0 / n : 0.0;
  } else {
    std::vector<double> count(static_cast<size_t>(B), 0.0);
    double rows = 0;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < T; ++t) count[b] += mask[b * T + t];
      rows += count[b] > 0;
    }
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        w[b * T + t] = rows > 0 && mask[b * T + t] ? 1.0 / ((count[b] + 1e-8) * rows) : 0.0;
  }
  return w;
}

void check_grid(const ag::Var& v, const TokenGrid& g, const char* what) {
  check(v.numel() == g.B * g.T && static_cast<int64_t>(g.v.size()) == g.B * g.T &&
            static_cast<int64_t>(g.mask.size()) == g.B * g.T,
        std::string(what) + ": shapes disagree");
}

// Pushes a backward that adds coef[i] * d(out) into x's gradient.
void push_linear_grad(const ag::Var& x, const ag::Var& out, std::vector<double> coef) {
  ag::active_tape()->push([x, out, coef]() {
    if (!out.has_grad() || !x.requires_grad()) return;
    const float g = out.grad_f32()[0];
    float* gx = x.grad_f32();
    for (size_t i = 0; i < coef.size(); ++i) gx[i] += static_cast<float>(g * coef[i]);
  });
}

}  // namespace

PolicyLossOut policy_loss(const ag::Var& lp, const TokenGrid& old, const TokenGrid& adv, const PolicyLossConfig& cfg) {
  check_grid(lp, old, "policy_loss");
  check_grid(lp, adv, "policy_loss");
  const int64_t n = old.B * old.T;
  const auto w = mean_weights(adv.mask, adv.B, adv.T, cfg.token_level_loss);
  double loss = 0, clipped = 0, kl = 0, count = 0;
  std::vector<double> dl(static_cast<size_t>(n), 0.0);
  const double lo = 1 - cfg.clip_eps_low, hi = 1 + cfg.clip_eps_high;
  for (int64_t i = 0; i < n; ++i) {
    if (!adv.mask[i]) continue;
    const double raw = static_cast<double>(lp.f32()[i]) - old.v[i];
    const double log_ratio = std::clamp(raw, -20.0, 20.0), ratio = std::exp(log_ratio), A = adv.v[i];
    const double dclamp = raw >= -20.0 && raw <= 20.0 ? 1.0 : 0.0;
    const double cr = std::clamp(ratio, lo, hi);
    const double s1 = ratio * A, s2 = cr * A;
    double clip1 = std::min(s1, s2);
    // d clip1 / d ratio
    double d1 = s1 < s2 ? A : (s2 < s1 ? (ratio >= lo && ratio <= hi ? A : 0.0) : A);
    double l = -clip1, dl_dratio = -d1;
    if (cfg.dual_clip && A < 0) {
      const double c3 = *cfg.dual_clip * A;
      if (c3 > clip1) l = -c3, dl_dratio = 0.0;
    }
    loss += w[i] * l;
    dl[i] = w[i] * dl_dratio * ratio * dclamp;  // d ratio / d log_prob = ratio (inside the clamp)
    clipped += s2 < s1;
    kl += -raw;
    count += 1;
  }
  const bool rec = ag::recording({&lp});
  PolicyLossOut out{scalar(loss, rec), count ? clipped / count : 0.0, count ? kl / count : 0.0};
  if (rec) push_linear_grad(lp, out.loss, std::move(dl));
  return out;
}

ag::Var value_loss(const ag::Var& values, const TokenGrid& old, const TokenGrid& ret, std::optional<double> clip_eps,
                   bool token_level) {
  check_grid(values, old, "value_loss");
  check_grid(values, ret, "value_loss");
  const int64_t n = ret.B * ret.T;
  const auto w = mean_weights(ret.mask, ret.B, ret.T, token_level);
  double loss = 0;
  std::vector<double> dl(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    if (!ret.mask[i]) continue;
    const double v = values.f32()[i], R = ret.v[i];
    double l = (v - R) * (v - R), d = 2 * (v - R);
    if (clip_eps) {
      const double diff = v - old.v[i], cd = std::clamp(diff, -*clip_eps, *clip_eps);
      const double vc = old.v[i] + cd, s1 = (vc - R) * (vc - R);
      if (s1 > l) {
        l = s1;
        d = (diff >= -*clip_eps && diff <= *clip_eps) ? 2 * (vc - R) : 0.0;
      }
    }
    loss += 0.5 * w[i] * l;
    dl[i] = 0.5 * w[i] * d;
  }
  const bool rec = ag::recording({&values});
  ag::Var out = scalar(loss, rec);
  if (rec) push_linear_grad(values, out, std::move(dl));
  return out;
}

namespace {

// loss = mean_i f(x_i) with x_i = chosen_i - rejected_i (- margin_i); df gives f'(x).
template <typename F, typename DF>
ag::Var pair_loss(const ag::Var& chosen, const ag::Var& rejected, const std::vector<float>& margin, F f, DF df) {
  const int64_t n = chosen.numel();
  check(rejected.numel() == n && (margin.empty() || static_cast<int64_t>(margin.size()) == n),
        "reward loss: chosen, rejected and margin must have the same length");
  double loss = 0;
  std::vector<double> g(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(chosen.f32()[i]) - rejected.f32()[i] - (margin.empty() ? 0.0 : margin[i]);
    loss += f(x) / static_cast<double>(n);
    g[i] = df(x) / static_cast<double>(n);
  }
  const bool rec = ag::recording({&chosen, &rejected});
  ag::Var out = scalar(loss, rec);
  if (rec) {
    push_linear_grad(chosen, out, g);
    for (auto& v : g) v = -v;
    push_linear_grad(rejected, out, std::move(g));
  }
  return out;
}

}  // namespace

ag::Var pairwise_loss(const ag::Var& chosen, const ag::Var& rejected, const std::vector<float>& margin) {
  return pair_loss(
      chosen, rejected, margin, [](double x) { return softplus(-x); }, [](double x) { return sigmoid(x) - 1.0; });
}

ag::Var logexp_loss(const ag::Var& chosen, const ag::Var& rejected) {
  return pair_loss(
      chosen, rejected, {}, [](double x) { return softplus(-x); }, [](double x) { return -sigmoid(-x); });
}

PreferenceOut dpo_loss(const ag::Var& pc, const ag::Var& pr, const std::vector<float>& rc, const std::vector<float>& rr,
                       double beta, double ls, bool ipo) {
  const int64_t n = pc.numel();
  check(pr.numel() == n && static_cast<int64_t>(rc.size()) == n && static_cast<int64_t>(rr.size()) == n,
        "dpo_loss: the four log-probability vectors must have the same length");
  PreferenceOut out;
  double loss = 0;
  std::vector<double> g(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double z = (static_cast<double>(pc.f32()[i]) - pr.f32()[i]) - (static_cast<double>(rc[i]) - rr[i]);
    double l, d;
    if (ipo) {
      l = (z - 1 / (2 * beta)) * (z - 1 / (2 * beta));
      d = 2 * (z - 1 / (2 * beta));
    } else {
      l = softplus(-beta * z) * (1 - ls) + softplus(beta * z) * ls;
      d = -(1 - ls) * beta * sigmoid(-beta * z) + ls * beta * sigmoid(beta * z);
    }
    loss += l / static_cast<double>(n);
    g[i] = d / static_cast<double>(n);
    out.chosen_rewards.push_back(static_cast<float>(beta * (static_cast<double>(pc.f32()[i]) - rc[i])));
    out.rejected_rewards.push_back(static_cast<float>(beta * (static_cast<double>(pr.f32()[i]) - rr[i])));
  }
  const bool rec = ag::recording({&pc, &pr});
  out.loss = scalar(loss, rec);
  if (rec) {
    push_linear_grad(pc, out.loss, g);
    for (auto& v : g) v = -v;
    push_linear_grad(pr, out.loss, std::move(g));
  }
  return out;
}

PreferenceOut kto_loss(const ag::Var& pc, const ag::Var& pr, const ag::Var& pkl, const std::vector<float>& rc,
                       const std::vector<float>& rr, const std::vector<float>& rkl, double beta, double dw, double uw) {
  const int64_t nc = pc.numel(), nr = pr.numel(), nk = pkl.numel();
  check(static_cast<int64_t>(rc.size()) == nc && static_cast<int64_t>(rr.size()) == nr &&
            static_cast<int64_t>(rkl.size()) == nk && nc + nr > 0,
        "kto_loss: policy and reference log-probabilities must pair up");
  PreferenceOut out;
  double kl = 0;
  for (int64_t i = 0; i < nk; ++i) kl += static_cast<double>(pkl.f32()[i]) - rkl[i];
  kl = nk ? std::max(0.0, kl / static_cast<double>(nk)) : 0.0;
  out.kl = kl;
  const double total = static_cast<double>(nc + nr);
  double loss = 0;
  std::vector<double> gc(static_cast<size_t>(nc)), gr(static_cast<size_t>(nr));
  for (int64_t i = 0; i < nc; ++i) {
    const double lr = static_cast<double>(pc.f32()[i]) - rc[i], s = sigmoid(beta * (lr - kl));
    loss += dw * (1 - s) / total;
    gc[i] = -dw * beta * s * (1 - s) / total;
    out.chosen_rewards.push_back(static_cast<float>(beta * lr));
  }
  for (int64_t i = 0; i < nr; ++i) {
    const double lr = static_cast<double>(pr.f32()[i]) - rr[i], s = sigmoid(beta * (kl - lr));
    loss += uw * (1 - s) / total;
    gr[i] = uw * beta * s * (1 - s) / total;
    out.rejected_rewards.push_back(static_cast<float>(beta * lr));
  }
  const bool rec = ag::recording({&pc, &pr});
  out.loss = scalar(loss, rec);
  if (rec) {
    push_linear_grad(pc, out.loss, std::move(gc));
    push_linear_grad(pr, out.loss, std::move(gr));
  }
  return out;
}

ag::Var kd_loss(const ag::Var& logits, const std::vector<float>& teacher, const std::vector<int32_t>& labels,
                int32_t ignore_index) {
  const int64_t N = logits.dim(0), V = logits.dim(1);
  check(static_cast<int64_t>(teacher.size()) == N * V && static_cast<int64_t>(labels.size()) == N,
        "kd_loss: teacher logits and labels must match the student logits");
  double m = 0;
  for (auto l : labels) m += l != ignore_index;
  std::vector<double> g(static_cast<size_t>(N * V), 0.0);
  double loss = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (labels[r] == ignore_index || m == 0) continue;
    const float* s = logits.f32() + r * V;
    const float* t = teacher.data() + r * V;
    double smax = -INFINITY, tmax = -INFINITY, ssum = 0, tsum = 0;
    for (int64_t j = 0; j < V; ++j)
      smax = std::max(smax, static_cast<double>(s[j])), tmax = std::max(tmax, static_cast<double>(t[j]));
    for (int64_t j = 0; j < V; ++j) ssum += std::exp(s[j] - smax), tsum += std::exp(t[j] - tmax);
    const double slse = smax + std::log(ssum);
    // Entries where the student logit is -inf drop out of the sum (OpenRLHF masks them).
    double x = 0, finite_mass = 0;
    for (int64_t j = 0; j < V; ++j)
      if (std::isfinite(s[j])) {
        const double pt = std::exp(t[j] - tmax) / tsum;
        x += pt * (s[j] - slse);
        finite_mass += pt;
      }
    for (int64_t j = 0; j < V; ++j)
      if (std::isfinite(s[j])) {
        const double pt = std::exp(t[j] - tmax) / tsum, q = std::exp(s[j] - slse);
        g[r * V + j] = -(pt - q * finite_mass) / m;
      }
    loss += -x / m;
  }
  const bool rec = ag::recording({&logits});
  ag::Var out = scalar(loss, rec);
  if (rec) push_linear_grad(logits, out, std::move(g));
  return out;
}

KlEstimator parse_kl_estimator(const std::string& s) {
  if (s == "k1") return KlEstimator::K1;
  if (s == "k2") return KlEstimator::K2;
  if (s == "k3") return KlEstimator::K3;
  throw Error("--kl_estimator: unknown estimator '" + s + "' (expected k1, k2 or k3)");
}

ag::Var approx_kl(const ag::Var& lp, const TokenGrid& base, KlEstimator est) {
  check_grid(lp, base, "approx_kl");
  const int64_t n = base.B * base.T;
  const bool rec = ag::recording({&lp});
  ag::Var out(Tensor::empty({n}), rec);
  std::vector<float> d(static_cast<size_t>(n), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(lp.f32()[i]) - base.v[i];
    double k, dk;
    switch (est) {
      case KlEstimator::K1:
        k = x, dk = 1;
        break;
      case KlEstimator::K2:
        k = x * x / 2, dk = x;
        break;
      default:
        k = std::exp(-x) - 1 + x, dk = 1 - std::exp(-x);
        break;
    }
    if (k < -10 || k > 10) k = std::clamp(k, -10.0, 10.0), dk = 0;
    out.f32()[i] = static_cast<float>(k);  // unmasked, as OpenRLHF; the consumer applies the mask
    d[i] = static_cast<float>(dk);
  }
  if (rec)
    ag::active_tape()->push([lp, out, d]() {
      if (!out.has_grad() || !lp.requires_grad()) return;
      const float* go = out.grad_f32();
      float* g = lp.grad_f32();
      for (size_t i = 0; i < d.size(); ++i) g[i] += go[i] * d[i];
    });
  return out;
}

ag::Var masked_mean(const ag::Var& x, const std::vector<uint8_t>& mask, int64_t B, int64_t T, bool token_level) {
  check(x.numel() == B * T && static_cast<int64_t>(mask.size()) == B * T, "masked_mean: shapes disagree");
  const auto w = mean_weights(mask, B, T, token_level);
  double s = 0;
  for (int64_t i = 0; i < B * T; ++i) s += w[i] * x.f32()[i];
  const bool rec = ag::recording({&x});
  ag::Var out = scalar(s, rec);
  if (rec) push_linear_grad(x, out, w);
  return out;
}

std::pair<TokenGrid, TokenGrid> gae(const TokenGrid& values, const TokenGrid& rewards, double gamma, double lambd) {
  TokenGrid adv = rewards, ret = rewards;
  for (int64_t b = 0; b < rewards.B; ++b) {
    double last = 0;
    for (int64_t t = rewards.T - 1; t >= 0; --t) {
      const int64_t i = b * rewards.T + t;
      const double v = values.mask[i] ? values.v[i] : 0.0, r = rewards.mask[i] ? rewards.v[i] : 0.0;
      const double next = t + 1 < rewards.T && values.mask[i + 1] ? values.v[i + 1] : 0.0;
      const double delta = r + gamma * next - v;
      last = delta + gamma * lambd * last;
      adv.v[i] = static_cast<float>(last);
      ret.v[i] = static_cast<float>(last + v);
    }
  }
  return {adv, ret};
}

TokenGrid cumulative_returns(const TokenGrid& rewards, double gamma) {
  TokenGrid out = rewards;
  for (int64_t b = 0; b < rewards.B; ++b) {
    double acc = 0;
    for (int64_t t = rewards.T - 1; t >= 0; --t) {
      const int64_t i = b * rewards.T + t;
      acc = (rewards.mask[i] ? rewards.v[i] : 0.0) + gamma * acc;
      out.v[i] = static_cast<float>(acc);
    }
  }
  return out;
}

TokenGrid kl_shaped_rewards(const std::vector<float>& r, double kl_coef, const TokenGrid& kl,
                            std::optional<std::pair<double, double>> clip) {
  check(static_cast<int64_t>(r.size()) == kl.B, "kl_shaped_rewards: one reward per sequence expected");
  TokenGrid out = kl;
  kl_coef = std::max(0.0, kl_coef);
  for (int64_t b = 0; b < kl.B; ++b) {
    int64_t last = kl.T - 1;  // OpenRLHF's eos index: the last masked position (or T-1 with none)
    for (int64_t t = kl.T - 1; t >= 0; --t)
      if (kl.mask[b * kl.T + t]) {
        last = t;
        break;
      }
    double rb = r[b];
    if (clip) rb = std::clamp(rb, clip->first, clip->second);
    for (int64_t t = 0; t < kl.T; ++t) {
      const int64_t i = b * kl.T + t;
      out.v[i] = static_cast<float>(-kl_coef * kl.v[i] + (t == last ? rb : 0.0));
    }
  }
  return out;
}

std::vector<float> group_shaped_rewards(const std::vector<float>& r, int64_t n, const std::string& est) {
  check(n > 0 && static_cast<int64_t>(r.size()) % n == 0, "rewards (" + std::to_string(r.size()) +
                                                              ") must come in groups of n_samples_per_prompt (" +
                                                              std::to_string(n) + ")");
  std::vector<float> out(r);
  for (size_t g0 = 0; g0 < r.size(); g0 += static_cast<size_t>(n)) {
    double sum = 0;
    for (int64_t k = 0; k < n; ++k) sum += r[g0 + k];
    const double mean = sum / static_cast<double>(n);
    double var = 0;
    for (int64_t k = 0; k < n; ++k) var += (r[g0 + k] - mean) * (r[g0 + k] - mean);
    const double std_unbiased = n > 1 ? std::sqrt(var / static_cast<double>(n - 1)) : 0.0;
    for (int64_t k = 0; k < n; ++k) {
      const double x = r[g0 + k];
      if (est == "rloo")
        out[g0 + k] = static_cast<float>(n > 1 ? x - (sum - x) / static_cast<double>(n - 1) : 0.0);
      else if (est == "reinforce_baseline" || est == "dr_grpo")
        out[g0 + k] = static_cast<float>(x - mean);
      else if (est == "group_norm")
        out[g0 + k] = static_cast<float>((x - mean) / (std_unbiased + 1e-9));
    }
  }
  return out;
}

TokenGrid masked_normalize(const TokenGrid& x, double eps) {
  TokenGrid out = x;
  for (int64_t b = 0; b < x.B; ++b) {
    double n = 0, sum = 0;
    for (int64_t t = 0; t < x.T; ++t) n += x.mask[b * x.T + t], sum += x.mask[b * x.T + t] * x.v[b * x.T + t];
    n = std::max(n, 1.0);
    const double mean = sum / n;
    double var = 0;
    for (int64_t t = 0; t < x.T; ++t) {
      const double c = (x.v[b * x.T + t] - mean) * x.mask[b * x.T + t];
      var += c * c;
    }
    const double rstd = 1.0 / std::sqrt(std::max(var / n, eps));
    for (int64_t t = 0; t < x.T; ++t)
      out.v[b * x.T + t] = static_cast<float>((x.v[b * x.T + t] - mean) * x.mask[b * x.T + t] * rstd);
  }
  return out;
}

TokenGrid normalize_advantages(const TokenGrid& x, bool no_std_norm, double* mean_out, double* rstd_out) {
  double s = 0, n = 0;
  for (size_t i = 0; i < x.v.size(); ++i) s += x.mask[i] * x.v[i], n += x.mask[i];
  const double mean = n ? s / n : 0.0;
  double rstd = 1.0;
  if (!no_std_norm) {
    double var = 0;
    for (size_t i = 0; i < x.v.size(); ++i) var += x.mask[i] * (x.v[i] - mean) * (x.v[i] - mean);
    rstd = 1.0 / std::sqrt(std::max(n ? var / n : 0.0, 1e-8));
  }
  TokenGrid out = x;
  for (size_t i = 0; i < x.v.size(); ++i) out.v[i] = static_cast<float>((x.v[i] - mean) * rstd);
  if (mean_out) *mean_out = mean;
  if (rstd_out) *rstd_out = rstd;
  return out;
}

}  // namespace yak::train
