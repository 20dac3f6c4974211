#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "common.h"
#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/io/safetensors.h"
#include "yak/tokenizer/chat_template.h"

namespace yak::cli {
namespace fs = std::filesystem;

namespace {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

std::string human_count(double n) {
  char buf[32];
  if (n >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  else if (n >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

void run_info(const std::string& dir, int64_t context) {
  auto model = model::DecoderModel::load(dir);
  const auto& c = model->config();
  std::printf("architecture     %s (model_type %s)\n", io::arch_name(c.arch), c.model_type.c_str());
  std::printf("parameters       %s (%lld)\n", human_count(static_cast<double>(model->parameter_count())).c_str(),
              static_cast<long long>(model->parameter_count()));
  size_t weight_bytes = 0;
  std::string dtypes;
  for (auto& [name, bytes] : model->weight_bytes_by_dtype()) {
    dtypes += (dtypes.empty() ? "" : ", ") + name + " " + human_bytes(static_cast<double>(bytes));
    weight_bytes += bytes;
  }
  std::printf("weights          %s (torch_dtype %s)\n", dtypes.c_str(), c.torch_dtype.c_str());
  if (io::is_torch_checkpoint_dir(dir))
    std::printf("format           PyTorch .bin (torch.save zip archive, read by a restricted unpickler: no code runs)\n");
  std::printf("layers           %lld, hidden %lld, intermediate %lld, vocab %lld\n",
              static_cast<long long>(c.num_layers), static_cast<long long>(c.hidden_size),
              static_cast<long long>(c.intermediate_size), static_cast<long long>(c.vocab_size));
  std::printf("attention        %lld heads, %lld kv heads (%s), head_dim %lld%s%s\n",
              static_cast<long long>(c.num_heads), static_cast<long long>(c.num_kv_heads),
              c.num_heads == c.num_kv_heads ? "MHA" : "GQA", static_cast<long long>(c.head_dim),
              c.attention_bias ? ", qkv bias" : "", c.qk_norm ? ", q/k norm" : "");
  std::printf("rope             %s, theta %g, factor %g; max positions %lld\n", io::rope_type_name(c.rope.type),
              c.rope.theta, c.rope.factor, static_cast<long long>(c.max_position_embeddings));
  if (!c.rope.mrope_section.empty())
    std::printf("m-rope           sections t/h/w %lld/%lld/%lld of head_dim/2 %s\n",
                static_cast<long long>(c.rope.mrope_section[0]), static_cast<long long>(c.rope.mrope_section[1]),
                static_cast<long long>(c.rope.mrope_section[2]), c.rope.mrope_interleaved ? "(interleaved)" : "(chunks)");
  if (c.vision) {
    const auto& v = *c.vision;
    std::string ds;
    for (auto i : v.deepstack_visual_indexes) ds += (ds.empty() ? "" : ", ") + std::to_string(i);
    std::printf("vision tower     depth %lld, hidden %lld, %lld heads, intermediate %lld, %s\n",
                static_cast<long long>(v.depth), static_cast<long long>(v.hidden_size),
                static_cast<long long>(v.num_heads), static_cast<long long>(v.intermediate_size), v.hidden_act.c_str());
    std::printf("vision patches   %lldx%lld pixels x %lld frames, %lld learned positions (%lldx%lld grid), "
                "merge %lldx%lld -> hidden %lld\n",
                static_cast<long long>(v.patch_size), static_cast<long long>(v.patch_size),
                static_cast<long long>(v.temporal_patch_size), static_cast<long long>(v.num_position_embeddings),
                static_cast<long long>(v.grid_side()), static_cast<long long>(v.grid_side()),
                static_cast<long long>(v.spatial_merge_size), static_cast<long long>(v.spatial_merge_size),
                static_cast<long long>(v.out_hidden_size));
    if (ds.empty())
      std::printf("deepstack        none\n");
    else
      std::printf("deepstack        features of blocks %s added after decoder layers 0-%zu\n", ds.c_str(),
                  v.deepstack_visual_indexes.size() - 1);
    std::printf("image tokens     image %lld, video %lld, vision start %lld, end %lld\n",
                static_cast<long long>(v.image_token_id), static_cast<long long>(v.video_token_id),
                static_cast<long long>(v.vision_start_token_id), static_cast<long long>(v.vision_end_token_id));
  }
  std::printf("tied embeddings  %s\n", c.tie_word_embeddings ? "yes" : "no");
  const double kv_per_token = 2.0 * c.num_layers * c.num_kv_heads * c.head_dim * sizeof(float);
  std::printf("memory           weights %s (mapped) + KV cache %s per token, %s for %lld tokens\n",
              human_bytes(static_cast<double>(weight_bytes)).c_str(), human_bytes(kv_per_token).c_str(),
              human_bytes(kv_per_token * static_cast<double>(context)).c_str(), static_cast<long long>(context));
  std::string eos;
  for (auto id : c.eos_token_ids) eos += (eos.empty() ? "" : " ") + std::to_string(id);
  std::printf("special ids      bos %s, eos %s\n", c.bos_token_id ? std::to_string(*c.bos_token_id).c_str() : "-",
              eos.empty() ? "-" : eos.c_str());
  auto tokenizer = load_model_tokenizer(dir, "");
  std::printf("tokenizer        %s\n", tokenizer ? tokenizer->describe().c_str() : "none found");
  Json tc = load_tokenizer_config(dir);
  const std::string family = tok::ChatTemplate::detect(tc, io::arch_name(c.arch));
  if (const auto src = tok::ChatTemplate::jinja_source(tc)) {
    const auto lines = std::count(src->begin(), src->end(), '\n') + 1;
    std::printf("chat template    jinja, the checkpoint's own (%lld line%s; closest built-in family: %s)\n",
                static_cast<long long>(lines), lines == 1 ? "" : "s", family.c_str());
  } else {
    std::printf("chat template    %s (built-in, by architecture: the checkpoint has none)\n", family.c_str());
  }
}

}  // namespace

void register_info(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto context = std::make_shared<int64_t>(4096);
  auto* sub = app.add_subcommand("info", "Describe a model folder: architecture, size, memory, tokenizer");
  sub->add_option("-m,--model", *dir, "Hugging Face model folder")->required();
  sub->add_option("-c,--context", *context, "Context length for the KV cache estimate");
  sub->callback([dir, context] { run_info(*dir, *context); });
}

}  // namespace yak::cli
