#include "yak/tensor/half.h"

#include <immintrin.h>

namespace yak {

float f16_to_f32(uint16_t h) {
  return _cvtsh_ss(h);
}
uint16_t f32_to_f16(float f) {
  return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

}  // namespace yak
