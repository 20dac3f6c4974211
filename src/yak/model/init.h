// A new checkpoint from a config alone: random weights (normal, std = initializer_range, norms = 1)
// written as a Hugging Face folder, for pretraining from scratch.
#pragma once
#include <cstdint>
#include <filesystem>

#include "yak/base/json.h"

namespace yak::model {

// config must be a valid config.json object (see io::ModelConfig); weights are f32. Writes
// out/config.json and out/model.safetensors (atomically; out must not exist or be a folder).
void init_random_checkpoint(const Json& config, const std::filesystem::path& out, uint64_t seed);

}  // namespace yak::model
