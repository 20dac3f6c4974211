#include <cstdio>

#include "common.h"
#include "yak/base/error.h"
#include "yak/io/resize.h"
#include "yak/model/init.h"
#include "yak/train/checkpoint.h"

namespace yak::cli {

namespace {

namespace fs = std::filesystem;

struct ResizeFlags {
  std::string model, tokenizer, out;
  int64_t pad_to = 0;
};

// The tokenizer's own files, to travel with the resized model under their usual names.
std::vector<std::pair<fs::path, std::string>> tokenizer_files(const fs::path& path) {
  static const char* kNames[] = {
      "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
      "vocab.json",      "merges.txt",     "chat_template.jinja"};
  std::vector<std::pair<fs::path, std::string>> out;
  std::error_code ec;
  fs::path dir = path;
  if (!fs::is_directory(path, ec)) {
    std::string ext = path.extension().string();
    if (ext == ".model") {
      out.emplace_back(path, "tokenizer.model");
    } else if (path.filename() == "tokenizer.json") {
      out.emplace_back(path, "tokenizer.json");
    } else {
      throw Error(path.string() + ": expected a tokenizer folder, a .model or a tokenizer.json to copy");
    }
    dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    for (const char* n : {"tokenizer_config.json", "special_tokens_map.json"})
      if (fs::is_regular_file(dir / n, ec)) out.emplace_back(dir / n, n);
    return out;
  }
  for (const char* n : kNames)
    if (fs::is_regular_file(dir / n, ec)) out.emplace_back(dir / n, n);
  return out;
}

void run_resize(const ResizeFlags& f) {
  auto tok = tok::load_tokenizer(f.tokenizer);
  io::ResizeOptions o;
  o.vocab_size = tok->vocab_size();
  o.pad_to_multiple_of = f.pad_to;
  o.extra_files = tokenizer_files(f.tokenizer);
  auto r = io::resize_embeddings(f.model, f.out, o);
  std::string names;
  for (const auto& n : r.resized) names += (names.empty() ? "" : ", ") + n;
  std::printf("%s: vocab %lld -> %lld (tokenizer %d)%s%s\n", f.out.c_str(), static_cast<long long>(r.old_vocab),
              static_cast<long long>(r.new_vocab), tok->vocab_size(),
              names.empty() ? "" : "; new rows = mean of old: ", names.c_str());
}

}  // namespace

void register_lora(CLI::App& app) {
  struct MergeFlags {
    std::string base, adapter, out;
    bool is_rm = false;
  };
  auto f = std::make_shared<MergeFlags>();
  auto* lora = app.add_subcommand("lora", "LoRA adapters (PEFT layout)");
  lora->require_subcommand(1);
  auto* mg = lora->add_subcommand("merge", "Fold an adapter into its base model and write a full model folder");
  mg->add_option("--base", f->base, "Base model folder")->required();
  mg->add_option("--adapter", f->adapter, "PEFT adapter folder")->required();
  mg->add_option("--out", f->out, "Output model folder (new or empty)")->required();
  mg->add_flag("--is_rm", f->is_rm,
               "A reward model's adapter: keep its score head (a *ForSequenceClassification folder; OpenRLHF's "
               "lora_combiner --is_rm)");
  mg->callback([f] {
    namespace fs = std::filesystem;
    if (fs::exists(f->out) && (!fs::is_directory(f->out) || !fs::is_empty(f->out)))
      throw Error("--out " + f->out + ": exists and is not an empty folder");
    auto m = model::DecoderModel::load(f->base);
    const bool base_has_score = m->has_score_head();
    m->load_lora(f->adapter);
    if (f->is_rm && !m->has_score_head())
      throw Error("--is_rm: " + f->adapter + " has no score head (a reward model's adapter saves 'score' in modules_to_save)");
    if (!f->is_rm && m->has_score_head() && !base_has_score)
      throw Error(f->adapter + ": a reward model's adapter (it carries a score head); give --is_rm");
    m->merge_lora();
    // What a full save would have put in config.json (an RM's mean/std), kept beside the adapter.
    Json extra = Json::object();
    if (const fs::path e = fs::path(f->adapter) / train::kConfigExtraFile; fs::exists(e)) {
      extra = read_json_file(e);
      if (!extra.is_object()) throw Error(e.string() + ": expected a JSON object");
    }
    train::save_hf_folder(*m, f->base, f->out, extra);
    std::printf("merged %s into %s -> %s\n", f->adapter.c_str(), f->base.c_str(), f->out.c_str());
  });
}

void register_model(CLI::App& app) {
  auto* md = app.add_subcommand("model", "Edit model checkpoints");
  md->require_subcommand(1);
  auto f = std::make_shared<ResizeFlags>();
  auto* rs = md->add_subcommand("resize-embeddings",
                                "Grow the vocabulary to a tokenizer's size; new rows = mean of the old rows");
  rs->add_option("-m,--model", f->model, "Hugging Face model folder")->required();
  rs->add_option("--tokenizer", f->tokenizer, "The extended tokenizer (.model, tokenizer.json or folder)")->required();
  rs->add_option("--out", f->out, "Output folder (new or empty)")->required();
  rs->add_option("--pad-to-multiple-of", f->pad_to, "Round the vocabulary size up to a multiple of N");
  rs->callback([f] { run_resize(*f); });

  struct InitFlags {
    std::string config, out, tokenizer;
    uint64_t seed = 0;
  };
  auto g = std::make_shared<InitFlags>();
  auto* in =
      md->add_subcommand("init", "A new model with random weights from a config.json (pretraining from scratch)");
  in->add_option("--config", g->config, "config.json to build (architectures, sizes, vocab_size...)")->required();
  in->add_option("--out", g->out, "Output folder (new or empty)")->required();
  in->add_option("--tokenizer", g->tokenizer, "Copy these tokenizer files into the folder (file or folder)");
  in->add_option("--seed", g->seed, "Seed of the random weights");
  in->callback([g] {
    namespace fs = std::filesystem;
    if (fs::exists(g->out) && (!fs::is_directory(g->out) || !fs::is_empty(g->out)))
      throw Error("--out " + g->out + ": exists and is not an empty folder");
    Json cfg = read_json_file(g->config);
    std::unique_ptr<tok::Tokenizer> tok;
    if (!g->tokenizer.empty()) {
      tok = tok::load_tokenizer(g->tokenizer);
      if (json_get<int64_t>(cfg, "vocab_size", g->config) < tok->vocab_size())
        throw Error(g->config + ": vocab_size is smaller than the tokenizer's " + std::to_string(tok->vocab_size()) +
                    " tokens");
    }
    model::init_random_checkpoint(cfg, g->out, g->seed);
    if (!g->tokenizer.empty()) {
      fs::path src = g->tokenizer;
      if (fs::is_directory(src)) {
        for (const char* f : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json", "merges.txt",
                              "special_tokens_map.json", "added_tokens.json", "chat_template.jinja"})
          if (fs::exists(src / f)) fs::copy_file(src / f, fs::path(g->out) / f, fs::copy_options::overwrite_existing);
      } else {
        fs::copy_file(src, fs::path(g->out) / (src.extension() == ".model" ? "tokenizer.model" : "tokenizer.json"),
                      fs::copy_options::overwrite_existing);
      }
    }
    auto m = model::DecoderModel::load(g->out);
    std::printf("wrote %s: %s, %lld parameters\n", g->out.c_str(), io::arch_name(m->config().arch),
                static_cast<long long>(m->parameter_count()));
  });
}

}  // namespace yak::cli
