// ggml's block formats: the byte layouts llama.cpp's GGUF files hold, and the reference
// quantizers and dequantizers, equal to ggml's bit for bit (the quantizers without an importance
// matrix, as `llama-quantize` runs when given none). These are the scalar definitions every
// kernel is checked against; dtype_info() exposes them as the rows' to_float / from_float.
//
// Blocks of 32 ("legacy" formats) hold one f16 scale d (and a min m for the _1 kinds) and 32
// 4/5/8-bit integers; super-blocks of 256 ("K" formats) hold 8 or 16 sub-blocks whose scales are
// themselves quantized to 4/6/8 bits against one f16 super-scale. Values: x = d * q (Q8_0, Q4_0,
// Q5_0, Q3_K, Q6_K) or x = d * q - m (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K). Q8_K (f32 scale and block
// sums) and Q8_1 exist as the activation side of dot products only.
#pragma once
#include <cstdint>

namespace yak::quant {

constexpr int kBlock = 32;   // elements per legacy block
constexpr int kSuper = 256;  // elements per K super-block

struct BlockQ8_0 {
  uint16_t d;  // f16
  int8_t qs[32];
};
struct BlockQ8_1 {
  uint16_t d, s;  // f16 scale and f16 (d * sum of qs)
  int8_t qs[32];
};
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];  // element j in the low nibble of byte j, element j + 16 in the high one
};
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[16];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];  // fifth bits: bit j of the little-endian u32 belongs to element j
  uint8_t qs[16];
};
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[16];
};
struct BlockQ2_K {
  uint8_t scales[16];  // per 16 elements: low nibble scale, high nibble min
  uint8_t qs[64];
  uint16_t d, dmin;
};
struct BlockQ3_K {
  uint8_t hmask[32];   // third bits
  uint8_t qs[64];      // low two bits
  uint8_t scales[12];  // sixteen 6-bit signed scales (offset 32)
  uint16_t d;
};
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];  // eight 6-bit scales and eight 6-bit mins
  uint8_t qs[128];
};
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};
struct BlockQ6_K {
  uint8_t ql[128];  // low four bits
  uint8_t qh[64];   // high two bits
  int8_t scales[16];
  uint16_t d;
};
struct BlockQ8_K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];  // sums of each 16 qs
};

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36 && sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292);

// Row conversions over n elements (n a multiple of the type's block). `quantize_*` write n /
// block blocks; `dequantize_*` read them.
void quantize_q8_0(const float* x, void* out, int64_t n);
void quantize_q8_1(const float* x, void* out, int64_t n);
void quantize_q4_0(const float* x, void* out, int64_t n);
void quantize_q4_1(const float* x, void* out, int64_t n);
void quantize_q5_0(const float* x, void* out, int64_t n);
void quantize_q5_1(const float* x, void* out, int64_t n);
void quantize_q2_k(const float* x, void* out, int64_t n);
void quantize_q3_k(const float* x, void* out, int64_t n);
void quantize_q4_k(const float* x, void* out, int64_t n);
void quantize_q5_k(const float* x, void* out, int64_t n);
void quantize_q6_k(const float* x, void* out, int64_t n);
void quantize_q8_k(const float* x, void* out, int64_t n);

void dequantize_q8_0(const void* in, float* y, int64_t n);
void dequantize_q8_1(const void* in, float* y, int64_t n);
void dequantize_q4_0(const void* in, float* y, int64_t n);
void dequantize_q4_1(const void* in, float* y, int64_t n);
void dequantize_q5_0(const void* in, float* y, int64_t n);
void dequantize_q5_1(const void* in, float* y, int64_t n);
void dequantize_q2_k(const void* in, float* y, int64_t n);
void dequantize_q3_k(const void* in, float* y, int64_t n);
void dequantize_q4_k(const void* in, float* y, int64_t n);
void dequantize_q5_k(const void* in, float* y, int64_t n);
void dequantize_q6_k(const void* in, float* y, int64_t n);
void dequantize_q8_k(const void* in, float* y, int64_t n);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block.
inline void k4_scale_min(int j, const uint8_t* s, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// The sixteen signed scales (-32..31) of a Q3_K super-block.
void q3k_scales(const uint8_t packed[12], int8_t out[16]);

}  // namespace yak::quant
