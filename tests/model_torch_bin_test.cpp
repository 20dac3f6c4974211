// Model folders and PEFT adapters saved as PyTorch .bin (tests/golden/torch, from
// tools/golden/make_torch_goldens.py, which checked the same against transformers and PEFT):
// pytorch_model.bin, its sharded form and adapter_model.bin give the logits of the safetensors
// folders they were made from, bit for bit; a folder with a malicious pickle fails to load.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/model/decoder.h"
#include "model_batches.h"

using namespace yak;
using testing_util::logits_of;
namespace fs = std::filesystem;

namespace {

const fs::path kGolden = fs::path(YAK_GOLDEN_DIR);
const fs::path kTorch = kGolden / "torch";

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || !(a.shape() == b.shape())) return false;
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

std::vector<std::vector<int32_t>> prompts_of(const fs::path& golden_json) {
  std::vector<std::vector<int32_t>> out;
  const Json g = read_json_file(golden_json);
  for (auto& p : g.at("prompts")) out.push_back(p.get<std::vector<int32_t>>());
  return out;
}

}  // namespace

// A model folder of pytorch_model.bin (one file; shards with an index) loads with the logits of
// the safetensors folder it was made from, bit for bit.
TEST(TorchBin, ModelFoldersGiveTheSafetensorsLogits) {
  const std::pair<const char*, const char*> cases[] = {{"llama_bf16_bin", "llama_bf16"},
                                                      {"llama_mha_f32_sharded_bin", "llama_mha_f32"}};
  for (auto& [bin, st] : cases) {
    auto a = model::DecoderModel::load(kTorch / bin);
    auto b = model::DecoderModel::load(kGolden / "models" / st);
    int checked = 0;
    for (auto& p : prompts_of(kGolden / "models" / st / "golden.json")) {
      const Tensor la = logits_of(*a, p), lb = logits_of(*b, p);
      ASSERT_TRUE(same_bytes(la, lb)) << bin << " prompt " << checked;
      ++checked;
    }
    EXPECT_EQ(checked, 3) << bin;
  }
}

TEST(TorchBin, PeftAdapterBinGivesTheSafetensorsLogits) {
  const fs::path base = kGolden / "models" / "llama_mha_f32";
  const fs::path st = kGolden / "lora" / "llama_mha_f32_modules_to_save";
  auto a = model::DecoderModel::load(base);
  a->load_lora(kTorch / "lora_modules_to_save_bin");
  auto b = model::DecoderModel::load(base);
  b->load_lora(st);
  int checked = 0;
  for (auto& p : prompts_of(st / "golden.json")) {
    ASSERT_TRUE(same_bytes(logits_of(*a, p), logits_of(*b, p))) << "prompt " << checked;
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

TEST(TorchBin, FolderWithAMaliciousPickleFailsToLoad) {
  const fs::path marker = "/tmp/yak-torch-pickle-was-executed";
  fs::remove(marker);
  const fs::path dir = fs::temp_directory_path() / ("yak-torch-evil-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::copy_file(kTorch / "llama_bf16_bin" / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  fs::copy_file(kTorch / "malicious_system.bin", dir / "pytorch_model.bin", fs::copy_options::overwrite_existing);
  std::string e;
  try {
    model::DecoderModel::load(dir);
  } catch (const Error& err) {
    e = err.what();
  }
  EXPECT_NE(e.find("posix.system"), std::string::npos) << e;
  EXPECT_NE(e.find("pytorch_model.bin"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(marker));
  fs::remove_all(dir);
}
