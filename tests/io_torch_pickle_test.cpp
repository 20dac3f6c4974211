// PyTorch .bin checkpoints (tests/golden/torch, written by torch.save through
// tools/golden/make_torch_goldens.py): every dtype and layout a state dict holds equals the
// contiguous copy torch wrote beside it; malicious pickles are refused without running anything;
// damaged files give a yak::Error naming the file, never a crash. (Model folders and adapters
// saved as .bin: model_torch_bin_test.)
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "yak/base/error.h"
#include "yak/io/safetensors.h"
#include "yak/io/torch_pickle.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kGolden = fs::path(YAK_GOLDEN_DIR);
const fs::path kTorch = kGolden / "torch";

template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || !(a.shape() == b.shape())) return false;
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST(TorchPickle, EveryDtypeAndLayoutEqualsTorchsContiguousCopy) {
  const auto got = io::read_torch_file(kTorch / "tensors.bin");
  const auto want = io::SafetensorsFile::open(kTorch / "tensors.safetensors");
  ASSERT_EQ(got.size(), want->entries().size());
  ASSERT_EQ(got.size(), 19u);
  for (auto& [name, e] : want->entries()) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_TRUE(same_bytes(got.at(name), want->get(name))) << name;
  }
  EXPECT_EQ(got.at("scalar").ndim(), 0);
  EXPECT_EQ(got.at("empty").shape(), (Shape{0, 4}));
  EXPECT_EQ(got.at("transposed").shape(), (Shape{8, 6}));
  EXPECT_EQ(got.at("bf16").dtype(), DType::BF16);
  EXPECT_EQ(got.at("bool").dtype(), DType::Bool);
}

TEST(TorchPickle, WrappedStateDictIsUnwrapped) {
  const auto got = io::read_torch_file(kTorch / "wrapped.bin");
  const auto want = io::SafetensorsFile::open(kTorch / "tensors.safetensors");
  ASSERT_EQ(got.size(), 3u);
  for (const char* n : {"f32", "bf16", "i64"}) EXPECT_TRUE(same_bytes(got.at(n), want->get(n))) << n;
}

TEST(TorchPickle, MaliciousPicklesAreRefusedWithoutRunningAnything) {
  const fs::path marker = "/tmp/yak-torch-pickle-was-executed";
  fs::remove(marker);
  const std::pair<const char*, const char*> cases[] = {{"malicious_system.bin", "global 'posix.system' is refused"},
                                                      {"malicious_eval.bin", "global '__builtin__.eval' is refused"},
                                                      {"malicious_object.bin", "global '__main__.Opaque' is refused"}};
  for (auto& [file, message] : cases) {
    const std::string e = error_of([&] { io::read_torch_file(kTorch / file); });
    EXPECT_NE(e.find(message), std::string::npos) << file << ": " << e;
    EXPECT_NE(e.find(file), std::string::npos) << "the error names the file: " << e;
    EXPECT_NE(e.find("never runs code"), std::string::npos) << e;
  }
  EXPECT_FALSE(fs::exists(marker));
}

TEST(TorchPickle, LegacyFormatAndNonArchivesAreNamed) {
  std::string e = error_of([&] { io::read_torch_file(kTorch / "legacy.bin"); });
  EXPECT_NE(e.find("legacy format (PyTorch < 1.6)"), std::string::npos) << e;
  e = error_of([&] { io::read_torch_file(kTorch / "tensors.safetensors"); });
  EXPECT_NE(e.find("not a torch.save archive"), std::string::npos) << e;
}

TEST(TorchPickle, DamagedFilesGiveErrorsNeverCrashes) {
  const std::string bytes = read_all(kTorch / "tensors.bin");
  ASSERT_GT(bytes.size(), 1000u);
  // Truncated anywhere: the zip directory is at the end, so every cut is refused.
  for (size_t cut : {size_t{10}, bytes.size() / 3, bytes.size() / 2, bytes.size() - 30, bytes.size() - 1}) {
    const std::string e = error_of([&] {
      io::read_torch_buffer(reinterpret_cast<const uint8_t*>(bytes.data()), cut, nullptr, "cut.bin");
    });
    EXPECT_NE(e.find("cut.bin"), std::string::npos) << "cut at " << cut << ": " << e;
  }
  // One flipped byte at a time: an error or a state dict, and data.pkl's CRC catches changes there.
  std::mt19937 rng(7);
  int refused = 0, read = 0;
  for (int k = 0; k < 400; ++k) {
    std::string b = bytes;
    const size_t at = rng() % b.size();
    b[at] = static_cast<char>(b[at] ^ (1 + rng() % 255));
    try {
      auto t = io::read_torch_buffer(reinterpret_cast<const uint8_t*>(b.data()), b.size(), nullptr, "flip.bin");
      ++read;
    } catch (const Error& e) {
      ++refused;
      EXPECT_NE(std::string(e.what()).find("flip.bin"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(refused + read, 400);
  EXPECT_GT(refused, 0);
}

