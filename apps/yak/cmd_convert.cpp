// yak convert (a Hugging Face folder to a GGUF file) and yak quantize (a GGUF file to another
// type), both writing what llama.cpp reads.
#include <cstdio>
#include <filesystem>
#include <optional>

#include "common.h"
#include "yak/base/error.h"
#include "yak/base/progress.h"
#include "yak/io/gguf_model.h"
#include "yak/io/gguf_writer.h"
#include "yak/io/safetensors.h"
#include "yak/io/staging_dir.h"
#include "yak/tokenizer/gguf_vocab.h"

namespace yak::cli {
namespace {
namespace fs = std::filesystem;

io::GgufFileType parse_type(const std::string& s) {
  auto t = io::gguf_file_type_from_name(s);
  if (!t)
    throw Error("--type '" + s + "': expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k_m, q5_k_m or q6_k");
  return *t;
}

void check_out(const std::string& out) {
  if (fs::path(out).extension() != ".gguf") throw Error("--out " + out + ": the output must be a .gguf file");
  if (fs::is_directory(out)) throw Error("--out " + out + ": is a folder");
}

std::string size_text(const fs::path& p) {
  char b[64];
  std::snprintf(b, sizeof b, "%.2f MiB", static_cast<double>(fs::file_size(p)) / (1 << 20));
  return b;
}

// The model's metadata and tensors, then the vocabulary (`add_vocab`), then the file.
template <typename AddVocab>
void write_model(const io::ModelConfig& cfg, const io::WeightStore& store, io::GgufFileType t, const std::string& name,
                 const std::string& out, AddVocab&& add_vocab) {
  io::GgufWriter w;
  std::optional<ProgressBar> bar;
  io::add_gguf_model(w, cfg, store, t, name, [&](size_t done, size_t total) {
    if (!bar) bar.emplace("tensors", static_cast<int64_t>(total));
    bar->update(static_cast<int64_t>(done));
  });
  if (bar) bar->finish();
  add_vocab(w);
  w.write(out);
  std::printf("wrote %s (%s, %s)\n", out.c_str(), io::gguf_file_type_name(t), size_text(out).c_str());
}

// A GGUF model of 16/32-bit weights back to a Hugging Face folder: config.json,
// model.safetensors (Hugging Face names and q/k row order), tokenizer.json and
// tokenizer_config.json (byte-level BPE vocabularies), written into a staging folder first.
void gguf_to_folder(const std::string& in, const std::string& out) {
  if (fs::path(out).extension() == ".gguf") throw Error("--out " + out + ": from a GGUF file, --out names a folder");
  const auto files = io::open_gguf_model(in);
  auto cfg = io::config_from_gguf(files[0]);
  const auto store = io::weights_from_gguf(files, cfg);
  std::vector<std::pair<std::string, Tensor>> tensors;
  DType main = DType::F32;
  for (const auto& name : store.names()) {
    Tensor t = store.get(name);
    if (dtype_is_quantized(t.dtype()))
      throw Error(in + ": tensor '" + name + "' is " + dtype_name(t.dtype()) +
                  "; a model folder is written from f32, f16 or bf16 GGUF files only (yak quantize IN OUT f16 first)");
    if (t.ndim() == 2) main = t.dtype();
    tensors.emplace_back(name, t);
  }
  cfg.torch_dtype = main == DType::BF16 ? "bfloat16" : main == DType::F16 ? "float16" : "float32";
  io::StagingDir stage(out);
  io::write_file_atomic(stage.path() / "config.json", cfg.to_json().dump(2) + "\n");
  io::write_safetensors(stage.path() / "model.safetensors", tensors, {{"format", "pt"}});
  tok::write_hf_tokenizer_from_gguf(files[0], stage.path());
  stage.commit();
  std::printf("wrote %s (%zu tensors, %s)\n", out.c_str(), tensors.size(), cfg.torch_dtype.c_str());
}

}  // namespace

void register_convert(CLI::App& app) {
  struct Flags {
    std::string model, out, type = "f16";
  };
  auto f = std::make_shared<Flags>();
  auto* cv = app.add_subcommand("convert", "A Hugging Face model folder to a GGUF file (llama.cpp's format), or back");
  cv->add_option("-m,--model", f->model, "Model folder (to a .gguf), or a .gguf of f32/f16/bf16 weights (to a folder)")
      ->required();
  cv->add_option("--out", f->out, "Output .gguf file, or the new folder when -m is a .gguf")->required();
  cv->add_option("--type", f->type, "f32 | f16 | bf16 | q8_0 | q4_0 | q4_1 | q5_0 | q5_1 | q4_k_m | q5_k_m | q6_k")
      ->capture_default_str();
  cv->callback([f] {
    if (io::is_gguf_path(f->model)) return gguf_to_folder(f->model, f->out);
    const auto t = parse_type(f->type);
    check_out(f->out);
    if (!fs::is_directory(f->model)) throw Error("-m " + f->model + ": expected a model folder or a .gguf file");
    const auto cfg = io::ModelConfig::load(f->model);
    const auto store = io::WeightStore::open_dir(f->model);
    write_model(cfg, store, t, fs::path(f->model).filename().string(), f->out,
                [&](io::GgufWriter& w) { tok::add_gguf_vocab(w, f->model, cfg); });
  });

  struct QFlags {
    std::string in, out, type;
  };
  auto q = std::make_shared<QFlags>();
  auto* qz = app.add_subcommand("quantize", "Rewrite a GGUF model in another type (llama-quantize's mixtures)");
  qz->add_option("in", q->in, "Input .gguf")->required();
  qz->add_option("out", q->out, "Output .gguf")->required();
  qz->add_option("type", q->type, "f32 | f16 | bf16 | q8_0 | q4_0 | q4_1 | q5_0 | q5_1 | q4_k_m | q5_k_m | q6_k")
      ->required();
  qz->callback([q] {
    const auto t = parse_type(q->type);
    check_out(q->out);
    if (fs::weakly_canonical(q->in) == fs::weakly_canonical(q->out))
      throw Error("quantize: the output would overwrite the input");
    const auto files = io::open_gguf_model(q->in);  // split models too
    const auto& g = files[0];
    const auto cfg = io::config_from_gguf(g);
    const auto store = io::weights_from_gguf(files, cfg);
    write_model(cfg, store, t, g.get_string_opt("general.name").value_or(fs::path(q->in).stem().string()), q->out,
                [&](io::GgufWriter& w) {  // the vocabulary and chat template as they were
                  for (const auto& [key, v] : g.metadata())
                    if (key.starts_with("tokenizer.")) w.add_value(key, v);
                });
  });
}

}  // namespace yak::cli
