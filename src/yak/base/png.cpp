#include "yak/base/png.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>

#include <zlib.h>

#include "yak/base/error.h"

namespace yak {

namespace {

// 5x7 glyphs, one byte a row, bit 4 = leftmost pixel.
const std::map<char, std::array<uint8_t, 7>>& font() {
  static const std::map<char, std::array<uint8_t, 7>> f = {
      {'0', {14, 17, 19, 21, 25, 17, 14}}, {'1', {4, 12, 4, 4, 4, 4, 14}},      {'2', {14, 17, 1, 2, 4, 8, 31}},
      {'3', {31, 2, 4, 2, 1, 17, 14}},     {'4', {2, 6, 10, 18, 31, 2, 2}},     {'5', {31, 16, 30, 1, 1, 17, 14}},
      {'6', {6, 8, 16, 30, 17, 17, 14}},   {'7', {31, 1, 2, 4, 8, 8, 8}},       {'8', {14, 17, 17, 14, 17, 17, 14}},
      {'9', {14, 17, 17, 15, 1, 2, 12}},   {'A', {14, 17, 17, 31, 17, 17, 17}}, {'B', {30, 17, 17, 30, 17, 17, 30}},
      {'C', {14, 17, 16, 16, 16, 17, 14}}, {'D', {28, 18, 17, 17, 17, 18, 28}}, {'E', {31, 16, 16, 30, 16, 16, 31}},
      {'F', {31, 16, 16, 30, 16, 16, 16}}, {'G', {14, 17, 16, 23, 17, 17, 15}}, {'H', {17, 17, 17, 31, 17, 17, 17}},
      {'I', {14, 4, 4, 4, 4, 4, 14}},      {'J', {7, 2, 2, 2, 2, 18, 12}},      {'K', {17, 18, 20, 24, 20, 18, 17}},
      {'L', {16, 16, 16, 16, 16, 16, 31}}, {'M', {17, 27, 21, 21, 17, 17, 17}}, {'N', {17, 17, 25, 21, 19, 17, 17}},
      {'O', {14, 17, 17, 17, 17, 17, 14}}, {'P', {30, 17, 17, 30, 16, 16, 16}}, {'Q', {14, 17, 17, 17, 21, 18, 13}},
      {'R', {30, 17, 17, 30, 20, 18, 17}}, {'S', {15, 16, 16, 14, 1, 1, 30}},   {'T', {31, 4, 4, 4, 4, 4, 4}},
      {'U', {17, 17, 17, 17, 17, 17, 14}}, {'V', {17, 17, 17, 17, 17, 10, 4}},  {'W', {17, 17, 17, 21, 21, 21, 10}},
      {'X', {17, 17, 10, 4, 10, 17, 17}},  {'Y', {17, 17, 17, 10, 4, 4, 4}},    {'Z', {31, 1, 2, 4, 8, 16, 31}},
      {'.', {0, 0, 0, 0, 0, 12, 12}},      {',', {0, 0, 0, 0, 12, 4, 8}},       {'-', {0, 0, 0, 31, 0, 0, 0}},
      {'+', {0, 4, 4, 31, 4, 4, 0}},       {':', {0, 12, 12, 0, 12, 12, 0}},    {'%', {24, 25, 2, 4, 8, 19, 3}},
      {'/', {0, 1, 2, 4, 8, 16, 0}},       {'(', {2, 4, 8, 8, 8, 4, 2}},        {')', {8, 4, 2, 2, 2, 4, 8}},
      {'=', {0, 0, 31, 0, 31, 0, 0}},      {'_', {0, 0, 0, 0, 0, 0, 31}},
  };
  return f;
}

void put_be32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s += static_cast<char>((v >> (8 * i)) & 0xFF);
}

void chunk(std::string& out, const char* type, const std::string& data) {
  put_be32(out, static_cast<uint32_t>(data.size()));
  std::string td = std::string(type, 4) + data;
  out += td;
  put_be32(out, crc32(reinterpret_cast<const uint8_t*>(td.data()), td.size()));
}

std::string nice(double v) {
  char buf[32];
  const double a = std::fabs(v);
  if (a != 0 && (a < 1e-3 || a >= 1e5))
    std::snprintf(buf, sizeof buf, "%.1E", v);
  else
    std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

Image::Image(int w, int h, uint32_t bg) : width(w), height(h), rgb(static_cast<size_t>(w) * h * 3) {
  for (int i = 0; i < w * h; ++i) {
    rgb[i * 3] = (bg >> 16) & 0xFF;
    rgb[i * 3 + 1] = (bg >> 8) & 0xFF;
    rgb[i * 3 + 2] = bg & 0xFF;
  }
}

void Image::pixel(int x, int y, uint32_t c) {
  if (x < 0 || y < 0 || x >= width || y >= height) return;
  uint8_t* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
  p[0] = (c >> 16) & 0xFF;
  p[1] = (c >> 8) & 0xFF;
  p[2] = c & 0xFF;
}

void Image::line(int x0, int y0, int x1, int y1, uint32_t c, int t) {
  const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  for (;;) {
    for (int a = -(t / 2); a <= t / 2; ++a)
      for (int b = -(t / 2); b <= t / 2; ++b) pixel(x0 + a, y0 + b, c);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) err += dy, x0 += sx;
    if (e2 <= dx) err += dx, y0 += sy;
  }
}

void Image::text(int x, int y, const std::string& s, uint32_t c, int scale) {
  for (size_t i = 0; i < s.size(); ++i) {
    char ch = s[i];
    auto it = font().find(ch);
    if (it == font().end()) it = font().find(static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
    if (it == font().end()) continue;  // space and unknown characters
    for (int r = 0; r < 7; ++r)
      for (int col = 0; col < 5; ++col)
        if (it->second[r] & (16 >> col))
          for (int a = 0; a < scale; ++a)
            for (int b = 0; b < scale; ++b)
              pixel(x + static_cast<int>(i) * 6 * scale + col * scale + a, y + r * scale + b, c);
  }
}

uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc) {
  static uint32_t table[256];
  static const bool init = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)init;
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void write_png(const std::filesystem::path& path, const Image& img) {
  std::string raw;  // filter byte 0 + row
  for (int y = 0; y < img.height; ++y) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(&img.rgb[static_cast<size_t>(y) * img.width * 3]),
               static_cast<size_t>(img.width) * 3);
  }
  uLongf zn = compressBound(static_cast<uLong>(raw.size()));
  std::string z(zn, '\0');
  if (compress2(reinterpret_cast<Bytef*>(z.data()), &zn, reinterpret_cast<const Bytef*>(raw.data()),
                static_cast<uLong>(raw.size()), 9) != Z_OK)
    throw Error(path.string() + ": PNG compression failed");
  z.resize(zn);
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put_be32(ihdr, static_cast<uint32_t>(img.width));
  put_be32(ihdr, static_cast<uint32_t>(img.height));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, deflate, no filter, no interlace
  chunk(png, "IHDR", ihdr);
  chunk(png, "IDAT", z);
  chunk(png, "IEND", "");
  const auto tmp = path.string() + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(path.string() + ": cannot write");
  const bool ok = std::fwrite(png.data(), 1, png.size(), f) == png.size();
  if (std::fclose(f) != 0 || !ok) throw Error(path.string() + ": write failed");
  std::filesystem::rename(tmp, path);
}

