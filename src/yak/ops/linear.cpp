#include "yak/ops/linear.h"

#include <cblas.h>

#include <algorithm>
#include <vector>

#include "yak/base/error.h"
#include "yak/base/thread_pool.h"
#include "yak/ops/cpu/kernels.h"

namespace yak::ops {

void linear(const float* x, int64_t M, const Tensor& W, const Tensor* bias, float* y, int64_t ldy) {
  check(W.ndim() == 2, "linear: weight must be 2-D, got " + shape_str(W.shape()));
  const int64_t N = W.dim(0), K = W.dim(1);
  if (ldy == 0) ldy = N;
  if (M <= 0) return;
  if (M <= kGemvMaxRows) {
    parallel_for(N, 64,
                 [&](int64_t r0, int64_t r1) { cpu::gemv_rows(W.dtype(), W.raw(), K, r0, r1, x, M, K, y, ldy); });
  } else if (W.dtype() == DType::F32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, W.data<float>(), K, 0.0f, y, ldy);
  } else {
    // Tiles of weight rows converted to f32, then one sgemm per tile.
    const int64_t tile = std::max<int64_t>(64, std::min<int64_t>(N, (1 << 20) / std::max<int64_t>(K, 1)));
    std::vector<float> buf(static_cast<size_t>(tile * K));
    for (int64_t n0 = 0; n0 < N; n0 += tile) {
      int64_t nb = std::min(tile, N - n0);
      parallel_for(nb, 16, [&](int64_t a, int64_t b) {
        cpu::rows_to_f32(W.dtype(), W.raw(), K, n0 + a, n0 + b, buf.data() + a * K);
      });
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, nb, K, 1.0f, x, K, buf.data(), K, 0.0f, y + n0, ldy);
    }
  }
  if (bias && bias->defined() && bias->numel() > 0) {
    const float* b = bias->data<float>();
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) y[m * ldy + n] += b[n];
  }
}

}  // namespace yak::ops
