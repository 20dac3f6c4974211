// PNG output (zlib deflate, our own chunk writer) and simple line
// charts with axes, ticks and a built-in 5x7 font, so training curves can be looked at.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace yak {

struct Image {
  int width, height;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes a pixel
  Image(int w, int h, uint32_t background = 0xFFFFFF);
  void pixel(int x, int y, uint32_t color);
  void line(int x0, int y0, int x1, int y1, uint32_t color, int thickness = 1);
  // Text in the built-in font (letters print upper-case), scale 1 = 5x7 pixels a glyph.
  void text(int x, int y, const std::string& s, uint32_t color, int scale = 1);
  static int text_width(const std::string& s, int scale = 1) { return static_cast<int>(s.size()) * 6 * scale; }
};

// Writes img as an 8-bit RGB PNG, atomically.
void write_png(const std::filesystem::path& path, const Image& img);
uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc = 0);

struct Series {
  std::string name;
  std::vector<double> x, y;
  uint32_t color = 0x1f77b4;
};

// A line chart of the series (NaN points skipped) with a title, axis labels and a legend.
void plot_lines(const std::filesystem::path& path, const std::string& title, const std::string& xlabel,
                const std::string& ylabel, const std::vector<Series>& series, int width = 800, int height = 480);

}  // namespace yak
