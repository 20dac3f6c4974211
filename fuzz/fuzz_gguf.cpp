// libFuzzer target: bytes as a GGUF file for the reader, then as a model's metadata (the
// architecture's settings) and as a tokenizer vocabulary when it parses. Bad input may only surface as yak::Error.
#include <cstddef>
#include <cstdint>

#include "yak/base/error.h"
#include "yak/io/gguf.h"
#include "yak/io/gguf_model.h"
#include "yak/tokenizer/gguf_vocab.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto g = yak::io::GgufFile::parse(data, size, "fuzz.gguf");
    if (g.has("general.architecture")) {
      try {
        (void)yak::io::config_from_gguf(g);
      } catch (const yak::Error&) {
      }
    }
    if (g.has("tokenizer.ggml.model")) {
      auto tok = yak::tok::tokenizer_from_gguf(g);
      auto ids = tok->encode("Hello world 你好", true);
      tok->decode(ids, false);
    }
  } catch (const yak::Error&) {
  }
  return 0;
}
