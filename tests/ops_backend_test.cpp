// The ops API (ops.h) op by op, in the spirit of llama.cpp's test-backend-ops: every op's output
// against a naive double-precision reference written here straight from the math, every backward
// against that reference and against central differences of its forward, under every instruction
// set this CPU runs (ops/cpu/kernels.h), on odd shapes, 16-bit operands, paged KV caches with a
// shuffled page table and column views; then every other registered backend against the CPU, and
// the Backend base class's host fallback through a test double of a device.
//
// Errors are normalised as in test-backend-ops: NMSE = Σ (out - ref)² / Σ ref², each check with
// its threshold beside it. One line per op, configuration and instruction set is printed
// ("[ops] avx512 linear ...: nmse 3.1e-15"), and a summary of the worst per op at the end.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "yak/base/error.h"
#include "yak/ops/backend.h"
#include "yak/ops/cpu/kernels.h"
#include "yak/ops/cpu/type_traits.h"
#include "yak/ops/ops.h"
#include "yak/tensor/half.h"
#include "yak/tensor/quant.h"
#include "yak/tensor/tensor.h"

using namespace yak;

namespace {

using Vec = std::vector<double>;
using ops::cpu::Isa;

// ---------------------------------------------------------------------------------------------
// Thresholds (NMSE)

// f32 arithmetic against a double reference computed from the operands as stored (16-bit
// weights and caches included: the reference reads their rounded values), so what is left is
// the op's own f32 rounding; measured 1e-16 .. 1e-12.
constexpr double kTolF32 = 1e-10;
// The same results against the unrounded f32 inputs: the 16-bit storage itself. bf16 keeps 8
// significant bits (relative error up to 2^-9, NMSE ~1e-6), f16 11 bits (NMSE ~1e-7).
constexpr double kTolBf16Inputs = 1e-4;
constexpr double kTolF16Inputs = 1e-6;
// Attention's backward sums products of recomputed probabilities; still f32 rounding only.
constexpr double kTolAttnBackward = 1e-9;
// AdamW's second moment: 1 - b2 is taken in double before rounding (as torch does), so f32
// rounding is all that remains.
constexpr double kTolAdamWSecondMoment = kTolF32;
// AdamW's parameter change p_new - p_old: p is rounded to f32 (|p| ~ 1) while the change is
// ~lr = 1e-2, so the change carries ~100x the relative rounding of p.
constexpr double kTolAdamWDelta = 1e-8;
// Backward ops against central differences of the f32 forward (step 1e-2 relative): the
// forward's rounding divided by the step, about 1e-9 .. 1e-7 measured.
constexpr double kTolFd = 1e-6;
// Another backend against the CPU: a device may sum in another order (or use TF32 for products).
constexpr double kTolOtherBackend = 1e-6;

// ---------------------------------------------------------------------------------------------
// Measurements and the report

template <typename... A>
std::string cat(const A&... a) {
  std::ostringstream s;
  (s << ... << a);
  return s.str();
}

const char* isa_now() {
  return ops::cpu::isa_name(ops::cpu::kernels().isa);
}

double nmse(const Vec& out, const Vec& ref) {
  if (out.size() != ref.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const double d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return den > 0 ? num / den : num;
}

// Worst result per op and instruction set, for the summary at the end.
struct Stat {
  double worst = 0;
  bool any_nmse = false, any_exact = false;
  int64_t differ = 0;
};
std::map<std::string, std::map<std::string, Stat>>& stats() {
  static std::map<std::string, std::map<std::string, Stat>> s;
  return s;
}

void keep_worst(double& worst, double e) {
  if (!std::isnan(worst) && (std::isnan(e) || e > worst)) worst = e;
}

// One printed line: the worst error over a family of cases (one op and configuration under the
// active instruction set). Every case is a gtest expectation with its own threshold.
class Measure {
 public:
  Measure(std::string op, std::string what) : op_(std::move(op)), what_(std::move(what)), isa_(isa_now()) {}
  Measure(const Measure&) = delete;
  Measure& operator=(const Measure&) = delete;
  ~Measure() {
    if (cases_ == 0) return;
    Stat& s = stats()[op_][isa_];
    if (has_nmse_) {
      std::printf("[ops] %-6s %s %s: nmse %.1e (tol %.0e, %d cases)\n", isa_.c_str(), op_.c_str(), what_.c_str(),
                  worst_, tol_, nmse_cases_);
      s.any_nmse = true;
      keep_worst(s.worst, worst_);
    }
    if (has_exact_) {
      if (differ_ == 0)
        std::printf("[ops] %-6s %s %s: bit-exact (%lld elements)\n", isa_.c_str(), op_.c_str(), what_.c_str(),
                    static_cast<long long>(elems_));
      else
        std::printf("[ops] %-6s %s %s: %lld of %lld elements differ\n", isa_.c_str(), op_.c_str(), what_.c_str(),
                    static_cast<long long>(differ_), static_cast<long long>(elems_));
      s.any_exact = true;
      s.differ += differ_;
    }
  }
  // NMSE of out against ref, at most tol.
  void nmse(const Vec& out, const Vec& ref, double tol, const std::string& detail = {}) {
    const double e = ::nmse(out, ref);
    ++cases_;
    ++nmse_cases_;
    has_nmse_ = true;
    tol_ = std::max(tol_, tol);
    keep_worst(worst_, e);
    EXPECT_LE(e, tol) << op_ << " " << what_ << " " << detail << " [" << isa_ << "]";
  }
  // A bit-exact comparison: `differ` of `n` elements differ.
  void exact(int64_t differ, int64_t n, const std::string& detail = {}) {
    ++cases_;
    has_exact_ = true;
    differ_ += differ;
    elems_ += n;
    EXPECT_EQ(differ, 0) << op_ << " " << what_ << " " << detail << " [" << isa_ << "]";
  }

 private:
  std::string op_, what_, isa_;
  double worst_ = 0, tol_ = 0;
  int cases_ = 0, nmse_cases_ = 0;
  bool has_nmse_ = false, has_exact_ = false;
  int64_t differ_ = 0, elems_ = 0;
};

class Summary : public ::testing::Environment {
 public:
  void TearDown() override {
    if (stats().empty()) return;
    std::printf("[ops] summary, worst per op and instruction set (nmse; 'exact': bit-exact checks only):\n");
    for (const auto& [op, per] : stats()) {
      std::string line = cat("[ops]   ", op);
      line.resize(std::max<size_t>(line.size(), 34), ' ');
      for (const auto& [isa, s] : per) {
        char buf[96];
        if (s.any_nmse)
          std::snprintf(buf, sizeof buf, "  %s %.1e", isa.c_str(), s.worst);
        else
          std::snprintf(buf, sizeof buf, "  %s exact", isa.c_str());
        line += buf;
        if (s.differ) line += cat(" (", s.differ, " differ)");
      }
      std::printf("%s\n", line.c_str());
    }
  }
};
[[maybe_unused]] ::testing::Environment* const g_summary = ::testing::AddGlobalTestEnvironment(new Summary);

// ---------------------------------------------------------------------------------------------
// Instruction sets

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (int i = 0; i < ops::cpu::kIsaCount; ++i)
    if (ops::cpu::kernels_for(static_cast<Isa>(i))) out.push_back(static_cast<Isa>(i));
  return out;
}

// Runs body under every instruction set this CPU offers; the one active before is restored at
// the end (also when body throws).
template <typename F>
void for_each_isa(F&& body) {
  struct Restore {
    Isa prev;
    ~Restore() { ops::cpu::set_isa(prev); }
  } restore{ops::cpu::kernels().isa};
  for (Isa isa : available_isas()) {
    ops::cpu::set_isa(isa);
    SCOPED_TRACE(cat("isa ", ops::cpu::isa_name(isa)));
    body();
  }
}

// ---------------------------------------------------------------------------------------------
// Tensors

const Device kCpu = cpu_device();

std::string dims(const Tensor& t) {
  std::string s = "[";
  for (int i = 0; i < t.ndim(); ++i) s += cat(i ? "x" : "", t.dim(i));
  return s + "]";
}

uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float f32_of_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Element bits of a value stored as dt (scalar conversions of half.h).
uint32_t stored_bits(double v, DType dt) {
  const float f = static_cast<float>(v);
  switch (dt) {
    case DType::BF16:
      return f32_to_bf16(f);
    case DType::F16:
      return f32_to_f16(f);
    default:
      return f32_bits(f);
  }
}
// A value as dt stores it.
double stored(double v, DType dt) {
  const float f = static_cast<float>(v);
  switch (dt) {
    case DType::BF16:
      return bf16_to_f32(f32_to_bf16(f));
    case DType::F16:
      return f16_to_f32(f32_to_f16(f));
    default:
      return f;
  }
}

// Visits every element (rows in order, strides respected) of a host tensor: fn(byte pointer).
template <typename F>
void for_elements(const Tensor& t, F&& fn) {
  const int64_t rows = t.ndim() >= 2 ? t.dim(0) : 1;
  const int64_t cols = t.ndim() >= 2 ? t.row_size() : t.numel();
  const int64_t ld = t.ndim() >= 2 ? t.row_stride() : cols;
  const auto* base = static_cast<const uint8_t*>(t.raw());
  const size_t es = dtype_bytes(t.dtype(), 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) fn(base + static_cast<size_t>(r * ld + c) * es);
}

// Every element of a tensor (on any device, strided or not) as double.
Vec values(const Tensor& t0) {
  const Tensor t = t0.is_host() ? t0 : t0.to(kCpu);
  Vec out;
  out.reserve(static_cast<size_t>(t.numel()));
  for_elements(t, [&](const uint8_t* p) {
    switch (t.dtype()) {
      case DType::F32: {
        float f;
        std::memcpy(&f, p, 4);
        out.push_back(f);
        break;
      }
      case DType::BF16:
      case DType::F16: {
        uint16_t h;
        std::memcpy(&h, p, 2);
        out.push_back(t.dtype() == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h));
        break;
      }
      case DType::F64: {
        double d;
        std::memcpy(&d, p, 8);
        out.push_back(d);
        break;
      }
      case DType::I32: {
        int32_t i;
        std::memcpy(&i, p, 4);
        out.push_back(i);
        break;
      }
      default:
        ADD_FAILURE() << "values(): unexpected dtype " << dtype_name(t.dtype());
        out.push_back(NAN);
    }
  });
  return out;
}

// Every element's bits (16-bit dtypes widened), for bit-exact comparisons.
std::vector<uint32_t> bits(const Tensor& t0) {
  const Tensor t = t0.is_host() ? t0 : t0.to(kCpu);
  std::vector<uint32_t> out;
  out.reserve(static_cast<size_t>(t.numel()));
  const size_t es = dtype_bytes(t.dtype(), 1);
  for_elements(t, [&](const uint8_t* p) {
    uint32_t u = 0;
    if (es == 2) {
      uint16_t h;
      std::memcpy(&h, p, 2);
      u = h;
    } else {
      std::memcpy(&u, p, 4);
    }
    out.push_back(u);
  });
  return out;
}

int64_t count_differ(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  if (a.size() != b.size()) return static_cast<int64_t>(std::max(a.size(), b.size()));
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i] != b[i];
  return n;
}
int64_t count_differ(const Vec& a, const Vec& b) {
  if (a.size() != b.size()) return static_cast<int64_t>(std::max(a.size(), b.size()));
  return static_cast<int64_t>(a.size()) - std::inner_product(a.begin(), a.end(), b.begin(), int64_t{0}, std::plus<>(),
                                                             [](double x, double y) { return int64_t{x == y}; });
}

// A host tensor of dtype dt holding vals (rounded with half.h's scalar conversions).
Tensor make(const Shape& shape, DType dt, const Vec& vals) {
  Tensor t = Tensor::empty(shape, dt);
  EXPECT_EQ(static_cast<size_t>(t.numel()), vals.size());
  for (size_t i = 0; i < vals.size(); ++i) {
    const uint32_t b = stored_bits(vals[i], dt);
    if (dt == DType::F32)
      std::memcpy(t.data<float>() + i, &b, 4);
    else
      t.data<uint16_t>()[i] = static_cast<uint16_t>(b);
  }
  return t;
}
Tensor as_dtype(const Tensor& t, DType dt) {
  return make(t.shape(), dt, values(t));
}

Tensor randn(const Shape& shape, std::mt19937& rng, double sd = 1.0, double mean = 0.0) {
  Tensor t = Tensor::empty(shape);
  std::normal_distribution<double> nd(mean, sd);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(nd(rng));
  return t;
}

// Every element NaN: an op's output that is not fully written shows in its error.
Tensor nan_f32(const Shape& shape) {
  Tensor t = Tensor::empty(shape);
  std::fill(t.data<float>(), t.data<float>() + t.numel(), NAN);
  return t;
}

Vec minus(const Vec& a, const Vec& b) {
  Vec d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}
Vec pick(const Vec& v, const std::vector<int64_t>& idx) {
  Vec out;
  for (int64_t i : idx) out.push_back(v[static_cast<size_t>(i)]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Column views: the same values inside a wider matrix

// `view` is columns [left, left + cols) of `base`; the other columns hold a byte pattern, kept
// as it was so that a write outside the view is seen.
struct Wide {
  Tensor base, view;
  int64_t left = 0, cols = 0;
  std::vector<uint8_t> before;

  static Wide of(const Tensor& t, int64_t left = 3, int64_t right = 5) {
    Wide w;
    w.left = left;
    w.cols = t.dim(1);
    w.base = Tensor::empty({t.dim(0), t.dim(1) + left + right}, t.dtype());
    std::memset(w.base.raw(), 0xA5, w.base.nbytes());
    w.view = w.base.slice_cols(left, left + t.dim(1));
    w.view.copy_from(t);
    const auto* p = static_cast<const uint8_t*>(w.base.raw());
    w.before.assign(p, p + w.base.nbytes());
    return w;
  }
  bool padding_intact() const {
    const auto* p = static_cast<const uint8_t*>(base.raw());
    const size_t es = dtype_bytes(base.dtype(), 1);
    const int64_t width = base.dim(1);
    for (int64_t r = 0; r < base.dim(0); ++r)
      for (int64_t c = 0; c < width; ++c) {
        if (c >= left && c < left + cols) continue;
        const size_t at = static_cast<size_t>(r * width + c) * es;
        if (std::memcmp(p + at, before.data() + at, es) != 0) return false;
      }
    return true;
  }
};

struct Arg {
  Tensor t;
  bool view = true;  // pass a column view of a wider matrix (2-D operands only)
};

// Runs `op` on contiguous copies of args, and again with each 2-D arg marked `view` replaced by
// a column view holding the same values: every operand must end bit-identical, and nothing
// outside the views may change.
void check_views(const std::string& op, const std::string& what, const std::vector<Arg>& args,
                 const std::function<void(std::vector<Tensor>&)>& run) {
  std::vector<Tensor> flat, strided;
  std::vector<Wide> wides(args.size());
  for (size_t i = 0; i < args.size(); ++i) {
    flat.push_back(args[i].t.clone());
    if (args[i].view && args[i].t.ndim() == 2) {
      wides[i] = Wide::of(args[i].t);
      strided.push_back(wides[i].view);
    } else {
      strided.push_back(args[i].t.clone());
    }
  }
  run(flat);
  run(strided);
  Measure m(op, what + ", column views vs contiguous");
  int64_t differ = 0, n = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const auto a = bits(flat[i]), b = bits(strided[i]);
    differ += count_differ(a, b);
    n += static_cast<int64_t>(a.size());
  }
  m.exact(differ, n);
  for (size_t i = 0; i < args.size(); ++i)
    if (wides[i].base.defined()) {
      EXPECT_TRUE(wides[i].padding_intact()) << op << " changed bytes outside the view of operand " << i;
    }
}

// ---------------------------------------------------------------------------------------------
// Finite differences

// Central differences of L = Σ r ⊙ f() with respect to elements idx of x (f32, contiguous):
// each perturbed by ±1e-2 of its magnitude (at least ±1e-3), L accumulated in double, the step
// taken as the difference of the two f32 values actually stored.
Vec fd_grad(Tensor& x, const std::function<Vec()>& f, const Vec& r, const std::vector<int64_t>& idx) {
  float* p = x.data<float>();
  auto L = [&] {
    const Vec y = f();
    EXPECT_EQ(y.size(), r.size());
    double s = 0;
    for (size_t i = 0; i < y.size() && i < r.size(); ++i) s += r[i] * y[i];
    return s;
  };
  Vec g;
  for (int64_t i : idx) {
    const float keep = p[i];
    const float h = 1e-2f * std::max(std::fabs(keep), 0.1f);
    const float up = keep + h, down = keep - h;
    p[i] = up;
    const double lp = L();
    p[i] = down;
    const double lm = L();
    p[i] = keep;
    g.push_back((lp - lm) / (static_cast<double>(up) - static_cast<double>(down)));
  }
  return g;
}
std::vector<int64_t> all_of(const Tensor& t) {
  std::vector<int64_t> idx(static_cast<size_t>(t.numel()));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  return idx;
}
std::vector<int64_t> some_of(const Tensor& t, size_t n, std::mt19937& rng) {
  std::vector<int64_t> idx = all_of(t);
  std::shuffle(idx.begin(), idx.end(), rng);
  idx.resize(std::min(n, idx.size()));
  return idx;
}

// ---------------------------------------------------------------------------------------------
// References, in double, straight from the math. Matrices are row-major Vecs.

// y[m, n] = Σ_k x[m, k] W[n, k] + b[n]
Vec ref_linear(const Vec& x, const Vec& W, const Vec& b, int64_t M, int64_t N, int64_t K) {
  Vec y(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = b.empty() ? 0.0 : b[n];
      for (int64_t k = 0; k < K; ++k) s += x[m * K + k] * W[n * K + k];
      y[m * N + n] = s;
    }
  return y;
}
struct LinearGrads {
  Vec dx, dW, db;
};
// dx = dy W, dW = dy^T x, db = Σ_m dy
LinearGrads ref_linear_backward(const Vec& dy, const Vec& x, const Vec& W, int64_t M, int64_t N, int64_t K) {
  LinearGrads g{Vec(static_cast<size_t>(M * K)), Vec(static_cast<size_t>(N * K)), Vec(static_cast<size_t>(N))};
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      const double d = dy[m * N + n];
      for (int64_t k = 0; k < K; ++k) {
        g.dx[m * K + k] += d * W[n * K + k];
        g.dW[n * K + k] += d * x[m * K + k];
      }
      g.db[n] += d;
    }
  return g;
}

// dE[ids[i]] += dout[i]
Vec ref_embedding_backward(const Vec& dout, const std::vector<int32_t>& ids, int64_t V, int64_t D) {
  Vec dE(static_cast<size_t>(V * D));
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t d = 0; d < D; ++d) dE[ids[i] * D + d] += dout[i * D + d];
  return dE;
}

// Over each group of n = w.size() values: y = w x / sqrt(mean(x²) + eps)
Vec ref_rms_norm(const Vec& x, const Vec& w, double eps) {
  const size_t n = w.size();
  Vec y(x.size());
  for (size_t g0 = 0; g0 < x.size(); g0 += n) {
    double ss = 0;
    for (size_t i = 0; i < n; ++i) ss += x[g0 + i] * x[g0 + i];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
    for (size_t i = 0; i < n; ++i) y[g0 + i] = w[i] * x[g0 + i] * inv;
  }
  return y;
}
struct RmsGrads {
  Vec dx, dw;
};
// With r = (mean(x²) + eps)^-1/2: dx = r w dy - r³/n x Σ dy w x, dw = Σ_groups dy x r
RmsGrads ref_rms_norm_backward(const Vec& dy, const Vec& x, const Vec& w, double eps) {
  const size_t n = w.size();
  RmsGrads g{Vec(x.size()), Vec(n)};
  for (size_t g0 = 0; g0 < x.size(); g0 += n) {
    double ss = 0, dot = 0;
    for (size_t i = 0; i < n; ++i) {
      ss += x[g0 + i] * x[g0 + i];
      dot += dy[g0 + i] * w[i] * x[g0 + i];
    }
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
    for (size_t i = 0; i < n; ++i) {
      g.dx[g0 + i] = r * w[i] * dy[g0 + i] - r * r * r / static_cast<double>(n) * dot * x[g0 + i];
      g.dw[i] += dy[g0 + i] * x[g0 + i] * r;
    }
  }
  return g;
}

