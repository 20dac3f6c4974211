// Matrix products on Intel AMX tiles (this file alone is compiled with -mamx-tile -mamx-bf16
// -mavx512bf16; CMake sets them on x86-64). A tile product multiplies bf16 pairs exactly and
// accumulates in f32, so splitting an f32 value into bf16 parts (hi + lo + lo2 carry all 24 bits)
// and summing the products of the parts gives f32 accuracy:
//   out[m, n] = sum over combos (a, b), k of A_a[n, k] * B_b[m, k]
// The "A" side is rows of a weight-like matrix (bf16 weights are read in place; f32 ones, or
// transposed views, are split into parts first); the "B" side is packed in the pair layout the
// tile product reads. Products of the parts whose weight is below f32's rounding are skipped.
#include "yak/ops/cpu/kernels.h"

#if defined(__x86_64__) && defined(YAK_HAVE_AMX)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace yak::ops::cpu::amx {
namespace {

constexpr int kRows = 16;        // tile rows
constexpr int kPairs = 16;       // bf16 pairs (dwords) per tile row
constexpr int64_t kKBlock = 32;  // k per tile product

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

void configure() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = kRows;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

// 16 x 16 dwords: r[i] becomes column i.
inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_i32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_i32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    r[i + 4] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_i32x4(t[i + 4], t[i + 12], 0xdd);
  }
}

// Widens 32 bf16 (in order) back to two f32 vectors.
inline void widen(__m512i h, __m512& lo, __m512& hi) {
  lo = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)), 16));
  hi = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)), 16));
}

// 32 consecutive values from column k of row r of the source (element (r, k) at src[r * ld + k],
// or src[k * ld + r] when transposed), zero past `rows` rows and `cols` columns.
inline __mmask16 first(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1);
}
inline void load32(const float* src, int64_t ld, bool transposed, int64_t r, int64_t rows, int64_t k, int64_t cols,
                   __m512& lo, __m512& hi) {
  const __mmask16 m0 = first(cols - k), m1 = first(cols - k - 16);
  if (r >= rows) {
    lo = hi = _mm512_setzero_ps();
  } else if (!transposed) {
    lo = _mm512_maskz_loadu_ps(m0, src + r * ld + k);
    hi = _mm512_maskz_loadu_ps(m1, src + r * ld + k + 16);
  } else {
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(static_cast<int>(ld)));
    lo = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m0, idx, src + k * ld + r, 4);
    hi = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m1, idx, src + (k + 16) * ld + r, 4);
  }
}
inline int64_t round32(int64_t k) {
  return (k + kKBlock - 1) / kKBlock * kKBlock;
}

// B side: rows [m0, m0 + 16) for every k block; part p, block kb at out + ((p * kblocks + kb) *
// 16 * 16) dwords: row k2, column m = the pair (x_p[m, kb*32 + 2 k2], x_p[m, kb*32 + 2 k2 + 1]).
void pack_b_block(const float* x, int64_t ldx, bool transposed, int64_t M, int64_t m0, int64_t K, int parts,
                  uint32_t* out) {
  const int64_t kblocks = round32(K) / kKBlock;
  const size_t part_stride = static_cast<size_t>(kblocks) * kRows * kPairs;
  for (int64_t kb = 0; kb < kblocks; ++kb) {
    __m512 lo[kRows], hi[kRows];
    for (int m = 0; m < kRows; ++m) load32(x, ldx, transposed, m0 + m, M, kb * kKBlock, K, lo[m], hi[m]);
    for (int p = 0; p < parts; ++p) {
      __m512i pairs[kRows];
      for (int m = 0; m < kRows; ++m) {
        const __m512bh h = _mm512_cvtne2ps_pbh(hi[m], lo[m]);  // round to nearest even, in order
        pairs[m] = reinterpret_cast<const __m512i&>(h);
        __m512 wl, wh;
        widen(pairs[m], wl, wh);
        lo[m] = _mm512_sub_ps(lo[m], wl);  // the remainders (exact in f32) make the next part
        hi[m] = _mm512_sub_ps(hi[m], wh);
      }
      transpose16(pairs);
      uint32_t* dst = out + p * part_stride + static_cast<size_t>(kb) * kRows * kPairs;
      for (int k2 = 0; k2 < kRows; ++k2) _mm512_storeu_si512(dst + k2 * kPairs, pairs[k2]);
    }
  }
}

void pack_b(const float* x, int64_t ldx, bool transposed, int64_t M, int64_t K, int parts, uint32_t* packed) {
  const int64_t kblocks = round32(K) / kKBlock, mblocks = (M + kRows - 1) / kRows;
  const size_t mblock_stride = static_cast<size_t>(parts) * kblocks * kRows * kPairs;
  for (int64_t mb = 0; mb < mblocks; ++mb)
    pack_b_block(x, ldx, transposed, M, mb * kRows, K, parts, packed + mb * mblock_stride);
}

int64_t packed_b_dwords(int64_t M, int64_t K, int parts) {
  return ((M + kRows - 1) / kRows) * parts * (round32(K) / kKBlock) * kRows * kPairs;
}

