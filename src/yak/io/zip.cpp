#include "yak/io/zip.h"

#include <algorithm>
#include <cstring>

#include "yak/base/error.h"

namespace yak::io {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50, kZip64LocatorSig = 0x07064b50;
constexpr size_t kEndSize = 22, kCentralSize = 46, kLocalSize = 30, kLocatorSize = 20, kZip64EndSize = 56;

// Little-endian reads at an offset already checked to be in range.
uint16_t u16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t u64(const uint8_t* p) {
  return static_cast<uint64_t>(u32(p)) | (static_cast<uint64_t>(u32(p + 4)) << 32);
}

// Reads the zip64 values a central entry marks with all-ones (sizes, then the header offset)
// from its extra field 0x0001.
void apply_zip64_extra(const uint8_t* extra, size_t n, uint64_t& size, uint64_t& csize, uint64_t& offset,
                       const std::string& where, const std::string& name) {
  size_t i = 0;
  while (i + 4 <= n) {
    const uint16_t id = u16(extra + i), len = u16(extra + i + 2);
    if (i + 4 + len > n) throw Error(where + ": member '" + name + "': extra field runs past its length");
    if (id == 0x0001) {
      const uint8_t* q = extra + i + 4;
      size_t left = len;
      auto take = [&](uint64_t& v) {
        if (v != 0xffffffffu) return;
        if (left < 8) throw Error(where + ": member '" + name + "': zip64 extra field too short");
        v = u64(q);
        q += 8;
        left -= 8;
      };
      take(size);
      take(csize);
      take(offset);
      return;
    }
    i += 4 + len;
  }
}

}  // namespace

bool looks_like_zip(const uint8_t* data, size_t size) {
  return size >= 4 && u32(data) == kLocalSig;
}

std::map<std::string, ZipMember> read_zip_directory(const uint8_t* data, size_t size, const std::string& where) {
  if (size < kEndSize) throw Error(where + ": too short to be a zip archive");
  // The end record sits in the last 22 + 65535 bytes (its comment is at most 65535 long).
  size_t end = std::string::npos;
  const size_t lowest = size > kEndSize + 65535 ? size - kEndSize - 65535 : 0;
  for (size_t p = size - kEndSize + 1; p-- > lowest;)
    if (u32(data + p) == kEndSig && p + kEndSize + u16(data + p + 20) == size) {
      end = p;
      break;
    }
  if (end == std::string::npos) throw Error(where + ": no zip end-of-directory record (truncated file?)");
  uint64_t count = u16(data + end + 10), dir_size = u32(data + end + 12), dir_offset = u32(data + end + 16);
  if (u16(data + end + 4) != 0 || u16(data + end + 6) != 0)
    throw Error(where + ": multi-disk zip archives are not supported");
  if (end >= kLocatorSize && u32(data + end - kLocatorSize) == kZip64LocatorSig) {
    const uint64_t z = u64(data + end - kLocatorSize + 8);
    if (size < kZip64EndSize || z > size - kZip64EndSize || u32(data + z) != kZip64EndSig)
      throw Error(where + ": zip64 end-of-directory record points outside the file");
    count = u64(data + z + 32);
    dir_size = u64(data + z + 40);
    dir_offset = u64(data + z + 48);
  }
  if (dir_offset > size || dir_size > size - dir_offset)
    throw Error(where + ": zip central directory lies outside the file");
  if (count > dir_size / kCentralSize) throw Error(where + ": zip central directory is shorter than its entry count");
  std::map<std::string, ZipMember> out;
  const uint8_t* p = data + dir_offset;
  const uint8_t* dir_end = p + dir_size;
  for (uint64_t k = 0; k < count; ++k) {
    if (static_cast<size_t>(dir_end - p) < kCentralSize || u32(p) != kCentralSig)
      throw Error(where + ": zip central directory entry " + std::to_string(k) + " is malformed");
    const uint16_t method = u16(p + 10), name_len = u16(p + 28), extra_len = u16(p + 30), comment_len = u16(p + 32);
    if (static_cast<size_t>(dir_end - p) < kCentralSize + name_len + extra_len + comment_len)
      throw Error(where + ": zip central directory entry " + std::to_string(k) + " runs past the directory");
    std::string name(reinterpret_cast<const char*>(p + kCentralSize), name_len);
    uint64_t usize = u32(p + 24), csize = u32(p + 20), local = u32(p + 42);
    apply_zip64_extra(p + kCentralSize + name_len, extra_len, usize, csize, local, where, name);
    ZipMember m;
    m.method = method;
    m.crc32 = u32(p + 16);
    m.size = usize;
    if (method == 0 && csize != usize)
      throw Error(where + ": member '" + name + "' is stored but its sizes differ");
    if (local > size || size - local < kLocalSize || u32(data + local) != kLocalSig)
      throw Error(where + ": member '" + name + "': local header outside the file or malformed");
    const uint64_t begin = local + kLocalSize + u16(data + local + 26) + u16(data + local + 28);
    if (begin > size || csize > size - begin) throw Error(where + ": member '" + name + "' runs past the end of the file");
    m.offset = begin;
    if (!out.emplace(name, m).second) throw Error(where + ": member '" + name + "' appears twice");
    p += kCentralSize + name_len + extra_len + comment_len;
  }
  return out;
}

}  // namespace yak::io
