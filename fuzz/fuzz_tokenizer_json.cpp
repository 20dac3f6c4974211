// libFuzzer target: bytes as a tokenizer.json for the byte-level BPE loader, then a short encode
// and decode. Bad input may only surface as yak::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "yak/base/error.h"
#include "yak/tokenizer/bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto tok = yak::tok::BpeTokenizer::from_json_string(text, "fuzz/tokenizer.json");
    auto ids = tok->encode("Hello, world! 你好 <|im_start|> 123  \n\t😀", true);
    tok->decode(ids, false);
    tok->decode(ids, true);
  } catch (const yak::Error&) {
  }
  return 0;
}
