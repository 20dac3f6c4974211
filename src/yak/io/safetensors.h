// safetensors: read through mmap (one file, or a sharded set with model.safetensors.index.json)
// and write atomically. Every offset and shape in a header is checked before a byte is used.
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "yak/base/mmap.h"
#include "yak/tensor/tensor.h"

namespace yak::io {

struct TensorEntry {
  DType dtype;
  Shape shape;
  size_t begin = 0, end = 0;  // byte offsets into the data section
};

class SafetensorsFile {
 public:
  // Throws yak::Error naming the file and the offending tensor/field when the file is malformed.
  static std::unique_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  // Parses a header held in memory (used by the fuzzer and by open()).
  static std::map<std::string, TensorEntry> parse_header(const uint8_t* data, size_t size, const std::string& where,
                                                         std::map<std::string, std::string>* metadata);

  const std::map<std::string, TensorEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  Tensor get(const std::string& name) const;  // a view into the mapped file
  const std::filesystem::path& path() const { return file_->path(); }

 private:
  std::shared_ptr<MappedFile> file_;
  size_t data_start_ = 0;
  std::map<std::string, TensorEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint folder: model.safetensors, or the shards listed by
// model.safetensors.index.json, or every *.safetensors file in the folder; failing those, a
// PyTorch folder (pytorch_model.bin or the shards of pytorch_model.bin.index.json, read by the
// restricted reader of io/torch_pickle). open_file takes a .safetensors or a .bin/.pt/.pth file.
class WeightStore {
 public:
  static WeightStore open_dir(const std::filesystem::path& dir);
  static WeightStore open_file(const std::filesystem::path& file);
  bool has(const std::string& name) const { return where_.count(name) != 0 || own_.count(name) != 0; }
  Tensor get(const std::string& name) const;  // throws naming the folder when missing
  std::vector<std::string> names() const;
  const TensorEntry& entry(const std::string& name) const;
  const std::filesystem::path& source() const { return source_; }
  // A store of tensors made elsewhere (GGUF files: views of the mapping, or rearranged copies).
  static WeightStore of_tensors(std::filesystem::path source, std::map<std::string, Tensor> tensors);

 private:
  std::map<std::string, Tensor> own_;
  std::map<std::string, TensorEntry> own_entries_;
  std::filesystem::path source_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;
};

// True when WeightStore::open_dir(dir) reads PyTorch .bin files (no safetensors in the folder).
bool is_torch_checkpoint_dir(const std::filesystem::path& dir);

// Writes tensors (any dtype) to path atomically: a temporary file in the same folder, fsync,
// rename. A crash mid-write leaves the old file (if any) untouched.
void write_safetensors(const std::filesystem::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes the parts one after another to path atomically (same scheme).
void write_all_atomic(const std::filesystem::path& path, const std::vector<std::pair<const void*, size_t>>& parts);

// Writes text to path atomically (same temporary-file-and-rename scheme).
void write_file_atomic(const std::filesystem::path& path, const std::string& content);

}  // namespace yak::io
