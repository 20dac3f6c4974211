#include <cstdio>
#include <filesystem>

#include "common.h"
#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/base/utf8.h"
#include "yak/infer/grammar.h"
#include "yak/infer/json_schema.h"
#include "yak/infer/vision_prompt.h"
#include "yak/ops/ops.h"
#include "yak/tokenizer/chat_template.h"

namespace yak::cli {
namespace fs = std::filesystem;

namespace {

struct GenerateFlags {
  std::string cache_type = "f32", matmul_precision, alpha;
  std::string model, tokenizer, file, chat_template, system, lora, grammar, grammar_file, json_schema, messages;
  std::vector<std::string> prompts, prompt_ids, stop, images;
  int64_t max_new_tokens = -1;
  int threads = 0;
  bool ids = false, verbose = false, ignore_eos = false, no_think = false, print_prompt = false;
  SamplingFlags sampling;
};

void run_generate(const GenerateFlags& f) {
  ops::set_num_threads(f.threads);
  apply_matmul_precision(f.matmul_precision);
  auto model = model::DecoderModel::load(f.model);
  apply_ntk_alpha(*model, f.alpha);
  if (!f.lora.empty()) model->load_lora(f.lora);
  auto tokenizer = load_model_tokenizer(f.model, f.tokenizer);
  const auto& cfg = model->config();
  auto defaults = io::GenerationDefaults::load(f.model);
  infer::Engine engine(*model, tokenizer.get());
  engine.cache_type = parse_cache_type(f.cache_type);

  std::vector<std::string> texts = f.prompts;
  if (!f.file.empty()) texts.push_back(read_input(f.file));
  std::vector<infer::GenerateRequest> reqs;
  std::optional<tok::ChatTemplate> tmpl;
  if (!f.chat_template.empty() || !f.messages.empty()) tmpl = pick_chat_template(f.chat_template, f.model, cfg);
  // --messages: OpenAI-style messages from a file; their image parts are files beside it or data: URLs.
  std::optional<infer::ParsedMessages> parsed;
  if (!f.messages.empty()) {
    check(texts.empty() && f.prompt_ids.empty() && f.images.empty() && f.system.empty(),
          "--messages carries the whole conversation: give no -p, -f, --prompt-ids, --image or --system with it");
    const std::string where = f.messages == "-" ? "--messages (stdin)" : f.messages;
    const Json j = Json::parse(read_input(f.messages), nullptr, false);
    if (j.is_discarded()) throw Error(where + ": not valid JSON (expected a list of messages)");
    const fs::path base = f.messages == "-" ? fs::current_path() : fs::path(f.messages).parent_path();
    try {
      parsed = infer::parse_messages(j.is_object() && j.contains("messages") ? j["messages"] : j,
                                     {.base_dir = base.empty() ? fs::path(".") : base, .allow_files = true});
    } catch (const infer::MessagesError& e) {
      throw Error(where + ": " + e.what());
    }
    texts.push_back("");  // one request, built from the messages below
  }
  // Images: read and preprocessed once; they belong to the one prompt.
  infer::PromptImages images;
  const bool any_images = !f.images.empty() || (parsed && !parsed->images.empty());
  if (any_images) {
    check(model->vision() != nullptr, f.model + ": --image needs a vision-language model (Qwen3-VL); this one is " +
                                          std::string(io::arch_name(cfg.arch)));
    check(texts.size() == 1 && f.prompt_ids.empty(), "--image goes with one prompt (-p TEXT or -f FILE)");
    check(tokenizer != nullptr, f.model + ": images need the model's tokenizer");
    const auto pc = model::ImageProcessorConfig::load(f.model, *cfg.vision);
    images = parsed ? infer::load_prompt_images(parsed->images, pc) : infer::load_prompt_images(f.images, pc);
  }
  auto encode = [&](const std::string& text, bool add_special) {
    if (images.grids.empty()) return tokenizer->encode(text, add_special);
    return infer::encode_with_images(text, images.grids, *tokenizer, *cfg.vision, add_special);
  };
  for (size_t i = 0; i < texts.size(); ++i) {
    if (size_t bad = utf8::find_invalid(texts[i]); bad != std::string::npos)
      throw Error("prompt " + std::to_string(i + 1) + ": invalid UTF-8 at byte " + std::to_string(bad));
    if (!tokenizer)
      throw Error(f.model +
                  ": no tokenizer found (tokenizer.json, vocab.json + merges.txt or tokenizer.model); use --prompt-ids "
                  "or --tokenizer");
    infer::GenerateRequest r;
    const std::string text =
        parsed || images.grids.empty() ? texts[i]
                                       : infer::place_images(texts[i], images.grids.size(), *tokenizer, *cfg.vision);
    if (tmpl) {
      std::vector<tok::ChatMessage> msgs;
      if (parsed) {
        msgs = parsed->messages;
        if (!images.grids.empty()) infer::place_images(msgs, *tokenizer, *cfg.vision);
      } else {
        if (!f.system.empty()) msgs.push_back({"system", f.system});
        msgs.push_back({"user", text});
      }
      tok::ChatOptions opt;
      opt.enable_thinking = !f.no_think;
      const std::string rendered = tmpl->render(msgs, opt);
      if (f.print_prompt) {
        std::fwrite(rendered.data(), 1, rendered.size(), stdout);
        continue;
      }
      r.prompt = encode(rendered, tmpl->add_special_tokens());
      r.stop = tmpl->stop_strings();
    } else {
      r.prompt = encode(text, true);
    }
    if (!images.grids.empty()) r.visual = infer::visual_prompt(*model, r.prompt, images);
    reqs.push_back(std::move(r));
  }
  for (auto& s : f.prompt_ids) {
    infer::GenerateRequest r;
    r.prompt = parse_ids(s);
    reqs.push_back(std::move(r));
  }
  if (f.print_prompt) {
    check(tmpl.has_value(), "--print-prompt shows what --chat-template renders; give --chat-template");
    return;
  }
  if (reqs.empty()) throw Error("nothing to generate from: give -p TEXT, -f FILE or --prompt-ids IDS");
  // Constrained output: a GBNF grammar (text or file) or a JSON schema (text or a .json file).
  std::optional<infer::TokenConstraint> constraint;
  if (int given = !f.grammar.empty() + !f.grammar_file.empty() + !f.json_schema.empty(); given > 0) {
    check(given == 1, "give one of --grammar, --grammar-file and --json-schema");
    check(tokenizer != nullptr, "constrained output needs the model's tokenizer");
    std::string gbnf = f.grammar, where = "--grammar";
    if (!f.grammar_file.empty()) gbnf = read_input(f.grammar_file), where = f.grammar_file;
    if (!f.json_schema.empty()) {
      const bool file = f.json_schema.front() != '{' && fs::is_regular_file(f.json_schema);
      where = file ? f.json_schema : "--json-schema";
      gbnf = infer::json_schema_to_gbnf(file ? read_input(f.json_schema) : f.json_schema, where);
    }
    constraint = infer::TokenConstraint{infer::Grammar::parse(gbnf, where), std::make_shared<infer::VocabTrie>(*tokenizer)};
  }
  auto sampling = f.sampling.resolve(defaults);
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto& r = reqs[i];
    r.sampling = sampling;
    r.sampling.seed = sampling.seed + i;
    r.max_new_tokens = f.max_new_tokens >= 0 ? f.max_new_tokens : defaults.max_new_tokens.value_or(256);
    r.ignore_eos = f.ignore_eos;
    r.constraint = constraint;
    for (auto& s : f.stop) r.stop.push_back(s);
    if (r.prompt.empty()) throw Error("prompt " + std::to_string(i + 1) + " has no tokens");
  }

