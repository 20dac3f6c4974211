#include "yak/io/image.h"

#include <jpeglib.h>
#include <zlib.h>

#include <csetjmp>
#include <cstdio>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>

#include "yak/base/error.h"

namespace yak::io {
namespace {

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// PIL's Image.alpha_composite of a pixel over opaque white (transformers' convert_to_rgb):
// 7 fraction bits, division by 255 by shifts.
uint8_t over_white(uint8_t c, uint8_t a) {
  if (a == 0) return 255;
  constexpr uint32_t bits = 7;
  const uint32_t outa255 = uint32_t{a} * 255 + 255u * (255u - a);
  const uint32_t coef1 = uint32_t{a} * 255u * 255u * (1u << bits) / outa255;
  const uint32_t coef2 = 255u * (1u << bits) - coef1;
  const uint32_t t = uint32_t{c} * coef1 + 255u * coef2 + (0x80u << bits);
  return static_cast<uint8_t>((((t >> 8) + t) >> 8) >> bits);
}

uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return static_cast<uint8_t>(a);
  return static_cast<uint8_t>(pb <= pc ? b : c);
}

struct PngHeader {
  uint32_t width = 0, height = 0;
  int depth = 0, color = 0, interlace = 0;
  int channels() const { return color == 0 || color == 3 ? 1 : color == 2 ? 3 : color == 4 ? 2 : 4; }
  int64_t row_bytes(int64_t w) const { return (w * channels() * depth + 7) / 8; }
};

// Adam7: each pass's first column/row and steps.
constexpr int kPassX0[7] = {0, 4, 0, 2, 0, 1, 0}, kPassY0[7] = {0, 0, 4, 0, 2, 0, 1};
constexpr int kPassDx[7] = {8, 8, 4, 4, 2, 2, 1}, kPassDy[7] = {8, 8, 8, 4, 4, 2, 2};

int64_t pass_size(int64_t n, int start, int step) {
  return n > start ? (n - start + step - 1) / step : 0;
}

}  // namespace

