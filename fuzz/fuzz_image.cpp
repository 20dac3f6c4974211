// Fuzzes the image decoders (PNG, and JPEG through libjpeg) and the bicubic resize: any bytes give an RGB image or a yak::Error.
// When the first byte is odd the chunk CRCs are recomputed first, so mutations of the chunk data
// reach the inflater, the filters and the pixel unpacking instead of stopping at the checksum.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../tests/png_fix.h"
#include "yak/base/error.h"
#include "yak/io/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  std::vector<uint8_t> b(data + 1, data + size);
  if (data[0] & 1) yak::testing::fix_png_crcs(b);
  try {
    yak::io::Image img = yak::io::decode_image(b, "fuzz");
    if (img.rgb.size() != static_cast<size_t>(img.width * img.height * 3)) __builtin_trap();
    if (img.width * img.height <= 4096) {
      const int64_t w = 1 + data[0] % 37, h = 1 + (data[0] / 37) % 23;
      yak::io::Image r = yak::io::resize_bicubic(img, w, h);
      if (r.rgb.size() != static_cast<size_t>(w * h * 3)) __builtin_trap();
    }
  } catch (const yak::Error&) {
  }
  return 0;
}
