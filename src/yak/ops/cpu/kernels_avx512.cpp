// The kernels built for AVX512 (this file alone gets the compiler flags; CMake sets them on
// x86-64 only). Elsewhere it contributes an empty table entry.
#include "yak/ops/cpu/kernels.h"

#if defined(__x86_64__) && defined(YAK_HAVE_AVX512)
#define YAK_SIMD_AVX512
#define YAK_KNS avx512
#define YAK_KISA Isa::Avx512
#include "yak/ops/cpu/kernels_impl.h"

namespace yak::ops::cpu {
const KernelTable* table_avx512() {
  return &avx512::kTable;
}
}  // namespace yak::ops::cpu
#else
namespace yak::ops::cpu {
const KernelTable* table_avx512() {
  return nullptr;
}
}  // namespace yak::ops::cpu
#endif
