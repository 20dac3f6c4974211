// The kernels built for AVX2 (this file alone gets the compiler flags; CMake sets them on
// x86-64 only). Elsewhere it contributes an empty table entry.
#include "yak/ops/cpu/kernels.h"

#if defined(__x86_64__) && defined(YAK_HAVE_AVX2)
#define YAK_SIMD_AVX2
#define YAK_KNS avx2
#define YAK_KISA Isa::Avx2
#include "yak/ops/cpu/kernels_impl.h"

namespace yak::ops::cpu {
const KernelTable* table_avx2() {
  return &avx2::kTable;
}
}  // namespace yak::ops::cpu
#else
namespace yak::ops::cpu {
const KernelTable* table_avx2() {
  return nullptr;
}
}  // namespace yak::ops::cpu
#endif
