// Zip archive directory reader for archives whose members are stored uncompressed (method 0),
// as torch.save writes them: the central directory (zip64 included) is read and checked, and
// each member is handed out as a byte range of the buffer. Nothing is copied.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace yak::io {

struct ZipMember {
  uint64_t offset = 0;  // first data byte within the buffer
  uint64_t size = 0;
  uint32_t crc32 = 0;
  uint16_t method = 0;  // 0: stored; anything else cannot be read in place
};

// Member name -> range. Throws yak::Error naming `where` when the directory is malformed,
// a member lies outside the buffer, or a name appears twice.
std::map<std::string, ZipMember> read_zip_directory(const uint8_t* data, size_t size, const std::string& where);

// True when the buffer starts like a zip archive (a local file header).
bool looks_like_zip(const uint8_t* data, size_t size);

}  // namespace yak::io
