// Matrix products on Intel AMX tiles for bf16 weights (this file alone is compiled with
// -mamx-tile -mamx-bf16; CMake sets them on x86-64). The weights are read by the tile loads
// straight from their row-major storage (rows of W are the tiles' rows), so nothing is repacked;
// the activations are split into three bf16 parts (hi + lo + lo2 carry all 24 bits of an f32) and
// packed in the pair layout the tile product reads, so the result has f32 accuracy: every product
// of a bf16 weight with a bf16 part is exact and the tile unit accumulates in f32.
//   y^T[n, m] = sum over parts p, k of W[n, k] x_p[m, k]
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
constexpr int kParts = 3;

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

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

// Packs rows [m0, m0 + 16) of x (zero past M) for every k block: for part p, block kb, the 16 x 64
// bytes at out + ((p * kblocks + kb) * 16 * 16) dwords hold, in row k2 and column m, the pair
// (x_p[m, kb*32 + 2 k2], x_p[m, kb*32 + 2 k2 + 1]). Each row's 32 values of a block become 16
// pairs per part (AVX512-BF16 rounds to nearest even); a register transpose makes them columns.
void pack_activations(const float* x, int64_t ldx, int64_t M, int64_t m0, int64_t K, uint32_t* out) {
  const int64_t kblocks = K / kKBlock;
  const size_t part_stride = static_cast<size_t>(kblocks) * kRows * kPairs;
  for (int64_t kb = 0; kb < kblocks; ++kb) {
    __m512 lo[kRows], hi[kRows];
    for (int m = 0; m < kRows; ++m) {
      const bool live = m0 + m < M;
      const float* row = x + (m0 + m) * ldx + kb * kKBlock;
      lo[m] = live ? _mm512_loadu_ps(row) : _mm512_setzero_ps();
      hi[m] = live ? _mm512_loadu_ps(row + 16) : _mm512_setzero_ps();
    }
    for (int p = 0; p < kParts; ++p) {
      __m512i pairs[kRows];
      for (int m = 0; m < kRows; ++m) {
        const __m512bh h = _mm512_cvtne2ps_pbh(hi[m], lo[m]);  // 32 bf16 in order: 16 pairs
        pairs[m] = reinterpret_cast<const __m512i&>(h);
        // the remainders x - widen(bf16(x)), exact in f32, are the next part
        lo[m] = _mm512_sub_ps(
            lo[m], _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(pairs[m])), 16)));
        hi[m] = _mm512_sub_ps(hi[m], _mm512_castsi512_ps(_mm512_slli_epi32(
                                         _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(pairs[m], 1)), 16)));
      }
      transpose16(pairs);  // pairs[k2] = the pair k2 of every row m
      uint32_t* dst = out + p * part_stride + static_cast<size_t>(kb) * kRows * kPairs;
      for (int k2 = 0; k2 < kRows; ++k2) _mm512_storeu_si512(dst + k2 * kPairs, pairs[k2]);
    }
  }
}

bool request_tiles() {
  constexpr long kReqPerm = 0x1023, kXtileData = 18;  // ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA
  return syscall(SYS_arch_prctl, kReqPerm, kXtileData) == 0;
}

}  // namespace

// y[m, n] = x[m, :] . W[n, :] for n in [n0, n1) (n1 - n0 a multiple of 32), every m < M; K a
// multiple of 32. `packed` holds the activations as pack_all wrote them.
void amx_block(const uint32_t* packed, int64_t M, int64_t K, const uint16_t* W, int64_t ldw, int64_t n0, int64_t n1,
               float* y, int64_t ldy) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = kRows;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  const int64_t kblocks = K / kKBlock, mblocks = (M + kRows - 1) / kRows;
  const size_t part_stride = static_cast<size_t>(kblocks) * kRows * kPairs;
  const size_t mblock_stride = kParts * part_stride;
  alignas(64) float ct[kRows * kRows];
  // Chunks of m-blocks whose packed activations (3 parts) stay in L2 (~1 MiB) while every block
  // of 32 weight rows streams past them.
  const int64_t chunk = std::max<int64_t>(2, ((int64_t{1} << 20) / (kParts * K * 2 * kRows)) / 2 * 2);
  for (int64_t mc = 0; mc < mblocks; mc += chunk)
    for (int64_t n = n0; n < n1; n += 2 * kRows) {
      const uint16_t* w0 = W + n * ldw;
      const uint16_t* w1 = W + (n + kRows) * ldw;
      for (int64_t mb = mc; mb < std::min(mblocks, mc + chunk); mb += 2) {
        const bool two = mb + 1 < mblocks;
        const uint32_t* b0 = packed + mb * mblock_stride;
        const uint32_t* b1 = two ? packed + (mb + 1) * mblock_stride : b0;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t kb = 0; kb < kblocks; ++kb) {
          // tiles 4, 5: 16 weight rows x 32 k, read in place
          _tile_loadd(4, w0 + kb * kKBlock, ldw * 2);
          _tile_loadd(5, w1 + kb * kKBlock, ldw * 2);
          for (int p = 0; p < kParts; ++p) {
            const size_t off = p * part_stride + static_cast<size_t>(kb) * kRows * kPairs;
            _tile_loadd(6, b0 + off, 64);
            _tile_loadd(7, b1 + off, 64);
            _tile_dpbf16ps(0, 4, 6);  // rows n..n+15,    m block mb
            _tile_dpbf16ps(1, 4, 7);  // rows n..n+15,    m block mb+1
            _tile_dpbf16ps(2, 5, 6);  // rows n+16..n+31, m block mb
            _tile_dpbf16ps(3, 5, 7);
          }
        }
        // C^T tiles (16 n x 16 m) back into y (rows m)
        auto store = [&](int tile, int64_t nb, int64_t m_first) {
          switch (tile) {
            case 0:
              _tile_stored(0, ct, 64);
              break;
            case 1:
              _tile_stored(1, ct, 64);
              break;
            case 2:
              _tile_stored(2, ct, 64);
              break;
            default:
              _tile_stored(3, ct, 64);
              break;
          }
          for (int m = 0; m < kRows && m_first + m < M; ++m) {
            float* dst = y + (m_first + m) * ldy + nb;
            __m512 v = _mm512_i32gather_ps(
                _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240), ct + m, 4);
            _mm512_storeu_ps(dst, v);
          }
        };
        store(0, n, mb * kRows);
        store(2, n + kRows, mb * kRows);
        if (two) {
          store(1, n, (mb + 1) * kRows);
          store(3, n + kRows, (mb + 1) * kRows);
        }
      }
    }
  _tile_release();
}

void pack_all(const float* x, int64_t ldx, int64_t M, int64_t K, uint32_t* packed) {
  const int64_t kblocks = K / kKBlock, mblocks = (M + kRows - 1) / kRows;
  const size_t mblock_stride = static_cast<size_t>(kParts) * kblocks * kRows * kPairs;
  for (int64_t mb = 0; mb < mblocks; ++mb) pack_activations(x, ldx, M, mb * kRows, K, packed + mb * mblock_stride);
}

int64_t packed_dwords(int64_t M, int64_t K) {
  return ((M + kRows - 1) / kRows) * kParts * (K / kKBlock) * kRows * kPairs;
}

float probe(int64_t iters) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = kRows;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
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
  static const AmxKernels k = {amx::pack_all, amx::packed_dwords, amx::amx_block, amx::probe, amx::kParts};
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