// Rotate-half: in every head of row t, (u, v) = (x[i], x[i + hd/2]) turns by the angle whose
// cos/sin are cs[t, i] and cs[t, hd/2 + i]. The backward turns back.
Vec ref_rope(const Vec& x, const Vec& cs, int64_t T, int64_t cols, int64_t hd, bool backward = false) {
  Vec y(x.size());
  const int64_t h = hd / 2;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < cols / hd; ++k)
      for (int64_t i = 0; i < h; ++i) {
        const double c = cs[t * hd + i], s = backward ? -cs[t * hd + h + i] : cs[t * hd + h + i];
        const double u = x[t * cols + k * hd + i], v = x[t * cols + k * hd + h + i];
        y[t * cols + k * hd + i] = u * c - v * s;
        y[t * cols + k * hd + h + i] = v * c + u * s;
      }
  return y;
}

double sigmoid(double g) {
  return 1.0 / (1.0 + std::exp(-g));
}
// out = silu(g) u = g σ(g) u
Vec ref_swiglu(const Vec& g, const Vec& u) {
  Vec y(g.size());
  for (size_t i = 0; i < g.size(); ++i) y[i] = g[i] * sigmoid(g[i]) * u[i];
  return y;
}
struct SwigluGrads {
  Vec dg, du;
};
// dg = d u σ (1 + g (1 - σ)), du = d g σ
SwigluGrads ref_swiglu_backward(const Vec& d, const Vec& g, const Vec& u) {
  SwigluGrads r{Vec(g.size()), Vec(g.size())};
  for (size_t i = 0; i < g.size(); ++i) {
    const double s = sigmoid(g[i]);
    r.dg[i] = d[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
    r.du[i] = d[i] * g[i] * s;
  }
  return r;
}

// log Σ exp over a row (-inf for a row of -inf)
double ref_logsumexp(const double* z, int64_t n) {
  double m = -INFINITY;
  for (int64_t j = 0; j < n; ++j) m = std::max(m, z[j]);
  if (m == -INFINITY) return m;
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += std::exp(z[j] - m);
  return m + std::log(s);
}
// Row softmax; a row of -inf gives zeros.
Vec ref_softmax(const Vec& x, int64_t cols) {
  Vec y(x.size());
  for (size_t r0 = 0; r0 < x.size(); r0 += static_cast<size_t>(cols)) {
    const double lse = ref_logsumexp(&x[r0], cols);
    for (int64_t j = 0; j < cols; ++j) y[r0 + j] = lse == -INFINITY ? 0.0 : std::exp(x[r0 + j] - lse);
  }
  return y;
}
// dx = y (dy - Σ dy y)
Vec ref_softmax_backward(const Vec& dy, const Vec& y, int64_t cols) {
  Vec dx(y.size());
  for (size_t r0 = 0; r0 < y.size(); r0 += static_cast<size_t>(cols)) {
    double dot = 0;
    for (int64_t j = 0; j < cols; ++j) dot += dy[r0 + j] * y[r0 + j];
    for (int64_t j = 0; j < cols; ++j) dx[r0 + j] = y[r0 + j] * (dy[r0 + j] - dot);
  }
  return dx;
}

struct Logprobs {
  Vec lp, lse;
};
// lp[r] = z[r, t] - lse(z[r]) and lse[r]; both 0 where the target is `ignore`.
Logprobs ref_token_logprobs(const Vec& z, int64_t V, const std::vector<int32_t>& targets, int32_t ignore) {
  Logprobs out{Vec(targets.size()), Vec(targets.size())};
  for (size_t r = 0; r < targets.size(); ++r) {
    if (targets[r] == ignore) continue;
    out.lse[r] = ref_logsumexp(&z[r * V], V);
    out.lp[r] = z[r * V + targets[r]] - out.lse[r];
  }
  return out;
}
// dz[r] = dlp[r] (onehot(t) - softmax(z[r])) for counted rows
Vec ref_token_logprobs_backward(const Vec& dlp, const Vec& z, int64_t V, const std::vector<int32_t>& targets,
                                int32_t ignore) {
  Vec dz(z.size());
  for (size_t r = 0; r < targets.size(); ++r) {
    if (targets[r] == ignore) continue;
    const double lse = ref_logsumexp(&z[r * V], V);
    for (int64_t j = 0; j < V; ++j)
      dz[r * V + j] = dlp[r] * ((j == targets[r] ? 1.0 : 0.0) - std::exp(z[r * V + j] - lse));
  }
  return dz;
}

struct Entropies {
  Vec H, lse;
};
// H = -Σ p log p of p = softmax(z)
Entropies ref_entropy(const Vec& z, int64_t V) {
  const size_t R = z.size() / static_cast<size_t>(V);
  Entropies out{Vec(R), Vec(R)};
  for (size_t r = 0; r < R; ++r) {
    const double lse = ref_logsumexp(&z[r * V], V);
    double h = 0;
    for (int64_t j = 0; j < V; ++j) {
      const double lp = z[r * V + j] - lse;
      h -= std::exp(lp) * lp;
    }
    out.H[r] = h;
    out.lse[r] = lse;
  }
  return out;
}
// dz_j = dH (-p_j (log p_j + H))
Vec ref_entropy_backward(const Vec& dH, const Vec& z, int64_t V) {
  const Entropies e = ref_entropy(z, V);
  Vec dz(z.size());
  for (size_t r = 0; r < e.H.size(); ++r)
    for (int64_t j = 0; j < V; ++j) {
      const double lp = z[r * V + j] - e.lse[r];
      dz[r * V + j] = dH[r] * -std::exp(lp) * (lp + e.H[r]);
    }
  return dz;
}

// out[i] = x[rows[i]] (rows of D values)
Vec ref_gather_rows(const Vec& x, int64_t D, const std::vector<int32_t>& rows) {
  Vec out;
  for (int32_t r : rows)
    for (int64_t d = 0; d < D; ++d) out.push_back(x[r * D + d]);
  return out;
}
// dx[rows[i]] += d[i] (the increment, over n rows of D values)
Vec ref_scatter_add_rows(const Vec& d, int64_t D, const std::vector<int32_t>& rows, int64_t n) {
  Vec dx(static_cast<size_t>(n * D));
  for (size_t i = 0; i < rows.size(); ++i)
    for (int64_t c = 0; c < D; ++c) dx[rows[i] * D + c] += d[i * D + c];
  return dx;
}
// out[segment[i]] += x[i] (the increment)
Vec ref_segment_sum(const Vec& x, const std::vector<int32_t>& segment, int64_t n) {
  Vec out(static_cast<size_t>(n));
  for (size_t i = 0; i < x.size(); ++i) out[segment[i]] += x[i];
  return out;
}

// Dropout keeps element i when splitmix64(seed + φ (i + 1)) >> 11, as a fraction of 2^53, is at
// least p (φ = 0x9E3779B97F4A7C15), and scales it by 1 / (1 - p).
bool ref_dropout_keeps(uint64_t seed, int64_t i, double p) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(i + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53 >= p;
}

double ref_sum_squares(const Vec& x) {
  double s = 0;
  for (double v : x) s += v * v;
  return s;
}

struct AdamWState {
  Vec p, m, v;
};
// torch.optim.AdamW: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g², p *= 1 - lr wd (when decaying),
// p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
AdamWState ref_adamw(AdamWState s, const Vec& g, const ops::AdamWArgs& a) {
  const double c1 = 1 - std::pow(a.beta1, static_cast<double>(a.step));
  const double c2 = 1 - std::pow(a.beta2, static_cast<double>(a.step));
  for (size_t i = 0; i < g.size(); ++i) {
    s.m[i] = a.beta1 * s.m[i] + (1 - a.beta1) * g[i];
    s.v[i] = a.beta2 * s.v[i] + (1 - a.beta2) * g[i] * g[i];
    if (a.decay) s.p[i] *= 1 - a.lr * a.weight_decay;
    s.p[i] -= a.lr / c1 * s.m[i] / (std::sqrt(s.v[i]) / std::sqrt(c2) + static_cast<double>(static_cast<float>(a.eps)));
  }
  return s;
}

// --- attention

// A batch's rows: runs of consecutive positions of a slot, in the order given.
struct Run {
  int32_t slot, pos0, n;
};
struct Batch {
  std::vector<int32_t> pos, slot;
  int64_t rows() const { return static_cast<int64_t>(pos.size()); }
};
Batch batch(std::initializer_list<Run> runs) {
  Batch b;
  for (const Run& r : runs)
    for (int32_t i = 0; i < r.n; ++i) {
      b.slot.push_back(r.slot);
      b.pos.push_back(r.pos0 + i);
    }
  return b;
}
ops::AttentionArgs attn_args(const Batch& b, int64_t heads, int64_t kv_heads, int64_t hd, int64_t window) {
  ops::AttentionArgs a;
  a.heads = heads;
  a.kv_heads = kv_heads;
  a.head_dim = hd;
  a.window = window;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  a.pos = b.pos;
  a.slot = b.slot;
  return a;
}

// Fills every element of t with one bit pattern (u16 or u32 by dtype).
void fill_bits(Tensor& t, uint32_t pattern) {
  auto* p = static_cast<uint8_t*>(t.raw());
  const size_t es = dtype_bytes(t.dtype(), 1);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (es == 2) {
      const uint16_t h = static_cast<uint16_t>(pattern);
      std::memcpy(p + i * 2, &h, 2);
    } else {
      std::memcpy(p + i * 4, &pattern, 4);
    }
  }
}
uint32_t nan_bits(DType dt) {
  return dt == DType::F32 ? 0x7fc00000u : dt == DType::BF16 ? 0x7fc0u : 0x7e00u;
}

// A paged KV cache of `slots` sequences of pages_per_slot pages: its pages handed out in a
// shuffled order, with two spare pages nobody owns. Every element starts NaN (or zero), so a
// read of anything never written shows in the result.
ops::KvPages make_cache(DType dt, int64_t slots, int64_t pages_per_slot, int64_t page, int64_t kv_heads, int64_t hd,
                        std::mt19937& rng, bool nan = true) {
  const int64_t pages = slots * pages_per_slot + 2;
  std::vector<int32_t> perm(static_cast<size_t>(pages));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  ops::KvPages c;
  c.k = Tensor::empty({pages, kv_heads, page, hd}, dt);
  c.v = Tensor::empty({pages, kv_heads, page, hd}, dt);
  fill_bits(c.k, nan ? nan_bits(dt) : 0);
  fill_bits(c.v, nan ? nan_bits(dt) : 0);
  c.page_table = Tensor::empty({slots, pages_per_slot}, DType::I32);
  std::copy(perm.begin(), perm.begin() + slots * pages_per_slot, c.page_table.data<int32_t>());
  c.page_size = page;
  return c;
}

// What attention should see: each (slot, position, kv head)'s key and value as written, both as
// stored in the cache's dtype and as the f32 values given.
struct KvModel {
  int64_t cap, kv_heads, hd;
  DType dtype;
  Vec k, v, k32, v32;
  std::vector<char> written;  // per (slot, position)

  KvModel(int64_t slots, int64_t cap_, int64_t kvh, int64_t hd_, DType dt)
      : cap(cap_), kv_heads(kvh), hd(hd_), dtype(dt) {
    const size_t n = static_cast<size_t>(slots * cap * kvh * hd);
    k.assign(n, NAN);
    v.assign(n, NAN);
    k32.assign(n, NAN);
    v32.assign(n, NAN);
    written.assign(static_cast<size_t>(slots * cap), 0);
  }
  size_t at(int64_t slot, int64_t pos, int64_t g) const {
    return static_cast<size_t>(((slot * cap + pos) * kv_heads + g) * hd);
  }
  void write(const Tensor& kt, const Tensor& vt, const ops::AttentionArgs& a) {
    const Vec kk = values(kt), vv = values(vt);
    const int64_t width = kv_heads * hd;
    for (size_t t = 0; t < a.pos.size(); ++t) {
      written[static_cast<size_t>(a.slot[t] * cap + a.pos[t])] = 1;
      for (int64_t g = 0; g < kv_heads; ++g)
        for (int64_t d = 0; d < hd; ++d) {
          const size_t i = at(a.slot[t], a.pos[t], g) + d, src = t * width + g * hd + d;
          k32[i] = kk[src];
          v32[i] = vv[src];
          k[i] = stored(kk[src], dtype);
          v[i] = stored(vv[src], dtype);
        }
    }
  }
  bool has(int64_t slot, int64_t pos) const { return written[static_cast<size_t>(slot * cap + pos)] != 0; }
};

int64_t first_visible(int64_t pos, int64_t window) {
  return window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
}
// The last key row t sees: its own position (causal), or its run's last position (bidirectional;
// a run is the consecutive rows of one slot at consecutive positions).
int64_t last_visible(const ops::AttentionArgs& a, size_t t) {
  if (a.causal) return a.pos[t];
  size_t e = t;
  while (e + 1 < a.pos.size() && a.slot[e + 1] == a.slot[t] && a.pos[e + 1] == a.pos[e] + 1) ++e;
  return a.pos[e];
}

// Softmax weights of row t, head h over its visible keys [lo, pos]: P[j - lo].
Vec attn_probs(const Vec& q, const Vec& K, const KvModel& kv, const ops::AttentionArgs& a, size_t t, int64_t h) {
  const int64_t hd = a.head_dim, g = h / (a.heads / a.kv_heads), p = a.pos[t];
  const int64_t lo = first_visible(p, a.window), hi = last_visible(a, t);
  Vec s;
  for (int64_t j = lo; j <= hi; ++j) {
    EXPECT_TRUE(kv.has(a.slot[t], j)) << "the reference reads a key never written";
    double dot = 0;
    for (int64_t d = 0; d < hd; ++d) dot += q[(t * a.heads + h) * hd + d] * K[kv.at(a.slot[t], j, g) + d];
    s.push_back(a.scale * dot);
  }
  const double m = *std::max_element(s.begin(), s.end());
  double z = 0;
  for (double& x : s) z += (x = std::exp(x - m));
  for (double& x : s) x /= z;
  s.push_back(m + std::log(z));  // the log-sum-exp rides at the end
  return s;
}

struct AttnRef {
  Vec out, lse;
};
// out[t, h] = softmax(scale q k^T over keys [first_visible, pos] of the row's slot) v, with the
// kv head h / (heads / kv_heads); lse[t, h] the log-sum-exp of the scaled scores.
AttnRef ref_attention(const Vec& q, const KvModel& kv, const ops::AttentionArgs& a, bool as_stored = true) {
  const int64_t H = a.heads, hd = a.head_dim, group = H / a.kv_heads;
  const Vec& K = as_stored ? kv.k : kv.k32;
  const Vec& V = as_stored ? kv.v : kv.v32;
  AttnRef r{Vec(a.pos.size() * H * hd), Vec(a.pos.size() * H)};
  for (size_t t = 0; t < a.pos.size(); ++t)
    for (int64_t h = 0; h < H; ++h) {
      const Vec P = attn_probs(q, K, kv, a, t, h);
      const int64_t lo = first_visible(a.pos[t], a.window);
      for (int64_t j = lo; j <= last_visible(a, t); ++j)
        for (int64_t d = 0; d < hd; ++d)
          r.out[(t * H + h) * hd + d] += P[j - lo] * V[kv.at(a.slot[t], j, h / group) + d];
      r.lse[t * H + h] = P.back();
    }
  return r;
}

struct AttnGrads {
  Vec dq, dk, dv;
};
// With P the probabilities, dP_j = dout·v_j, dS_j = P_j (dP_j - Σ P dP): dq = scale Σ dS_j k_j;
// keys written by this batch (row of their (slot, position)) get dk += scale dS_j q and
// dv += P_j dout; keys cached before are constants.
AttnGrads ref_attention_backward(const Vec& dout, const Vec& q, const KvModel& kv, const ops::AttentionArgs& a) {
  const int64_t H = a.heads, KV = a.kv_heads, hd = a.head_dim, group = H / KV;
  const size_t T = a.pos.size();
  AttnGrads g{Vec(T * H * hd), Vec(T * KV * hd), Vec(T * KV * hd)};
  auto row_of = [&](int32_t slot, int64_t pos) -> int64_t {
    for (size_t t = 0; t < T; ++t)
      if (a.slot[t] == slot && a.pos[t] == pos) return static_cast<int64_t>(t);
    return -1;
  };
  for (size_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      const Vec P = attn_probs(q, kv.k, kv, a, t, h);
      const int64_t lo = first_visible(a.pos[t], a.window), kvh = h / group;
      const double* go = &dout[(t * H + h) * hd];
      const double* qv = &q[(t * H + h) * hd];
      Vec dP;
      double D = 0;
      for (int64_t j = lo; j <= last_visible(a, t); ++j) {
        double s = 0;
        for (int64_t d = 0; d < hd; ++d) s += go[d] * kv.v[kv.at(a.slot[t], j, kvh) + d];
        dP.push_back(s);
        D += P[j - lo] * s;
      }
      for (int64_t j = lo; j <= last_visible(a, t); ++j) {
        const double pj = P[j - lo], dS = pj * (dP[j - lo] - D);
        const size_t kj = kv.at(a.slot[t], j, kvh);
        for (int64_t d = 0; d < hd; ++d) g.dq[(t * H + h) * hd + d] += a.scale * dS * kv.k[kj + d];
        const int64_t row = row_of(a.slot[t], j);
        if (row < 0) continue;
        for (int64_t d = 0; d < hd; ++d) {
          g.dk[(row * KV + kvh) * hd + d] += a.scale * dS * qv[d];
          g.dv[(row * KV + kvh) * hd + d] += pj * go[d];
        }
      }
    }
  return g;
}

// cos | sin table of rope for rows at positions pos0, pos0 + 2, ...
Tensor rope_table(int64_t T, int64_t hd, int64_t pos0 = 3) {
  Tensor cs = Tensor::empty({T, hd});
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double theta = static_cast<double>(pos0 + 2 * t) * std::pow(10000.0, -2.0 * i / static_cast<double>(hd));
      cs.data<float>()[t * hd + i] = static_cast<float>(std::cos(theta));
      cs.data<float>()[t * hd + hd / 2 + i] = static_cast<float>(std::sin(theta));
    }
  return cs;
}

Tensor tensor_of(const Vec& v, const Shape& shape) {
  return make(shape, DType::F32, v);
}

}  // namespace

// =============================================================================================

TEST(OpsBackend, InstructionSets) {
  const std::vector<Isa> isas = available_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::Scalar);  // the portable table is always there
  std::string names;
  for (Isa i : isas) names += cat(" ", ops::cpu::isa_name(i));
  std::printf("[ops] instruction sets on this CPU:%s (active: %s, best: %s)\n", names.c_str(), isa_now(),
              ops::cpu::isa_name(ops::cpu::best_isa()));
  const Isa start = ops::cpu::kernels().isa;
  for_each_isa([&] {
    const Isa now = ops::cpu::kernels().isa;
    EXPECT_EQ(ops::cpu::kernels_for(now), &ops::cpu::kernels());
    EXPECT_EQ(ops::cpu::set_isa(now), now);  // set_isa returns the previous one
  });
  EXPECT_EQ(ops::cpu::kernels().isa, start);
  for (int i = 0; i < ops::cpu::kIsaCount; ++i)
    if (!ops::cpu::kernels_for(static_cast<Isa>(i))) {
      EXPECT_THROW(ops::cpu::set_isa(static_cast<Isa>(i)), Error);
    }
}

