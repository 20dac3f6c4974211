// Matrix products of the CPU backend. Few rows (decode) stream each weight row once through the
// weight type's dot kernel; many rows (prefill, training) run OpenBLAS sgemm single-threaded on
// slices that the pool's threads own (one threading model for every kernel), converting 16-bit
// weights to f32 one tile at a time in each thread's scratch, so no f32 copy of a weight ever
// exists, forward or backward.
#include <cblas.h>

#include <algorithm>

#include "yak/base/error.h"
#include "yak/ops/cpu/cpu_backend.h"
#include "yak/ops/cpu/kernels.h"
#include "yak/ops/cpu/thread_pool.h"
#include "yak/ops/cpu/type_traits.h"
#include "yak/ops/ops.h"

namespace yak::ops::cpu {
namespace {

// Rows at or below this count take the streaming (GEMV) path: bf16 weights up to 32 where there
// are no AMX tiles (their kernel reads each activation vector once for two weight rows, which
// beats converting tiles for sgemm at batched-decode sizes), everything else up to 8.
constexpr int64_t kGemvMaxRows = 8;
constexpr int64_t kGemvMaxRowsBf16 = 32;
int64_t gemv_max_rows(DType t) {
  return t == DType::BF16 && !kernels().amx ? kGemvMaxRowsBf16 : kGemvMaxRows;
}
// Weight rows per converted tile (about 1 MiB of f32 for K = 1024).
constexpr int64_t kTileFloats = int64_t{1} << 18;

const CpuTypeTraits& weight_traits(const Tensor& W) {
  const CpuTypeTraits* t = cpu_traits(W.dtype());
  if (!t) [[unlikely]]
    throw Error(std::string("linear: weights of dtype ") + dtype_name(W.dtype()) + " are not supported on the CPU");
  return *t;
}

struct WeightView {
  const uint8_t* base;
  size_t row_bytes;  // between consecutive rows
  const CpuTypeTraits* tr;
  bool f32;
  const float* row_f32(int64_t r) const { return reinterpret_cast<const float*>(base + r * row_bytes); }
  const void* row(int64_t r) const { return base + r * row_bytes; }
};
WeightView view_of(const Tensor& W) {
  return {static_cast<const uint8_t*>(W.raw()), dtype_bytes(W.dtype(), W.row_stride()), &weight_traits(W),
          W.dtype() == DType::F32};
}

// Columns split across the pool in multiples of 16 (whole cache lines of f32 output).
int64_t split_grain(int64_t n) {
  return std::max<int64_t>(16, (n / std::max(1, num_threads()) + 15) / 16 * 16);
}

// bf16 weights at --matmul-precision medium on AVX512_BF16, two rows or more: activations
// rounded to bf16 once, then bf16 dot products — batched decode, and prefill too where there are
// no AMX tiles (501-token prefill of the 0.5B shape: 215 tok/s through sgemm, 270 this way). One
// row stays on the f32 kernel, which already runs at the memory's speed.
bool bf16_dot_path(const Tensor& W, int64_t M) {
  return M >= 2 && W.dtype() == DType::BF16 && matmul_precision() == MatmulPrecision::Medium &&
         kernels().gemv_bf16_dp && (M <= kGemvMaxRows || !kernels().amx);
}
Tensor round_rows_to_bf16(const float* x, int64_t lda, int64_t M, int64_t K) {
  Tensor xb = Tensor::empty({M, K}, DType::BF16);
  auto* p = static_cast<uint16_t*>(xb.raw());
  for (int64_t m = 0; m < M; ++m) kernels().f32_to_bf16(x + m * lda, p + m * K, K);
  return xb;
}

void gemv(const Tensor& x, const Tensor& W, Tensor& y) {
  const int64_t M = x.dim(0), K = x.dim(1), N = W.dim(0);
  if (bf16_dot_path(W, M)) {
    const Tensor xb = round_rows_to_bf16(x.data<float>(), x.row_stride(), M, K);
    const auto* xp = static_cast<const uint16_t*>(xb.raw());
    const auto* wp = static_cast<const uint16_t*>(W.raw());
    float* yp = y.data<float>();
    const int64_t ldw = W.row_stride(), ldy = y.row_stride();
    parallel_for(N, 64, [&](int64_t r0, int64_t r1) { kernels().gemv_bf16_dp(wp, ldw, K, r0, r1, xp, M, K, yp, ldy); });
    return;
  }
  const CpuTypeTraits& tr = weight_traits(W);
  const float* xa = x.data<float>();
  int64_t lda = x.row_stride();
  Tensor prepared;  // the activations in the weight type's dot layout, once for all threads
  if (tr.prep) {
    prepared = Tensor::empty({M, K});
    float* pp = prepared.data<float>();
    for (int64_t m = 0; m < M; ++m) tr.prep(xa + m * lda, K, pp + m * K);
    xa = pp;
    lda = K;
  }
  const void* wp = W.raw();
  const int64_t ldw = static_cast<int64_t>(dtype_bytes(W.dtype(), W.row_stride()));
  float* yp = y.data<float>();
  const int64_t ldy = y.row_stride();
  parallel_for(N, 64, [&](int64_t r0, int64_t r1) { tr.gemv(wp, ldw, K, r0, r1, xa, M, lda, yp, ldy); });
}

// One operand of a tile product: f32 (row r, column k at p[r * ld + k], or p[k * ld + r] when
// transposed), or bf16 rows read in place (the A side only).
struct Operand {
  const void* p;
  int64_t ld;
  bool transposed;
  DType type;
};

// out[m, n] (= or +=) sum_k B[m, k] A[n, k] on AMX tiles with the process's matmul precision, for
// the rows n below N rounded down to 32; returns that count (0: AMX does not take this product,
// the caller computes everything). The B side is split into parts and packed once; the A side is
// read in place (bf16) or rounded to bf16 (f32 at Medium); threads take blocks of 32 A rows.
int64_t amx_product(int64_t M, int64_t N, int64_t K, const Operand& B, const Operand& A, float* out, int64_t ldo,
                    bool accumulate) {
  const AmxKernels* amx = kernels().amx;
  const MatmulPrecision prec = matmul_precision();
  if (!amx || prec == MatmulPrecision::Highest || N < 32 || M < 1 || K < 1) return 0;
  if (A.type == DType::BF16 && (A.transposed || K % 32 != 0)) return 0;
  // Quantized weights at Medium: 32 rows at a time dequantized and rounded to bf16 in each
  // thread's scratch (High would need three parts of each weight: they stay on sgemm).
  const bool quantized = dtype_is_quantized(A.type);
  if (quantized && (prec != MatmulPrecision::Medium || A.transposed || K % 32 != 0)) return 0;
  // f32 weights at High would need three parts on both sides (six tile products a block): measured
  // slower than OpenBLAS on the 36M training bench (4.0 vs 3.6 s a step), so they stay on sgemm;
  // at Medium both sides are rounded to bf16 once.
  if (!quantized && A.type != DType::BF16 && (A.type != DType::F32 || prec == MatmulPrecision::High)) return 0;
  const bool high = prec == MatmulPrecision::High;
  const int b_parts = high ? 3 : 1, a_parts = 1;
  const int64_t n32 = N / 32 * 32, Kp = (K + 31) / 32 * 32;
  Tensor packed_b = Tensor::empty({amx->packed_b_dwords(M, K, b_parts)}, DType::I32);
  auto* pb = static_cast<uint32_t*>(packed_b.raw());
  const auto* bp = static_cast<const float*>(B.p);
  const int64_t block_dwords = amx->packed_b_dwords(16, K, b_parts);
  parallel_for((M + 15) / 16, 4, [&](int64_t b0, int64_t b1) {
    for (int64_t mb = b0; mb < b1; ++mb) {
      const int64_t m0 = mb * 16;
      amx->pack_b(B.transposed ? bp + m0 : bp + m0 * B.ld, B.ld, B.transposed, std::min<int64_t>(16, M - m0), K,
                  b_parts, pb + mb * block_dwords);
    }
  });
  AmxProduct g{};
  g.M = M;
  g.K = K;
  g.b = pb;
  g.b_parts = b_parts;
  g.a_parts = a_parts;
  g.out = out;
  g.ldo = ldo;
  g.accumulate = accumulate;
  Tensor packed_a;
  if (quantized) {
    const CpuTypeTraits& tr = *cpu_traits(A.type);
    const size_t row_bytes = dtype_bytes(A.type, A.ld);
    const size_t scratch = static_cast<size_t>(32 * K) * sizeof(float) + static_cast<size_t>(32 * Kp) * 2 + 64;
    g.combos[0] = 0b001;
    parallel_for_scratch(n32 / 32, 1, scratch, [&](int64_t b0, int64_t b1, void* s) {
      float* f = static_cast<float*>(s);
      auto* h = reinterpret_cast<uint16_t*>(f + 32 * K);
      const KernelTable& k = kernels();
      for (int64_t blk = b0; blk < b1; ++blk) {
        for (int64_t r = 0; r < 32; ++r) {
          tr.to_f32(static_cast<const uint8_t*>(A.p) + (blk * 32 + r) * row_bytes, f + r * K, K);
          k.f32_to_bf16(f + r * K, h + r * Kp, K);
          for (int64_t c = K; c < Kp; ++c) h[r * Kp + c] = 0;
        }
        AmxProduct gl = g;
        gl.a[0] = h;
        gl.lda = Kp;
        gl.out = out + blk * 32;  // rows of A are columns of out
        amx->block(gl, 0, 32);
      }
    });
    return n32;
  }
  if (A.type == DType::BF16) {
    g.a[0] = static_cast<const uint16_t*>(A.p);
    g.lda = A.ld;
  } else {
    packed_a = Tensor::empty({a_parts * n32 * Kp}, DType::BF16);
    auto* pa = static_cast<uint16_t*>(packed_a.raw());
    parallel_for(n32, 16, [&](int64_t r0, int64_t r1) {
      amx->pack_a(static_cast<const float*>(A.p), A.ld, A.transposed, n32, K, r0, r1, a_parts, pa);
    });
    for (int p = 0; p < a_parts; ++p) g.a[p] = pa + p * n32 * Kp;
    g.lda = Kp;
  }
  // High: the bf16 A against all three parts of B (exact products, f32 sums); Medium: one part.
  g.combos[0] = high ? 0b111 : 0b001;
  parallel_for(n32 / 32, 1, [&](int64_t b0, int64_t b1) { amx->block(g, b0 * 32, b1 * 32); });
  return n32;
}

// y = x W^T for any rows of W (views allowed): the pool's threads own column slices of y, each
// converting its 16-bit weight tiles to f32 in its scratch, OpenBLAS single-threaded inside.
void sgemm_linear(const Tensor& x, const Tensor& W, Tensor& y) {
  const int64_t M = x.dim(0), K = x.dim(1), N = W.dim(0);
  if (N == 0) return;
  const float* xp = x.data<float>();
  const int64_t ldx = x.row_stride(), ldy = y.row_stride();
  float* yp = y.data<float>();
  const WeightView w = view_of(W);
  const int64_t tile = std::clamp<int64_t>(kTileFloats / std::max<int64_t>(K, 1), 16, std::max<int64_t>(N, 16));
  const size_t scratch = w.f32 ? 0 : static_cast<size_t>(tile * K) * sizeof(float);
  parallel_for_scratch(N, split_grain(N), scratch, [&](int64_t n0, int64_t n1, void* s) {
    for (int64_t t0 = n0; t0 < n1; t0 += tile) {
      const int64_t nb = std::min(tile, n1 - t0);
      const float* wt;
      int64_t ldw = K;
      if (w.f32) {
        wt = w.row_f32(t0);
        ldw = W.row_stride();
      } else {
        float* buf = static_cast<float*>(s);
        for (int64_t r = 0; r < nb; ++r) w.tr->to_f32(w.row(t0 + r), buf + r * K, K);
        wt = buf;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nb, K, 1.0f, xp, ldx, wt, ldw, 0.0f, yp + t0, ldy);
    }
  });
}

// dx += dy W for any columns of W and dx (views allowed): threads own column slices of dx.
// dx += dy W for quantized frozen weights (QLoRA bases): threads own whole blocks of columns,
// each dequantizing its tiles of rows x columns into its scratch (never a whole f32 copy).
void sgemm_dx_blocks(const Tensor& dy, const Tensor& W, const WeightView& w, Tensor& dx) {
  const int64_t M = dy.dim(0), N = dy.dim(1), K = W.dim(1);
  const int64_t blk = dtype_info(W.dtype()).block;
  if (K % blk != 0) throw Error("linear: a quantized weight's rows must be whole blocks of " + std::to_string(blk));
  const float* d = dy.data<float>();
  const int64_t ldd = dy.row_stride();
  float* gx = dx.data<float>();
  const int64_t ldgx = dx.row_stride();
  const int64_t nblk = K / blk;
  const int64_t grain = std::max<int64_t>(1, split_grain(K) / blk);
  // A chunk may be every block (one thread, or a call from inside the pool): tiles sized for K.
  const int64_t tile = std::clamp<int64_t>(kTileFloats / K, 16, std::max<int64_t>(N, 16));
  parallel_for_scratch(nblk, grain, static_cast<size_t>(tile * K) * sizeof(float),
                       [&](int64_t b0, int64_t b1, void* s) {
                         const int64_t k0 = b0 * blk, kc = (b1 - b0) * blk;
                         float* buf = static_cast<float*>(s);
                         const size_t off = dtype_bytes(W.dtype(), k0);
                         for (int64_t n0 = 0; n0 < N; n0 += tile) {
                           const int64_t nb = std::min(tile, N - n0);
                           for (int64_t r = 0; r < nb; ++r)
                             w.tr->to_f32(static_cast<const uint8_t*>(w.row(n0 + r)) + off, buf + r * kc, kc);
                           cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, kc, nb, 1.0f, d + n0, ldd, buf, kc,
                                       1.0f, gx + k0, ldgx);
                         }
                       });
}

void sgemm_dx(const Tensor& dy, const Tensor& W, Tensor& dx) {
  const int64_t M = dy.dim(0), N = dy.dim(1), K = W.dim(1);
  if (K == 0) return;
  const float* d = dy.data<float>();
  const int64_t ldd = dy.row_stride();
  float* gx = dx.data<float>();
  const int64_t ldgx = dx.row_stride();
  const WeightView w = view_of(W);
  if (dtype_is_quantized(W.dtype())) return sgemm_dx_blocks(dy, W, w, dx);
  const int64_t kc_max = split_grain(K);
  const int64_t tile = std::clamp<int64_t>(kTileFloats / kc_max, 16, std::max<int64_t>(N, 16));
  const size_t scratch = w.f32 ? 0 : static_cast<size_t>(tile * (kc_max + 16)) * sizeof(float);
  parallel_for_scratch(K, kc_max, scratch, [&](int64_t k0, int64_t k1, void* s) {
    const int64_t kc = k1 - k0;
    if (w.f32) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, kc, N, 1.0f, d, ldd, w.row_f32(0) + k0, W.row_stride(),
                  1.0f, gx + k0, ldgx);
      return;
    }
    // 16-bit frozen weights (LoRA bases): tiles of rows x this thread's columns, never a whole f32 copy
    float* buf = static_cast<float*>(s);
    const size_t elem = dtype_bytes(W.dtype(), 1);
    for (int64_t n0 = 0; n0 < N; n0 += tile) {
      const int64_t nb = std::min(tile, N - n0);
      for (int64_t r = 0; r < nb; ++r)
        w.tr->to_f32(static_cast<const uint8_t*>(w.row(n0 + r)) + k0 * elem, buf + r * kc, kc);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, kc, nb, 1.0f, d + n0, ldd, buf, kc, 1.0f, gx + k0,
                  ldgx);
    }
  });
}