Image decode_png(std::span<const uint8_t> bytes, const std::string& where) {
  static const uint8_t kSig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kSig, 8) != 0) throw Error(where + ": not a PNG file");
  auto fail = [&](const std::string& what) -> Error { return Error(where + ": PNG " + what); };
  PngHeader h;
  std::vector<std::array<uint8_t, 4>> palette;
  std::vector<uint8_t> idat, trns;
  bool seen_header = false, seen_end = false;
  size_t at = 8;
  while (at < bytes.size() && !seen_end) {
    if (bytes.size() - at < 12) throw fail("is truncated inside a chunk header");
    const uint32_t len = be32(&bytes[at]);
    if (len > bytes.size() - at - 12) throw fail("chunk at byte " + std::to_string(at) + " runs past the end of the file");
    const uint8_t* type = &bytes[at + 4];
    const uint8_t* data = type + 4;
    const std::string name(reinterpret_cast<const char*>(type), 4);
    if (static_cast<uint32_t>(crc32(crc32(0, nullptr, 0), type, len + 4)) != be32(data + len))
      throw fail("chunk '" + name + "' fails its CRC check (the file is damaged)");
    if (name == "IHDR") {
      if (len != 13) throw fail("IHDR chunk has " + std::to_string(len) + " bytes, expected 13");
      h.width = be32(data);
      h.height = be32(data + 4);
      h.depth = data[8];
      h.color = data[9];
      h.interlace = data[12];
      if (data[10] != 0 || data[11] != 0 || h.interlace > 1) throw fail("uses an unknown compression, filter or interlace method");
      const int d = h.depth;
      const bool byte_depth = d == 8 || d == 16, small_depth = d == 1 || d == 2 || d == 4;
      const bool ok = h.color == 0   ? byte_depth || small_depth
                      : h.color == 3 ? small_depth || d == 8
                                     : (h.color == 2 || h.color == 4 || h.color == 6) && byte_depth;
      if (!ok)
        throw fail("colour type " + std::to_string(h.color) + " with bit depth " + std::to_string(h.depth) +
                   " is not valid");
      if (h.depth == 16) throw fail("has 16-bit samples, which are not supported (convert it to 8 bits)");
      if (h.width == 0 || h.height == 0 ||
          static_cast<int64_t>(h.width) * static_cast<int64_t>(h.height) > kMaxImagePixels)
        throw fail("size " + std::to_string(h.width) + "x" + std::to_string(h.height) + " is empty or larger than " +
                   std::to_string(kMaxImagePixels) + " pixels");
      seen_header = true;
    } else if (!seen_header) {
      throw fail("does not start with an IHDR chunk");
    } else if (name == "PLTE") {
      if (len % 3 || len / 3 > 256 || len == 0) throw fail("PLTE chunk of " + std::to_string(len) + " bytes");
      palette.resize(len / 3);
      for (size_t i = 0; i < palette.size(); ++i) palette[i] = {data[3 * i], data[3 * i + 1], data[3 * i + 2], 255};
    } else if (name == "tRNS") {
      trns.assign(data, data + len);
    } else if (name == "IDAT") {
      idat.insert(idat.end(), data, data + len);
    } else if (name == "IEND") {
      seen_end = true;
    } else if (!(type[0] & 0x20)) {
      throw fail("has a critical chunk '" + name + "' this reader does not know");
    }
    at += 12 + len;
  }
  if (!seen_header) throw fail("has no IHDR chunk");
  if (idat.empty()) throw fail("has no image data (IDAT)");
  if (h.color == 3 && palette.empty()) throw fail("uses a palette but has no PLTE chunk");
  const int64_t W = h.width, H = h.height;
  // The filtered rows of each pass (one pass without interlacing).
  const int passes = h.interlace ? 7 : 1;
  int64_t expect = 0;
  for (int p = 0; p < passes; ++p) {
    const int64_t pw = h.interlace ? pass_size(W, kPassX0[p], kPassDx[p]) : W;
    const int64_t ph = h.interlace ? pass_size(H, kPassY0[p], kPassDy[p]) : H;
    if (pw && ph) expect += ph * (1 + h.row_bytes(pw));
  }
  std::vector<uint8_t> raw(static_cast<size_t>(expect));
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) throw fail("decoder could not start");
  zs.next_in = idat.data();
  zs.avail_in = static_cast<uInt>(idat.size());
  zs.next_out = raw.data();
  zs.avail_out = static_cast<uInt>(raw.size());
  const int zr = inflate(&zs, Z_FINISH);
  const size_t got = raw.size() - zs.avail_out;
  inflateEnd(&zs);
  if (zr != Z_STREAM_END || got != raw.size())
    throw fail("image data is damaged or truncated (" + std::to_string(got) + " of " + std::to_string(raw.size()) +
               " bytes inflated)");
  const int ch = h.channels();
  const int64_t bpp = std::max<int64_t>(1, ch * h.depth / 8);
  std::vector<std::array<uint8_t, 4>> rgba(static_cast<size_t>(W * H));
  const bool key_alpha = !trns.empty() && h.color != 3;
  size_t off = 0;
  std::vector<uint8_t> prev, cur;
  for (int p = 0; p < passes; ++p) {
    const int64_t pw = h.interlace ? pass_size(W, kPassX0[p], kPassDx[p]) : W;
    const int64_t ph = h.interlace ? pass_size(H, kPassY0[p], kPassDy[p]) : H;
    if (!pw || !ph) continue;
    const int64_t rb = h.row_bytes(pw);
    prev.assign(static_cast<size_t>(rb), 0);
    for (int64_t y = 0; y < ph; ++y) {
      const uint8_t filter = raw[off++];
      cur.assign(raw.begin() + static_cast<std::ptrdiff_t>(off), raw.begin() + static_cast<std::ptrdiff_t>(off + rb));
      off += static_cast<size_t>(rb);
      for (int64_t i = 0; i < rb; ++i) {
        const int a = i >= bpp ? cur[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
        switch (filter) {
          case 0: break;
          case 1: cur[i] = static_cast<uint8_t>(cur[i] + a); break;
          case 2: cur[i] = static_cast<uint8_t>(cur[i] + b); break;
          case 3: cur[i] = static_cast<uint8_t>(cur[i] + (a + b) / 2); break;
          case 4: cur[i] = static_cast<uint8_t>(cur[i] + paeth(a, b, c)); break;
          default: throw fail("row " + std::to_string(y) + " has an unknown filter type " + std::to_string(filter));
        }
      }
      auto sample = [&](int64_t x, int c) -> int {  // the c-th sample of pixel x, at the file's depth
        if (h.depth == 8) return cur[static_cast<size_t>(x * ch + c)];
        const int64_t bit = (x * ch + c) * h.depth;
        return (cur[static_cast<size_t>(bit / 8)] >> (8 - h.depth - bit % 8)) & ((1 << h.depth) - 1);
      };
      const int scale = h.depth == 8 ? 1 : 255 / ((1 << h.depth) - 1);
      const int64_t yy = h.interlace ? kPassY0[p] + y * kPassDy[p] : y;
      for (int64_t x = 0; x < pw; ++x) {
        const int64_t xx = h.interlace ? kPassX0[p] + x * kPassDx[p] : x;
        auto& px = rgba[static_cast<size_t>(yy * W + xx)];
        switch (h.color) {
          case 0: {
            const int v = sample(x, 0);
            const auto g = static_cast<uint8_t>(v * scale);
            px = {g, g, g, 255};
            if (key_alpha && trns.size() >= 2 && v == ((trns[0] << 8) | trns[1])) px[3] = 0;
            break;
          }
          case 2:
            px = {static_cast<uint8_t>(sample(x, 0)), static_cast<uint8_t>(sample(x, 1)),
                  static_cast<uint8_t>(sample(x, 2)), 255};
            if (key_alpha && trns.size() >= 6 && px[0] == ((trns[0] << 8) | trns[1]) &&
                px[1] == ((trns[2] << 8) | trns[3]) && px[2] == ((trns[4] << 8) | trns[5]))
              px[3] = 0;
            break;
          case 3: {
            const int i = sample(x, 0);
            if (static_cast<size_t>(i) >= palette.size())
              throw fail("pixel uses palette entry " + std::to_string(i) + " of " + std::to_string(palette.size()));
            px = palette[static_cast<size_t>(i)];
            if (static_cast<size_t>(i) < trns.size()) px[3] = trns[static_cast<size_t>(i)];
            break;
          }
          case 4: {
            const auto g = static_cast<uint8_t>(sample(x, 0));
            px = {g, g, g, static_cast<uint8_t>(sample(x, 1))};
            break;
          }
          default:
            px = {static_cast<uint8_t>(sample(x, 0)), static_cast<uint8_t>(sample(x, 1)),
                  static_cast<uint8_t>(sample(x, 2)), static_cast<uint8_t>(sample(x, 3))};
        }
      }
      prev.swap(cur);
    }
  }
  const bool alpha = h.color == 4 || h.color == 6 || !trns.empty();
  Image img;
  img.width = W;
  img.height = H;
  img.rgb.resize(static_cast<size_t>(W * H * 3));
  for (size_t i = 0; i < rgba.size(); ++i)
    for (int c = 0; c < 3; ++c) img.rgb[3 * i + c] = alpha ? over_white(rgba[i][c], rgba[i][3]) : rgba[i][c];
  return img;
}

