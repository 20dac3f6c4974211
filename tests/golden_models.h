// Shared by the model and engine parity tests: the tiny random checkpoints and reference outputs
// that tools/golden/make_model_goldens.py wrote with transformers.
#pragma once
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "yak/base/json.h"
#include "yak/io/safetensors.h"

namespace yak::golden {

inline std::filesystem::path golden_models_dir() {
  return std::filesystem::path(YAK_GOLDEN_DIR) / "models";
}

inline std::vector<std::string> golden_model_names() {
  std::vector<std::string> names;
  if (std::filesystem::exists(golden_models_dir()))
    for (auto& e : std::filesystem::directory_iterator(golden_models_dir()))
      if (std::filesystem::exists(e.path() / "golden.json")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

struct GoldenModel {
  std::filesystem::path dir;
  Json meta;
  std::vector<std::vector<int32_t>> prompts, greedy;
  std::unique_ptr<io::SafetensorsFile> logits;

  explicit GoldenModel(const std::string& name) : dir(golden_models_dir() / name) {
    meta = read_json_file(dir / "golden.json");
    for (auto& p : meta["prompts"]) prompts.push_back(p.get<std::vector<int32_t>>());
    for (auto& g : meta["greedy"]) greedy.push_back(g.get<std::vector<int32_t>>());
    logits = io::SafetensorsFile::open(dir / "logits.safetensors");
  }
  bool bf16() const { return meta.value("weights_dtype", "") == "bfloat16"; }
};

}  // namespace yak::golden
