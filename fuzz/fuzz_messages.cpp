// Fuzzes the chat messages parser (yak generate --messages, yak serve): any JSON gives messages
// with one `<image>` marker per listed image, or a yak::Error naming the field.
#include <cstddef>
#include <cstdint>
#include <string>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/infer/messages.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const yak::Json j = yak::Json::parse(data, data + size, nullptr, false);
  if (j.is_discarded()) return 0;
  for (bool files : {true, false}) {
    try {
      auto parsed = yak::infer::parse_messages(j, {.base_dir = "/nonexistent", .allow_files = files});
      size_t markers = 0;
      for (auto& m : parsed.messages)
        for (size_t at = m.content.find(yak::infer::kImageMarker); at != std::string::npos;
             at = m.content.find(yak::infer::kImageMarker, at + 1))
          ++markers;
      if (markers < parsed.images.size()) __builtin_trap();  // every image has its marker
    } catch (const yak::Error&) {
    }
  }
  return 0;
}
