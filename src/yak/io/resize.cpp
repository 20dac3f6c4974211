#include "yak/io/resize.h"

#include <cstring>
#include <map>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/base/mmap.h"
#include "yak/io/safetensors.h"
#include "yak/io/staging_dir.h"
#include "yak/tensor/half.h"

namespace yak::io {

namespace fs = std::filesystem;

Tensor grow_rows_with_mean(const Tensor& w, int64_t new_rows, const std::string& where) {
  if (w.ndim() != 2) throw Error(where + ": expected a 2-D weight, got shape " + shape_str(w.shape()));
  DType dt = w.dtype();
  if (dt != DType::F32 && dt != DType::F16 && dt != DType::BF16)
    throw Error(where + ": dtype " + std::string(dtype_name(dt)) + " cannot be resized (expected F32, F16 or BF16)");
  const int64_t old_rows = w.dim(0), cols = w.dim(1);
  if (old_rows < 1) throw Error(where + ": has no rows to average");
  if (new_rows < old_rows)
    throw Error(where + ": cannot shrink from " + std::to_string(old_rows) + " to " + std::to_string(new_rows) +
                " rows");
  Tensor out = Tensor::empty({new_rows, cols}, dt);
  std::memcpy(out.raw(), w.raw(), w.nbytes());
  if (new_rows == old_rows) return out;

  std::vector<double> sum(cols, 0.0);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < old_rows; ++r) {
    convert_to_f32(dt, static_cast<const uint8_t*>(w.raw()) + dtype_bytes(dt, r * cols), row.data(), cols);
    for (int64_t c = 0; c < cols; ++c) sum[c] += row[c];
  }
  const size_t row_bytes = dtype_bytes(dt, cols);
  std::vector<uint8_t> mean_row(row_bytes);
  for (int64_t c = 0; c < cols; ++c) {
    float m = static_cast<float>(sum[c] / static_cast<double>(old_rows));
    if (dt == DType::F32) {
      std::memcpy(mean_row.data() + 4 * c, &m, 4);
    } else {
      uint16_t h = dt == DType::BF16 ? f32_to_bf16(m) : f32_to_f16(m);
      std::memcpy(mean_row.data() + 2 * c, &h, 2);
    }
  }
  auto* dst = static_cast<uint8_t*>(out.raw());
  for (int64_t r = old_rows; r < new_rows; ++r) std::memcpy(dst + r * row_bytes, mean_row.data(), row_bytes);
  return out;
}

ResizeResult resize_embeddings(const fs::path& model_dir, const fs::path& out_dir, const ResizeOptions& opt) {
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) throw Error(model_dir.string() + ": no such folder (expected a model folder)");
  fs::path cfg_path = model_dir / "config.json";
  if (!fs::is_regular_file(cfg_path, ec)) throw Error(cfg_path.string() + ": no such file (expected config.json)");
  Json cfg = read_json_file(cfg_path);
  if (!cfg.is_object()) throw Error(cfg_path.string() + ": expected a JSON object");
  if (opt.vocab_size < 1) throw Error("vocab size: expected a positive number, got " + std::to_string(opt.vocab_size));
  if (opt.pad_to_multiple_of < 0)
    throw Error("--pad-to-multiple-of: expected a positive number, got " + std::to_string(opt.pad_to_multiple_of));
  for (const auto& [src, name] : opt.extra_files)
    if (!fs::is_regular_file(src, ec)) throw Error(src.string() + ": no such file");
  check_output_dir(out_dir);

  WeightStore store = WeightStore::open_dir(model_dir);
  const std::string kEmbed = "model.embed_tokens.weight", kHead = "lm_head.weight";
  if (!store.has(kEmbed)) throw Error(model_dir.string() + ": no tensor " + kEmbed);
  Tensor embed = store.get(kEmbed);
  if (embed.ndim() != 2)
    throw Error(model_dir.string() + ": " + kEmbed + " has shape " + shape_str(embed.shape()) +
                " (expected [vocab, hidden])");

  ResizeResult res;
  res.old_vocab = embed.dim(0);
  int64_t n = opt.vocab_size;
  if (opt.pad_to_multiple_of > 1)
    n = (n + opt.pad_to_multiple_of - 1) / opt.pad_to_multiple_of * opt.pad_to_multiple_of;
  if (n < res.old_vocab)
    throw Error("vocab size " + std::to_string(n) + " is below the model's " + std::to_string(res.old_vocab) +
                " rows of " + kEmbed + " (expected the tokenizer to extend the model's vocabulary)");
  res.new_vocab = n;
  int64_t cfg_vocab = json_get_or<int64_t>(cfg, "vocab_size", res.old_vocab, cfg_path.string());
  if (cfg_vocab != res.old_vocab)
    throw Error(cfg_path.string() + ": vocab_size " + std::to_string(cfg_vocab) + " differs from the " +
                std::to_string(res.old_vocab) + " rows of " + kEmbed);

  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& name : store.names()) {
    Tensor t = store.get(name);
    if (name == kEmbed || name == kHead) {
      if (t.ndim() != 2 || t.dim(0) != res.old_vocab)
        throw Error(model_dir.string() + ": " + name + " has shape " + shape_str(t.shape()) + " (expected [" +
                    std::to_string(res.old_vocab) + ", hidden])");
      if (n != res.old_vocab) res.resized.push_back(name);
      tensors.emplace_back(name, grow_rows_with_mean(t, n, model_dir.string() + ": " + name));
    } else {
      tensors.emplace_back(name, t);  // a view into the mapped input, written unchanged
    }
  }
  cfg["vocab_size"] = n;

  StagingDir stage(out_dir);
  write_safetensors(stage.path() / "model.safetensors", tensors, {{"format", "pt"}});
  write_file_atomic(stage.path() / "config.json", cfg.dump(2) + "\n");
  if (fs::is_regular_file(model_dir / "generation_config.json", ec))
    write_file_atomic(stage.path() / "generation_config.json", read_text_file(model_dir / "generation_config.json"));
  for (const auto& [src, name] : opt.extra_files) write_file_atomic(stage.path() / name, read_text_file(src));
  stage.commit();
  return res;
}

}  // namespace yak::io