namespace {

// libjpeg reports errors through a callback that must not return: it jumps back to the decoder
// with the library's message. Corrupt-data warnings (a truncated file, damaged entropy data)
// count as errors too, as PIL refuses such files.
struct JpegErrors {
  jpeg_error_mgr mgr;
  std::jmp_buf back;
  char message[JMSG_LENGTH_MAX];
};
[[noreturn]] void jpeg_fail(j_common_ptr c) {
  auto* e = reinterpret_cast<JpegErrors*>(c->err);
  (*c->err->format_message)(c, e->message);
  std::longjmp(e->back, 1);
}
void jpeg_warn(j_common_ptr c, int level) {
  if (level < 0) jpeg_fail(c);  // a warning about corrupt data
}

}  // namespace

namespace {

// The decode itself, free of objects with destructors between setjmp and any longjmp (the
// caller owns the image and the scanline buffer). Returns "" or what is wrong.
const char* run_jpeg(std::span<const uint8_t> bytes, Image* img, std::vector<uint8_t>* line, JpegErrors* err) {
  jpeg_decompress_struct cinfo{};
  cinfo.err = jpeg_std_error(&err->mgr);
  err->mgr.error_exit = jpeg_fail;
  err->mgr.emit_message = jpeg_warn;
  if (setjmp(err->back)) {
    jpeg_destroy_decompress(&cinfo);
    return err->message;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  const int64_t w = cinfo.image_width, h = cinfo.image_height;
  const char* refused = nullptr;
  if (w <= 0 || h <= 0 || w * h > kMaxImagePixels)
    refused = "is empty or larger than the pixel limit";
  else if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK)
    refused = "is in CMYK, which is not supported (convert it to RGB)";
  if (refused) {
    jpeg_destroy_decompress(&cinfo);
    return refused;
  }
  const bool grey = cinfo.jpeg_color_space == JCS_GRAYSCALE;
  cinfo.out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
  img->width = w;
  img->height = h;
  img->rgb.resize(static_cast<size_t>(w * h * 3));
  line->resize(static_cast<size_t>(w * (grey ? 1 : 3)));
  jpeg_start_decompress(&cinfo);
  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* rows[1] = {line->data()};
    const auto y = static_cast<int64_t>(cinfo.output_scanline);
    jpeg_read_scanlines(&cinfo, rows, 1);
    uint8_t* dst = img->rgb.data() + y * w * 3;
    if (grey)
      for (int64_t x = 0; x < w; ++x) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = (*line)[static_cast<size_t>(x)];
    else
      std::memcpy(dst, line->data(), line->size());
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return "";
}

}  // namespace

