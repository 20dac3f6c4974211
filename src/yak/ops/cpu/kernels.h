// CPU kernels: plain functions over pointers and sizes, one computation each, compiled once per
// instruction set (kernels_scalar.cpp: portable C++, the fallback and reference; kernels_avx2.cpp;
// kernels_avx512.cpp) from the same source (kernels_impl.h). The table for the best set this CPU
// supports is chosen at run time; YAK_CPU_ISA=scalar|avx2|avx512 (or set_isa) picks a lower one.
#pragma once
#include <cstdint>

namespace yak::ops::cpu {

// Amx = the AVX-512 kernels plus matrix products of bf16 weights on AMX tiles.
enum class Isa : uint8_t { Scalar, Avx2, Avx512, Amx };
constexpr int kIsaCount = 4;
const char* isa_name(Isa isa);

struct AdamWStep {
  float lr_over_c1, b1, b2, sqrt_c2, eps, keep;  // keep = 1 - lr * weight_decay (or 1)
  float one_minus_b1, one_minus_b2;              // computed in double, as torch does
};

// Attention over one tile of keys for a group of query rows (flash-style online softmax).
// Rows are queries (of one kv head's query heads); keys k[j * ldk .. + hd), values likewise.
// Row r may see keys [lo[r], hi[r]) of the tile (others masked). m, l, acc carry the running
// max, normaliser and un-normalised output (acc: rows × hd, stride hd).
struct AttnTile {
  const float* q;  // rows × hd, row stride ldq, already scaled
  int64_t ldq;
  int rows;
  const void* k;  // tile keys (f32/bf16/f16 as kv_type), stride ldk elements
  const void* v;
  int64_t ldk;
  int n;  // keys in the tile
  const int* lo;
  const int* hi;
  int hd;
  float* m;
  float* l;
  float* acc;
  float* scratch;  // rows × n floats
};

enum class KvType : uint8_t { F32, BF16, F16 };

// Quantized weight formats with a dot kernel (index of KernelTable::vec_dot_q). Each pairs with
// one activation format: Q8_0 for Q8_0/Q4_0/Q5_0, Q8_1 for Q4_1/Q5_1, Q8_K for the K formats.
enum class QuantDot : uint8_t { Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K };
constexpr int kQuantDots = 10;

// Matrix products on AMX tiles (kernels_amx.cpp): out[m, n] (= or +=) sum over combos (a, b) and
// k of A_a[n, k] B_b[m, k], where A_a and B_b are bf16 parts of f32 operands (hi, lo, lo2: three
// parts carry all 24 bits, so the sums keep f32 accuracy; one part is plain bf16).
struct AmxProduct {
  int64_t M, K;       // rows of out (B side), inner size (a multiple of 32: packing pads)
  const uint32_t* b;  // pack_b's output
  int b_parts;
  const uint16_t* a[3];  // A part matrices, rows n, row stride lda elements (bf16)
  int a_parts;
  int64_t lda;
  uint8_t combos[3];  // bit b of combos[a]: add the product of A part a and B part b
  float* out;
  int64_t ldo;
  bool accumulate;
};
struct AmxKernels {
  // B side: x [M, K] (x[m * ldx + k], or x[k * ldx + m] when transposed) split into `parts`,
  // padded to whole tiles, into packed_b_dwords(M, K, parts) dwords.
  void (*pack_b)(const float* x, int64_t ldx, bool transposed, int64_t M, int64_t K, int parts, uint32_t* packed);
  int64_t (*packed_b_dwords)(int64_t M, int64_t K, int parts);
  // A side: rows [r0, r1) of src [N, K] (same indexing) split into `parts` bf16 matrices at out +
  // p * N * Kp (Kp = K rounded up to 32, the row stride), zero-padded.
  void (*pack_a)(const float* src, int64_t ld, bool transposed, int64_t N, int64_t K, int64_t r0, int64_t r1, int parts,
                 uint16_t* out);
  // out for A rows [n0, n1) (a multiple of 32 apart).
  void (*block)(const AmxProduct& g, int64_t n0, int64_t n1);
  // Peak probe for benchmarks: `iters` rounds of 4 independent tile products (4 x 16 x 16 x 32
  // multiply-adds a round) on this thread; returns a value that depends on them.
  float (*probe)(int64_t iters);
};
// Null when this build or CPU has no AMX, or the OS refused the tile state.
const AmxKernels* amx_kernels();

struct KernelTable {
  Isa isa;
  const AmxKernels* amx;  // set in the Amx table only
  // conversions of n elements
  void (*bf16_to_f32)(const uint16_t* src, float* dst, int64_t n);
  void (*f16_to_f32)(const uint16_t* src, float* dst, int64_t n);
  void (*f32_to_bf16)(const float* src, uint16_t* dst, int64_t n);
  void (*f32_to_f16)(const float* src, uint16_t* dst, int64_t n);
  // Σ w[i] x[i] with w f32 / bf16 / f16 and x f32, accumulated in f32
  float (*dot_f32)(const float* w, const float* x, int64_t n);
  float (*dot_bf16)(const uint16_t* w, const float* x, int64_t n);
  float (*dot_f16)(const uint16_t* w, const float* x, int64_t n);
  // For weight rows r in [r0, r1) (row r at W + r * ldw elements):
  //   y[m * ldy + r] = dot(W[r], x[m * ldx .. + K]) for m in [0, M)
  // each weight row read once for all M inputs (the decode path, memory bound).
  void (*gemv_f32)(const float* W, int64_t ldw, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t M,
                   int64_t ldx, float* y, int64_t ldy);
  // bf16 rows read their activations in this instruction set's pair order: prep_bf16 writes
  // one row x[0..K) as the gemv_bf16 kernel wants it (same table for both).
  void (*prep_bf16)(const float* x, int64_t K, float* out);
  void (*gemv_bf16)(const uint16_t* W, int64_t ldw, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t M,
                    int64_t ldx, float* y, int64_t ldy);
  void (*gemv_f16)(const uint16_t* W, int64_t ldw, int64_t K, int64_t r0, int64_t r1, const float* x, int64_t M,
                   int64_t ldx, float* y, int64_t ldy);
  // Matrix-vector products of bf16 weights with bf16 activations (rows x[m * ldx..], rounded from
  // f32 by f32_to_bf16), f32 sums, on AVX512_BF16 dot products: --matmul-precision medium's
  // decode kernel. Null where the CPU lacks the instructions.
  void (*gemv_bf16_dp)(const uint16_t* W, int64_t ldw, int64_t K, int64_t r0, int64_t r1, const uint16_t* x,
                       int64_t M, int64_t ldx, float* y, int64_t ldy) = nullptr;
  // y[i] += a * x[i]
  void (*axpy)(float a, const float* x, float* y, int64_t n);
  // out[i] = a[i] + b[i]; out[i] = s * x[i]; out[i] = a[i] * b[i] (out may alias an input)
  void (*add)(const float* a, const float* b, float* out, int64_t n);
  void (*scale)(const float* x, float s, float* out, int64_t n);
  void (*mul)(const float* a, const float* b, float* out, int64_t n);
  float (*max)(const float* x, int64_t n);
  // out[i] = exp(x[i] - m); returns Σ out (out may alias x)
  float (*exp_sum)(const float* x, float m, float* out, int64_t n);
  double (*sum_squares)(const float* x, int64_t n);
  // out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]; returns the inverse rms
  float (*rms_norm)(const float* x, const float* w, float eps, int64_t n, float* out);
  // dx[i] += r * dy[i] w[i] - c x[i], with c = r^3 / n Σ dy w x; dw[i] += dy[i] x[i] r (dw may be null)
  void (*rms_norm_backward)(const float* dy, const float* x, const float* w, float r, int64_t n, float* dx, float* dw);
  // out[i] = silu(g[i]) * u[i]
  void (*silu_mul)(const float* g, const float* u, int64_t n, float* out);
  // dg[i] += d u s (1 + g (1 - s)); du[i] += d g s with s = sigmoid(g) (either may be null)
  void (*silu_mul_backward)(const float* d, const float* g, const float* u, int64_t n, float* dg, float* du);
  void (*adamw)(float* p, const float* g, float* m, float* v, int64_t n, const AdamWStep& s);
  // Small dense blocks of the attention backward (f32, row-major with leading dimensions):
  // S[r, j] = a_r · b_j (a: rows × hd, b: n × hd), C += A B (A: rows × n, B: n × hd) and
  // C += A^T B (A: rows × n, B: rows × hd, C: n × hd).
  void (*abt)(const float* a, int64_t lda, int rows, const float* b, int64_t ldb, int n, int hd, float* S, int64_t lds);
  void (*ab_acc)(const float* A, int64_t lda, int rows, int n, const float* B, int64_t ldb, int hd, float* C,
                 int64_t ldc);
  void (*atb_acc)(const float* A, int64_t lda, int rows, int n, const float* B, int64_t ldb, int hd, float* C,
                  int64_t ldc);
  // Peak probe for benchmarks: `iters` rounds of 12 independent vector FMAs (24 * lanes flops
  // a round); returns a value that depends on every one so none is optimised away.
  float (*fma_probe)(int64_t iters);
  // Read-bandwidth probe: the sum of n floats with eight independent vector adds, prefetching.
  float (*read_probe)(const float* p, int64_t n);
  int lanes;  // f32 lanes per vector
  // One key tile of flash attention (see AttnTile), per KvType.
  void (*attn_tile[3])(const AttnTile& t);
  // Σ_k w[k] x[k] over K elements (a multiple of the block) of one quantized weight row and one
  // activation row in its pair format (see QuantDot), per weight format.
  float (*vec_dot_q[kQuantDots])(int64_t K, const void* w, const void* x);
  // The same for `rows` (1..4) consecutive weight rows (row r at w + r * ldw bytes) into
  // out[0..rows): the decode kernel. A row's value does not depend on `rows`.
  void (*vec_dot4_q[kQuantDots])(int64_t K, const void* w, int64_t ldw, const void* x, float* out, int rows);
  // n elements of a quantized row to f32 (the reference dequantizers' values), per format.
  void (*dequant_q[kQuantDots])(const void* src, float* dst, int64_t n);
};

// The active table (best for this CPU unless lowered).
const KernelTable& kernels();
// The table for an instruction set, or null when this build or this CPU lacks it.
const KernelTable* kernels_for(Isa isa);
Isa best_isa();
// Makes `isa` active (must be supported); returns the previous one. Not thread-safe: call it
// between computations (tests, start-up).
Isa set_isa(Isa isa);

// What this CPU offers (x86 CPUID and the OS's saved-state support).
struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512_bf16 = false, amx_bf16 = false;
};
const CpuFeatures& cpu_features();

}  // namespace yak::ops::cpu