TEST(OpsBackend, Linear) {
  for_each_isa([] {
    for (DType wt : {DType::F32, DType::BF16, DType::F16})
      for (int64_t K : {37, 64, 65, 96, 130}) {
        // K a multiple of 32 with N >= 32 takes the AMX tile path for bf16 where the CPU has it
        // (blocks of 32 weight rows plus a tail of 6 through sgemm).
        const int64_t N = K == 65 ? 71 : K % 32 == 0 ? 70 : 29;
        const std::string w = cat(dtype_name(wt), " W [", N, "x", K, "]");
        Measure gemv("linear", w + ", x [1..8x" + std::to_string(K) + "] (gemv)");
        Measure gemm("linear", w + ", x [9..20x" + std::to_string(K) + "] (sgemm)");
        Measure rounding("linear/16-bit rounding", w + ", vs the f32 weights before rounding");
        Measure bwd("linear_backward", w + ", M 1..20");
        std::mt19937 rng(static_cast<unsigned>(K * 7 + static_cast<int>(wt)));
        const Tensor W32 = randn({N, K}, rng, 0.5), W = as_dtype(W32, wt), b = randn({N}, rng);
        const Vec Wv = values(W), bv = values(b);
        for (int64_t M : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 33, 70}) {
          const Tensor x = randn({M, K}, rng);
          const bool bias = M % 2 == 1;
          Tensor y = nan_f32({M, N});
          ops::linear(x, W, bias ? &b : nullptr, y);
          (M <= 8 ? gemv : gemm)
              .nmse(values(y), ref_linear(values(x), Wv, bias ? bv : Vec{}, M, N, K), kTolF32, cat("M=", M));
          if (wt != DType::F32)
            rounding.nmse(values(y), ref_linear(values(x), values(W32), bias ? bv : Vec{}, M, N, K),
                          wt == DType::BF16 ? kTolBf16Inputs : kTolF16Inputs, cat("M=", M));
          // dx += dy W, dW += dy^T x (trained weights are f32), db += Σ dy, onto gradients already there
          const Tensor dy = randn({M, N}, rng);
          Tensor dx = randn({M, K}, rng, 0.5), dW = randn({N, K}, rng, 0.5), db = randn({N}, rng, 0.5);
          const Vec dx0 = values(dx), dW0 = values(dW), db0 = values(db);
          ops::linear_backward(dy, x, W, &dx, wt == DType::F32 ? &dW : nullptr, &db);
          const LinearGrads g = ref_linear_backward(values(dy), values(x), Wv, M, N, K);
          bwd.nmse(minus(values(dx), dx0), g.dx, kTolF32, cat("dx M=", M));
          if (wt == DType::F32) bwd.nmse(minus(values(dW), dW0), g.dW, kTolF32, cat("dW M=", M));
          bwd.nmse(minus(values(db), db0), g.db, kTolF32, cat("db M=", M));
        }
      }
    // Central differences of Σ r y on small shapes, both paths.
    for (int64_t M : {3, 11}) {
      Measure fd("linear_backward/fd", cat("x [", M, "x7], W [5x7], b [5]"));
      std::mt19937 rng(static_cast<unsigned>(5 + M));
      Tensor x = randn({M, 7}, rng), W = randn({5, 7}, rng), b = randn({5}, rng);
      const Vec r = values(randn({M, 5}, rng));
      auto f = [&] {
        Tensor y = ops::new_f32({M, 5}, kCpu);
        ops::linear(x, W, &b, y);
        return values(y);
      };
      Tensor dx = Tensor::zeros({M, 7}), dW = Tensor::zeros({5, 7}), db = Tensor::zeros({5});
      ops::linear_backward(tensor_of(r, {M, 5}), x, W, &dx, &dW, &db);
      fd.nmse(values(dx), fd_grad(x, f, r, all_of(x)), kTolFd, "dx");
      fd.nmse(values(dW), fd_grad(W, f, r, all_of(W)), kTolFd, "dW");
      fd.nmse(values(db), fd_grad(b, f, r, all_of(b)), kTolFd, "db");
    }
    // Column views of x and y (and of W), both paths, every weight dtype.
    for (DType wt : {DType::F32, DType::BF16, DType::F16})
      for (int64_t M : {5, 12}) {
        std::mt19937 rng(static_cast<unsigned>(M));
        const Tensor x = randn({M, 65}, rng), W = as_dtype(randn({29, 65}, rng), wt), b = randn({29}, rng);
        check_views("linear", cat(dtype_name(wt), " x [", M, "x65]"), {{x}, {W}, {b}, {nan_f32({M, 29})}},
                    [](std::vector<Tensor>& a) { ops::linear(a[0], a[1], &a[2], a[3]); });
        if (wt == DType::F32)
          check_views(
              "linear_backward", cat("dy [", M, "x29]"),
              {{randn({M, 29}, rng)}, {x}, {W}, {randn({M, 65}, rng)}, {randn({29, 65}, rng)}, {randn({29}, rng)}},
              [](std::vector<Tensor>& a) { ops::linear_backward(a[0], a[1], a[2], &a[3], &a[4], &a[5]); });
      }
  });
}

// ggml's block formats as weights: decode rows (gemv) quantize the activations to the pair
// format and take integer dot products; many rows dequantize weight tiles into sgemm. Each path
// against double sums of the dequantized weights and of the activations it actually reads.
Tensor quantize_rows(const Tensor& W32, DType qt) {
  Tensor W = Tensor::empty(W32.shape(), qt);
  dtype_info(qt).from_float(W32.data<float>(), W.raw(), W32.numel());
  return W;
}
Vec dequantized(const void* q, DType qt, int64_t n) {
  std::vector<float> f(static_cast<size_t>(n));
  dtype_info(qt).to_float(q, f.data(), n);
  return Vec(f.begin(), f.end());
}

// QLoRA's frozen bases: dx += dy W through dequantized tiles, threads owning whole blocks of
// columns, equal to the product with the dequantized weights (onto gradients already there).
TEST(OpsBackend, LinearBackwardQuantizedWeights) {
  for_each_isa([] {
    for (DType wt : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
      const int64_t blk = dtype_info(wt).block;
      for (int64_t K : {blk, 3 * blk, 8 * blk}) {
        const int64_t N = 37;
        Measure bwd("linear_backward/quantized", cat(dtype_name(wt), " W [", N, "x", K, "], M 1..70"));
        std::mt19937 rng(static_cast<unsigned>(K * 3 + static_cast<int>(wt)));
        const Tensor W = quantize_rows(randn({N, K}, rng, 0.5), wt);
        const Vec Wv = dequantized(W.raw(), wt, N * K);
        for (int64_t M : {1, 5, 20, 70}) {
          const Tensor x = randn({M, K}, rng), dy = randn({M, N}, rng);
          Tensor dx = randn({M, K}, rng, 0.5);
          const Vec dx0 = values(dx);
          ops::linear_backward(dy, x, W, &dx, nullptr, nullptr);
          bwd.nmse(minus(values(dx), dx0), ref_linear_backward(values(dy), values(x), Wv, M, N, K).dx, kTolF32,
                   cat("dx M=", M));
        }
      }
    }
  });
}

TEST(OpsBackend, LinearQuantized) {
  using ops::cpu::cpu_traits;
  for_each_isa([] {
    for (DType wt : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K,
                     DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
      const DType act = cpu_traits(wt)->vec_dot_type;
      const int64_t blk = std::max(dtype_info(wt).block, dtype_info(act).block);
      for (int64_t K : {blk, 3 * blk}) {
        const int64_t N = 37;
        const std::string w = cat(dtype_name(wt), " W [", N, "x", K, "]");
        Measure gemv("linear/quantized", w + ", x [1..8] as " + dtype_name(act) + " (integer dot)");
        Measure gemm("linear/quantized", w + ", x [9..20] f32 (dequantized tiles, sgemm)");
        std::mt19937 rng(static_cast<unsigned>(K * 13 + static_cast<int>(wt)));
        const Tensor W = quantize_rows(randn({N, K}, rng, 0.5), wt), b = randn({N}, rng);
        const Vec Wv = dequantized(W.raw(), wt, N * K), bv = values(b);
        for (int64_t M : {1, 2, 5, 8, 9, 20}) {
          const Tensor x = randn({M, K}, rng);
          Vec xr = values(x);
          std::vector<std::vector<uint8_t>> xq(static_cast<size_t>(M));
          if (M <= 8) {  // the activations gemv reads: each row through the pair format
            for (int64_t m = 0; m < M; ++m) {
              xq[m].resize(dtype_bytes(act, K));
              dtype_info(act).from_float(x.data<float>() + m * K, xq[m].data(), K);
              const Vec row = dequantized(xq[m].data(), act, K);
              std::copy(row.begin(), row.end(), xr.begin() + m * K);
            }
          }
          Tensor y = nan_f32({M, N});
          ops::linear(x, W, &b, y);
          Vec ref = ref_linear(xr, Wv, bv, M, N, K);
          if (M <= 8 && act == DType::Q8_1) {
            // Q8_1 carries each block's sum as s = f16(d Σq): the weights' minimums meet that
            // rounded sum, as the format defines (Q4_1 and Q5_1 keep m right after d).
            const size_t wb = static_cast<size_t>(dtype_info(wt).block_bytes);
            for (int64_t m = 0; m < M; ++m)
              for (int64_t n = 0; n < N; ++n)
                for (int64_t blk = 0; blk < K / 32; ++blk) {
                  const auto& a = reinterpret_cast<const quant::BlockQ8_1*>(xq[m].data())[blk];
                  int sq = 0;
                  for (int8_t v : a.qs) sq += v;
                  uint16_t mh;
                  std::memcpy(&mh, static_cast<const uint8_t*>(W.raw()) + (n * K / 32 + blk) * wb + 2, 2);
                  ref[m * N + n] += f16_to_f32(mh) * (double{f16_to_f32(a.s)} - double{f16_to_f32(a.d)} * sq);
                }
          }
          (M <= 8 ? gemv : gemm).nmse(values(y), ref, kTolF32, cat("M=", M));
        }
        // Medium precision: many rows take AMX tiles of bf16-rounded dequantized weights where the
        // CPU has them (32-row blocks; the rest through sgemm): bf16 rounding of both sides only.
        {
          const ops::MatmulPrecision prev = ops::matmul_precision();
          ops::set_matmul_precision(ops::MatmulPrecision::Medium);
          const Tensor x = randn({40, K}, rng);
          Tensor y = nan_f32({40, N});
          ops::linear(x, W, &b, y);
          ops::set_matmul_precision(prev);
          Measure med("linear/quantized medium", w + ", x [40] (bf16 tiles where AMX is)");
          med.nmse(values(y), ref_linear(values(x), Wv, bv, 40, N, K), kTolBf16Inputs, "M=40");
        }
        // Few rows through linear_group (q/k/v in one pass) equal separate linears bit for bit.
        const Tensor W2 = quantize_rows(randn({N + 3, K}, rng, 0.5), wt), x = randn({3, K}, rng);
        Tensor y1 = nan_f32({3, N}), y2 = nan_f32({3, N + 3}), r1 = nan_f32({3, N}), r2 = nan_f32({3, N + 3});
        const ops::LinearTarget targets[] = {{&W, nullptr, &y1}, {&W2, nullptr, &y2}};
        ops::linear_group(x, targets);
        ops::linear(x, W, nullptr, r1);
        ops::linear(x, W2, nullptr, r2);
        EXPECT_EQ(count_differ(bits(y1), bits(r1)) + count_differ(bits(y2), bits(r2)), 0) << w;
      }
    }
  });
}

TEST(OpsBackend, LinearGroup) {
  // The products of one input with several weights in one pass equal separate linears bit for bit
  // (same kernels, same order), few rows (one pass) and many (one linear each).
  for_each_isa([] {
    for (DType wt : {DType::F32, DType::BF16})
      for (int64_t M : {1, 3, 8, 12}) {
        std::mt19937 rng(static_cast<unsigned>(M * 3 + static_cast<int>(wt)));
        const Tensor x = randn({M, 64}, rng);
        const Tensor W1 = as_dtype(randn({40, 64}, rng), wt), W2 = as_dtype(randn({7, 64}, rng), wt),
                     W3 = as_dtype(randn({70, 64}, rng), wt), b2 = randn({7}, rng);
        Tensor y1 = nan_f32({M, 40}), y2 = nan_f32({M, 7}), y3 = nan_f32({M, 70});
        const ops::LinearTarget t[] = {{&W1, nullptr, &y1}, {&W2, &b2, &y2}, {&W3, nullptr, &y3}};
        ops::linear_group(x, t);
        Tensor r1 = nan_f32({M, 40}), r2 = nan_f32({M, 7}), r3 = nan_f32({M, 70});
        ops::linear(x, W1, nullptr, r1);
        ops::linear(x, W2, &b2, r2);
        ops::linear(x, W3, nullptr, r3);
        EXPECT_EQ(
            count_differ(bits(y1), bits(r1)) + count_differ(bits(y2), bits(r2)) + count_differ(bits(y3), bits(r3)), 0)
            << dtype_name(wt) << " M=" << M;
      }
  });
}

TEST(OpsBackend, MatmulPrecisionMedium) {
  // Medium rounds activations (and f32 weights) to bf16 once where tile units take the product
  // (blocks of 32 weight rows) or bf16 dot products do: the result is the f32 product of the
  // rounded operands; elsewhere it is the f32 product itself.
  const ops::MatmulPrecision before = ops::matmul_precision();
  ops::set_matmul_precision(ops::MatmulPrecision::Medium);
  std::mt19937 rng(11);
  const int64_t M = 33, N = 64, K = 96;
  const Tensor x = randn({M, K}, rng), W = as_dtype(randn({N, K}, rng), DType::BF16);
  Tensor y = nan_f32({M, N});
  ops::linear(x, W, nullptr, y);
  const Vec xr = values(as_dtype(x, DType::BF16));
  // Without tiles, AVX512_BF16 dot products take the product of the rounded operands as well.
  const bool rounded = ops::cpu::kernels().amx || ops::cpu::kernels().gemv_bf16_dp;
  const Vec want = rounded ? ref_linear(xr, values(W), Vec{}, M, N, K)
                           : ref_linear(values(x), values(W), Vec{}, M, N, K);
  Measure m("linear", cat("medium precision, bf16 W [", N, "x", K, "], x [", M, "x", K, "]"));
  m.nmse(values(y), want, kTolF32, ops::cpu::kernels().amx ? "tiles" : rounded ? "bf16 dot products" : "f32");
  ops::set_matmul_precision(before);
}

TEST(OpsBackend, MatmulPrecisionMediumDecode) {
  // Batched decode (2..32 rows) of bf16 weights at Medium runs on bf16 dot products where the CPU
  // has AVX512_BF16: the f32 sum of products of the bf16-rounded activations and the weights.
  // One row, or a CPU without them, keeps the f32 product. Odd N and a K past the last block of
  // 32 reach the kernel's tails; linear_group takes the same path.
  const ops::MatmulPrecision before = ops::matmul_precision();
  ops::set_matmul_precision(ops::MatmulPrecision::Medium);
  std::mt19937 rng(12);
  const int64_t N = 67, K = 100;
  const Tensor W = as_dtype(randn({N, K}, rng), DType::BF16), W2 = as_dtype(randn({N, K}, rng), DType::BF16);
  for (int64_t M : {1, 2, 5, 16, 32}) {
    const Tensor x = randn({M, K}, rng);
    const bool dot = ops::cpu::kernels().gemv_bf16_dp && M >= 2;
    const Vec xr = dot ? values(as_dtype(x, DType::BF16)) : values(x);
    Tensor y = nan_f32({M, N});
    ops::linear(x, W, nullptr, y);
    Measure m("linear", cat("medium precision decode, bf16 W [", N, "x", K, "], x [", M, "x", K, "]"));
    m.nmse(values(y), ref_linear(xr, values(W), Vec{}, M, N, K), kTolF32, dot ? "bf16 dot products" : "f32");
    Tensor y1 = nan_f32({M, N}), y2 = nan_f32({M, N});
    const ops::LinearTarget targets[] = {{&W, nullptr, &y1}, {&W2, nullptr, &y2}};
    ops::linear_group(x, targets);
    Measure g("linear_group", cat("medium precision decode, two bf16 W [", N, "x", K, "], x [", M, "x", K, "]"));
    g.nmse(values(y1), ref_linear(xr, values(W), Vec{}, M, N, K), kTolF32, "first");
    g.nmse(values(y2), ref_linear(xr, values(W2), Vec{}, M, N, K), kTolF32, "second");
  }
  ops::set_matmul_precision(before);
}

TEST(OpsBackend, Embedding) {
  for_each_isa([] {
    std::mt19937 rng(21);
    const int64_t V = 50, D = 37;
    const std::vector<int32_t> ids = {3, 0, 49, 3, 17, 3, 48, 1, 0};
    const int64_t n = static_cast<int64_t>(ids.size());
    const Tensor E32 = randn({V, D}, rng);
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      const Tensor E = as_dtype(E32, dt);
      Tensor out = nan_f32({n, D});
      ops::embedding(E, ids, out);
      // each row is the stored row converted with half.h, bit for bit
      const Vec Ev = values(E);
      std::vector<uint32_t> want;
      for (int32_t id : ids)
        for (int64_t d = 0; d < D; ++d) want.push_back(f32_bits(static_cast<float>(Ev[id * D + d])));
      Measure m("embedding", cat(dtype_name(dt), " table [50x37], 9 ids with repeats"));
      m.exact(count_differ(bits(out), want), n * D);
      check_views("embedding", cat(dtype_name(dt), " table"), {{E}, {nan_f32({n, D})}},
                  [&](std::vector<Tensor>& a) { ops::embedding(a[0], ids, a[1]); });
    }
    // dE[ids[i]] += dout[i], repeated ids adding up, onto a gradient already there
    Measure bwd("embedding_backward", "dE [50x37], 9 ids with repeats");
    const Tensor dout = randn({n, D}, rng);
    Tensor dE = randn({V, D}, rng, 0.5);
    const Vec dE0 = values(dE);
    ops::embedding_backward(dout, ids, dE);
    bwd.nmse(minus(values(dE), dE0), ref_embedding_backward(values(dout), ids, V, D), kTolF32);
    // central differences on a small table
    Measure fd("embedding_backward/fd", "E [6x5], ids {1, 3, 1, 5}");
    const std::vector<int32_t> small = {1, 3, 1, 5};
    Tensor Es = randn({6, 5}, rng);
    const Vec r = values(randn({4, 5}, rng));
    Tensor dEs = Tensor::zeros({6, 5});
    ops::embedding_backward(tensor_of(r, {4, 5}), small, dEs);
    fd.nmse(values(dEs),
            fd_grad(
                Es,
                [&] {
                  Tensor o = ops::new_f32({4, 5}, kCpu);
                  ops::embedding(Es, small, o);
                  return values(o);
                },
                r, all_of(Es)),
            kTolFd);
  });
}