// libjpeg(-turbo) with its defaults, as PIL decodes: the islow IDCT, fancy chroma upsampling.
Image decode_jpeg(std::span<const uint8_t> bytes, const std::string& where) {
  Image img;
  std::vector<uint8_t> line;
  JpegErrors err{};
  const char* problem = run_jpeg(bytes, &img, &line, &err);
  if (*problem) throw Error(where + ": JPEG " + problem);
  return img;
}

Image decode_image(std::span<const uint8_t> bytes, const std::string& where) {
  if (bytes.size() >= 8 && bytes[0] == 137 && bytes[1] == 'P' && bytes[2] == 'N' && bytes[3] == 'G')
    return decode_png(bytes, where);
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) return decode_jpeg(bytes, where);
  throw Error(where + ": not an image this build reads (expected a PNG or JPEG file)");
}

Image read_image(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path.string() + ": cannot open the image");
  f.seekg(0, std::ios::end);
  const auto size = static_cast<int64_t>(f.tellg());
  if (size < 0 || size > (int64_t{1} << 31)) throw Error(path.string() + ": the image file is too large");
  f.seekg(0);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  f.read(reinterpret_cast<char*>(bytes.data()), size);
  if (!f) throw Error(path.string() + ": cannot read the image");
  return decode_image(bytes, path.string());
}

