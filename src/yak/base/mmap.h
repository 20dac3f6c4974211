// Read-only memory-mapped files: checkpoints are mapped, never copied, so loading is lazy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>

namespace yak {

class MappedFile {
 public:
  // Throws yak::Error naming the path when it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::filesystem::path path_;
};

// Tells the kernel the whole pages inside [p, p + n) will not be read again soon (MADV_PAGEOUT):
// pages of a mapped file leave memory (read back from the file if touched), anonymous ones may
// go to swap. The contents never change, so any memory may be given; a kernel without the advice
// ignores it.
void advise_cold(const void* p, size_t n);

// Whole file as a string; throws yak::Error naming the path on failure.
std::string read_text_file(const std::filesystem::path& path);

}  // namespace yak
