// Growing a checkpoint's vocabulary after its tokenizer was extended: new rows of the embedding
// (and of an untied lm_head) are the mean of the old rows; everything else is copied unchanged.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "yak/tensor/tensor.h"

namespace yak::io {

// rows [old_rows, new_rows) = the column-wise mean of rows [0, old_rows), summed in double and
// rounded once to the tensor's dtype (f32, f16 or bf16); rows below old_rows are copied bit for bit.
// transformers' resize_token_embeddings(mean_resizing=True) samples the new rows from
// N(mean, 1e-9·covariance) instead — the same mean with a spread about 3e-5 of the rows' own — and
// takes the plain mean when the covariance is not positive definite; yak takes the mean always,
// so the result is deterministic and every new token starts with the same logit.
Tensor grow_rows_with_mean(const Tensor& weight, int64_t new_rows, const std::string& where);

struct ResizeOptions {
  int64_t vocab_size = 0;          // wanted size (e.g. the new tokenizer's), before rounding
  int64_t pad_to_multiple_of = 0;  // round vocab_size up to a multiple of this (0 or 1: no rounding)
  // Files to put into the output folder beside the weights: (source, name in the output).
  std::vector<std::pair<std::filesystem::path, std::string>> extra_files;
};

struct ResizeResult {
  int64_t old_vocab = 0, new_vocab = 0;
  std::vector<std::string> resized;  // tensor names that grew
};

// Reads model_dir (config.json + safetensors, sharded or not) and writes out_dir: config.json with
// the new vocab_size, generation_config.json when present, one model.safetensors, and extra_files.
// out_dir must be new or empty; it appears complete or not at all. Throws yak::Error naming the file
// and field when the checkpoint is not what is expected or the new size is below the old one.
ResizeResult resize_embeddings(const std::filesystem::path& model_dir, const std::filesystem::path& out_dir,
                               const ResizeOptions& opt);

}  // namespace yak::io
