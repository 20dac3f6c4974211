#include <cstdio>
#include <filesystem>
#include <iostream>

#include "common.h"
#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/base/utf8.h"
#include "yak/infer/chat.h"
#include "yak/ops/ops.h"

namespace yak::cli {
namespace fs = std::filesystem;

namespace {

struct ChatFlags {
  std::string cache_type = "f32", matmul_precision, alpha;
  std::string model, tokenizer, chat_template = "auto", system, lora;
  bool has_system = false, no_think = false, verbose = false;
  int threads = 0;
  int64_t max_new_tokens = 512, context = 4096;
  SamplingFlags sampling;
};

void run_chat(ChatFlags& f) {
  ops::set_num_threads(f.threads);
  apply_matmul_precision(f.matmul_precision);
  auto model = model::DecoderModel::load(f.model);
  apply_ntk_alpha(*model, f.alpha);
  if (!f.lora.empty()) model->load_lora(f.lora);
  auto tokenizer = load_model_tokenizer(f.model, f.tokenizer);
  if (!tokenizer) throw Error(f.model + ": no tokenizer found; chat needs one (or --tokenizer PATH)");
  infer::Engine engine(*model, tokenizer.get());
  engine.cache_type = parse_cache_type(f.cache_type);
  const tok::ChatTemplate tmpl = pick_chat_template(f.chat_template, f.model, model->config());
  const std::string name = tmpl.name();
  std::optional<std::string> system;
  if (!f.system.empty()) system = f.system;
  infer::Conversation conv(engine, tmpl, system, f.context);
  conv.options.enable_thinking = !f.no_think;
  if (model->vision()) conv.enable_images(model::ImageProcessorConfig::load(f.model, *model->config().vision));
  auto sampling = f.sampling.resolve(io::GenerationDefaults::load(f.model));
  std::fprintf(stderr,
               "yak chat: %s, template %s. /reset starts over, /system TEXT sets the system prompt, %s/quit ends.\n",
               io::arch_name(model->config().arch), name.c_str(),
               model->vision() ? "/image PATH attaches a picture to the next message, " : "");
  std::string line;
  for (;;) {
    std::fprintf(stderr, "> ");
    std::fflush(stderr);
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      conv.reset();
      std::fprintf(stderr, "(conversation reset)\n");
      continue;
    }
    if (line.rfind("/system", 0) == 0) {
      std::string s = line.size() > 8 ? line.substr(8) : "";
      conv.set_system(s.empty() ? std::nullopt : std::optional<std::string>(s));
      std::fprintf(stderr, "(system prompt %s; conversation reset)\n", s.empty() ? "cleared" : "set");
      continue;
    }
    if (line.rfind("/image", 0) == 0) {
      const std::string path = line.size() > 7 ? line.substr(7) : "";
      try {
        check(!path.empty(), "/image needs a file: /image PATH");
        conv.attach_image({path, {}, path});
        std::fprintf(stderr, "(%zu image%s for the next message)\n", conv.pending_images(),
                     conv.pending_images() == 1 ? "" : "s");
      } catch (const Error& e) {
        std::fprintf(stderr, "yak: error: %s\n", e.what());
      }
      continue;
    }
    if (!utf8::is_valid(line)) {
      std::fprintf(stderr, "yak: error: input is not valid UTF-8\n");
      continue;
    }
    try {
      auto r = conv.reply(line, sampling, f.max_new_tokens, [](size_t, const std::string& t) {
        std::fwrite(t.data(), 1, t.size(), stdout);
        std::fflush(stdout);
      });
      std::printf("\n");
      std::fflush(stdout);
      if (f.verbose) {
        const auto& st = engine.last_stats();
        std::fprintf(stderr, "prefill: %lld tokens (%.1f tok/s); decode: %lld tokens (%.1f tok/s)\n",
                     static_cast<long long>(st.prefill_tokens), st.prefill_tps(),
                     static_cast<long long>(st.decode_tokens), st.decode_tps());
      }
    } catch (const Error& e) {
      std::fprintf(stderr, "yak: error: %s\n", e.what());
    }
  }
}

}  // namespace

void register_chat(CLI::App& app) {
  auto f = std::make_shared<ChatFlags>();
  auto* sub = app.add_subcommand("chat", "Interactive multi-turn chat with a model");
  sub->add_option("-m,--model", f->model, "Hugging Face model folder")->required();
  sub->add_option("--tokenizer", f->tokenizer, "Tokenizer file or folder (default: the model folder)");
  sub->add_option("--lora", f->lora, "Apply a PEFT LoRA adapter folder");
  sub->add_option("--chat-template", f->chat_template, "auto (the checkpoint's Jinja template, else a built-in by architecture), chatml, qwen3, qwen3-vl, llama2, alpaca2, plain, "
                 "or FILE.jinja");
  sub->add_option("--system", f->system, "System prompt");
  sub->add_flag("--no-think", f->no_think, "Qwen3: disable thinking");
  sub->add_option("-n,--max-new-tokens", f->max_new_tokens, "Most tokens per answer");
  sub->add_option("-c,--context", f->context, "Context length (KV cache) in tokens");
  sub->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  sub->add_option("--cache-type", f->cache_type, "KV cache element type: f32 (default), f16, bf16");
  add_matmul_precision_flag(*sub, f->matmul_precision);
  add_ntk_alpha_flag(*sub, f->alpha);
  sub->add_flag("-v,--verbose", f->verbose, "Print speed after each answer");
  f->sampling.add(*sub);
  sub->callback([f] { run_chat(*f); });
}

}  // namespace yak::cli
