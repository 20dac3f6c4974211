// GGUF v2/v3 reader (llama.cpp's single-file format): header, metadata key/values, tensor infos
// and the aligned data offset, read from a memory-mapped file or a byte buffer.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "yak/base/mmap.h"

namespace yak::io {

enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Scalars live in i/u/f/b by their type; arrays hold elements in arr.
struct GgufValue {
  GgufType type = GgufType::U8;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  bool b = false;
  std::string s;
  GgufType elem_type = GgufType::U8;  // for ARRAY
  std::vector<GgufValue> arr;

  bool is_integer() const;
  bool is_number() const { return is_integer() || type == GgufType::F32 || type == GgufType::F64; }
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // ggml order: dims[0] is the fastest-moving
  uint32_t ggml_type = 0;
  uint64_t offset = 0;  // relative to data_offset
  uint64_t nbytes = 0;  // 0 when the ggml type is unknown to yak
};

class GgufFile {
 public:
  // Throws yak::Error naming the path and the field on truncated or corrupt input.
  static GgufFile open(const std::filesystem::path& path);
  // Parses a buffer (copied out: strings and values are owned); `where` names it in errors.
  static GgufFile parse(const uint8_t* data, size_t size, const std::string& where);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const std::string& where() const { return where_; }
  // Tensor bytes; only valid for files opened from a path (nullptr otherwise).
  const uint8_t* tensor_data(const GgufTensorInfo& t) const;
  // The mapping (keeps tensor views alive); null for parsed buffers.
  std::shared_ptr<MappedFile> mapping() const { return file_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;

  bool has(const std::string& key) const { return kv_.count(key) > 0; }
  const GgufValue* find(const std::string& key) const;
  // Typed getters: throw yak::Error naming the key when it is missing or of another type.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<double> get_number_array(const std::string& key) const;
  std::optional<int64_t> get_int_opt(const std::string& key) const;
  std::optional<bool> get_bool_opt(const std::string& key) const;
  std::optional<std::string> get_string_opt(const std::string& key) const;

 private:
  std::shared_ptr<MappedFile> file_;
  std::string where_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32, data_offset_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
};

// Bytes of n elements of a ggml type, or 0 when the type is unknown.
uint64_t ggml_type_nbytes(uint32_t ggml_type, uint64_t n_elements);

}  // namespace yak::io
