// ggml's block formats, bit for bit: yak's reference quantizers give the bytes ggml's give for
// the same rows, and its dequantizers the same floats (goldens by
// tools/golden/make_quant_goldens.py from ggml itself, cross-checked there with the gguf
// package's numpy code).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "yak/tensor/dtype.h"
#include "yak/tensor/half.h"
#include "yak/tensor/quant.h"

namespace yak {
namespace {

std::vector<uint8_t> read_file(const std::string& name) {
  std::ifstream f(std::string(YAK_GOLDEN_DIR) + "/quant/" + name, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<float> read_floats(const std::string& name) {
  auto b = read_file(name);
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

struct Case {
  DType type;
  bool has_dequant_golden;
};

class QuantGolden : public ::testing::TestWithParam<Case> {};

TEST_P(QuantGolden, QuantizeAndDequantizeEqualGgml) {
  const DType t = GetParam().type;
  const auto& info = dtype_info(t);
  const std::vector<float> x = read_floats("input.f32");
  ASSERT_EQ(x.size(), 16u * 256u) << "tests/golden/quant/input.f32 missing or short";
  const std::vector<uint8_t> want = read_file(std::string(info.name) + ".bin");
  ASSERT_EQ(want.size(), dtype_bytes(t, static_cast<int64_t>(x.size()))) << info.name << ".bin";

  std::vector<uint8_t> got(want.size(), 0xA5);
  info.from_float(x.data(), got.data(), static_cast<int64_t>(x.size()));
  // Compare block by block so a failure names the row and block.
  int64_t mismatched_blocks = 0, first = -1;
  for (size_t b = 0; b < want.size() / info.block_bytes; ++b)
    if (std::memcmp(got.data() + b * info.block_bytes, want.data() + b * info.block_bytes, info.block_bytes) != 0) {
      if (first < 0) first = static_cast<int64_t>(b);
      ++mismatched_blocks;
    }
  EXPECT_EQ(mismatched_blocks, 0) << info.name << ": first differing block " << first << " (row "
                                  << first * info.block / 256 << ")";

  std::vector<float> y(x.size(), -1.f);
  info.to_float(want.data(), y.data(), static_cast<int64_t>(x.size()));
  if (GetParam().has_dequant_golden) {
    const std::vector<float> ref = read_floats(std::string(info.name) + ".f32");
    ASSERT_EQ(ref.size(), x.size());
    int64_t diff = 0;
    for (size_t i = 0; i < y.size(); ++i) diff += std::memcmp(&y[i], &ref[i], 4) != 0;
    EXPECT_EQ(diff, 0) << info.name << ": dequantized floats differ from ggml's";
  } else {
    // No independent dequantizer (activation-only types): the values must reproduce the
    // quantizer's input within half a step of each block's scale d, plus what rounding the scale
    // to f16 (Q8_1) moves the largest level: 127 |f16(d) - d| (all of it where d underflows).
    for (size_t i = 0; i < y.size(); ++i) {
      const size_t row = i / 256;
      float amax = 0;
      for (size_t j = i / info.block * info.block; j < (i / info.block + 1) * info.block; ++j)
        amax = std::max(amax, std::fabs(x[j]));
      const float d = amax / 127, d16 = f16_to_f32(f32_to_f16(d));
      ASSERT_LE(std::fabs(y[i] - x[i]), 0.5f * d * 1.0001f + 127 * std::fabs(d16 - d))
          << info.name << " element " << i << " row " << row;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, QuantGolden,
                         ::testing::Values(Case{DType::Q8_0, true}, Case{DType::Q4_0, true}, Case{DType::Q4_1, true},
                                           Case{DType::Q5_0, true}, Case{DType::Q5_1, true}, Case{DType::Q8_1, false},
                                           Case{DType::Q2_K, true}, Case{DType::Q3_K, true}, Case{DType::Q4_K, true},
                                           Case{DType::Q5_K, true}, Case{DType::Q6_K, true}, Case{DType::Q8_K, false}),
                         [](const auto& info) { return std::string(dtype_name(info.param.type)); });

TEST(QuantTable, GgmlIdsRoundTrip) {
  for (int i = 0; i < kDTypeCount; ++i) {
    const auto& info = dtype_info(static_cast<DType>(i));
    EXPECT_EQ(static_cast<int>(info.type), i) << "kInfos is indexed by DType";
    if (info.ggml >= 0) {
      EXPECT_EQ(dtype_from_ggml(static_cast<uint32_t>(info.ggml)), info.type) << info.name;
    }
    if (dtype_is_quantized(info.type)) {
      EXPECT_TRUE(info.to_float && info.from_float) << info.name;
      EXPECT_FALSE(info.safetensors) << info.name;
    }
  }
  EXPECT_FALSE(dtype_from_ggml(4).has_value());  // removed Q4_2
  EXPECT_EQ(dtype_from_name("q4_k"), DType::Q4_K);
}

// Q8_K's block sums are what the K-format dot products subtract minimums with: they must equal
// the sums of the quantized values.
TEST(QuantTable, Q8KBlockSums) {
  const std::vector<float> x = read_floats("input.f32");
  ASSERT_FALSE(x.empty());
  std::vector<quant::BlockQ8_K> q(x.size() / 256);
  quant::quantize_q8_k(x.data(), q.data(), static_cast<int64_t>(x.size()));
  for (const auto& b : q)
    for (int j = 0; j < 16; ++j) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += b.qs[16 * j + i];
      EXPECT_EQ(b.bsums[j], s);
    }
}

}  // namespace
}  // namespace yak
