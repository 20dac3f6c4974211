// The portable kernels: plain C++, one lane (simd.h without an instruction-set macro).
#define YAK_KNS scalar
#define YAK_KISA Isa::Scalar
#include "yak/ops/cpu/kernels_impl.h"

namespace yak::ops::cpu {
const KernelTable* table_scalar() {
  return &scalar::kTable;
}
}  // namespace yak::ops::cpu