// dW += dy^T x for any columns of x and dW (views allowed): threads own row slices of dW.
void sgemm_dw(const Tensor& dy, const Tensor& x, Tensor& dW) {
  const int64_t M = dy.dim(0), N = dy.dim(1), K = x.dim(1);
  if (K == 0) return;
  const float* d = dy.data<float>();
  const int64_t ldd = dy.row_stride();
  const float* xp = x.data<float>();
  const int64_t ldx = x.row_stride();
  float* g = dW.data<float>();
  const int64_t ldg = dW.row_stride();
  parallel_for(N, split_grain(N), [&](int64_t n0, int64_t n1) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n1 - n0, K, M, 1.0f, d + n0, ldd, xp, ldx, 1.0f, g + n0 * ldg,
                ldg);
  });
}

}  // namespace

void CpuBackend::linear(const Tensor& x, const Tensor& W, const Tensor* b, Tensor& y) {
  const int64_t M = x.dim(0), K = x.dim(1), N = W.dim(0);
  float* yp = y.data<float>();
  const int64_t ldy = y.row_stride();
  if (M > 0 && (M <= gemv_max_rows(W.dtype()) || bf16_dot_path(W, M))) {
    gemv(x, W, y);
  } else if (M > 0) {
    const int64_t done = amx_product(M, N, K, {x.data<float>(), x.row_stride(), false, DType::F32},
                                     {W.raw(), W.row_stride(), false, W.dtype()}, yp, ldy, false);
    if (done < N) {
      Tensor rest = y.slice_cols(done, N);
      sgemm_linear(x, W.slice_rows(done, N), rest);
    }
  }
  if (b && b->defined() && b->numel() > 0) {
    const float* bp = b->data<float>();
    const KernelTable& k = kernels();
    for (int64_t m = 0; m < M; ++m) k.add(yp + m * ldy, bp, yp + m * ldy, N);
  }
}