  const bool stream = reqs.size() == 1 && !f.ids && tokenizer;
  auto results = engine.generate(reqs, stream ? infer::TextCallback([](size_t, const std::string& t) {
                                   std::fwrite(t.data(), 1, t.size(), stdout);
                                   std::fflush(stdout);
                                 })
                                              : infer::TextCallback{});
  for (size_t i = 0; i < results.size(); ++i) {
    if (f.ids) {
      std::string line;
      for (auto id : results[i].tokens) line += (line.empty() ? "" : " ") + std::to_string(id);
      std::printf("%s\n", line.c_str());
    } else if (!stream) {
      if (results.size() > 1) std::printf("=== %zu ===\n", i + 1);
      std::printf("%s\n", results[i].text.c_str());
    } else {
      std::printf("\n");
    }
  }
  if (f.verbose) {
    const auto& st = engine.last_stats();
    std::fprintf(
        stderr, "prefill: %lld tokens in %.3f s (%.1f tok/s); decode: %lld tokens in %.3f s (%.1f tok/s); threads %d\n",
        static_cast<long long>(st.prefill_tokens), st.prefill_seconds, st.prefill_tps(),
        static_cast<long long>(st.decode_tokens), st.decode_seconds, st.decode_tps(), ops::num_threads());
  }
}

}  // namespace