TEST(OpsBackend, RmsNorm) {
  const float eps = 1e-5f;
  for_each_isa([&] {
    struct Case {
      int64_t rows, cols, group;  // group = w.numel(): the row, or a head
    };
    for (Case c : {Case{5, 130, 130}, Case{5, 130, 26}, Case{4, 65, 13}, Case{3, 37, 37}, Case{1, 16, 16}}) {
      const std::string what = cat("x [", c.rows, "x", c.cols, "], w [", c.group, "]");
      std::mt19937 rng(static_cast<unsigned>(c.cols * 3 + c.group));
      const Tensor x = randn({c.rows, c.cols}, rng, 2.0, 0.3), w = randn({c.group}, rng, 0.3, 1.0);
      Tensor out = nan_f32({c.rows, c.cols});
      ops::rms_norm(x, w, eps, out);
      Measure m("rms_norm", what);
      m.nmse(values(out), ref_rms_norm(values(x), values(w), eps), kTolF32);
      // dx and dw accumulate onto gradients already there
      const Tensor dy = randn({c.rows, c.cols}, rng);
      Tensor dx = randn({c.rows, c.cols}, rng, 0.5), dw = randn({c.group}, rng, 0.5);
      const Vec dx0 = values(dx), dw0 = values(dw);
      ops::rms_norm_backward(dy, x, w, eps, &dx, &dw);
      const RmsGrads g = ref_rms_norm_backward(values(dy), values(x), values(w), eps);
      Measure bwd("rms_norm_backward", what);
      bwd.nmse(minus(values(dx), dx0), g.dx, kTolF32, "dx");
      bwd.nmse(minus(values(dw), dw0), g.dw, kTolF32, "dw");
      check_views("rms_norm", what, {{x}, {w}, {nan_f32({c.rows, c.cols})}},
                  [&](std::vector<Tensor>& a) { ops::rms_norm(a[0], a[1], eps, a[2]); });
      check_views("rms_norm_backward", what, {{dy}, {x}, {w}, {randn({c.rows, c.cols}, rng)}, {dw}},
                  [&](std::vector<Tensor>& a) { ops::rms_norm_backward(a[0], a[1], a[2], eps, &a[3], &a[4]); });
    }
    for (int64_t group : {12, 4}) {
      Measure fd("rms_norm_backward/fd", cat("x [3x12], w [", group, "]"));
      std::mt19937 rng(static_cast<unsigned>(group));
      Tensor x = randn({3, 12}, rng, 1.0, 0.2), w = randn({group}, rng, 0.3, 1.0);
      const Vec r = values(randn({3, 12}, rng));
      auto f = [&] {
        Tensor o = ops::new_f32({3, 12}, kCpu);
        ops::rms_norm(x, w, eps, o);
        return values(o);
      };
      Tensor dx = Tensor::zeros({3, 12}), dw = Tensor::zeros({group});
      ops::rms_norm_backward(tensor_of(r, {3, 12}), x, w, eps, &dx, &dw);
      fd.nmse(values(dx), fd_grad(x, f, r, all_of(x)), kTolFd, "dx");
      fd.nmse(values(dw), fd_grad(w, f, r, all_of(w)), kTolFd, "dw");
    }
  });
}

TEST(OpsBackend, Rope) {
  for_each_isa([] {
    const int64_t T = 5, heads = 3;
    for (int64_t hd : {16, 24, 10}) {
      const std::string what = cat("x [", T, "x", heads * hd, "], head_dim ", hd);
      std::mt19937 rng(static_cast<unsigned>(hd));
      const Tensor x = randn({T, heads * hd}, rng), cs = rope_table(T, hd);
      Tensor out = nan_f32({T, heads * hd});
      ops::rope(x, cs, hd, out);
      Measure m("rope", what);
      m.nmse(values(out), ref_rope(values(x), values(cs), T, heads * hd, hd), kTolF32);
      const Tensor dy = randn({T, heads * hd}, rng);
      Tensor dx = randn({T, heads * hd}, rng, 0.5);
      const Vec dx0 = values(dx);
      ops::rope_backward(dy, cs, hd, dx);
      Measure bwd("rope_backward", what);
      bwd.nmse(minus(values(dx), dx0), ref_rope(values(dy), values(cs), T, heads * hd, hd, true), kTolF32);
      // the cos/sin table stays contiguous (see DISABLED_RopeReadsAStridedTableAsContiguous)
      check_views("rope", what, {{x}, {cs, false}, {nan_f32({T, heads * hd})}},
                  [&](std::vector<Tensor>& a) { ops::rope(a[0], a[1], hd, a[2]); });
      check_views("rope_backward", what, {{dy}, {cs, false}, {dx}},
                  [&](std::vector<Tensor>& a) { ops::rope_backward(a[0], a[1], hd, a[2]); });
    }
    Measure fd("rope_backward/fd", "x [3x16], head_dim 8");
    std::mt19937 rng(31);
    Tensor x = randn({3, 16}, rng);
    const Tensor cs = rope_table(3, 8);
    const Vec r = values(randn({3, 16}, rng));
    Tensor dx = Tensor::zeros({3, 16});
    ops::rope_backward(tensor_of(r, {3, 16}), cs, 8, dx);
    fd.nmse(values(dx),
            fd_grad(
                x,
                [&] {
                  Tensor o = ops::new_f32({3, 16}, kCpu);
                  ops::rope(x, cs, 8, o);
                  return values(o);
                },
                r, all_of(x)),
            kTolFd);
  });
}

TEST(OpsBackend, Swiglu) {
  for_each_isa([] {
    for (auto [R, C] : {std::pair<int64_t, int64_t>{4, 130}, {3, 37}, {1, 8}}) {
      const std::string what = cat("[", R, "x", C, "]");
      std::mt19937 rng(static_cast<unsigned>(R * C));
      Tensor g = randn({R, C}, rng, 3.0);
      g.data<float>()[0] = 30.0f;  // saturated gates, both ends
      g.data<float>()[R * C - 1] = -30.0f;
      const Tensor u = randn({R, C}, rng);
      Tensor out = nan_f32({R, C});
      ops::swiglu(g, u, out);
      Measure m("swiglu", what);
      m.nmse(values(out), ref_swiglu(values(g), values(u)), kTolF32);
      const Tensor d = randn({R, C}, rng);
      Tensor dg = randn({R, C}, rng, 0.5), du = randn({R, C}, rng, 0.5);
      const Vec dg0 = values(dg), du0 = values(du);
      ops::swiglu_backward(d, g, u, &dg, &du);
      const SwigluGrads want = ref_swiglu_backward(values(d), values(g), values(u));
      Measure bwd("swiglu_backward", what);
      bwd.nmse(minus(values(dg), dg0), want.dg, kTolF32, "dgate");
      bwd.nmse(minus(values(du), du0), want.du, kTolF32, "dup");
      // one gradient at a time gives the same bits as both at once
      Tensor dg1 = tensor_of(dg0, {R, C}), du1 = tensor_of(du0, {R, C});
      ops::swiglu_backward(d, g, u, &dg1, nullptr);
      ops::swiglu_backward(d, g, u, nullptr, &du1);
      Measure one("swiglu_backward", what + ", one gradient at a time vs both");
      one.exact(count_differ(bits(dg1), bits(dg)) + count_differ(bits(du1), bits(du)), 2 * R * C);
      check_views("swiglu", what, {{g}, {u}, {nan_f32({R, C})}},
                  [](std::vector<Tensor>& a) { ops::swiglu(a[0], a[1], a[2]); });
      check_views("swiglu_backward", what, {{d}, {g}, {u}, {dg}, {du}},
                  [](std::vector<Tensor>& a) { ops::swiglu_backward(a[0], a[1], a[2], &a[3], &a[4]); });
    }
    Measure fd("swiglu_backward/fd", "[2x9]");
    std::mt19937 rng(41);
    Tensor g = randn({2, 9}, rng, 1.5), u = randn({2, 9}, rng);
    const Vec r = values(randn({2, 9}, rng));
    auto f = [&] {
      Tensor o = ops::new_f32({2, 9}, kCpu);
      ops::swiglu(g, u, o);
      return values(o);
    };
    Tensor dg = Tensor::zeros({2, 9}), du = Tensor::zeros({2, 9});
    ops::swiglu_backward(tensor_of(r, {2, 9}), g, u, &dg, &du);
    fd.nmse(values(dg), fd_grad(g, f, r, all_of(g)), kTolFd, "dgate");
    fd.nmse(values(du), fd_grad(u, f, r, all_of(u)), kTolFd, "dup");
  });
}

TEST(OpsBackend, Softmax) {
  for_each_isa([] {
    for (Shape s : {Shape{6, 130}, Shape{3, 37}, Shape{65}}) {
      const int64_t cols = s[s.size() - 1], n = shape_numel(s);
      const std::string what = shape_str(s);
      std::mt19937 rng(static_cast<unsigned>(n));
      Tensor x = randn(s, rng, 3.0);
      if (s.size() == 2 && s[0] >= 6) {
        for (int64_t j = 0; j < cols; j += 3) x.data<float>()[2 * cols + j] = -INFINITY;  // masked entries
        std::fill(x.data<float>() + 4 * cols, x.data<float>() + 5 * cols, -INFINITY);     // a row of -inf: zeros
      }
      Tensor y = nan_f32(s);
      ops::softmax(x, y);
      Measure m("softmax", what + (s[0] >= 6 && s.size() == 2 ? " with -inf entries and a -inf row" : ""));
      m.nmse(values(y), ref_softmax(values(x), cols), kTolF32);
      // dx += y (dy - Σ dy y), from the op's own y
      const Tensor dy = randn(s, rng);
      Tensor dx = randn(s, rng, 0.5);
      const Vec dx0 = values(dx);
      ops::softmax_backward(dy, y, dx);
      Measure bwd("softmax_backward", what);
      bwd.nmse(minus(values(dx), dx0), ref_softmax_backward(values(dy), values(y), cols), kTolF32);
      if (s.size() == 2) {
        check_views("softmax", what, {{x}, {nan_f32(s)}}, [](std::vector<Tensor>& a) { ops::softmax(a[0], a[1]); });
        check_views("softmax_backward", what, {{dy}, {y}, {dx}},
                    [](std::vector<Tensor>& a) { ops::softmax_backward(a[0], a[1], a[2]); });
      }
    }
    Measure fd("softmax_backward/fd", "[3x9]");
    std::mt19937 rng(51);
    Tensor x = randn({3, 9}, rng, 1.5);
    const Vec r = values(randn({3, 9}, rng));
    auto f = [&] {
      Tensor o = ops::new_f32({3, 9}, kCpu);
      ops::softmax(x, o);
      return values(o);
    };
    Tensor y = ops::new_f32({3, 9}, kCpu), dx = Tensor::zeros({3, 9});
    ops::softmax(x, y);
    ops::softmax_backward(tensor_of(r, {3, 9}), y, dx);
    fd.nmse(values(dx), fd_grad(x, f, r, all_of(x)), kTolFd);
  });
}

TEST(OpsBackend, TokenLogprobs) {
  const int32_t ignore = -100;
  for_each_isa([&] {
    const int64_t R = 7;
    for (int64_t V : {130, 37}) {
      const std::string what = cat("logits [", R, "x", V, "], 2 ignored rows");
      const std::vector<int32_t> targets = {5, ignore, 0, static_cast<int32_t>(V - 1), 17, ignore, 1};
      std::mt19937 rng(static_cast<unsigned>(V));
      const Tensor logits = randn({R, V}, rng, 2.0, 1.0);
      Tensor lp = nan_f32({R}), lse = nan_f32({R});
      ops::token_logprobs(logits, targets, ignore, lp, lse);
      const Logprobs want = ref_token_logprobs(values(logits), V, targets, ignore);
      Measure m("token_logprobs", what);
      m.nmse(values(lp), want.lp, kTolF32, "lp");
      m.nmse(values(lse), want.lse, kTolF32, "lse");
      // dlogits += dlp (onehot - softmax) for counted rows (row 4's dlp is 0)
      Tensor dlp = randn({R}, rng);
      dlp.data<float>()[4] = 0.0f;
      Tensor dl = randn({R, V}, rng, 0.5);
      const Vec dl0 = values(dl);
      ops::token_logprobs_backward(dlp, logits, lse, targets, ignore, dl);
      Measure bwd("token_logprobs_backward", what);
      bwd.nmse(minus(values(dl), dl0), ref_token_logprobs_backward(values(dlp), values(logits), V, targets, ignore),
               kTolF32);
      check_views("token_logprobs", what, {{logits}, {nan_f32({R})}, {nan_f32({R})}},
                  [&](std::vector<Tensor>& a) { ops::token_logprobs(a[0], targets, ignore, a[1], a[2]); });
      check_views("token_logprobs_backward", what, {{dlp}, {logits}, {lse}, {dl}}, [&](std::vector<Tensor>& a) {
        ops::token_logprobs_backward(a[0], a[1], a[2], targets, ignore, a[3]);
      });
    }
    Measure fd("token_logprobs_backward/fd", "logits [4x11], one ignored row");
    std::mt19937 rng(61);
    const std::vector<int32_t> targets = {3, ignore, 0, 10};
    Tensor logits = randn({4, 11}, rng, 1.5);
    const Vec r = values(randn({4}, rng));
    Tensor lp = ops::new_f32({4}, kCpu), lse = ops::new_f32({4}, kCpu), dl = Tensor::zeros({4, 11});
    ops::token_logprobs(logits, targets, ignore, lp, lse);
    ops::token_logprobs_backward(tensor_of(r, {4}), logits, lse, targets, ignore, dl);
    fd.nmse(values(dl),
            fd_grad(
                logits,
                [&] {
                  Tensor l = ops::new_f32({4}, kCpu), s = ops::new_f32({4}, kCpu);
                  ops::token_logprobs(logits, targets, ignore, l, s);
                  return values(l);
                },
                r, all_of(logits)),
            kTolFd);
  });
}

TEST(OpsBackend, Entropy) {
  for_each_isa([] {
    const int64_t R = 5, V = 65;
    const std::string what = "logits [5x65], a uniform and a near one-hot row";
    std::mt19937 rng(71);
    Tensor logits = randn({R, V}, rng, 2.0);
    std::fill(logits.data<float>() + 1 * V, logits.data<float>() + 2 * V, 0.0f);  // uniform: H = log V
    logits.data<float>()[3 * V + 7] = 40.0f;                                      // near one-hot: H ~ 0
    Tensor H = nan_f32({R}), lse = nan_f32({R});
    ops::entropy(logits, H, lse);
    const Entropies want = ref_entropy(values(logits), V);
    Measure m("entropy", what);
    m.nmse(values(H), want.H, kTolF32, "H");
    m.nmse(values(lse), want.lse, kTolF32, "lse");
    EXPECT_NEAR(H.data<float>()[1], std::log(65.0), 1e-5);
    const Tensor dH = randn({R}, rng);
    Tensor dl = randn({R, V}, rng, 0.5);
    const Vec dl0 = values(dl);
    ops::entropy_backward(dH, logits, lse, H, dl);
    Measure bwd("entropy_backward", what);
    bwd.nmse(minus(values(dl), dl0), ref_entropy_backward(values(dH), values(logits), V), kTolF32);
    check_views("entropy", what, {{logits}, {nan_f32({R})}, {nan_f32({R})}},
                [](std::vector<Tensor>& a) { ops::entropy(a[0], a[1], a[2]); });
    check_views("entropy_backward", what, {{dH}, {logits}, {lse}, {H}, {dl}},
                [](std::vector<Tensor>& a) { ops::entropy_backward(a[0], a[1], a[2], a[3], a[4]); });

    Measure fd("entropy_backward/fd", "logits [3x9]");
    Tensor z = randn({3, 9}, rng, 1.5);
    const Vec r = values(randn({3}, rng));
    Tensor h = ops::new_f32({3}, kCpu), s = ops::new_f32({3}, kCpu), dz = Tensor::zeros({3, 9});
    ops::entropy(z, h, s);
    ops::entropy_backward(tensor_of(r, {3}), z, s, h, dz);
    fd.nmse(values(dz),
            fd_grad(
                z,
                [&] {
                  Tensor hh = ops::new_f32({3}, kCpu), ss = ops::new_f32({3}, kCpu);
                  ops::entropy(z, hh, ss);
                  return values(hh);
                },
                r, all_of(z)),
            kTolFd);
  });
}

TEST(OpsBackend, Elementwise) {
  for_each_isa([] {
    for (Shape s : {Shape{7, 130}, Shape{1001}, Shape{3, 5, 11}}) {
      const std::string what = shape_str(s);
      std::mt19937 rng(static_cast<unsigned>(shape_numel(s)));
      const Tensor a = randn(s, rng), b = randn(s, rng, 2.0);
      const Vec av = values(a), bv = values(b);
      const float k = 0.37f, alpha = -1.3f;
      // add, scale and mul are one IEEE operation per element: bit-exact against the same f32
      // operation here; axpy may fuse its multiply-add, so it is measured only
      Vec add_ref, scale_ref, mul_ref, axpy_ref;
      std::vector<uint32_t> add_bits, scale_bits, mul_bits;
      const Tensor y0 = randn(s, rng);
      const Vec y0v = values(y0);
      for (size_t i = 0; i < av.size(); ++i) {
        const float x = static_cast<float>(av[i]), y = static_cast<float>(bv[i]);
        add_ref.push_back(av[i] + bv[i]);
        scale_ref.push_back(av[i] * static_cast<double>(k));
        mul_ref.push_back(av[i] * bv[i]);
        axpy_ref.push_back(y0v[i] + static_cast<double>(alpha) * av[i]);
        add_bits.push_back(f32_bits(x + y));
        scale_bits.push_back(f32_bits(x * k));
        mul_bits.push_back(f32_bits(x * y));
      }
      Tensor out = nan_f32(s);
      Measure add("add", what), sc("scale", what), ax("axpy", what), mu("mul", what), fi("fill", what);
      ops::add(a, b, out);
      add.nmse(values(out), add_ref, kTolF32);
      add.exact(count_differ(bits(out), add_bits), shape_numel(s), "vs f32 a + b");
      Tensor inplace = a.clone();
      ops::add(inplace, b, inplace);  // out may be an input
      add.exact(count_differ(bits(inplace), add_bits), shape_numel(s), "in place");
      ops::scale(a, k, out);
      sc.nmse(values(out), scale_ref, kTolF32);
      sc.exact(count_differ(bits(out), scale_bits), shape_numel(s), "vs f32 x * s");
      inplace = a.clone();
      ops::scale(inplace, k, inplace);
      sc.exact(count_differ(bits(inplace), scale_bits), shape_numel(s), "in place");
      Tensor y = y0.clone();
      ops::axpy(alpha, a, y);
      ax.nmse(values(y), axpy_ref, kTolF32);
      ops::mul(a, b, out);
      mu.nmse(values(out), mul_ref, kTolF32);
      mu.exact(count_differ(bits(out), mul_bits), shape_numel(s), "vs f32 a * b");
      inplace = a.clone();
      ops::mul(inplace, b, inplace);
      mu.exact(count_differ(bits(inplace), mul_bits), shape_numel(s), "in place");
      Tensor t = nan_f32(s);
      ops::fill(t, 2.5f);
      fi.exact(count_differ(bits(t), std::vector<uint32_t>(static_cast<size_t>(t.numel()), f32_bits(2.5f))), t.numel());
      if (s.size() == 2) {
        check_views("add", what, {{a}, {b}, {nan_f32(s)}}, [](std::vector<Tensor>& x) { ops::add(x[0], x[1], x[2]); });
        check_views("add", what + " in place", {{a}, {b}}, [](std::vector<Tensor>& x) { ops::add(x[0], x[1], x[0]); });
        check_views("scale", what, {{a}, {nan_f32(s)}}, [&](std::vector<Tensor>& x) { ops::scale(x[0], k, x[1]); });
        check_views("axpy", what, {{a}, {y0}}, [&](std::vector<Tensor>& x) { ops::axpy(alpha, x[0], x[1]); });
        check_views("mul", what, {{a}, {b}, {nan_f32(s)}}, [](std::vector<Tensor>& x) { ops::mul(x[0], x[1], x[2]); });
        check_views("fill", what, {{nan_f32(s)}}, [](std::vector<Tensor>& x) { ops::fill(x[0], -3.25f); });
      }
    }
  });
}

