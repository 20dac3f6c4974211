// PNG and JPEG decoding and the bicubic resize against PIL and torchvision (tools/golden/make_vl_goldens.py,
// tests/golden/vision/images): every colour type the goldens hold decodes to PIL's pixels after
// transformers' convert_to_rgb (transparency over white), byte for byte; the resize to the image
// processor's size equals torchvision's antialiased uint8 bicubic byte for byte; damaged files
// are refused with a message, never a crash.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <zlib.h>

#include "png_fix.h"
#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/io/image.h"
#include "yak/io/safetensors.h"

using namespace yak;

namespace {

const std::filesystem::path kDir = std::filesystem::path(YAK_GOLDEN_DIR) / "vision" / "images";

std::vector<std::string> files() {
  std::ifstream f(kDir / "images.json");
  return Json::parse(f)["files"].get<std::vector<std::string>>();
}

std::vector<uint8_t> bytes_of(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

int64_t count_differ(const io::Image& a, const Tensor& ref) {
  if (ref.dim(0) != a.height || ref.dim(1) != a.width) return -1;
  int64_t n = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) n += a.rgb[static_cast<size_t>(i)] != ref.data<uint8_t>()[i];
  return n;
}

}  // namespace

TEST(Images, EveryColourTypeDecodesToPilsPixels) {
  auto golden = io::SafetensorsFile::open(kDir / "images.safetensors");
  const auto names = files();
  ASSERT_GE(names.size(), 8u);
  for (size_t i = 0; i < names.size(); ++i) {
    const io::Image img = io::read_image(kDir / names[i]);
    const Tensor ref = golden->get("rgb." + std::to_string(i));
    EXPECT_EQ(count_differ(img, ref), 0) << names[i];
  }
  std::printf("[parity] %zu image files (PNG: RGB, grey, RGBA, palettes at 8 and 4 bits with tRNS, 1-bit, Adam7; "
              "JPEG: 4:2:0, progressive 4:4:4, grey) = PIL\n",
              names.size());
}

TEST(Images, BicubicResizeEqualsTorchvision) {
  auto golden = io::SafetensorsFile::open(kDir / "images.safetensors");
  const auto names = files();
  int64_t values = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    const io::Image img = io::read_image(kDir / names[i]);
    const Tensor ref = golden->get("resized." + std::to_string(i));
    const io::Image r = io::resize_bicubic(img, ref.dim(1), ref.dim(0));
    EXPECT_EQ(count_differ(r, ref), 0) << names[i] << ": " << img.width << "x" << img.height << " -> " << ref.dim(1)
                                       << "x" << ref.dim(0);
    values += ref.numel();
  }
  std::printf("[parity] bicubic resize: %lld values over %zu images = torchvision\n", static_cast<long long>(values),
              names.size());
}

TEST(Images, DamagedFilesAreRefusedWithAMessage) {
  const auto good = bytes_of(kDir / "rgb_45x70.png");
  auto refuse = [](std::vector<uint8_t> b, const std::string& want) {
    try {
      io::decode_image(b, "x.png");
      ADD_FAILURE() << "accepted; expected: " << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  refuse({}, "not an image");
  refuse({'G', 'I', 'F', '8', '9', 'a'}, "not an image");
  refuse({0xFF, 0xD8, 0xFF, 0xE0}, "JPEG");
  refuse(std::vector<uint8_t>(good.begin(), good.begin() + 40), "truncated");
  refuse(std::vector<uint8_t>(good.begin(), good.begin() + 8 + 25), "no image data");
  auto crc = good;
  crc[20] ^= 1;  // inside IHDR's data
  refuse(crc, "CRC");
  // 16-bit samples: IHDR rewritten with a correct CRC.
  auto deep = good;
  deep[8 + 8 + 8] = 16;
  const uint32_t c = static_cast<uint32_t>(crc32(0, deep.data() + 12, 17));
  for (int k = 0; k < 4; ++k) deep[29 + k] = static_cast<uint8_t>(c >> (24 - 8 * k));
  refuse(deep, "16-bit");
  EXPECT_THROW(io::read_image(kDir / "no-such.png"), Error);
  const auto jpeg = bytes_of(kDir / "photo_420_50x37.jpg");
  refuse(std::vector<uint8_t>(jpeg.begin(), jpeg.begin() + static_cast<long>(jpeg.size() / 2)), "JPEG");
  refuse(std::vector<uint8_t>(jpeg.begin(), jpeg.begin() + 3), "JPEG");
  refuse(bytes_of(kDir / "cmyk_8x8.jpg"), "CMYK");
  EXPECT_THROW(io::resize_bicubic(io::read_image(kDir / "rgb_45x70.png"), 0, 5), Error);
}

TEST(Images, RandomDamageNeverCrashes) {
  std::mt19937 rng(7);
  int refused = 0, decoded = 0, crc_refused = 0;
  const auto names = files();
  for (int trial = 0; trial < 800; ++trial) {
    auto b = bytes_of(kDir / names[static_cast<size_t>(trial) % names.size()]);
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) b[8 + rng() % (b.size() - 8)] ^= static_cast<uint8_t>(1 + rng() % 255);
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    // Half the trials repair the checksums, so the damage reaches the decoder itself.
    if (trial % 2) yak::testing::fix_png_crcs(b);
    try {
      io::Image img = io::decode_image(b, "x.png");
      EXPECT_EQ(img.rgb.size(), static_cast<size_t>(img.width * img.height * 3));
      ++decoded;
    } catch (const Error& e) {
      ++refused;
      crc_refused += std::string(e.what()).find("CRC") != std::string::npos;
    }
  }
  EXPECT_GT(refused - crc_refused, 50);  // damage past the checksums is found by the decoder too
  std::printf("[robust] 800 damaged image files: %d refused with a message (%d by a CRC), %d decoded\n", refused,
              crc_refused, decoded);
}