void register_generate(CLI::App& app) {
  auto f = std::make_shared<GenerateFlags>();
  auto* sub = app.add_subcommand("generate", "Continue prompts with a model (streamed when one prompt)");
  sub->add_option("-m,--model", f->model, "Hugging Face model folder")->required();
  sub->add_option("-p,--prompt", f->prompts, "Prompt text (repeat for a batch)");
  sub->add_option("-f,--file", f->file, "Read the prompt from a file ('-' = stdin)");
  sub->add_option("--prompt-ids", f->prompt_ids, "Prompt as token ids, e.g. \"1 15 27\" (repeatable)");
  sub->add_option("--messages", f->messages,
                  "OpenAI-style messages (a JSON file, '-' = stdin): text and image_url parts (file://, "
                  "data:image/...;base64, or paths beside the file), rendered with the chat template");
  sub->add_option("--image", f->images,
                  "Image file (PNG or JPEG) for a vision-language model (repeatable); each goes where the prompt says "
                  "<image>, in order, or before the text");
  sub->add_option("-n,--max-new-tokens", f->max_new_tokens, "Tokens to generate (default: generation_config or 256)");
  sub->add_option("--stop", f->stop, "Stop string (repeatable)");
  sub->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  sub->add_option("--cache-type", f->cache_type, "KV cache element type: f32 (default), f16, bf16");
  add_matmul_precision_flag(*sub, f->matmul_precision);
  add_ntk_alpha_flag(*sub, f->alpha);
  sub->add_option("--tokenizer", f->tokenizer, "Tokenizer file or folder (default: the model folder)");
  sub->add_option("--lora", f->lora, "Apply a PEFT LoRA adapter folder");
  sub->add_option("--chat-template", f->chat_template,
                  "Wrap the prompt as a user turn: auto (the checkpoint's Jinja template, else a built-in), chatml, qwen3, "
                  "qwen3-vl, llama2, alpaca2, plain, or FILE.jinja");
  sub->add_option("--system", f->system, "System prompt (with --chat-template)");
  sub->add_flag("--no-think", f->no_think, "Qwen3: disable thinking (enable_thinking=false)");
  sub->add_option("--grammar", f->grammar, "Constrain the output to a GBNF grammar (llama.cpp's notation; rule 'root')");
  sub->add_option("--grammar-file", f->grammar_file, "Read the GBNF grammar from a file");
  sub->add_option("-j,--json-schema", f->json_schema, "Constrain the output to JSON valid for this schema (JSON text or a .json file)");
  sub->add_flag("--ids", f->ids, "Print generated token ids instead of text");
  sub->add_flag("--print-prompt", f->print_prompt, "Print the prompt --chat-template renders, and stop");
  sub->add_flag("--ignore-eos", f->ignore_eos, "Keep generating past EOS");
  sub->add_flag("-v,--verbose", f->verbose, "Print prefill and decode speed");
  f->sampling.add(*sub);
  sub->callback([f] { run_generate(*f); });
}

}  // namespace yak::cli