TEST(OpsBackend, Convert) {
  // Every 16-bit pattern, and f32 patterns at random plus the edges of rounding, through every
  // pair of f32 / bf16 / f16, against half.h's scalar conversions: bit for bit. Rows of 67
  // elements take the vector loop and its tail; a 1-D tensor converts element by element.
  std::mt19937 rng(81);
  std::vector<uint32_t> f32_patterns = {
      0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x00800000, 0x3f800000, 0x3f808000, 0x3f818000, 0x3f80ffff,
      0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0x7f802000, 0x477fe000,
      0x477ff000, 0x477fefff, 0x33000000, 0x33000001, 0x33800000, 0x387fc000, 0x38800000, 0x38000000, 0xb3400000};
  std::uniform_int_distribution<uint32_t> any;
  while (f32_patterns.size() < 40000) f32_patterns.push_back(any(rng));
  for (int i = 0; i < 4000; ++i) {  // f16's range and subnormals densely
    const uint32_t e = 100 + any(rng) % 45;
    f32_patterns.push_back((any(rng) & 0x807fffffu) | (e << 23));
  }
  auto source = [](DType dt, const std::vector<uint32_t>& pats, int64_t cols) {
    const int64_t rows = (static_cast<int64_t>(pats.size()) + cols - 1) / cols;
    Tensor t = Tensor::zeros({rows, cols}, dt);
    for (size_t i = 0; i < pats.size(); ++i) {
      if (dt == DType::F32)
        std::memcpy(t.data<float>() + i, &pats[i], 4);
      else
        t.data<uint16_t>()[i] = static_cast<uint16_t>(pats[i]);
    }
    return t;
  };
  std::vector<uint32_t> all16(65536);
  std::iota(all16.begin(), all16.end(), 0u);
  // half.h, through f32 as the op goes
  auto to_f32 = [](DType dt, uint32_t b) {
    return dt == DType::F32    ? f32_of_bits(b)
           : dt == DType::BF16 ? bf16_to_f32(static_cast<uint16_t>(b))
                               : f16_to_f32(static_cast<uint16_t>(b));
  };
  auto from_f32 = [](DType dt, float f) {
    return dt == DType::F32 ? f32_bits(f) : dt == DType::BF16 ? uint32_t{f32_to_bf16(f)} : uint32_t{f32_to_f16(f)};
  };
  for_each_isa([&] {
    for (DType from : {DType::F32, DType::BF16, DType::F16})
      for (DType to : {DType::F32, DType::BF16, DType::F16}) {
        const std::vector<uint32_t>& pats = from == DType::F32 ? f32_patterns : all16;
        for (int64_t cols : {67, 1}) {
          const Tensor src =
              cols == 1 ? source(from, std::vector<uint32_t>(pats.begin(), pats.begin() + 3000), 1).reshape({3000})
                        : source(from, pats, cols);
          Tensor dst = Tensor::empty(src.shape(), to);
          fill_bits(dst, 0xdeadbeef);
          ops::convert(src, dst);
          const std::vector<uint32_t> in = bits(src), got = bits(dst);
          int64_t differ = 0, quieted = 0;
          for (size_t i = 0; i < in.size(); ++i) {
            const float mid = to_f32(from, in[i]);
            const uint32_t want = from_f32(to, mid);
            if (got[i] == want) continue;
            // F16C's conversion quiets signalling NaNs of f16, half.h keeps them
            // (see the report: the vector tables differ from the scalar one there)
            const uint32_t mid_bits = f32_bits(mid);
            if (from == DType::F16 && to == DType::F32 && std::isnan(mid) && !(mid_bits & 0x00400000u) &&
                got[i] == (mid_bits | 0x00400000u)) {
              ++quieted;
              continue;
            }
            ++differ;
          }
          Measure m("convert", cat(dtype_name(from), "->", dtype_name(to), " ", dims(src),
                                   from == DType::F32 ? " f32 patterns" : " every 16-bit pattern"));
          m.exact(differ, static_cast<int64_t>(in.size()));
          if (quieted)
            std::printf("[ops] %-6s convert %s->%s: %lld signalling f16 NaNs come back quiet (half.h keeps them)\n",
                        isa_now(), dtype_name(from), dtype_name(to), static_cast<long long>(quieted));
        }
      }
    // column views of source and destination
    const Tensor src = source(DType::F32, f32_patterns, 67).slice_rows(0, 40);
    for (DType to : {DType::BF16, DType::F16, DType::F32}) {
      const Tensor dst = Tensor::zeros(src.shape(), to);
      check_views("convert", cat("f32->", dtype_name(to), " ", dims(src)), {{src}, {dst}},
                  [](std::vector<Tensor>& a) { ops::convert(a[0], a[1]); });
      check_views("convert", cat(dtype_name(to), "->f32 ", dims(src)), {{dst}, {src}},
                  [](std::vector<Tensor>& a) { ops::convert(a[0], a[1]); });
    }
  });
}

TEST(OpsBackend, GatherScatterSegment) {
  for_each_isa([] {
    std::mt19937 rng(91);
    const int64_t V = 40, D = 37;
    const std::vector<int32_t> rows = {39, 0, 5, 5, 12, 39};
    const int64_t n = static_cast<int64_t>(rows.size());
    const Tensor x = randn({V, D}, rng), x1 = randn({V}, rng);
    {
      Measure m("gather_rows", "x [40x37] and [40], 6 rows with repeats, and from a column view");
      Tensor out = nan_f32({n, D}), out1 = nan_f32({n});
      ops::gather_rows(x, rows, out);
      ops::gather_rows(x1, rows, out1);
      auto as_bits = [](const Vec& v) {
        std::vector<uint32_t> b;
        for (double d : v) b.push_back(f32_bits(static_cast<float>(d)));
        return b;
      };
      m.exact(count_differ(bits(out), as_bits(ref_gather_rows(values(x), D, rows))), n * D);
      m.exact(count_differ(bits(out1), as_bits(ref_gather_rows(values(x1), 1, rows))), n);
      const Wide wx = Wide::of(x);
      Tensor out2 = nan_f32({n, D});
      ops::gather_rows(wx.view, rows, out2);
      m.exact(count_differ(bits(out2), bits(out)), n * D, "from a view");
    }
    {
      Measure m("scatter_add_rows", "d [6x37] into [40x37] (and into a column view), d [6] into [40]");
      const Tensor d = randn({n, D}, rng), d1 = randn({n}, rng);
      Tensor dx = randn({V, D}, rng, 0.5), dx1 = randn({V}, rng, 0.5);
      const Vec dx0 = values(dx), dx10 = values(dx1);
      ops::scatter_add_rows(d, rows, dx);
      ops::scatter_add_rows(d1, rows, dx1);
      m.nmse(minus(values(dx), dx0), ref_scatter_add_rows(values(d), D, rows, V), kTolF32, "2-D");
      m.nmse(minus(values(dx1), dx10), ref_scatter_add_rows(values(d1), 1, rows, V), kTolF32, "1-D");
      check_views("scatter_add_rows", "into a view of [40x37]", {{d, false}, {tensor_of(dx0, {V, D})}},
                  [&](std::vector<Tensor>& a) { ops::scatter_add_rows(a[0], rows, a[1]); });
    }
    {
      Measure m("segment_sum", "1000 values into 7 segments");
      std::vector<int32_t> seg(1000);
      for (auto& s : seg) s = static_cast<int32_t>(rng() % 7);
      const Tensor xs = randn({1000}, rng);
      Tensor out = randn({7}, rng);
      const Vec out0 = values(out);
      ops::segment_sum(xs, seg, out);
      m.nmse(minus(values(out), out0), ref_segment_sum(values(xs), seg, 7), kTolF32);
    }
  });
}

TEST(OpsBackend, Dropout) {
  for_each_isa([] {
    for (Shape s : {Shape{1000}, Shape{13, 77}, Shape{70001}}) {
      for (float p : {0.0f, 0.1f, 0.5f, 0.9f}) {
        const uint64_t seed = 0x1234567ull * static_cast<uint64_t>(shape_numel(s)) + static_cast<uint64_t>(p * 10);
        std::mt19937 rng(static_cast<unsigned>(seed));
        const Tensor x = randn(s, rng);
        Tensor out = nan_f32(s);
        ops::dropout(x, p, seed, out);
        const Vec xv = values(x), got = values(out);
        const float keep = 1.0f / (1.0f - p);
        int64_t wrong_mask = 0, wrong_value = 0, kept = 0;
        Vec ref;
        for (size_t i = 0; i < xv.size(); ++i) {
          const bool k = ref_dropout_keeps(seed, static_cast<int64_t>(i), p);
          kept += k;
          ref.push_back(k ? xv[i] / (1.0 - static_cast<double>(p)) : 0.0);
          if (k != (got[i] != 0.0)) ++wrong_mask;
          // the kept value is x * (1 / (1 - p)) in f32
          if (k && f32_bits(static_cast<float>(got[i])) != f32_bits(static_cast<float>(xv[i]) * keep)) ++wrong_value;
        }
        Measure m("dropout", cat(shape_str(s), " p ", p));
        m.exact(wrong_mask, shape_numel(s), "mask positions");
        m.exact(wrong_value, kept, "kept values");
        m.nmse(got, ref, kTolF32, "vs x / (1 - p) in double");
        const double n = static_cast<double>(shape_numel(s));
        EXPECT_NEAR(static_cast<double>(kept) / n, 1.0 - p, 5 * std::sqrt(p * (1 - p) / n) + 1e-12);
      }
    }
  });
}

TEST(OpsBackend, SumSquares) {
  for_each_isa([] {
    Measure m("sum_squares", "n 1, 37, 4097, 300001");
    for (int64_t n : {1, 37, 4097, 300001}) {
      std::mt19937 rng(static_cast<unsigned>(n));
      const Tensor x = randn({n}, rng, 1.5, 0.5);
      m.nmse({ops::sum_squares(x)}, {ref_sum_squares(values(x))}, kTolF32, cat("n=", n));
    }
    std::mt19937 rng(3);
    const Tensor x2 = randn({17, 33}, rng);  // any shape, as one flat sum
    m.nmse({ops::sum_squares(x2)}, {ref_sum_squares(values(x2))}, kTolF32, "[17x33]");
  });
}

TEST(OpsBackend, AdamW) {
  for_each_isa([] {
    for (bool decay : {true, false}) {
      Measure m("adamw", cat("n 1037, 4 steps, lr 1e-2, wd 0.1", decay ? "" : " (decay off)"));
      std::mt19937 rng(decay ? 101 : 102);
      const int64_t n = 1037;
      Tensor p = randn({n}, rng), mo = Tensor::zeros({n}), v = Tensor::zeros({n});
      for (int64_t step = 1; step <= 4; ++step) {
        ops::AdamWArgs a;
        a.lr = 1e-2;
        a.weight_decay = 0.1;
        a.step = step;
        a.decay = decay;
        const Tensor g = randn({n}, rng, 0.3);
        // the reference takes one step from the op's own state before it
        const AdamWState before{values(p), values(mo), values(v)};
        const AdamWState want = ref_adamw(before, values(g), a);
        ops::adamw(p, g, mo, v, a);
        m.nmse(values(p), want.p, kTolF32, cat("param step ", step));
        m.nmse(values(mo), want.m, kTolF32, cat("m step ", step));
        m.nmse(values(v), want.v, kTolAdamWSecondMoment, cat("v step ", step));
        m.nmse(minus(values(p), before.p), minus(want.p, before.p), kTolAdamWDelta, cat("param change step ", step));
      }
    }
  });
}

TEST(OpsBackend, KvWrite) {
  // k/v rows land at ((page_table[slot, pos / P] * kv_heads + g) * P + pos % P) * head_dim, converted
  // to the cache dtype with half.h's conversions, bit for bit; nothing else in the cache changes.
  for_each_isa([] {
    for (DType dt : {DType::F32, DType::BF16, DType::F16})
      for (auto [KV, hd] : {std::pair<int64_t, int64_t>{2, 16}, {3, 24}}) {
        std::mt19937 rng(static_cast<unsigned>(KV * 100 + hd + static_cast<int>(dt)));
        const int64_t P = 4, pps = 5, slots = 3;
        ops::KvPages cache = make_cache(dt, slots, pps, P, KV, hd, rng);
        std::vector<uint32_t> want_k = bits(cache.k), want_v = bits(cache.v);
        const Batch b = batch({{1, 0, 10}, {0, 3, 3}, {2, 13, 1}});  // across page boundaries
        const ops::AttentionArgs a = attn_args(b, 6, KV, hd, 0);
        const Tensor k = randn({b.rows(), KV * hd}, rng), v = randn({b.rows(), KV * hd}, rng);
        ops::kv_write(k, v, a, cache);
        const int32_t* table = cache.page_table.data<int32_t>();
        const Vec kv_ = values(k), vv = values(v);
        for (int64_t t = 0; t < b.rows(); ++t)
          for (int64_t g = 0; g < KV; ++g)
            for (int64_t d = 0; d < hd; ++d) {
              const int64_t page = table[b.slot[t] * pps + b.pos[t] / P];
              const size_t at = static_cast<size_t>(((page * KV + g) * P + b.pos[t] % P) * hd + d);
              want_k[at] = stored_bits(kv_[t * KV * hd + g * hd + d], dt);
              want_v[at] = stored_bits(vv[t * KV * hd + g * hd + d], dt);
            }
        Measure m("kv_write", cat(dtype_name(dt), " cache, kv_heads ", KV, ", hd ", hd, ", page 4, shuffled pages"));
        m.exact(count_differ(bits(cache.k), want_k) + count_differ(bits(cache.v), want_v),
                static_cast<int64_t>(want_k.size() + want_v.size()));
        // from column views of k and v
        ops::KvPages fresh = make_cache(dt, slots, pps, P, KV, hd, rng);
        check_views("kv_write", cat(dtype_name(dt), " cache"), {{k}, {v}, {fresh.k}, {fresh.v}},
                    [&](std::vector<Tensor>& x) {
                      ops::KvPages c{x[2], x[3], fresh.page_table, P};
                      ops::kv_write(x[0], x[1], a, c);
                    });
      }
  });
}

TEST(OpsBackend, Attention) {
  // Three slots in pages of 4 positions with a shuffled page table, caches that start NaN (a read
  // of anything not written shows): a first chunk of slot 2; then one batch with a 19-row prefill
  // of slot 1 (two query blocks), 7 rows of slot 0 and slot 2's next chunk; then one decode row
  // per slot. Each call kv_writes its rows first.
  for_each_isa([] {
    for (DType dt : {DType::F32, DType::BF16, DType::F16})
      for (auto [H, KV] : {std::pair<int64_t, int64_t>{6, 2}, {6, 3}})
        for (int64_t hd : {16, 24}) {
          const std::string what = cat(dtype_name(dt), " cache, heads ", H, "/", KV, ", hd ", hd,
                                       ", page 4, windows 0 and 5, prefill + chunk + decode");
          Measure m("attention", what);
          Measure rounding("attention/16-bit rounding", what + ", vs the f32 k/v before rounding");
          for (int64_t window : {0, 5}) {
            std::mt19937 rng(static_cast<unsigned>(1000 + hd * 10 + KV + window + static_cast<int>(dt) * 7));
            const int64_t P = 4, pps = 6, slots = 3;
            ops::KvPages cache = make_cache(dt, slots, pps, P, KV, hd, rng);
            KvModel kv(slots, pps * P, KV, hd, dt);
            const Batch calls[] = {batch({{2, 0, 5}}), batch({{1, 0, 19}, {0, 0, 7}, {2, 5, 5}}),
                                   batch({{0, 7, 1}, {1, 19, 1}, {2, 10, 1}})};
            const char* names[] = {"chunk", "prefill", "decode"};
            for (int c = 0; c < 3; ++c) {
              const Batch& b = calls[c];
              const ops::AttentionArgs a = attn_args(b, H, KV, hd, window);
              const int64_t T = b.rows();
              const Tensor q = randn({T, H * hd}, rng, 1.5), k = randn({T, KV * hd}, rng), v = randn({T, KV * hd}, rng);
              ops::kv_write(k, v, a, cache);
              kv.write(k, v, a);
              Tensor out = nan_f32({T, H * hd}), lse = nan_f32({T, H}), out2 = nan_f32({T, H * hd});
              ops::attention(q, cache, a, out, &lse);
              const AttnRef want = ref_attention(values(q), kv, a);
              const std::string detail = cat(names[c], " window ", window);
              m.nmse(values(out), want.out, kTolF32, detail);
              m.nmse(values(lse), want.lse, kTolF32, detail + " lse");
              if (dt != DType::F32)
                rounding.nmse(values(out), ref_attention(values(q), kv, a, false).out,
                              dt == DType::BF16 ? kTolBf16Inputs : kTolF16Inputs, detail);
              ops::attention(q, cache, a, out2, nullptr);  // without lse: the same output
              m.exact(count_differ(bits(out2), bits(out)), out.numel(), detail + " without lse");
              if (c == 1 && window == 5 && hd == 24)
                check_views("attention", cat(dtype_name(dt), " cache, q and out"),
                            {{q}, {nan_f32({T, H * hd})}, {nan_f32({T, H}), false}},
                            [&](std::vector<Tensor>& x) { ops::attention(x[0], cache, a, x[1], &x[2]); });
            }
          }
        }
  });
}