void plot_lines(const std::filesystem::path& path, const std::string& title, const std::string& xlabel,
                const std::string& ylabel, const std::vector<Series>& series, int W, int H) {
  Image img(W, H);
  const int left = 80, right = 20, top = 40, bottom = 50;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (auto& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
        x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
        y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
      }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const double pad = 0.05 * (y1 - y0);
  y0 = (y0 >= 0 && y0 - pad < 0) ? 0.0 : y0 - pad;  // non-negative data keeps a non-negative axis
  y1 += pad;
  const int pw = W - left - right, ph = H - top - bottom;
  auto px = [&](double x) { return left + static_cast<int>((x - x0) / (x1 - x0) * pw); };
  auto py = [&](double y) { return top + ph - static_cast<int>((y - y0) / (y1 - y0) * ph); };
  for (int k = 0; k <= 5; ++k) {  // grid and ticks
    const double yv = y0 + (y1 - y0) * k / 5, xv = x0 + (x1 - x0) * k / 5;
    img.line(left, py(yv), left + pw, py(yv), 0xE6E6E6);
    img.line(px(xv), top, px(xv), top + ph, 0xE6E6E6);
    const std::string ys = nice(yv), xs = nice(xv);
    img.text(left - 6 - Image::text_width(ys), py(yv) - 3, ys, 0x333333);
    img.text(px(xv) - Image::text_width(xs) / 2, top + ph + 8, xs, 0x333333);
  }
  img.line(left, top, left, top + ph, 0x000000);
  img.line(left, top + ph, left + pw, top + ph, 0x000000);
  img.text((W - Image::text_width(title, 2)) / 2, 10, title, 0x000000, 2);
  img.text(left + (pw - Image::text_width(xlabel)) / 2, H - 20, xlabel, 0x000000);
  img.text(8, top - 14, ylabel, 0x000000);
  int legend_y = top + 8;
  for (auto& s : series) {
    bool have = false;
    int lx = 0, ly = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      const int cx = px(s.x[i]), cy = py(s.y[i]);
      if (have) img.line(lx, ly, cx, cy, s.color, 2);
      if (s.x.size() < 40) img.line(cx - 2, cy, cx + 2, cy, s.color, 3);
      lx = cx, ly = cy, have = true;
    }
    img.line(left + pw - 150, legend_y + 3, left + pw - 130, legend_y + 3, s.color, 3);
    img.text(left + pw - 124, legend_y, s.name, 0x000000);
    legend_y += 14;
  }
  write_png(path, img);
}

}  // namespace yak
