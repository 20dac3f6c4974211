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

namespace yak::ops::cpu {
namespace {

// Rows at or below this count take the streaming (GEMV) path.
constexpr int64_t kGemvMaxRows = 8;
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

void gemv(const Tensor& x, const Tensor& W, Tensor& y) {
  const int64_t M = x.dim(0), K = x.dim(1), N = W.dim(0);
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

// bf16 weights on AMX tiles: the activations split into three bf16 parts (f32 accuracy) and
// packed once, then blocks of 32 weight rows per thread, the weights read in place. Rows past the
// last multiple of 32 go through the sgemm path. False when AMX cannot take this product.
bool linear_amx(const Tensor& x, const Tensor& W, Tensor& y) {
  const AmxKernels* amx = kernels().amx;
  const int64_t M = x.dim(0), K = x.dim(1), N = W.dim(0);
  if (!amx || W.dtype() != DType::BF16 || K % 32 != 0 || N < 32) return false;
  Tensor packed = Tensor::empty({amx->packed_dwords(M, K)}, DType::I32);
  auto* pp = static_cast<uint32_t*>(packed.raw());
  amx->pack(x.data<float>(), x.row_stride(), M, K, pp);
  const uint16_t* w = W.data<uint16_t>();
  const int64_t ldw = W.row_stride(), blocks = N / 32;
  float* yp = y.data<float>();
  const int64_t ldy = y.row_stride();
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) { amx->block(pp, M, K, w, ldw, b0 * 32, b1 * 32, yp, ldy); });
  if (blocks * 32 < N) {
    Tensor rest = y.slice_cols(blocks * 32, N);
    CpuBackend().linear(x, W.slice_rows(blocks * 32, N), nullptr, rest);
  }
  return true;
}

}  // namespace

void CpuBackend::linear(const Tensor& x, const Tensor& W, const Tensor* b, Tensor& y) {
  const int64_t M = x.dim(0), K = x.dim(1), N = W.dim(0);
  float* yp = y.data<float>();
  const int64_t ldy = y.row_stride();
  if (M > 0 && M <= kGemvMaxRows) {
    gemv(x, W, y);
  } else if (M > 0 && linear_amx(x, W, y)) {
    // done on tiles
  } else if (M > 0) {
    const float* xp = x.data<float>();
    const int64_t ldx = x.row_stride();
    const WeightView w = view_of(W);
    const int64_t tile = std::clamp<int64_t>(kTileFloats / std::max<int64_t>(K, 1), 16, std::max<int64_t>(N, 16));
    const size_t scratch = w.f32 ? 0 : static_cast<size_t>(tile * K) * sizeof(float);
    // y[:, n0:n1] = x W[n0:n1]^T per thread
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
  if (b && b->defined() && b->numel() > 0) {
    const float* bp = b->data<float>();
    const KernelTable& k = kernels();
    for (int64_t m = 0; m < M; ++m) k.add(yp + m * ldy, bp, yp + m * ldy, N);
  }
}

void CpuBackend::linear_backward(const Tensor& dy, const Tensor& x, const Tensor& W, Tensor* dx, Tensor* dW,
                                 Tensor* db) {
  const int64_t M = dy.dim(0), N = dy.dim(1), K = W.dim(1);
  const float* d = dy.data<float>();
  const int64_t ldd = dy.row_stride();
  if (M == 0) return;
  if (dx) {  // dx[:, k0:k1] += dy W[:, k0:k1] per thread
    float* gx = dx->data<float>();
    const int64_t ldgx = dx->row_stride();
    const WeightView w = view_of(W);
    const int64_t kc_max = split_grain(K);
    const int64_t tile = std::clamp<int64_t>(kTileFloats / kc_max, 16, std::max<int64_t>(N, 16));
    const size_t scratch = w.f32 ? 0 : static_cast<size_t>(tile * (kc_max + 16)) * sizeof(float);
    parallel_for_scratch(K, kc_max, scratch, [&](int64_t k0, int64_t k1, void* s) {
      const int64_t kc = k1 - k0;
      if (w.f32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, kc, N, 1.0f, d, ldd, w.row_f32(0) + k0,
                    W.row_stride(), 1.0f, gx + k0, ldgx);
        return;
      }
      // 16-bit frozen weights (LoRA bases): tiles of rows x this thread's columns, never a whole f32 copy
      float* buf = static_cast<float*>(s);
      for (int64_t n0 = 0; n0 < N; n0 += tile) {
        const int64_t nb = std::min(tile, N - n0);
        for (int64_t r = 0; r < nb; ++r) {
          const size_t elem = dtype_bytes(W.dtype(), 1);
          w.tr->to_f32(static_cast<const uint8_t*>(w.row(n0 + r)) + k0 * elem, buf + r * kc, kc);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, kc, nb, 1.0f, d + n0, ldd, buf, kc, 1.0f, gx + k0,
                    ldgx);
      }
    });
  }
  if (dW) {  // dW[n0:n1] += dy[:, n0:n1]^T x per thread
    if (W.dtype() != DType::F32 || dW->dtype() != DType::F32) [[unlikely]]
      throw Error("linear: a trained weight must be f32 (master weights)");
    const float* xp = x.data<float>();
    const int64_t ldx = x.row_stride();
    float* g = dW->data<float>();
    const int64_t ldg = dW->row_stride();
    parallel_for(N, split_grain(N), [&](int64_t n0, int64_t n1) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n1 - n0, K, M, 1.0f, d + n0, ldd, xp, ldx, 1.0f,
                  g + n0 * ldg, ldg);
    });
  }
  if (db) {
    float* g = db->data<float>();
    const KernelTable& k = kernels();
    for (int64_t m = 0; m < M; ++m) k.add(g, d + m * ldd, g, N);
  }
}

}  // namespace yak::ops::cpu