void CpuBackend::linear_group(const Tensor& x, std::span<const LinearTarget> targets) {
  const int64_t M = x.dim(0), K = x.dim(1);
  constexpr size_t kMax = 4;
  bool one_pass = M > 0 && !targets.empty() && M <= gemv_max_rows(targets[0].W->dtype()) && targets.size() <= kMax;
  for (const LinearTarget& t : targets) one_pass = one_pass && t.W->dtype() == targets[0].W->dtype();
  if (!one_pass) {
    for (const LinearTarget& t : targets) linear(x, *t.W, t.b, *t.y);
    return;
  }
  // One parallel pass over the weights' rows end to end, the activations prepared once.
  const CpuTypeTraits& tr = weight_traits(*targets[0].W);
  const float* xa = x.data<float>();
  int64_t lda = x.row_stride();
  Tensor prepared, xb;
  const bool dot_bf16 = bf16_dot_path(*targets[0].W, M);
  if (dot_bf16) {
    xb = round_rows_to_bf16(xa, lda, M, K);
  } else if (tr.prep) {
    prepared = Tensor::empty({M, K});
    float* pp = prepared.data<float>();
    for (int64_t m = 0; m < M; ++m) tr.prep(xa + m * lda, K, pp + m * K);
    xa = pp;
    lda = K;
  }
  int64_t start[kMax + 1] = {0};
  for (size_t i = 0; i < targets.size(); ++i) start[i + 1] = start[i] + targets[i].W->dim(0);
  parallel_for(start[targets.size()], 64, [&](int64_t r0, int64_t r1) {
    for (size_t i = 0; i < targets.size(); ++i) {
      const int64_t a = std::max(r0, start[i]) - start[i], b = std::min(r1, start[i + 1]) - start[i];
      if (a >= b) continue;
      const Tensor& W = *targets[i].W;
      if (dot_bf16)
        kernels().gemv_bf16_dp(static_cast<const uint16_t*>(W.raw()), W.row_stride(), K, a, b,
                               static_cast<const uint16_t*>(xb.raw()), M, K, targets[i].y->data<float>(),
                               targets[i].y->row_stride());
      else
        tr.gemv(W.raw(), static_cast<int64_t>(dtype_bytes(W.dtype(), W.row_stride())), K, a, b, xa, M, lda,
                targets[i].y->data<float>(), targets[i].y->row_stride());
    }
  });
  const KernelTable& k = kernels();
  for (const LinearTarget& t : targets)
    if (t.b && t.b->defined() && t.b->numel() > 0) {
      float* yp = t.y->data<float>();
      const int64_t ldy = t.y->row_stride(), N = t.W->dim(0);
      for (int64_t m = 0; m < M; ++m) k.add(yp + m * ldy, t.b->data<float>(), yp + m * ldy, N);
    }
}