TEST(OpsBackend, AttentionBackward) {
  // f32 cache (training), pages of 4, shuffled; slot 2 has 3 positions cached before (constants).
  // A batch of three slots (6, 5 and 3 rows), then a decode batch of one row per slot. dq, dk, dv
  // accumulate onto gradients already there; dk/dv are for the rows this batch wrote.
  for_each_isa([] {
    for (int64_t KV : {2, 3})
      for (int64_t hd : {16, 24}) {
        const int64_t H = 6;
        const std::string what = cat("heads 6/", KV, ", hd ", hd, ", page 4, windows 0 and 3, prefill + decode");
        Measure m("attention_backward", what);
        Measure fd("attention_backward/fd", what + ", 96 random elements of each of q, k, v");
        for (int64_t window : {0, 3}) {
          std::mt19937 rng(static_cast<unsigned>(2000 + KV * 10 + hd + window));
          const int64_t P = 4, pps = 3, slots = 3;
          ops::KvPages cache = make_cache(DType::F32, slots, pps, P, KV, hd, rng);
          KvModel kv(slots, pps * P, KV, hd, DType::F32);
          {
            const Batch b0 = batch({{2, 0, 3}});
            const ops::AttentionArgs a0 = attn_args(b0, H, KV, hd, window);
            const Tensor k0 = randn({3, KV * hd}, rng), v0 = randn({3, KV * hd}, rng);
            ops::kv_write(k0, v0, a0, cache);
            kv.write(k0, v0, a0);
          }
          const Batch calls[] = {batch({{1, 0, 6}, {0, 0, 5}, {2, 3, 3}}), batch({{0, 5, 1}, {1, 6, 1}, {2, 6, 1}})};
          for (const Batch& b : calls) {
            const ops::AttentionArgs a = attn_args(b, H, KV, hd, window);
            const int64_t T = b.rows();
            const std::string detail = cat(T == 3 ? "decode" : "prefill", " window ", window);
            Tensor q = randn({T, H * hd}, rng, 1.5), k = randn({T, KV * hd}, rng), v = randn({T, KV * hd}, rng);
            ops::kv_write(k, v, a, cache);
            kv.write(k, v, a);
            Tensor out = ops::new_f32({T, H * hd}, kCpu), lse = ops::new_f32({T, H}, kCpu);
            ops::attention(q, cache, a, out, &lse);
            const Tensor dout = randn({T, H * hd}, rng);
            Tensor dq = randn({T, H * hd}, rng, 0.5), dk = randn({T, KV * hd}, rng, 0.5),
                   dv = randn({T, KV * hd}, rng, 0.5);
            const Vec dq0 = values(dq), dk0 = values(dk), dv0 = values(dv);
            ops::attention_backward(dout, q, out, lse, cache, a, &dq, &dk, &dv);
            const Vec gq = minus(values(dq), dq0), gk = minus(values(dk), dk0), gv = minus(values(dv), dv0);
            const AttnGrads want = ref_attention_backward(values(dout), values(q), kv, a);
            m.nmse(gq, want.dq, kTolAttnBackward, detail + " dq");
            m.nmse(gk, want.dk, kTolAttnBackward, detail + " dk");
            m.nmse(gv, want.dv, kTolAttnBackward, detail + " dv");
            Tensor dq_only = tensor_of(dq0, {T, H * hd});  // dq alone: the same bits
            ops::attention_backward(dout, q, out, lse, cache, a, &dq_only, nullptr, nullptr);
            m.exact(count_differ(bits(dq_only), bits(dq)), dq.numel(), detail + " dq alone");
            // central differences of Σ dout ⊙ attention(q) after kv_write(k, v)
            const Vec r = values(dout);
            auto f = [&] {
              ops::kv_write(k, v, a, cache);
              Tensor o = ops::new_f32({T, H * hd}, kCpu);
              ops::attention(q, cache, a, o, nullptr);
              return values(o);
            };
            for (auto [x, g, name] :
                 {std::tuple<Tensor*, const Vec*, const char*>{&q, &gq, " dq"}, {&k, &gk, " dk"}, {&v, &gv, " dv"}}) {
              const std::vector<int64_t> idx = some_of(*x, 96, rng);
              fd.nmse(pick(*g, idx), fd_grad(*x, f, r, idx), kTolFd, detail + name);
            }
            ops::kv_write(k, v, a, cache);  // the unperturbed rows back for the next batch
          }
        }
      }
  });
}

TEST(OpsBackend, AttentionBidirectional) {
  // causal = false (a vision tower's attention within each image): every row sees all keys of its
  // slot up to its run's last position, keys cached before included. Slot 2 holds 3 positions
  // first; then runs of 19, 7 and 5 rows; forward, lse and every gradient against the reference
  // and central differences.
  for_each_isa([] {
    for (auto [H, KV] : {std::pair<int64_t, int64_t>{6, 2}, {4, 4}}) {
      const int64_t hd = 16, P = 4, pps = 6, slots = 3;
      const std::string what = cat("heads ", H, "/", KV, ", hd 16, page 4, bidirectional");
      Measure m("attention/bidirectional", what);
      Measure fd("attention_backward/bidirectional fd", what + ", 64 random elements of each of q, k, v");
      std::mt19937 rng(static_cast<unsigned>(3000 + H + KV));
      ops::KvPages cache = make_cache(DType::F32, slots, pps, P, KV, hd, rng);
      KvModel kv(slots, pps * P, KV, hd, DType::F32);
      {
        const Batch b0 = batch({{2, 0, 3}});
        ops::AttentionArgs a0 = attn_args(b0, H, KV, hd, 0);
        a0.causal = false;
        const Tensor k0 = randn({3, KV * hd}, rng), v0 = randn({3, KV * hd}, rng);
        ops::kv_write(k0, v0, a0, cache);
        kv.write(k0, v0, a0);
      }
      const Batch b = batch({{1, 0, 19}, {0, 0, 7}, {2, 3, 5}});
      ops::AttentionArgs a = attn_args(b, H, KV, hd, 0);
      a.causal = false;
      const int64_t T = b.rows();
      Tensor q = randn({T, H * hd}, rng, 1.5), k = randn({T, KV * hd}, rng), v = randn({T, KV * hd}, rng);
      ops::kv_write(k, v, a, cache);
      kv.write(k, v, a);
      Tensor out = nan_f32({T, H * hd}), lse = nan_f32({T, H});
      ops::attention(q, cache, a, out, &lse);
      const AttnRef want = ref_attention(values(q), kv, a);
      m.nmse(values(out), want.out, kTolF32, "out");
      m.nmse(values(lse), want.lse, kTolF32, "lse");
      const Tensor dout = randn({T, H * hd}, rng);
      Tensor dq = Tensor::zeros({T, H * hd}), dk = Tensor::zeros({T, KV * hd}), dv = Tensor::zeros({T, KV * hd});
      ops::attention_backward(dout, q, out, lse, cache, a, &dq, &dk, &dv);
      const AttnGrads g = ref_attention_backward(values(dout), values(q), kv, a);
      m.nmse(values(dq), g.dq, kTolAttnBackward, "dq");
      m.nmse(values(dk), g.dk, kTolAttnBackward, "dk");
      m.nmse(values(dv), g.dv, kTolAttnBackward, "dv");
      const Vec r = values(dout), gq = values(dq), gk = values(dk), gv = values(dv);
      auto f = [&] {
        ops::kv_write(k, v, a, cache);
        Tensor o = ops::new_f32({T, H * hd}, kCpu);
        ops::attention(q, cache, a, o, nullptr);
        return values(o);
      };
      for (auto [x, gr, name] :
           {std::tuple<Tensor*, const Vec*, const char*>{&q, &gq, "dq"}, {&k, &gk, "dk"}, {&v, &gv, "dv"}}) {
        const std::vector<int64_t> idx = some_of(*x, 64, rng);
        fd.nmse(pick(*gr, idx), fd_grad(*x, f, r, idx), kTolFd, name);
      }
      // A causal call over the same cache differs (the mask is really lifted).
      ops::AttentionArgs c = a;
      c.causal = true;
      Tensor causal_out = nan_f32({T, H * hd});
      ops::attention(q, cache, c, causal_out, nullptr);
      EXPECT_GT(count_differ(bits(causal_out), bits(out)), T * H * hd / 2);
    }
  });
  // A window applies to causal attention only.
  std::mt19937 rng(1);
  ops::KvPages cache = make_cache(DType::F32, 1, 2, 4, 1, 16, rng);
  const Batch b = batch({{0, 0, 3}});
  ops::AttentionArgs a = attn_args(b, 1, 1, 16, 2);
  a.causal = false;
  Tensor q = randn({3, 16}, rng), out = nan_f32({3, 16});
  EXPECT_THROW(ops::attention(q, cache, a, out, nullptr), Error);
}

// y = (x - mean) / sqrt(var + eps) w + b over each row (biased variance).
Vec ref_layer_norm(const Vec& x, const Vec& w, const Vec& b, int64_t rows, double eps) {
  const size_t n = w.size();
  Vec y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (size_t i = 0; i < n; ++i) mean += x[r * n + i];
    mean /= static_cast<double>(n);
    for (size_t i = 0; i < n; ++i) var += (x[r * n + i] - mean) * (x[r * n + i] - mean);
    const double rstd = 1.0 / std::sqrt(var / static_cast<double>(n) + eps);
    for (size_t i = 0; i < n; ++i) y[r * n + i] = (x[r * n + i] - mean) * rstd * w[i] + (b.empty() ? 0.0 : b[i]);
  }
  return y;
}

TEST(OpsBackend, LayerNorm) {
  const float eps = 1e-6f;
  for_each_isa([&] {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{5, 130}, {3, 37}, {1, 16}}) {
      const std::string what = cat("x [", rows, "x", cols, "]");
      std::mt19937 rng(static_cast<unsigned>(rows * 7 + cols));
      const Tensor x = randn({rows, cols}, rng, 2.0, 0.7), w = randn({cols}, rng, 0.3, 1.0), b = randn({cols}, rng);
      Tensor out = nan_f32({rows, cols}), out_nb = nan_f32({rows, cols});
      ops::layer_norm(x, w, &b, eps, out);
      ops::layer_norm(x, w, nullptr, eps, out_nb);
      Measure m("layer_norm", what);
      m.nmse(values(out), ref_layer_norm(values(x), values(w), values(b), rows, eps), kTolF32, "with bias");
      m.nmse(values(out_nb), ref_layer_norm(values(x), values(w), {}, rows, eps), kTolF32, "without bias");
      check_views("layer_norm", what, {{x}, {w}, {b}, {nan_f32({rows, cols})}},
                  [&](std::vector<Tensor>& a) { ops::layer_norm(a[0], a[1], &a[2], eps, a[3]); });
    }
    // Gradients by central differences, accumulated onto what is there.
    Measure fd("layer_norm_backward/fd", "x [3x12], w [12], b [12]");
    std::mt19937 rng(9);
    Tensor x = randn({3, 12}, rng, 1.0, 0.2), w = randn({12}, rng, 0.3, 1.0), b = randn({12}, rng);
    const Vec r = values(randn({3, 12}, rng));
    auto f = [&] {
      Tensor o = ops::new_f32({3, 12}, kCpu);
      ops::layer_norm(x, w, &b, eps, o);
      return values(o);
    };
    Tensor dx = randn({3, 12}, rng), dw = randn({12}, rng), db = randn({12}, rng);
    const Vec dx0 = values(dx), dw0 = values(dw), db0 = values(db);
    ops::layer_norm_backward(tensor_of(r, {3, 12}), x, w, eps, &dx, &dw, &db);
    fd.nmse(minus(values(dx), dx0), fd_grad(x, f, r, all_of(x)), kTolFd, "dx");
    fd.nmse(minus(values(dw), dw0), fd_grad(w, f, r, all_of(w)), kTolFd, "dw");
    fd.nmse(minus(values(db), db0), fd_grad(b, f, r, all_of(b)), kTolFd, "db");
  });
}

TEST(OpsBackend, Gelu) {
  for_each_isa([] {
    std::mt19937 rng(11);
    const Tensor x = randn({4, 67}, rng, 3.0);
    const Vec xv = values(x);
    for (ops::GeluKind kind : {ops::GeluKind::Erf, ops::GeluKind::Tanh}) {
      const bool erf = kind == ops::GeluKind::Erf;
      const std::string what = erf ? "erf, x [4x67]" : "tanh, x [4x67]";
      Tensor out = nan_f32({4, 67});
      ops::gelu(x, kind, out);
      // The published forms: x Φ(x), and 0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³))).
      Vec want(xv.size());
      for (size_t i = 0; i < xv.size(); ++i) {
        const double v = xv[i];
        want[i] = erf ? 0.5 * v * std::erfc(-v / std::sqrt(2.0))
                      : 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
      }
      Measure m("gelu", what);
      m.nmse(values(out), want, kTolF32);
      check_views("gelu", what, {{x}, {nan_f32({4, 67})}}, [&](std::vector<Tensor>& a) { ops::gelu(a[0], kind, a[1]); });
      Measure fd("gelu_backward/fd", what);
      Tensor xs = randn({2, 9}, rng, 2.0);
      const Vec r = values(randn({2, 9}, rng));
      auto f = [&] {
        Tensor o = ops::new_f32({2, 9}, kCpu);
        ops::gelu(xs, kind, o);
        return values(o);
      };
      Tensor dx = randn({2, 9}, rng);
      const Vec dx0 = values(dx);
      ops::gelu_backward(tensor_of(r, {2, 9}), xs, kind, dx);
      fd.nmse(minus(values(dx), dx0), fd_grad(xs, f, r, all_of(xs)), kTolFd, "dx");
    }
    // The two kinds really differ.
    Tensor a = nan_f32({4, 67}), b = nan_f32({4, 67});
    ops::gelu(x, ops::GeluKind::Erf, a);
    ops::gelu(x, ops::GeluKind::Tanh, b);
    EXPECT_GT(count_differ(bits(a), bits(b)), 10);
  });
}