// A side from f32: rows [r0, r1) of the N x K matrix (row r, column k at src[r * ld + k], or
// src[k * ld + r] when transposed) as `parts` bf16 matrices out + p * N * K, row-major.
void pack_a(const float* src, int64_t ld, bool transposed, int64_t N, int64_t K, int64_t r0, int64_t r1, int parts,
            uint16_t* out) {
  const int64_t Kp = round32(K);
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t k = 0; k < Kp; k += kKBlock) {
      __m512 lo, hi;
      load32(src, ld, transposed, r, N, k, K, lo, hi);
      for (int p = 0; p < parts; ++p) {
        const __m512bh h = _mm512_cvtne2ps_pbh(hi, lo);
        const __m512i hv = reinterpret_cast<const __m512i&>(h);
        _mm512_storeu_si512(out + static_cast<size_t>(p) * N * Kp + r * Kp + k, hv);
        __m512 wl, wh;
        widen(hv, wl, wh);
        lo = _mm512_sub_ps(lo, wl);
        hi = _mm512_sub_ps(hi, wh);
      }
    }
}

bool request_tiles() {
  constexpr long kReqPerm = 0x1023, kXtileData = 18;  // ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA
  return syscall(SYS_arch_prctl, kReqPerm, kXtileData) == 0;
}

// The tile intrinsics take the register number as a literal.
void store_tile(int t, float* buf) {
  switch (t) {
    case 0:
      _tile_stored(0, buf, 64);
      break;
    case 1:
      _tile_stored(1, buf, 64);
      break;
    case 2:
      _tile_stored(2, buf, 64);
      break;
    default:
      _tile_stored(3, buf, 64);
      break;
  }
}

}  // namespace

// out[m, n] (= or +=) the combos' products, for A rows n in [n0, n1) (a multiple of 32 apart).
void block(const AmxProduct& g, int64_t n0, int64_t n1) {
  configure();
  const int64_t kblocks = round32(g.K) / kKBlock, mblocks = (g.M + kRows - 1) / kRows;
  const size_t part_stride = static_cast<size_t>(kblocks) * kRows * kPairs;
  const size_t mblock_stride = g.b_parts * part_stride;
  alignas(64) float ct[kRows * kRows];
  // Chunks of m-blocks whose packed B (all parts) stay in L2 (~1 MiB) while the 32-row blocks of
  // A stream past them.
  const int64_t chunk = std::max<int64_t>(2, ((int64_t{1} << 20) / (g.b_parts * round32(g.K) * 2 * kRows)) / 2 * 2);
  for (int64_t mc = 0; mc < mblocks; mc += chunk)
    for (int64_t n = n0; n < n1; n += 2 * kRows) {
      for (int64_t mb = mc; mb < std::min(mblocks, mc + chunk); mb += 2) {
        const bool two = mb + 1 < mblocks;
        const uint32_t* b0 = g.b + mb * mblock_stride;
        const uint32_t* b1 = two ? g.b + (mb + 1) * mblock_stride : b0;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t kb = 0; kb < kblocks; ++kb)
          for (int a = 0; a < g.a_parts; ++a) {
            // tiles 4, 5: 32 rows of A part a, 32 k
            const uint16_t* ap = g.a[a] + n * g.lda + kb * kKBlock;
            _tile_loadd(4, ap, g.lda * 2);
            _tile_loadd(5, ap + kRows * g.lda, g.lda * 2);
            for (int b = 0; b < g.b_parts; ++b) {
              if (!(g.combos[a] & (1u << b))) continue;
              const size_t off = b * part_stride + static_cast<size_t>(kb) * kRows * kPairs;
              _tile_loadd(6, b0 + off, 64);
              _tile_loadd(7, b1 + off, 64);
              _tile_dpbf16ps(0, 4, 6);
              _tile_dpbf16ps(1, 4, 7);
              _tile_dpbf16ps(2, 5, 6);
              _tile_dpbf16ps(3, 5, 7);
            }
          }
        // Tiles hold out^T (16 n x 16 m): transposed back into rows m of out.
        auto put = [&](int64_t nb, int64_t m_first) {
          const __m512i col = _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240);
          for (int m = 0; m < kRows && m_first + m < g.M; ++m) {
            float* dst = g.out + (m_first + m) * g.ldo + nb;
            __m512 v = _mm512_i32gather_ps(col, ct + m, 4);
            if (g.accumulate) v = _mm512_add_ps(v, _mm512_loadu_ps(dst));
            _mm512_storeu_ps(dst, v);
          }
        };
        store_tile(0, ct);
        put(n, mb * kRows);
        store_tile(2, ct);
        put(n + kRows, mb * kRows);
        if (two) {
          store_tile(1, ct);
          put(n, (mb + 1) * kRows);
          store_tile(3, ct);
          put(n + kRows, (mb + 1) * kRows);
        }
      }
    }
  _tile_release();
}

float probe(int64_t iters) {
  configure();
  // non-zero operands (the unit may be faster on zeros), small enough never to overflow
  alignas(64) uint16_t a[kRows * 32];
  for (auto& v : a) v = 0x3586;  // about 1e-6 in bf16
  alignas(64) float c[kRows * kRows];
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, a, 64);
  _tile_loadd(5, a, 64);
  _tile_loadd(6, a, 64);
  _tile_loadd(7, a, 64);
  for (int64_t i = 0; i < iters; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, 64);
  _tile_release();
  return c[0];
}

bool usable() {
  static const bool ok = cpu_features().amx_bf16 && cpu_features().avx512_bf16 && request_tiles();
  return ok;
}

}  // namespace yak::ops::cpu::amx

namespace yak::ops::cpu {
const AmxKernels* amx_kernels() {
  static const AmxKernels k = {amx::pack_b, amx::packed_b_dwords, amx::pack_a, amx::block, amx::probe};
  return amx::usable() ? &k : nullptr;
}
}  // namespace yak::ops::cpu
#else
namespace yak::ops::cpu {
const AmxKernels* amx_kernels() {
  return nullptr;
}
}  // namespace yak::ops::cpu
#endif