void CpuBackend::linear_backward(const Tensor& dy, const Tensor& x, const Tensor& W, Tensor* dx, Tensor* dW,
                                 Tensor* db) {
  const int64_t M = dy.dim(0), N = dy.dim(1), K = W.dim(1);
  const float* d = dy.data<float>();
  const int64_t ldd = dy.row_stride();
  if (M == 0) return;
  const bool big = M > kGemvMaxRows;  // tiles pay off for many rows only
  if (dx) {                           // dx[m, k] += sum_n dy[m, n] W[n, k]: A = W^T
    const int64_t done =
        big ? amx_product(M, K, N, {d, ldd, false, DType::F32}, {W.raw(), W.row_stride(), true, W.dtype()},
                          dx->data<float>(), dx->row_stride(), true)
            : 0;
    if (done == 0) {
      sgemm_dx(dy, W, *dx);
    } else if (done < K) {
      Tensor rest = dx->slice_cols(done, K);
      sgemm_dx(dy, W.slice_cols(done, K), rest);
    }
  }
  if (dW) {  // dW[n, k] += sum_m dy[m, n] x[m, k]: B = dy^T, A = x^T
    if (W.dtype() != DType::F32 || dW->dtype() != DType::F32) [[unlikely]]
      throw Error("linear: a trained weight must be f32 (master weights)");
    const int64_t done =
        big ? amx_product(N, K, M, {d, ldd, true, DType::F32}, {x.data<float>(), x.row_stride(), true, DType::F32},
                          dW->data<float>(), dW->row_stride(), true)
            : 0;
    if (done < K) {
      Tensor rest = dW->slice_cols(done, K);
      sgemm_dw(dy, x.slice_cols(done, K), rest);
    }
  }
  if (db) {
    float* g = db->data<float>();
    const KernelTable& k = kernels();
    for (int64_t m = 0; m < M; ++m) k.add(g, d + m * ldd, g, N);
  }
}

}  // namespace yak::ops::cpu
