// Qwen3-VL's vision tower, written over the same autograd ops as the decoder: patch embedding (the
// Conv3d whose kernel equals its stride is a linear map of each flattened patch), learned position
// embeddings bilinearly resampled to each image's grid, blocks of LayerNorm + bidirectional
// attention within each image (2-D rotary embedding) + GELU MLP, the 2x2 patch merger to the
// decoder's width and the DeepStack mergers of the chosen blocks.
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "yak/autograd/var.h"
#include "yak/io/hf_config.h"
#include "yak/io/image.h"
#include "yak/io/safetensors.h"
#include "yak/tensor/tensor.h"

namespace yak::model {

// An image (or a video's frames) as the tower sees it: t x h x w patches.
struct PatchGrid {
  int64_t t = 1, h = 0, w = 0;
  int64_t patches() const { return t * h * w; }
};

struct VisionOutput {
  ag::Var embeds;                  // [merged tokens, out_hidden]: one row per image token
  std::vector<ag::Var> deepstack;  // one per deepstack_visual_indexes entry, same shape
};

class VisionModel {
 public:
  VisionModel(const io::VisionConfig& cfg, const io::WeightStore& store, const std::string& prefix = "model.visual.");

  const io::VisionConfig& config() const { return cfg_; }
  // patches [N, in_channels * temporal * patch * patch] in the processor's order (each image's
  // patches in 2x2 merge blocks, images one after another); grids give each image's shape.
  // The tower is frozen: it runs without a tape, so its outputs are constants to a training decoder.
  VisionOutput forward(const Tensor& patches, std::span<const PatchGrid> grids) const;
  // The tower's input after the patch and position embeddings, [N, hidden] (for tests).
  ag::Var embed(const Tensor& patches, std::span<const PatchGrid> grids) const;
  // The last block's output before the merger, set by the latest forward (for tests).
  const ag::Var& last_hidden() const { return last_hidden_; }
  int64_t parameter_count() const;

 private:
  struct Block {
    ag::Var norm1_w, norm1_b, q, k, v, q_b, k_b, v_b, proj, proj_b, norm2_w, norm2_b, fc1, fc1_b, fc2, fc2_b;
  };
  struct Merger {
    bool postshuffle = false;  // LayerNorm after the 2x2 shuffle (DeepStack) or before (main)
    ag::Var norm_w, norm_b, fc1, fc1_b, fc2, fc2_b;
  };
  io::VisionConfig cfg_;
  ag::Var patch_w_, patch_b_, pos_table_;
  std::vector<Block> blocks_;
  Merger merger_;
  std::vector<Merger> deepstack_;
  std::vector<float> inv_freq_;  // head_dim / 4 frequencies of the 2-D rotary embedding
  mutable ag::Var last_hidden_;

  void check_input(const Tensor& patches, std::span<const PatchGrid> grids) const;
  ag::Var block_forward(const Block& b, const ag::Var& x, std::span<const PatchGrid> grids, const Tensor& cs) const;
  ag::Var merge(const Merger& m, const ag::Var& x) const;
  Tensor rotary_table(std::span<const PatchGrid> grids) const;
};

// Qwen2-VL's image processor (Qwen3-VL uses it): preprocessor_config.json's settings.
struct ImageProcessorConfig {
  int64_t patch_size = 16, temporal_patch_size = 2, merge_size = 2;
  int64_t min_pixels = 65536, max_pixels = 16777216;  // size.shortest_edge / size.longest_edge
  double mean[3] = {0.5, 0.5, 0.5}, std[3] = {0.5, 0.5, 0.5};
  double rescale_factor = 1.0 / 255.0;
  bool do_resize = true, do_rescale = true, do_normalize = true;
  // dir/preprocessor_config.json when present, else the vision tower's patch sizes with
  // Qwen3-VL's defaults; the patch sizes must agree with the tower's.
  static ImageProcessorConfig load(const std::filesystem::path& dir, const io::VisionConfig& vision);
};

// transformers' smart_resize: both sides multiples of `factor` (patch x merge), the pixel count
// within [min_pixels, max_pixels], the aspect ratio kept as closely as possible. Returns
// {height, width}; an aspect ratio over 200 is an error.
std::pair<int64_t, int64_t> smart_resize(int64_t height, int64_t width, int64_t factor, int64_t min_pixels,
                                         int64_t max_pixels);

// An RGB picture -> the tower's input rows (f32 [patches, 3 * temporal * patch * patch], each
// frame the same picture) and its grid, as the processor makes them: smart_resize, bicubic
// resize, rescale and normalise, patches in 2x2 merge blocks.
Tensor preprocess_image(const io::Image& img, const ImageProcessorConfig& cfg, PatchGrid* grid);

// A prompt's images as a vision-language decoder takes them: the features of its image tokens,
// their prompt indices, the prompt's M-RoPE positions and the offset of every later token's
// rotary position (position = cache position + rope_delta).
struct VisualPrompt {
  std::vector<int32_t> rows;       // prompt indices of the image tokens, in order
  ag::Var embeds;                  // [rows, hidden]
  std::vector<ag::Var> deepstack;  // each [rows, hidden]
  std::vector<int32_t> mrope_pos;  // 3 per prompt token
  int64_t rope_delta = 0;
  std::vector<uint64_t> image_keys;  // a hash of each image's patches: which pictures these are
};

// Runs the tower over the prompt's images (patches and grids as preprocess_image makes them,
// images in prompt order) and lays the features out for `prompt`, whose image tokens must
// match the grids.
VisualPrompt make_visual_prompt(const VisionModel& vision, std::span<const int32_t> prompt, const Tensor& patches,
                                std::span<const PatchGrid> grids);

// Qwen3-VL's M-RoPE positions (transformers' get_rope_index) for one sequence: text tokens count
// up on all three axes; the image tokens of image i (a run of image_token_id of grids[i]'s merged
// size) take (t0, t0 + row, t0 + col) on its merged grid, t0 the position after the preceding text;
// the text after an image continues from t0 + max(rows, cols). Returns 3 positions per token
// (t, h, w) and sets *delta = max position + 1 - tokens (added to later tokens' positions).
std::vector<int32_t> mrope_positions(std::span<const int32_t> ids, std::span<const PatchGrid> grids,
                                     const io::VisionConfig& cfg, int64_t* delta);

}  // namespace yak::model
