// Fuzzes the PyTorch .bin reader. Odd first byte: the rest is a whole file (zip directory,
// records, pickle). Even first byte: the rest is data.pkl, wrapped here in a valid archive (with
// its CRC, so mutations reach the pickle machine) beside storages "0".."3" of 64, 256, 4096 and 0
// bytes. Any input must give a state dict whose tensors lie inside the buffer, or a yak::Error.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "yak/base/error.h"
#include "yak/base/png.h"
#include "yak/io/torch_pickle.h"

namespace {

void put16(std::string& s, uint32_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>((v >> 8) & 0xff));
}
void put32(std::string& s, uint32_t v) {
  put16(s, v & 0xffff);
  put16(s, v >> 16);
}

// A zip archive of stored members, as torch.save lays one out (without its 64-byte alignment).
std::string archive(const std::vector<std::pair<std::string, std::string>>& members) {
  std::string out, dir;
  for (auto& [name, body] : members) {
    const uint32_t crc = yak::crc32(reinterpret_cast<const uint8_t*>(body.data()), body.size());
    const uint32_t at = static_cast<uint32_t>(out.size());
    put32(out, 0x04034b50);
    put16(out, 20), put16(out, 0), put16(out, 0), put16(out, 0), put16(out, 0);
    put32(out, crc), put32(out, static_cast<uint32_t>(body.size())), put32(out, static_cast<uint32_t>(body.size()));
    put16(out, static_cast<uint32_t>(name.size())), put16(out, 0);
    out += name + body;
    put32(dir, 0x02014b50);
    put16(dir, 20), put16(dir, 20), put16(dir, 0), put16(dir, 0), put16(dir, 0), put16(dir, 0);
    put32(dir, crc), put32(dir, static_cast<uint32_t>(body.size())), put32(dir, static_cast<uint32_t>(body.size()));
    put16(dir, static_cast<uint32_t>(name.size())), put16(dir, 0), put16(dir, 0), put16(dir, 0), put16(dir, 0);
    put32(dir, 0), put32(dir, at);
    dir += name;
  }
  const uint32_t dir_at = static_cast<uint32_t>(out.size());
  out += dir;
  put32(out, 0x06054b50);
  put16(out, 0), put16(out, 0), put16(out, static_cast<uint32_t>(members.size())),
      put16(out, static_cast<uint32_t>(members.size()));
  put32(out, static_cast<uint32_t>(dir.size())), put32(out, dir_at), put16(out, 0);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string buf;
  if (data[0] & 1) {
    buf.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  } else {
    buf = archive({{"a/data.pkl", std::string(reinterpret_cast<const char*>(data + 1), size - 1)},
                   {"a/byteorder", "little"},
                   {"a/data/0", std::string(64, '\x11')},
                   {"a/data/1", std::string(256, '\x22')},
                   {"a/data/2", std::string(4096, '\x33')},
                   {"a/data/3", ""}});
  }
  const auto* p = reinterpret_cast<const uint8_t*>(buf.data());
  try {
    auto tensors = yak::io::read_torch_buffer(p, buf.size(), nullptr, "fuzz");
    for (auto& [name, t] : tensors) {
      // A view of the buffer or a copy of its own: every byte must be readable (ASan checks).
      const auto* q = static_cast<const uint8_t*>(t.raw());
      volatile uint8_t sum = 0;
      for (size_t i = 0; i < t.nbytes(); ++i) sum = static_cast<uint8_t>(sum + q[i]);
    }
  } catch (const yak::Error&) {
  }
  return 0;
}