TEST(OpsBackend, BadOperandsThrow) {
  std::mt19937 rng(7);
  const Tensor x = randn({4, 6}, rng), W = randn({3, 6}, rng), W7 = randn({3, 7}, rng), b3 = randn({3}, rng);
  const Tensor x16 = as_dtype(x, DType::BF16), W16 = as_dtype(W, DType::BF16), b4 = randn({4}, rng);
  Tensor y = ops::new_f32({4, 3}, kCpu), y_wrong = ops::new_f32({4, 4}, kCpu), y16 = Tensor::zeros({4, 3}, DType::BF16);
  // linear
  EXPECT_THROW(ops::linear(x, W7, nullptr, y), Error);                                 // features differ
  EXPECT_THROW(ops::linear(x, W, nullptr, y_wrong), Error);                            // output shape
  EXPECT_THROW(ops::linear(x16, W, nullptr, y), Error);                                // input must be f32
  EXPECT_THROW(ops::linear(x, W, nullptr, y16), Error);                                // output must be f32
  EXPECT_THROW(ops::linear(x, W, &b4, y), Error);                                      // bias size
  EXPECT_THROW(ops::linear(x.reshape({24}), W, nullptr, y), Error);                    // 1-D input
  EXPECT_THROW(ops::linear(x, Tensor::zeros({3, 6}, DType::I32), nullptr, y), Error);  // weight dtype
  {
    const Tensor x12 = randn({12, 6}, rng);
    Tensor y12 = ops::new_f32({12, 3}, kCpu);
    EXPECT_THROW(ops::linear(x12, Tensor::zeros({3, 6}, DType::I32), nullptr, y12), Error);  // the sgemm path too
  }
  // linear_backward
  {
    Tensor dx = Tensor::zeros({4, 6}), dW = Tensor::zeros({3, 6}), db = Tensor::zeros({3});
    EXPECT_THROW(ops::linear_backward(y_wrong, x, W, &dx, &dW, &db), Error);  // output gradient shape
    Tensor dx_wrong = Tensor::zeros({4, 5}), db_wrong = Tensor::zeros({4});
    EXPECT_THROW(ops::linear_backward(y, x, W, &dx_wrong, nullptr, nullptr), Error);
    EXPECT_THROW(ops::linear_backward(y, x, W, nullptr, nullptr, &db_wrong), Error);
    EXPECT_THROW(ops::linear_backward(y, x, W16, &dx, &dW, nullptr), Error);  // a trained weight must be f32
    EXPECT_THROW(ops::linear_backward(as_dtype(y, DType::BF16), x, W, &dx, nullptr, nullptr), Error);  // dy f32
  }
  // embedding
  {
    const Tensor E = randn({10, 6}, rng);
    Tensor out = ops::new_f32({2, 6}, kCpu), dE = Tensor::zeros({10, 6});
    const std::vector<int32_t> neg = {1, -1}, over = {1, 10}, ok = {1, 9};
    EXPECT_THROW(ops::embedding(E, neg, out), Error);   // token id outside the vocabulary
    EXPECT_THROW(ops::embedding(E, over, out), Error);  // token id == V
    EXPECT_THROW(ops::embedding(E, ok, y), Error);      // output shape
    Tensor out16 = Tensor::zeros({2, 6}, DType::BF16);
    EXPECT_THROW(ops::embedding(E, ok, out16), Error);  // output must be f32
    EXPECT_THROW(ops::embedding_backward(out, over, dE), Error);
    EXPECT_THROW(ops::embedding_backward(out, std::vector<int32_t>{1, 2, 3}, dE), Error);  // ids vs rows
  }
  // rms_norm
  {
    Tensor out = ops::new_f32({4, 6}, kCpu);
    EXPECT_THROW(ops::rms_norm(x, randn({4}, rng), 1e-5f, out), Error);  // rows of 6 are not groups of 4
    EXPECT_THROW(ops::rms_norm(x, as_dtype(randn({6}, rng), DType::BF16), 1e-5f, out), Error);  // weight f32
    EXPECT_THROW(ops::rms_norm(x16, randn({6}, rng), 1e-5f, out), Error);                       // input f32
    EXPECT_THROW(ops::rms_norm(x, randn({6}, rng), 1e-5f, y), Error);                           // output shape
    EXPECT_THROW(ops::rms_norm(x, Tensor::zeros({0}), 1e-5f, out), Error);                      // empty weight
    Tensor dx = Tensor::zeros({4, 6}), dw = Tensor::zeros({5});
    EXPECT_THROW(ops::rms_norm_backward(y, x, randn({6}, rng), 1e-5f, &dx, nullptr), Error);  // dy shape
    EXPECT_THROW(ops::rms_norm_backward(x, x, randn({6}, rng), 1e-5f, nullptr, &dw), Error);  // dw shape
  }
  // rope
  {
    Tensor out = ops::new_f32({4, 6}, kCpu);
    EXPECT_THROW(ops::rope(x, rope_table(4, 3), 3, out), Error);           // odd head_dim
    EXPECT_THROW(ops::rope(x, rope_table(4, 4), 4, out), Error);           // 6 is not heads of 4
    EXPECT_THROW(ops::rope(x, rope_table(3, 6), 6, out), Error);           // table rows
    EXPECT_THROW(ops::rope(x16, rope_table(4, 6), 6, out), Error);         // input f32
    EXPECT_THROW(ops::rope_backward(x, rope_table(4, 6), 6, y), Error);    // dx shape
    EXPECT_THROW(ops::rope_backward(x, rope_table(2, 6), 6, out), Error);  // table rows
  }
  // swiglu
  {
    Tensor out = ops::new_f32({4, 6}, kCpu), dg = Tensor::zeros({4, 5});
    EXPECT_THROW(ops::swiglu(x, W, out), Error);                       // up shape
    EXPECT_THROW(ops::swiglu(x16, x16, out), Error);                   // gate f32
    EXPECT_THROW(ops::swiglu(x, x16, out), Error);                     // up f32 (read as f32 by the CPU)
    EXPECT_THROW(ops::swiglu(x, x, y), Error);                         // output shape
    EXPECT_THROW(ops::swiglu_backward(x, x, x, &dg, nullptr), Error);  // gradient shape
  }
  // kv_write / attention / attention_backward
  {
    const int64_t KV = 2, hd = 8, P = 4;
    ops::KvPages cache = make_cache(DType::F32, 2, 2, P, KV, hd, rng, false);  // 2 slots of 8 positions
    const Tensor k = randn({2, KV * hd}, rng), q = randn({2, 4 * hd}, rng);
    Tensor out = ops::new_f32({2, 4 * hd}, kCpu), lse = ops::new_f32({2, 4}, kCpu);
    const Batch ok = batch({{1, 6, 2}});
    const ops::AttentionArgs a = attn_args(ok, 4, KV, hd, 0);
    ops::kv_write(k, k, a, cache);
    ops::attention(q, cache, a, out, &lse);
    const std::vector<uint32_t> cache_before = bits(cache.k);
    for (const Batch& bad : {batch({{1, 7, 2}}), batch({{2, 0, 2}}), batch({{-1, 0, 2}})}) {
      const ops::AttentionArgs ab = attn_args(bad, 4, KV, hd, 0);  // position 8 of 8 / slot 2 of 2 / slot -1
      EXPECT_THROW(ops::kv_write(k, k, ab, cache), Error);
      EXPECT_THROW(ops::attention(q, cache, ab, out, &lse), Error);
    }
    {
      std::vector<int32_t> pos = {-1, 0}, slot = {0, 0};
      ops::AttentionArgs ab = a;
      ab.pos = pos;
      ab.slot = slot;
      EXPECT_THROW(ops::kv_write(k, k, ab, cache), Error);  // negative position
    }
    EXPECT_EQ(count_differ(bits(cache.k), cache_before), 0) << "a refused kv_write wrote into the cache";
    {
      ops::AttentionArgs ab = a;
      ab.kv_heads = 3;  // 4 heads are not a multiple of 3
      EXPECT_THROW(ops::attention(q, cache, ab, out, &lse), Error);
      ab = a;
      ab.head_dim = 4;  // the cache holds head_dim 8
      EXPECT_THROW(ops::kv_write(randn({2, KV * 4}, rng), randn({2, KV * 4}, rng), ab, cache), Error);
      const std::vector<int32_t> one = {6};
      ab = a;
      ab.pos = one;  // one position for two rows
      EXPECT_THROW(ops::attention(q, cache, ab, out, &lse), Error);
    }
    ops::KvPages wrong = cache;
    wrong.page_size = 8;
    EXPECT_THROW(ops::attention(q, wrong, a, out, &lse), Error);  // pages of 4 positions
    wrong = cache;
    wrong.v = Tensor::zeros(cache.v.shape(), DType::BF16);
    EXPECT_THROW(ops::attention(q, wrong, a, out, &lse), Error);  // k and v dtypes differ
    wrong = cache;
    wrong.page_table = Tensor::zeros({2, 2});
    EXPECT_THROW(ops::attention(q, wrong, a, out, &lse), Error);  // the page table must be i32
    wrong = cache;
    wrong.k = Tensor::zeros(cache.k.shape(), DType::F64);
    wrong.v = Tensor::zeros(cache.k.shape(), DType::F64);
    EXPECT_THROW(ops::attention(q, wrong, a, out, &lse), Error);                // f64 is no cache dtype
    EXPECT_THROW(ops::kv_write(as_dtype(k, DType::BF16), k, a, cache), Error);  // keys must be f32
    EXPECT_THROW(ops::kv_write(randn({2, 3 * hd}, rng), randn({2, 3 * hd}, rng), a, cache), Error);  // key width
    EXPECT_THROW(ops::kv_write(k, randn({2, 3}, rng), a, cache), Error);                             // values shape
    EXPECT_THROW(ops::attention(randn({2, 3 * hd}, rng), cache, a, out, &lse), Error);               // query width
    EXPECT_THROW(ops::attention(as_dtype(q, DType::BF16), cache, a, out, &lse), Error);              // queries f32
    EXPECT_THROW(ops::attention(q, cache, a, y, &lse), Error);                                       // output shape
    Tensor lse_wrong = ops::new_f32({2, 3}, kCpu);
    EXPECT_THROW(ops::attention(q, cache, a, out, &lse_wrong), Error);  // lse shape
    Tensor dq = Tensor::zeros({2, 4 * hd}), dk = Tensor::zeros({2, KV * hd}), dk_wrong = Tensor::zeros({2, 3});
    EXPECT_THROW(ops::attention_backward(out, q, out, lse, cache, a, &dq, &dk_wrong, nullptr), Error);
    EXPECT_THROW(ops::attention_backward(out, q, out, lse_wrong, cache, a, &dq, nullptr, nullptr), Error);
    ops::KvPages c16 = make_cache(DType::BF16, 2, 2, P, KV, hd, rng, false);
    ops::kv_write(k, k, a, c16);
    EXPECT_THROW(ops::attention_backward(out, q, out, lse, c16, a, &dq, &dk, nullptr), Error);  // training needs f32
    {
      // slot 0's rows in two places of the batch: its positions are not one consecutive run
      const Batch split = batch({{0, 0, 1}, {1, 0, 1}, {0, 1, 1}});
      const ops::AttentionArgs as = attn_args(split, 4, KV, hd, 0);
      const Tensor k3 = randn({3, KV * hd}, rng), q3 = randn({3, 4 * hd}, rng);
      Tensor o3 = ops::new_f32({3, 4 * hd}, kCpu), l3 = ops::new_f32({3, 4}, kCpu), dq3 = Tensor::zeros({3, 4 * hd});
      ops::kv_write(k3, k3, as, cache);
      ops::attention(q3, cache, as, o3, &l3);
      EXPECT_THROW(ops::attention_backward(o3, q3, o3, l3, cache, as, &dq3, nullptr, nullptr), Error);
    }
  }
  // softmax, token_logprobs, entropy
  {
    Tensor out = ops::new_f32({4, 6}, kCpu), dx = Tensor::zeros({4, 6});
    EXPECT_THROW(ops::softmax(x16, out), Error);
    EXPECT_THROW(ops::softmax(x, y), Error);
    EXPECT_THROW(ops::softmax_backward(x, out, y), Error);
    Tensor lp = ops::new_f32({4}, kCpu), lse = ops::new_f32({4}, kCpu), lp3 = ops::new_f32({3}, kCpu);
    const int32_t ignore = -100;
    EXPECT_THROW(ops::token_logprobs(x, std::vector<int32_t>{0, 1, 6, 2}, ignore, lp, lse), Error);   // target == V
    EXPECT_THROW(ops::token_logprobs(x, std::vector<int32_t>{0, -5, 1, 2}, ignore, lp, lse), Error);  // negative
    EXPECT_THROW(ops::token_logprobs(x, std::vector<int32_t>{0, 1, 2}, ignore, lp, lse), Error);      // one per row
    EXPECT_THROW(ops::token_logprobs(x, std::vector<int32_t>{0, 1, 2, 3}, ignore, lp3, lse), Error);  // lp size
    EXPECT_THROW(ops::token_logprobs(x16, std::vector<int32_t>{0, 1, 2, 3}, ignore, lp, lse), Error);
    EXPECT_THROW(ops::token_logprobs_backward(lp3, x, lse, std::vector<int32_t>{0, 1, 2, 3}, ignore, dx), Error);
    EXPECT_THROW(ops::token_logprobs_backward(lp, x, lse, std::vector<int32_t>{0, 1, 2, 3}, ignore, y), Error);
    EXPECT_THROW(ops::entropy(x, lp3, lse), Error);
    EXPECT_THROW(ops::entropy(x, lp, lp3), Error);
    EXPECT_THROW(ops::entropy(x16, lp, lse), Error);
    EXPECT_THROW(ops::entropy_backward(lp3, x, lse, lp, dx), Error);
    EXPECT_THROW(ops::entropy_backward(lp, x, lse, lp, y), Error);
  }
  // elementwise, convert, gathers
  {
    Tensor out = ops::new_f32({4, 6}, kCpu);
    EXPECT_THROW(ops::add(x, W, out), Error);
    EXPECT_THROW(ops::add(x16, x16, out), Error);
    EXPECT_THROW(ops::add(x, x16, out), Error);  // b read as f32
    EXPECT_THROW(ops::add(x, x, y), Error);
    EXPECT_THROW(ops::scale(x, 2.0f, y), Error);
    EXPECT_THROW(ops::scale(x16, 2.0f, out), Error);
    EXPECT_THROW(ops::axpy(2.0f, x, y), Error);
    EXPECT_THROW(ops::axpy(2.0f, x16, out), Error);
    EXPECT_THROW(ops::mul(x, W, out), Error);
    EXPECT_THROW(ops::mul(x16, x16, out), Error);
    Tensor t16 = Tensor::zeros({4, 6}, DType::BF16);
    EXPECT_THROW(ops::fill(t16, 1.0f), Error);
    EXPECT_THROW(ops::convert(x, y16), Error);  // shapes differ
    Tensor i32 = Tensor::zeros({4, 6}, DType::I32), f64 = Tensor::zeros({4, 6}, DType::F64);
    EXPECT_THROW(ops::convert(x, i32), Error);  // no conversion to i32
    EXPECT_THROW(ops::convert(f64, out), Error);
    Tensor g = ops::new_f32({2, 6}, kCpu), g3 = ops::new_f32({2, 5}, kCpu);
    EXPECT_THROW(ops::gather_rows(x, std::vector<int32_t>{0, 4}, g), Error);  // row 4 of 4
    EXPECT_THROW(ops::gather_rows(x, std::vector<int32_t>{-1, 0}, g), Error);
    EXPECT_THROW(ops::gather_rows(x, std::vector<int32_t>{0, 1}, g3), Error);  // output shape
    EXPECT_THROW(ops::gather_rows(x16, std::vector<int32_t>{0, 1}, g), Error);
    Tensor g23 = ops::new_f32({2, 3}, kCpu);
    EXPECT_THROW(ops::gather_rows(randn({2, 3, 4}, rng), std::vector<int32_t>{0, 1}, g23), Error);  // 3-D input
    Tensor dx = Tensor::zeros({4, 6});
    EXPECT_THROW(ops::scatter_add_rows(g, std::vector<int32_t>{0, 4}, dx), Error);
    EXPECT_THROW(ops::scatter_add_rows(g, std::vector<int32_t>{0}, dx), Error);  // one row per gradient row
    EXPECT_THROW(ops::scatter_add_rows(g3, std::vector<int32_t>{0, 1}, dx), Error);
    Tensor seg = Tensor::zeros({3});
    EXPECT_THROW(ops::segment_sum(b3, std::vector<int32_t>{0, 3, 1}, seg), Error);  // segment 3 of 3
    EXPECT_THROW(ops::segment_sum(b3, std::vector<int32_t>{0, 1}, seg), Error);     // one id per element
    const Wide wx = Wide::of(x);
    EXPECT_THROW(ops::segment_sum(wx.view, std::vector<int32_t>(24, 0), seg), Error);  // strided input
  }
  // dropout, sum_squares, adamw
  {
    Tensor out = ops::new_f32({4, 6}, kCpu);
    EXPECT_THROW(ops::dropout(x, 1.0f, 1, out), Error);
    EXPECT_THROW(ops::dropout(x, -0.1f, 1, out), Error);
    EXPECT_THROW(ops::dropout(x, NAN, 1, out), Error);
    EXPECT_THROW(ops::dropout(x, 0.5f, 1, y), Error);
    const Wide wx = Wide::of(x);
    EXPECT_THROW(ops::dropout(wx.view, 0.5f, 1, out), Error);
    EXPECT_THROW(ops::sum_squares(x16), Error);
    EXPECT_THROW(ops::sum_squares(wx.view), Error);
    Tensor p = randn({4, 6}, rng), m = Tensor::zeros({4, 6}), v = Tensor::zeros({4, 6});
    Tensor m16 = Tensor::zeros({4, 6}, DType::BF16), p16 = as_dtype(p, DType::BF16);
    ops::AdamWArgs a;
    a.lr = 1e-3;
    EXPECT_THROW(ops::adamw(p, W, m, v, a), Error);
    EXPECT_THROW(ops::adamw(p, x, m16, v, a), Error);
    EXPECT_THROW(ops::adamw(p16, x, m, v, a), Error);
    Tensor pv = wx.view;
    EXPECT_THROW(ops::adamw(pv, x, m, v, a), Error);  // strided parameter
  }
}

// ---------------------------------------------------------------------------------------------
// Operand checks that an earlier version of the ops lacked (each was a silent wrong result or a
// crash): kept as regressions.

TEST(OpsBackendChecks, KvCacheDtypeAndPageTable) {
  Tensor c64 = Tensor::zeros({2, 1, 4, 8}, DType::F64);
  Tensor table = Tensor::zeros({1, 2}, DType::I32);
  ops::KvPages bad_type{c64, c64, table, 4};
  const std::vector<int32_t> pos = {0}, slot = {0};
  ops::AttentionArgs a{1, 1, 8, 0, 1.0f, pos, slot};
  const Tensor k = Tensor::zeros({1, 8}), v = Tensor::zeros({1, 8});
  EXPECT_THROW(ops::kv_write(k, v, a, bad_type), Error);
  Tensor kc = Tensor::zeros({2, 1, 4, 8}), vc = Tensor::zeros({2, 1, 4, 8});
  Tensor far = Tensor::zeros({1, 2}, DType::I32);
  far.data<int32_t>()[0] = 1000;  // only 2 pages exist
  ops::KvPages bad_page{kc, vc, far, 4};
  EXPECT_THROW(ops::kv_write(k, v, a, bad_page), Error);
  Tensor out = Tensor::zeros({1, 8});
  EXPECT_THROW(ops::attention(k, bad_page, a, out, nullptr), Error);
}

TEST(OpsBackendChecks, LinearBackwardChecksTheFeatureCount) {
  // linear_backward never compares x's features with W's: x [4x7] and W [3x5] give a partial dx
  // and no error (and x [4x5], W [3x7] make OpenBLAS print "illegal value" and do nothing).
  std::mt19937 rng(1);
  const Tensor dy = randn({4, 3}, rng), x = randn({4, 7}, rng), W = randn({3, 5}, rng);
  Tensor dx = Tensor::zeros({4, 7});
  EXPECT_THROW(ops::linear_backward(dy, x, W, &dx, nullptr, nullptr), Error);
}

TEST(OpsBackendChecks, TokenLogprobsBackwardChecksTargets) {
  // token_logprobs checks its targets, the backward does not: target V of row 0 adds dlp[0] into
  // row 1 (further ones write past the tensor); a short targets span is read past its end.
  std::mt19937 rng(2);
  const Tensor logits = randn({4, 6}, rng), lse = Tensor::zeros({4});
  Tensor dlp = Tensor::zeros({4}), dl = Tensor::zeros({4, 6});
  dlp.data<float>()[0] = 1.0f;
  EXPECT_THROW(ops::token_logprobs_backward(dlp, logits, lse, std::vector<int32_t>{6, 1, 0, 3}, -100, dl), Error);
}

TEST(OpsBackendChecks, EntropyBackwardChecksH) {
  // entropy_backward reads H[r] for every row without checking H's size.
  std::mt19937 rng(3);
  const Tensor logits = randn({4, 6}, rng), lse = Tensor::zeros({4}), dH = Tensor::zeros({4}), H = Tensor::zeros({1});
  Tensor dl = Tensor::zeros({4, 6});
  EXPECT_THROW(ops::entropy_backward(dH, logits, lse, H, dl), Error);
}

namespace {
// Either refused or right: an op given a column view must not silently compute something else.
void expect_refused_or_same(const char* op, const std::function<void()>& run, const Tensor& out_view,
                            const Tensor& want) {
  try {
    run();
  } catch (const Error&) {
    return;
  }
  EXPECT_EQ(count_differ(bits(out_view), bits(want)), 0) << op << " read or wrote a column view as contiguous";
}
}  // namespace

TEST(OpsBackendChecks, StridedOperandsAreRefusedOrHonoured) {
  std::mt19937 rng(4);
  {  // rope reads its cos/sin table as contiguous rows of head_dim
    const Tensor x = randn({3, 8}, rng), cs = rope_table(3, 8);
    Tensor want = ops::new_f32({3, 8}, kCpu), out = ops::new_f32({3, 8}, kCpu);
    ops::rope(x, cs, 8, want);
    const Wide wcs = Wide::of(cs);
    expect_refused_or_same(
        "rope", [&] { ops::rope(x, wcs.view, 8, out); }, out, want);
  }
  {  // gather_rows writes its output as contiguous
    const Tensor x = randn({5, 6}, rng);
    const std::vector<int32_t> rows = {4, 1};
    Tensor want = ops::new_f32({2, 6}, kCpu);
    ops::gather_rows(x, rows, want);
    Wide wo = Wide::of(Tensor::zeros({2, 6}));
    expect_refused_or_same(
        "gather_rows", [&] { ops::gather_rows(x, rows, wo.view); }, wo.view, want);
  }
  {  // scatter_add_rows reads its gradient rows as contiguous
    const Tensor d = randn({2, 6}, rng);
    const std::vector<int32_t> rows = {4, 1};
    Tensor want = Tensor::zeros({5, 6}), got = Tensor::zeros({5, 6});
    ops::scatter_add_rows(d, rows, want);
    const Wide wd = Wide::of(d);
    expect_refused_or_same(
        "scatter_add_rows", [&] { ops::scatter_add_rows(wd.view, rows, got); }, got, want);
  }
  {  // dropout checks that its input is contiguous, not its output
    const Tensor x = randn({3, 6}, rng);
    Tensor want = ops::new_f32({3, 6}, kCpu);
    ops::dropout(x, 0.25f, 9, want);
    Wide wo = Wide::of(Tensor::zeros({3, 6}));
    expect_refused_or_same(
        "dropout", [&] { ops::dropout(x, 0.25f, 9, wo.view); }, wo.view, want);
  }
}

// ---------------------------------------------------------------------------------------------
// Other backends: the same computations on another device, compared with the CPU's.

