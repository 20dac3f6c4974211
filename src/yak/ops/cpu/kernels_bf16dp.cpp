// bf16 x bf16 matrix-vector products on AVX512_BF16 (vdpbf16ps: 32 products a instruction, summed
// in f32), the only file built with -mavx512bf16. Used at --matmul-precision medium, where the
// activations are rounded to bf16 once (as on AMX tiles); two weight rows share each activation
// vector, four activation rows each weight vector.
#include <cstdint>

#include "yak/ops/cpu/kernels.h"

#if defined(YAK_HAVE_BF16DP)
#include <immintrin.h>

namespace yak::ops::cpu::bf16dp {
namespace {

float bf16_value(uint16_t v) {
  const uint32_t b = static_cast<uint32_t>(v) << 16;
  float f;
  __builtin_memcpy(&f, &b, 4);
  return f;
}

__m512bh load_bh(const uint16_t* p) {
  return (__m512bh)_mm512_loadu_si512(p);
}

// Rows w0 and w1 (w1 may equal w0) against up to 4 activation rows.
void block(const uint16_t* w0, const uint16_t* w1, const uint16_t* x, int64_t ldx, int m, int64_t K, float* o0,
           float* o1) {
  __m512 a0[4], a1[4];
  for (int k = 0; k < 4; ++k) a0[k] = a1[k] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= K; i += 32) {
    _mm_prefetch(reinterpret_cast<const char*>(w0 + i + 512), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(w1 + i + 512), _MM_HINT_T0);
    const __m512bh v0 = load_bh(w0 + i), v1 = load_bh(w1 + i);
    for (int k = 0; k < m; ++k) {
      const __m512bh xv = load_bh(x + k * ldx + i);
      a0[k] = _mm512_dpbf16_ps(a0[k], v0, xv);
      a1[k] = _mm512_dpbf16_ps(a1[k], v1, xv);
    }
  }
  for (int k = 0; k < m; ++k) {
    float s0 = _mm512_reduce_add_ps(a0[k]), s1 = _mm512_reduce_add_ps(a1[k]);
    for (int64_t j = i; j < K; ++j) {
      const float xv = bf16_value(x[k * ldx + j]);
      s0 += bf16_value(w0[j]) * xv;
      s1 += bf16_value(w1[j]) * xv;
    }
    o0[k] = s0;
    o1[k] = s1;
  }
}

void gemv(const uint16_t* W, int64_t ldw, int64_t K, int64_t r0, int64_t r1, const uint16_t* x, int64_t M,
          int64_t ldx, float* y, int64_t ldy) {
  for (int64_t r = r0; r < r1; r += 2) {
    const bool pair = r + 1 < r1;
    const uint16_t* w0 = W + r * ldw;
    const uint16_t* w1 = pair ? w0 + ldw : w0;
    for (int64_t m0 = 0; m0 < M; m0 += 4) {
      const int m = static_cast<int>(M - m0 < 4 ? M - m0 : 4);
      float o0[4], o1[4];
      block(w0, w1, x + m0 * ldx, ldx, m, K, o0, o1);
      for (int k = 0; k < m; ++k) {
        y[(m0 + k) * ldy + r] = o0[k];
        if (pair) y[(m0 + k) * ldy + r + 1] = o1[k];
      }
    }
  }
}

}  // namespace
}  // namespace yak::ops::cpu::bf16dp

namespace yak::ops::cpu {
void use_bf16dp_kernels(KernelTable& t) {
  if (cpu_features().avx512_bf16) t.gemv_bf16_dp = bf16dp::gemv;
}
}  // namespace yak::ops::cpu
#else
namespace yak::ops::cpu {
void use_bf16dp_kernels(KernelTable&) {}
}  // namespace yak::ops::cpu
#endif
