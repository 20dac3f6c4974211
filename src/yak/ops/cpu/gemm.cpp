// Matrix products of the CPU backend. Few rows (decode) stream each weight row once through the
// weight type's dot kernel; many rows (prefill, training) run OpenBLAS sgemm, converting 16-bit
// weights to f32 one tile of rows at a time so no f32 copy of a weight ever exists, forward or
// backward.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "yak/base/error.h"
#include "yak/ops/cpu/cpu_backend.h"
#include "yak/ops/cpu/kernels.h"
#include "yak/ops/cpu/thread_pool.h"
#include "yak/ops/cpu/type_traits.h"

namespace yak::ops::cpu {
namespace {

// Rows at or below this count take the streaming (GEMV) path.
constexpr int64_t kGemvMaxRows = 8;

const CpuTypeTraits& weight_traits(const Tensor& W) {
  const CpuTypeTraits* t = cpu_traits(W.dtype());
  if (!t)
    throw Error(std::string("linear: weights of dtype ") + dtype_name(W.dtype()) + " are not supported on the CPU");
  return *t;
}

// Rows of W converted to f32 in tiles of about 4 MiB: fn(n0, nb, tile) for each.
template <typename F>
void for_f32_tiles(const Tensor& W, F&& fn) {
  const int64_t N = W.dim(0), K = W.dim(1);
  const CpuTypeTraits& tr = weight_traits(W);
  const int64_t tile = std::max<int64_t>(64, std::min<int64_t>(N, (int64_t{1} << 20) / std::max<int64_t>(K, 1)));
  thread_local std::vector<float> buf;
  if (buf.size() < static_cast<size_t>(tile * K)) buf.resize(static_cast<size_t>(tile * K));
  const auto* base = static_cast<const uint8_t*>(W.raw());
  const size_t row_bytes = dtype_bytes(W.dtype(), W.row_stride());
  for (int64_t n0 = 0; n0 < N; n0 += tile) {
    const int64_t nb = std::min(tile, N - n0);
    float* dst = buf.data();
    parallel_for(nb, 16, [&](int64_t a, int64_t b) {
      for (int64_t r = a; r < b; ++r) tr.to_f32(base + (n0 + r) * row_bytes, dst + r * K, K);
    });
    fn(n0, nb, static_cast<const float*>(buf.data()));
  }
}

}  // namespace

void CpuBackend::linear(const Tensor& x, const Tensor& W, const Tensor* b, Tensor& y) {
  const int64_t M = x.dim(0), K = x.dim(1), N = W.dim(0);
  const int64_t ldx = x.row_stride(), ldy = y.row_stride();
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  if (M > 0) {
    if (M <= kGemvMaxRows) {
      const CpuTypeTraits& tr = weight_traits(W);
      const void* wp = W.raw();
      const int64_t ldw = static_cast<int64_t>(dtype_bytes(W.dtype(), W.row_stride()));
      parallel_for(N, 64, [&](int64_t r0, int64_t r1) { tr.gemv(wp, ldw, K, r0, r1, xp, M, ldx, yp, ldy); });
    } else if (W.dtype() == DType::F32) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, xp, ldx, W.data<float>(), W.row_stride(),
                  0.0f, yp, ldy);
    } else {
      for_f32_tiles(W, [&](int64_t n0, int64_t nb, const float* tile) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nb, K, 1.0f, xp, ldx, tile, K, 0.0f, yp + n0, ldy);
      });
    }
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
  if (dx) {
    float* gx = dx->data<float>();
    const int64_t ldgx = dx->row_stride();
    if (W.dtype() == DType::F32) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, d, ldd, W.data<float>(), W.row_stride(),
                  1.0f, gx, ldgx);
    } else {  // 16-bit frozen weights (LoRA bases): tiles of rows, never a whole f32 copy
      for_f32_tiles(W, [&](int64_t n0, int64_t nb, const float* tile) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, nb, 1.0f, d + n0, ldd, tile, K, 1.0f, gx, ldgx);
      });
    }
  }
  if (dW) {
    if (!(W.dtype() == DType::F32 && dW->dtype() == DType::F32)) [[unlikely]]
      throw Error("linear: a trained weight must be f32 (master weights)");
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, d, ldd, x.data<float>(), x.row_stride(), 1.0f,
                dW->data<float>(), dW->row_stride());
  }
  if (db) {
    float* g = db->data<float>();
    const KernelTable& k = kernels();
    for (int64_t m = 0; m < M; ++m) k.add(g, d + m * ldd, g, N);
  }
}

}  // namespace yak::ops::cpu
