// GGUF v3 writer: metadata key/values in the order given, tensor infos, then the tensor data,
// each tensor aligned to general.alignment (32), written atomically (temporary file + rename),
// so a failed write leaves no half file.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "yak/io/gguf.h"
#include "yak/tensor/tensor.h"

namespace yak::io {

class GgufWriter {
 public:
  void add_string(const std::string& key, const std::string& v);
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_strings(const std::string& key, const std::vector<std::string>& v);
  void add_i32s(const std::string& key, const std::vector<int32_t>& v);
  void add_f32s(const std::string& key, const std::vector<float>& v);
  // Copies a value read from another file (any type, arrays included).
  void add_value(const std::string& key, const GgufValue& v);
  bool has(const std::string& key) const;

  // A tensor in yak's shape order (slowest first) and dtype (with a ggml id); host data.
  void add_tensor(const std::string& name, const Tensor& t);

  void write(const std::filesystem::path& path) const;

 private:
  struct Kv {
    std::string key;
    std::string bytes;  // type id + encoded value
  };
  std::vector<Kv> kv_;
  std::vector<std::pair<std::string, Tensor>> tensors_;
};

}  // namespace yak::io
