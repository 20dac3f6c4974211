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

}  // namespace

void register_convert(CLI::App& app) {
  struct Flags {
    std::string model, out, type = "f16";
  };
  auto f = std::make_shared<Flags>();
  auto* cv = app.add_subcommand("convert", "Write a Hugging Face model folder as a GGUF file (llama.cpp's format)");
  cv->add_option("-m,--model", f->model, "Model folder (config.json, safetensors, tokenizer)")->required();
  cv->add_option("--out", f->out, "Output .gguf file")->required();
  cv->add_option("--type", f->type, "f32 | f16 | bf16 | q8_0 | q4_0 | q4_1 | q5_0 | q5_1 | q4_k_m | q5_k_m | q6_k")
      ->capture_default_str();
  cv->callback([f] {
    const auto t = parse_type(f->type);
    check_out(f->out);
    if (!fs::is_directory(f->model)) throw Error("-m " + f->model + ": expected a model folder");
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
