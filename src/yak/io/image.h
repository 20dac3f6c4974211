// Pictures for vision-language models: PNG and JPEG files decoded to 8-bit RGB (transparency composited
// onto white, as transformers' convert_to_rgb does), and the antialiased bicubic resize of
// torchvision on uint8 images (the one Qwen2-VL's and Qwen3-VL's image processor runs).
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace yak::io {

struct Image {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // height rows of width RGB pixels
};

// The largest picture read (pixels); larger files are refused before anything is allocated.
constexpr int64_t kMaxImagePixels = int64_t{1} << 26;

// Reads an image file by its content (PNG or JPEG; other formats are refused).
// Throws yak::Error naming the file and the problem.
Image read_image(const std::filesystem::path& path);
Image decode_image(std::span<const uint8_t> bytes, const std::string& where);
// PNG: every colour type at 1, 2, 4 and 8 bits, palettes and tRNS transparency, Adam7
// interlacing; 16-bit samples are refused.
Image decode_png(std::span<const uint8_t> bytes, const std::string& where);
// JPEG through libjpeg(-turbo) with PIL's settings (baseline and progressive, grey and YCbCr at
// any chroma subsampling); CMYK is refused, and so are truncated or damaged files.
Image decode_jpeg(std::span<const uint8_t> bytes, const std::string& where);

// torchvision.transforms.v2.functional.resize(uint8, BICUBIC, antialias=True): per axis
// (width first, then height, each skipped when unchanged) PIL's Keys cubic (a = -0.5) widened
// by the scale when shrinking, weights normalised then rounded to int16 at the largest precision
// the axis's largest weight allows, integer sums rounded, shifted and clamped to 0..255.
Image resize_bicubic(const Image& img, int64_t width, int64_t height);

}  // namespace yak::io
