#include "yak/model/rope.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "yak/base/error.h"

namespace yak::model {
namespace {

std::vector<double> default_inv_freq(double base, int64_t dim) {
  std::vector<double> f(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) {
    // transformers computes the exponent in float32: arange(0, dim, 2).float() / dim.
    float e = static_cast<float>(2 * i) / static_cast<float>(dim);
    f[i] = 1.0 / std::pow(base, static_cast<double>(e));
  }
  return f;
}

double yarn_mscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

RopeTable to_table(const std::vector<double>& f, double scale) {
  RopeTable t;
  t.inv_freq.assign(f.begin(), f.end());
  t.attention_scale = static_cast<float>(scale);
  return t;
}

}  // namespace

Rope::Rope(const io::RopeConfig& cfg, int64_t head_dim, int64_t max_position_embeddings)
    : cfg_(cfg), dim_(head_dim), max_pos_(max_position_embeddings) {
  using io::RopeType;
  std::vector<double> f = default_inv_freq(cfg.theta, dim_);
  double scale = 1.0;
  switch (cfg.type) {
    case RopeType::Default:
    case RopeType::Dynamic:
      break;
    case RopeType::Linear:
      for (auto& v : f) v /= cfg.factor;
      break;
    case RopeType::Llama3: {
      const double old_len = static_cast<double>(*cfg.original_max_position_embeddings);
      const double low_wavelen = old_len / cfg.low_freq_factor;
      const double high_wavelen = old_len / cfg.high_freq_factor;
      for (auto& v : f) {
        double wavelen = 2 * M_PI / v;
        double scaled = wavelen > low_wavelen ? v / cfg.factor : v;
        if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
          double smooth = (old_len / wavelen - cfg.low_freq_factor) / (cfg.high_freq_factor - cfg.low_freq_factor);
          scaled = (1 - smooth) * scaled / cfg.factor + smooth * scaled;
        }
        v = scaled;
      }
      break;
    }
    case RopeType::Yarn: {
      const double factor = cfg.factor;
      const double orig = static_cast<double>(cfg.original_max_position_embeddings.value_or(max_pos_));
      if (cfg.attention_factor) {
        scale = *cfg.attention_factor;
      } else if (cfg.mscale && cfg.mscale_all_dim) {
        scale = yarn_mscale(factor, *cfg.mscale) / yarn_mscale(factor, *cfg.mscale_all_dim);
      } else {
        scale = yarn_mscale(factor, 1.0);
      }
      auto correction_dim = [&](double rot) {
        return (dim_ * std::log(orig / (rot * 2 * M_PI))) / (2 * std::log(cfg.theta));
      };
      double low = correction_dim(cfg.beta_fast), high = correction_dim(cfg.beta_slow);
      if (cfg.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, static_cast<double>(dim_ - 1));
      if (low == high) high += 0.001;
      for (int64_t i = 0; i < dim_ / 2; ++i) {
        double pos_freq = 1.0 / f[i];
        double extrap = 1.0 / pos_freq, interp = 1.0 / (factor * pos_freq);
        // transformers evaluates the ramp in float32
        float ramp = std::clamp(static_cast<float>((static_cast<float>(i) - low) / (high - low)), 0.0f, 1.0f);
        double extrap_factor = 1.0 - ramp;
        f[i] = interp * (1 - extrap_factor) + extrap * extrap_factor;
      }
      break;
    }
  }
  base_ = to_table(f, scale);
}

const RopeTable& Rope::table(int64_t seq_len) {
  if (cfg_.type != io::RopeType::Dynamic || seq_len <= max_pos_) return base_;
  if (seq_len != dynamic_len_) {
    const double factor = cfg_.factor;
    double base =
        cfg_.theta * std::pow(factor * seq_len / max_pos_ - (factor - 1), static_cast<double>(dim_) / (dim_ - 2));
    dynamic_ = to_table(default_inv_freq(base, dim_), 1.0);
    dynamic_len_ = seq_len;
  }
  return dynamic_;
}

void Rope::angles(const RopeTable& t, int64_t pos, float* cos, float* sin) {
  const size_t h = t.inv_freq.size();
  for (size_t i = 0; i < h; ++i) {
    float a = t.inv_freq[i] * static_cast<float>(pos);  // float32 product, as torch does
    cos[i] = static_cast<float>(std::cos(static_cast<double>(a))) * t.attention_scale;
    sin[i] = static_cast<float>(std::sin(static_cast<double>(a))) * t.attention_scale;
  }
}

void Rope::angles_mrope(const RopeTable& t, const io::RopeConfig& cfg, const int32_t thw[3], float* cos,
                        float* sin) {
  const int64_t h = static_cast<int64_t>(t.inv_freq.size());
  const auto& sec = cfg.mrope_section;
  for (int64_t i = 0; i < h; ++i) {
    int axis = 0;
    if (cfg.mrope_interleaved) {
      if (i % 3 == 1 && i < 3 * sec[1]) axis = 1;
      if (i % 3 == 2 && i < 3 * sec[2]) axis = 2;
    } else {
      axis = i < sec[0] ? 0 : i < sec[0] + sec[1] ? 1 : 2;
    }
    const float a = t.inv_freq[static_cast<size_t>(i)] * static_cast<float>(thw[axis]);
    cos[i] = static_cast<float>(std::cos(static_cast<double>(a))) * t.attention_scale;
    sin[i] = static_cast<float>(std::sin(static_cast<double>(a))) * t.attention_scale;
  }
}

io::RopeConfig with_ntk_alpha(io::RopeConfig rope, const std::string& alpha, int64_t head_dim) {
  using io::RopeType;
  if (rope.type != RopeType::Default && rope.type != RopeType::Linear)
    throw Error("--alpha: NTK scaling applies to a default or linear rope; this model's is " +
                std::string(io::rope_type_name(rope.type)));
  if (alpha == "auto") {
    if (rope.type == RopeType::Linear)
      throw Error("--alpha auto over a linear rope (a 16K/64K checkpoint's rope_scaling) is not supported; give a "
                  "number, or leave the rope as the checkpoint has it");
    rope.type = RopeType::Dynamic;
    rope.factor = 2.0;
    rope.original_max_position_embeddings.reset();
    return rope;
  }
  char* end = nullptr;
  const double a = std::strtod(alpha.c_str(), &end);
  if (alpha.empty() || end != alpha.c_str() + alpha.size() || !(a > 0) || !std::isfinite(a))
    throw Error("--alpha " + alpha + ": expected a positive number or 'auto'");
  check(head_dim > 2, "--alpha: head_dim must be above 2");
  rope.theta *= std::pow(a, static_cast<double>(head_dim) / static_cast<double>(head_dim - 2));
  return rope;
}

}  // namespace yak::model