namespace {

// The Keys cubic with a = -0.5 (PIL's bicubic), in torch's evaluation order.
double keys_cubic(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
  return 0.0;
}

struct Axis {
  std::vector<int64_t> first, count;
  std::vector<int16_t> w;  // [out, taps]
  int64_t taps = 0;
  int precision = 0;
};

Axis axis_weights(int64_t in, int64_t out) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double support = scale >= 1.0 ? 2.0 * scale : 2.0, invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  Axis ax;
  ax.taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  std::vector<double> wf(static_cast<size_t>(out * ax.taps), 0.0);
  double wt_max = 0.0;
  for (int64_t i = 0; i < out; ++i) {
    const double center = scale * (static_cast<double>(i) + 0.5);
    const int64_t xmin = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t xsize =
        std::clamp<int64_t>(std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in) - xmin, 0, ax.taps);
    double* row = wf.data() + i * ax.taps;
    double total = 0.0;
    for (int64_t j = 0; j < xsize; ++j)
      total += row[j] = keys_cubic((static_cast<double>(j + xmin) - center + 0.5) * invscale);
    if (total != 0.0)
      for (int64_t j = 0; j < xsize; ++j) wt_max = std::max(wt_max, row[j] /= total);
    ax.first.push_back(xmin);
    ax.count.push_back(xsize);
  }
  for (ax.precision = 0; ax.precision < 22; ++ax.precision)
    if (static_cast<int>(0.5 + wt_max * static_cast<double>(1 << (ax.precision + 1))) >= (1 << 15)) break;
  ax.w.resize(wf.size());
  for (size_t k = 0; k < wf.size(); ++k) {
    const double v = wf[k] * static_cast<double>(1 << ax.precision);
    ax.w[k] = static_cast<int16_t>(v < 0 ? static_cast<int>(-0.5 + v) : static_cast<int>(0.5 + v));
  }
  return ax;
}

// One pass along an axis: out[o] = clamp((2^(p-1) + Σ_j in[first + j] w_j) >> p) per channel.
// `line(i, c)` reads input sample i of channel c of the line being resampled.
template <typename Read, typename Write>
void convolve(const Axis& ax, int64_t out, Read&& read, Write&& write) {
  for (int64_t o = 0; o < out; ++o) {
    const int16_t* w = ax.w.data() + o * ax.taps;
    for (int c = 0; c < 3; ++c) {
      int32_t s = 1 << (ax.precision - 1);
      for (int64_t j = 0; j < ax.count[static_cast<size_t>(o)]; ++j)
        s += static_cast<int32_t>(read(ax.first[static_cast<size_t>(o)] + j, c)) * w[j];
      write(o, c, static_cast<uint8_t>(std::clamp(s >> ax.precision, 0, 255)));
    }
  }
}

}  // namespace

Image resize_bicubic(const Image& img, int64_t width, int64_t height) {
  if (width <= 0 || height <= 0 || width * height > kMaxImagePixels)
    throw Error("image resize: target size " + std::to_string(width) + "x" + std::to_string(height) +
                " is empty or too large");
  Image cur = img;
  if (width != img.width) {  // horizontal first, as torch
    const Axis ax = axis_weights(img.width, width);
    Image out{width, img.height, std::vector<uint8_t>(static_cast<size_t>(width * img.height * 3))};
    for (int64_t y = 0; y < img.height; ++y) {
      const uint8_t* in = cur.rgb.data() + y * img.width * 3;
      uint8_t* o = out.rgb.data() + y * width * 3;
      convolve(ax, width, [&](int64_t i, int c) { return in[i * 3 + c]; },
               [&](int64_t x, int c, uint8_t v) { o[x * 3 + c] = v; });
    }
    cur = std::move(out);
  }
  if (height != img.height) {
    const Axis ax = axis_weights(img.height, height);
    Image out{cur.width, height, std::vector<uint8_t>(static_cast<size_t>(cur.width * height * 3))};
    const int64_t W = cur.width;
    for (int64_t x = 0; x < W; ++x)
      convolve(ax, height, [&](int64_t i, int c) { return cur.rgb[static_cast<size_t>((i * W + x) * 3 + c)]; },
               [&](int64_t y, int c, uint8_t v) { out.rgb[static_cast<size_t>((y * W + x) * 3 + c)] = v; });
    cur = std::move(out);
  }
  return cur;
}

}  // namespace yak::io