namespace {

// One computation from fixed inputs, run on a device; its outputs back on the host.
struct DeviceCase {
  std::string name;
  int fake_native_adds;  // add() calls the test double of OpsBackendSeam computes itself
  std::function<std::vector<Vec>(Device)> run;
};

std::vector<DeviceCase> device_cases() {
  std::vector<DeviceCase> cases;
  auto add = [&](std::string name, int natives, std::function<std::vector<Vec>(Device)> fn) {
    cases.push_back({std::move(name), natives, std::move(fn)});
  };
  add("linear f32 weights, 5 rows (gemv), bias", 0, [](Device d) {
    std::mt19937 rng(1);
    Tensor x = randn({5, 37}, rng).to(d), W = randn({29, 37}, rng).to(d), b = randn({29}, rng).to(d);
    Tensor y = Tensor::zeros({5, 29}, DType::F32, d);
    ops::linear(x, W, &b, y);
    return std::vector<Vec>{values(y)};
  });
  add("linear bf16 weights, 12 rows (sgemm)", 0, [](Device d) {
    std::mt19937 rng(2);
    Tensor x = randn({12, 65}, rng).to(d), W = as_dtype(randn({29, 65}, rng), DType::BF16).to(d);
    Tensor y = Tensor::zeros({12, 29}, DType::F32, d);
    ops::linear(x, W, nullptr, y);
    return std::vector<Vec>{values(y)};
  });
  add("linear f16 weights into a column view", 0, [](Device d) {
    std::mt19937 rng(3);
    Tensor x = randn({3, 37}, rng).to(d), W = as_dtype(randn({29, 37}, rng), DType::F16).to(d);
    Tensor wide = Tensor::zeros({3, 40}, DType::F32, d), y = wide.slice_cols(4, 33);
    ops::linear(x, W, nullptr, y);
    return std::vector<Vec>{values(wide)};
  });
  add("linear_backward dx dW db", 0, [](Device d) {
    std::mt19937 rng(4);
    Tensor dy = randn({10, 29}, rng).to(d), x = randn({10, 37}, rng).to(d), W = randn({29, 37}, rng).to(d);
    Tensor dx = randn({10, 37}, rng).to(d), dW = randn({29, 37}, rng).to(d), db = randn({29}, rng).to(d);
    ops::linear_backward(dy, x, W, &dx, &dW, &db);
    return std::vector<Vec>{values(dx), values(dW), values(db)};
  });
  add("embedding bf16 table and embedding_backward", 0, [](Device d) {
    std::mt19937 rng(5);
    const std::vector<int32_t> ids = {3, 0, 3, 9};
    Tensor E = as_dtype(randn({10, 37}, rng), DType::BF16).to(d), out = Tensor::zeros({4, 37}, DType::F32, d);
    ops::embedding(E, ids, out);
    Tensor dE = randn({10, 37}, rng).to(d);
    ops::embedding_backward(out, ids, dE);
    return std::vector<Vec>{values(out), values(dE)};
  });
  add("rms_norm per head and its backward", 0, [](Device d) {
    std::mt19937 rng(6);
    Tensor x = randn({5, 130}, rng).to(d), w = randn({26}, rng, 0.3, 1.0).to(d),
           out = Tensor::zeros({5, 130}, DType::F32, d);
    ops::rms_norm(x, w, 1e-5f, out);
    Tensor dx = randn({5, 130}, rng).to(d), dw = randn({26}, rng).to(d);
    ops::rms_norm_backward(out, x, w, 1e-5f, &dx, &dw);
    return std::vector<Vec>{values(out), values(dx), values(dw)};
  });
  add("rope and rope_backward", 0, [](Device d) {
    std::mt19937 rng(7);
    Tensor x = randn({5, 48}, rng).to(d), cs = rope_table(5, 16).to(d), out = Tensor::zeros({5, 48}, DType::F32, d);
    ops::rope(x, cs, 16, out);
    Tensor dx = randn({5, 48}, rng).to(d);
    ops::rope_backward(out, cs, 16, dx);
    return std::vector<Vec>{values(out), values(dx)};
  });
  add("swiglu and swiglu_backward", 0, [](Device d) {
    std::mt19937 rng(8);
    Tensor g = randn({4, 37}, rng, 2.0).to(d), u = randn({4, 37}, rng).to(d),
           out = Tensor::zeros({4, 37}, DType::F32, d);
    ops::swiglu(g, u, out);
    Tensor dg = randn({4, 37}, rng).to(d), du = randn({4, 37}, rng).to(d);
    ops::swiglu_backward(out, g, u, &dg, &du);
    return std::vector<Vec>{values(out), values(dg), values(du)};
  });
  add("layer_norm, gelu and their backwards", 0, [](Device d) {
    std::mt19937 rng(21);
    Tensor x = randn({5, 130}, rng).to(d), w = randn({130}, rng, 0.3, 1.0).to(d), b = randn({130}, rng).to(d),
           out = Tensor::zeros({5, 130}, DType::F32, d), g1 = Tensor::zeros({5, 130}, DType::F32, d),
           g2 = Tensor::zeros({5, 130}, DType::F32, d);
    ops::layer_norm(x, w, &b, 1e-6f, out);
    Tensor dx = randn({5, 130}, rng).to(d), dw = randn({130}, rng).to(d), db = randn({130}, rng).to(d);
    ops::layer_norm_backward(out, x, w, 1e-6f, &dx, &dw, &db);
    ops::gelu(x, ops::GeluKind::Erf, g1);
    ops::gelu(x, ops::GeluKind::Tanh, g2);
    Tensor gx = randn({5, 130}, rng).to(d);
    ops::gelu_backward(g1, x, ops::GeluKind::Tanh, gx);
    return std::vector<Vec>{values(out), values(dx), values(dw), values(db), values(g1), values(g2), values(gx)};
  });
  for (DType dt : {DType::F32, DType::BF16})
    add(cat("kv_write and attention, ", dtype_name(dt), " cache, paged"), 0, [dt](Device d) {
      std::mt19937 rng(9);
      ops::KvPages host = make_cache(dt, 3, 3, 4, 2, 16, rng, false);
      ops::KvPages c{host.k.to(d), host.v.to(d), host.page_table.to(d), host.page_size};
      const Batch b = batch({{1, 0, 6}, {0, 0, 3}, {2, 0, 9}});
      const ops::AttentionArgs a = attn_args(b, 6, 2, 16, 5);
      Tensor q = randn({18, 96}, rng).to(d), k = randn({18, 32}, rng).to(d), v = randn({18, 32}, rng).to(d);
      ops::kv_write(k, v, a, c);
      Tensor out = Tensor::zeros({18, 96}, DType::F32, d), lse = Tensor::zeros({18, 6}, DType::F32, d);
      ops::attention(q, c, a, out, &lse);
      return std::vector<Vec>{values(out), values(lse), values(c.k), values(c.v)};
    });
  add("attention_backward", 0, [](Device d) {
    std::mt19937 rng(10);
    ops::KvPages host = make_cache(DType::F32, 2, 3, 4, 3, 16, rng, false);
    ops::KvPages c{host.k.to(d), host.v.to(d), host.page_table.to(d), host.page_size};
    const Batch b = batch({{1, 0, 7}, {0, 0, 5}});
    const ops::AttentionArgs a = attn_args(b, 6, 3, 16, 0);
    Tensor q = randn({12, 96}, rng).to(d), k = randn({12, 48}, rng).to(d), v = randn({12, 48}, rng).to(d);
    ops::kv_write(k, v, a, c);
    Tensor out = Tensor::zeros({12, 96}, DType::F32, d), lse = Tensor::zeros({12, 6}, DType::F32, d);
    ops::attention(q, c, a, out, &lse);
    Tensor dout = randn({12, 96}, rng).to(d), dq = Tensor::zeros({12, 96}, DType::F32, d);
    Tensor dk = Tensor::zeros({12, 48}, DType::F32, d), dv = Tensor::zeros({12, 48}, DType::F32, d);
    ops::attention_backward(dout, q, out, lse, c, a, &dq, &dk, &dv);
    return std::vector<Vec>{values(dq), values(dk), values(dv)};
  });
  add("softmax and softmax_backward", 0, [](Device d) {
    std::mt19937 rng(11);
    Tensor x = randn({6, 130}, rng, 3.0).to(d), y = Tensor::zeros({6, 130}, DType::F32, d);
    ops::softmax(x, y);
    Tensor dx = randn({6, 130}, rng).to(d);
    ops::softmax_backward(x, y, dx);
    return std::vector<Vec>{values(y), values(dx)};
  });
  add("token_logprobs and its backward", 0, [](Device d) {
    std::mt19937 rng(12);
    const std::vector<int32_t> t = {5, -100, 0, 129};
    Tensor z = randn({4, 130}, rng, 2.0).to(d), lp = Tensor::zeros({4}, DType::F32, d),
           lse = Tensor::zeros({4}, DType::F32, d);
    ops::token_logprobs(z, t, -100, lp, lse);
    Tensor dz = randn({4, 130}, rng).to(d);
    ops::token_logprobs_backward(lp, z, lse, t, -100, dz);
    return std::vector<Vec>{values(lp), values(lse), values(dz)};
  });
  add("entropy and entropy_backward", 0, [](Device d) {
    std::mt19937 rng(13);
    Tensor z = randn({4, 65}, rng, 2.0).to(d), H = Tensor::zeros({4}, DType::F32, d),
           lse = Tensor::zeros({4}, DType::F32, d);
    ops::entropy(z, H, lse);
    Tensor dz = randn({4, 65}, rng).to(d);
    ops::entropy_backward(H, z, lse, H, dz);
    return std::vector<Vec>{values(H), values(lse), values(dz)};
  });
  add("add", 1, [](Device d) {
    std::mt19937 rng(14);
    Tensor a = randn({7, 130}, rng).to(d), b = randn({7, 130}, rng).to(d), out = Tensor::zeros({7, 130}, DType::F32, d);
    ops::add(a, b, out);
    return std::vector<Vec>{values(out)};
  });
  add("add in place", 1, [](Device d) {
    std::mt19937 rng(15);
    Tensor a = randn({1001}, rng).to(d), b = randn({1001}, rng).to(d);
    ops::add(a, b, a);
    return std::vector<Vec>{values(a)};
  });
  add("add on column views", 0, [](Device d) {
    std::mt19937 rng(16);
    Tensor wa = randn({7, 40}, rng).to(d), wb = randn({7, 40}, rng).to(d), wo = randn({7, 40}, rng).to(d);
    Tensor o = wo.slice_cols(3, 33);
    ops::add(wa.slice_cols(1, 31), wb.slice_cols(5, 35), o);
    return std::vector<Vec>{values(wo)};
  });
  add("scale, axpy, mul, fill", 0, [](Device d) {
    std::mt19937 rng(17);
    Tensor a = randn({7, 130}, rng).to(d), b = randn({7, 130}, rng).to(d), out = Tensor::zeros({7, 130}, DType::F32, d);
    ops::scale(a, 0.37f, out);
    Tensor y = randn({7, 130}, rng).to(d), m = Tensor::zeros({7, 130}, DType::F32, d),
           f = Tensor::zeros({5}, DType::F32, d);
    ops::axpy(-1.3f, a, y);
    ops::mul(a, b, m);
    ops::fill(f, 2.5f);
    return std::vector<Vec>{values(out), values(y), values(m), values(f)};
  });
  add("convert f32 -> bf16 -> f16 -> f32", 0, [](Device d) {
    std::mt19937 rng(18);
    Tensor x = randn({9, 67}, rng, 100.0).to(d), b = Tensor::zeros({9, 67}, DType::BF16, d);
    Tensor h = Tensor::zeros({9, 67}, DType::F16, d), f = Tensor::zeros({9, 67}, DType::F32, d);
    ops::convert(x, b);
    ops::convert(b, h);
    ops::convert(h, f);
    return std::vector<Vec>{values(b), values(h), values(f)};
  });
  add("gather_rows, scatter_add_rows, segment_sum", 0, [](Device d) {
    std::mt19937 rng(19);
    const std::vector<int32_t> rows = {3, 0, 3, 9}, seg = {0, 2, 2, 1, 0, 2};
    Tensor x = randn({10, 37}, rng).to(d), g = Tensor::zeros({4, 37}, DType::F32, d);
    ops::gather_rows(x, rows, g);
    Tensor dx = randn({10, 37}, rng).to(d);
    ops::scatter_add_rows(g, rows, dx);
    Tensor xs = randn({6}, rng).to(d), s = randn({3}, rng).to(d);
    ops::segment_sum(xs, seg, s);
    return std::vector<Vec>{values(g), values(dx), values(s)};
  });
  add("dropout", 0, [](Device d) {
    std::mt19937 rng(20);
    Tensor x = randn({13, 77}, rng).to(d), out = Tensor::zeros({13, 77}, DType::F32, d);
    ops::dropout(x, 0.3f, 12345, out);
    return std::vector<Vec>{values(out)};
  });
  add("sum_squares", 0, [](Device d) {
    std::mt19937 rng(21);
    Tensor x = randn({4097}, rng).to(d);
    return std::vector<Vec>{{ops::sum_squares(x)}};
  });
  add("adamw, two steps", 0, [](Device d) {
    std::mt19937 rng(22);
    Tensor p = randn({1037}, rng).to(d), m = Tensor::zeros({1037}, DType::F32, d),
           v = Tensor::zeros({1037}, DType::F32, d);
    ops::AdamWArgs a;
    a.lr = 1e-2;
    a.weight_decay = 0.1;
    for (int64_t step = 1; step <= 2; ++step) {
      a.step = step;
      ops::adamw(p, randn({1037}, rng).to(d), m, v, a);
    }
    return std::vector<Vec>{values(p), values(m), values(v)};
  });
  return cases;
}

// Runs every case on `device` and on the CPU: bit for bit (exact) or within kTolOtherBackend.
void compare_with_cpu(Device device, const std::string& backend, bool exact,
                      const std::function<void(const DeviceCase&)>& after_device_run = {}) {
  for (const DeviceCase& c : device_cases()) {
    SCOPED_TRACE(c.name);
    const std::vector<Vec> want = c.run(kCpu);
    const std::vector<Vec> got = c.run(device);
    if (after_device_run) after_device_run(c);
    ASSERT_EQ(got.size(), want.size());
    Measure m(cat("backend ", backend), c.name);
    for (size_t i = 0; i < want.size(); ++i) {
      if (exact) {
        int64_t differ = got[i].size() == want[i].size() ? 0 : static_cast<int64_t>(want[i].size());
        for (size_t j = 0; j < std::min(got[i].size(), want[i].size()); ++j)
          differ += std::memcmp(&got[i][j], &want[i][j], sizeof(double)) != 0;
        m.exact(differ, static_cast<int64_t>(want[i].size()), cat("output ", i));
      } else {
        m.nmse(got[i], want[i], kTolOtherBackend, cat("output ", i));
      }
    }
  }
}

}  // namespace

TEST(OpsBackend, EveryOtherBackendMatchesTheCpu) {
  int others = 0;
  for (ops::Backend* b : ops::backends()) {
    if (b->device_type() == DeviceType::CPU) continue;
    ++others;
    std::printf("[ops] comparing backend %s with the cpu\n", b->name());
    compare_with_cpu(Device{b->device_type(), 0}, b->name(), false);
  }
  if (others == 0) std::printf("[ops] no backend besides the cpu is registered: nothing to compare\n");
}

// ---------------------------------------------------------------------------------------------
// The device seam and the host fallback, through a test double of a device. The registry is
// process-global and has no unregister, so this runs last; every other test names the CPU.

namespace {

// Memory that is plain host memory behind the Allocator interface.
class HostBackedAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes, Device) override {
    void* p = std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
    if (!p) throw Error("test device: out of memory");
    return p;
  }
  void deallocate(void* p, size_t, Device) override { std::free(p); }
  void copy(void* dst, Device, const void* src, Device, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
};

// Runs add() itself, on device_ptr() as a real backend would launch a kernel; everything else is
// the Backend base class's host fallback.
class AddOnlyBackend final : public ops::Backend {
 public:
  static inline std::atomic<int> native_adds{0};
  const char* name() const override { return "test-device"; }
  DeviceType device_type() const override { return DeviceType::CUDA; }
  bool supports(ops::Op op, DType dtype) const override { return op == ops::Op::Add && dtype == DType::F32; }
  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    if (!a.is_contiguous() || !b.is_contiguous() || !out.is_contiguous()) {
      Backend::add(a, b, out);  // views: the host fallback
      return;
    }
    const auto* pa = static_cast<const float*>(a.device_ptr());
    const auto* pb = static_cast<const float*>(b.device_ptr());
    auto* po = static_cast<float*>(out.device_ptr());
    for (int64_t i = 0; i < out.numel(); ++i) po[i] = pa[i] + pb[i];
    ++native_adds;
  }
};

// The test device (registered on first use), or nothing when a real backend holds its type.
const Device* test_device() {
  static const Device* dev = []() -> const Device* {
    for (ops::Backend* b : ops::backends())
      if (b->device_type() == DeviceType::CUDA) return nullptr;
    static const Device d{DeviceType::CUDA, 0};
    try {
      allocator_for(d);
      return nullptr;  // someone else's allocator: leave it alone
    } catch (const Error&) {
    }
    register_allocator(DeviceType::CUDA, new HostBackedAllocator);  // never freed: buffers may outlive the test
    ops::register_backend(std::make_unique<AddOnlyBackend>());
    return &d;
  }();
  return dev;
}

}  // namespace

TEST(OpsBackendSeam, HostFallbackThroughATestDevice) {
  const Device* devp = test_device();
  if (!devp) GTEST_SKIP() << "a real backend is registered for CUDA; the test double stays out";
  const Device dev = *devp;
  AddOnlyBackend::native_adds = 0;  // other tests may have used the device before (shuffled, repeated runs)
  ops::Backend& be = ops::backend_for(dev);
  EXPECT_STREQ(be.name(), "test-device");
  EXPECT_EQ(ops::backends().size(), 2u);
  EXPECT_TRUE(be.supports(ops::Op::Add, DType::F32));
  for (int op = 0; op < static_cast<int>(ops::Op::Count); ++op)
    if (static_cast<ops::Op>(op) != ops::Op::Add) {
      EXPECT_FALSE(be.supports(static_cast<ops::Op>(op), DType::F32)) << ops::op_name(static_cast<ops::Op>(op));
    }

  // device memory: not readable from the host, copies round-trip the bytes
  std::mt19937 rng(5);
  for (DType dt : {DType::F32, DType::BF16}) {
    const Tensor h = as_dtype(randn({7, 13}, rng), dt);
    const Tensor d = h.to(dev);
    EXPECT_EQ(d.device(), dev);
    EXPECT_FALSE(d.is_host());
    EXPECT_THROW((void)d.raw(), Error);
    if (dt == DType::F32) {
      EXPECT_THROW((void)d.data<float>(), Error);
    } else {
      EXPECT_THROW((void)d.data<uint16_t>(), Error);
    }
    EXPECT_EQ(count_differ(bits(d.to(kCpu)), bits(h)), 0);
    EXPECT_EQ(count_differ(bits(d.clone().to(kCpu)), bits(h)), 0);
    const Wide w = Wide::of(h);  // a strided host view goes over as a contiguous copy
    const Tensor dv = w.view.to(dev);
    EXPECT_TRUE(dv.is_contiguous());
    EXPECT_EQ(count_differ(bits(dv.to(kCpu)), bits(h)), 0);
    const Tensor dcols = d.slice_cols(2, 9);  // and a view on the device comes back as its elements
    EXPECT_EQ(count_differ(bits(dcols.to(kCpu)), bits(h.slice_cols(2, 9))), 0);
  }
  EXPECT_EQ(count_differ(values(Tensor::zeros({3, 5}, DType::F32, dev)), Vec(15, 0.0)), 0);

  // ops::add runs on the device; everything else through the host fallback, giving exactly the
  // CPU's result and leaving add() alone
  compare_with_cpu(dev, "test-device", true, [](const DeviceCase& c) {
    EXPECT_EQ(AddOnlyBackend::native_adds.exchange(0), c.fake_native_adds) << c.name;
  });
  {
    const Tensor x = randn({5, 37}, rng), W = randn({29, 37}, rng);
    Tensor y = Tensor::zeros({5, 29}, DType::F32, dev);
    ops::linear(x.to(dev), W.to(dev), nullptr, y);
    EXPECT_EQ(y.device(), dev);  // the fallback's results land back on the device
  }

  // operands on two devices are refused
  const Tensor a = randn({4, 6}, rng), W = randn({3, 6}, rng);
  const Tensor ad = a.to(dev), Wd = W.to(dev);
  Tensor outd = Tensor::zeros({4, 6}, DType::F32, dev), out = ops::new_f32({4, 6}, kCpu);
  Tensor yd = Tensor::zeros({4, 3}, DType::F32, dev), y = ops::new_f32({4, 3}, kCpu);
  EXPECT_THROW(ops::add(a, ad, outd), Error);
  EXPECT_THROW(ops::add(ad, ad, out), Error);
  EXPECT_THROW(ops::linear(ad, W, nullptr, yd), Error);
  EXPECT_THROW(ops::linear(a, Wd, nullptr, y), Error);
  EXPECT_THROW(ops::rms_norm(ad, randn({6}, rng), 1e-5f, outd), Error);
  EXPECT_THROW(ops::softmax(a, outd), Error);
  {
    ops::KvPages host = make_cache(DType::F32, 1, 2, 4, 1, 6, rng, false);
    ops::KvPages c{host.k.to(dev), host.v.to(dev), host.page_table.to(dev), 4};
    const Batch b = batch({{0, 0, 4}});
    const ops::AttentionArgs args = attn_args(b, 1, 1, 6, 0);
    EXPECT_THROW(ops::kv_write(a, a, args, c), Error);  // host rows into a device cache
    Tensor lse = ops::new_f32({4, 1}, kCpu);
    EXPECT_THROW(ops::attention(a, c, args, out, &lse), Error);
  }
  {
    Tensor lp = Tensor::zeros({4}, DType::F32, dev), lse = ops::new_f32({4}, kCpu);
    EXPECT_THROW(ops::token_logprobs(ad, std::vector<int32_t>{0, 1, 2, 3}, -100, lp, lse), Error);
  }
  {
    Tensor p = randn({4, 6}, rng).to(dev), m = Tensor::zeros({4, 6}, DType::F32, dev), v = Tensor::zeros({4, 6});
    ops::AdamWArgs args;
    args.lr = 1e-3;
    EXPECT_THROW(ops::adamw(p, ad, m, v, args), Error);  // v on the host
  }
  EXPECT_EQ(AddOnlyBackend::native_adds.load(), 0);
}
