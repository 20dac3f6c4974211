// PNG writer: the file's structure (signature, chunk CRCs against the published CRC-32 check value,
// zlib/Adler-32 framing) and a chart that draws something.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "yak/base/png.h"

using namespace yak;

namespace {

uint32_t be32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) | (uint32_t(uint8_t(s[at + 2])) << 8) |
         uint8_t(s[at + 3]);
}

TEST(Png, Crc32CheckValue) {
  // The CRC catalogue's check value of CRC-32 (ISO-HDLC, as PNG and zlib use it) over "123456789".
  EXPECT_EQ(crc32(reinterpret_cast<const uint8_t*>("123456789"), 9), 0xCBF43926u);
}

TEST(Png, ChunksAreWellFormed) {
  auto path = std::filesystem::temp_directory_path() / "yak-png-test.png";
  plot_lines(path, "test", "x", "y", {{"sin", {0, 1, 2, 3, 4}, {0, 0.8, 0.9, 0.1, -0.7}, 0xff0000}}, 300, 200);
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string s = ss.str();
  ASSERT_GT(s.size(), 8u);
  EXPECT_EQ(s.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  size_t at = 8;
  std::vector<std::string> types;
  while (at + 12 <= s.size()) {
    const uint32_t n = be32(s, at);
    const std::string type = s.substr(at + 4, 4);
    types.push_back(type);
    const uint32_t crc = be32(s, at + 8 + n);
    EXPECT_EQ(crc, crc32(reinterpret_cast<const uint8_t*>(s.data() + at + 4), n + 4)) << type;
    if (type == "IHDR") {
      EXPECT_EQ(be32(s, at + 8), 300u);
      EXPECT_EQ(be32(s, at + 12), 200u);
    }
    at += 12 + n;
  }
  EXPECT_EQ(at, s.size());
  EXPECT_EQ(types, (std::vector<std::string>{"IHDR", "IDAT", "IEND"}));
  std::filesystem::remove(path);
}

TEST(Png, DrawsTheSeries) {
  Image img(50, 50);
  img.line(0, 0, 49, 49, 0x00ff00);
  EXPECT_EQ(img.rgb[(25 * 50 + 25) * 3 + 1], 0xff);
  EXPECT_EQ(img.rgb[(25 * 50 + 10) * 3 + 1], 0xff);  // background is white: green channel 255 too
  EXPECT_EQ(img.rgb[(25 * 50 + 25) * 3], 0x00);      // but red is 0 only on the line
  EXPECT_EQ(img.rgb[(25 * 50 + 10) * 3], 0xff);
}

}  // namespace
