// Saving what training produces. save_hf_folder writes a Hugging Face folder (config, safetensors
// in the checkpoint's dtype, tokenizer and generation files) that yak and transformers load.
// Training state (f32 weights, AdamW moments, step, data position) goes to CKPT/global_step_N,
// written in a temporary folder and renamed, then CKPT/latest is switched atomically: a run
// killed at any moment, even mid-save, keeps its last complete checkpoint.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "yak/base/json.h"
#include "yak/model/decoder.h"
#include "yak/train/dataset.h"
#include "yak/train/optimizer.h"

namespace yak::train {

// Writes `model`'s weights to `out` (replacing it as a whole), copying config.json, tokenizer and
// generation files from source_dir. Weights are stored in source_dir's torch_dtype.
// config_extra: keys merged into config.json (e.g. a reward model's "mean" and "std").
void save_hf_folder(const model::DecoderModel& model, const std::filesystem::path& source_dir,
                    const std::filesystem::path& out, const Json& config_extra = Json::object());

// Writes the model's LoRA adapter as a PEFT folder (adapter_config.json, adapter_model.safetensors)
// plus the tokenizer files of source_dir, replacing `out` as a whole. config_extra (a reward
// model's "mean"/"std") goes to kConfigExtraFile beside the adapter, which PEFT ignores and
// `yak lora merge` folds into the merged config.json.
inline constexpr const char* kConfigExtraFile = "config_extra.json";
void save_lora_folder(const model::DecoderModel& model, const std::filesystem::path& source_dir,
                      const std::filesystem::path& out, const Json& config_extra = Json::object());

struct TrainState {
  int64_t step = 0;     // optimizer steps done
  LoaderPosition data;  // where the data iterator stands
  uint64_t seed = 0;
  Json extra = Json::object();  // trainer-specific (options fingerprint, last losses...)
};

// Saves a checkpoint as ckpt_dir/global_step_<step>, keeps the newest max_keep (>= 1).
void save_train_state(const std::filesystem::path& ckpt_dir, const model::DecoderModel& model, const AdamW& opt,
                      const TrainState& state, int max_keep);
// Loads ckpt_dir/latest into model and opt; nullopt when ckpt_dir holds no checkpoint. Throws
// yak::Error when a checkpoint exists but does not fit the model (names, shapes).
std::optional<TrainState> load_train_state(const std::filesystem::path& ckpt_dir, model::DecoderModel& model,
                                           AdamW& opt);

}  // namespace yak::train
