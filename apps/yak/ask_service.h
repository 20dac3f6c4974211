// `yak ask` flags shared by its subcommands and by `yak serve --semantic`, and the question
// service behind POST /api/ask, /api/refresh and GET /api/health: one code for `yak ask serve`
// and `yak serve`, mounted on whichever HTTP server runs it.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common.h"
#include "yak/ask/ask.h"
#include "yak/ask/database.h"
#include "yak/ask/llm.h"
#include "yak/ask/plugins.h"
#include "yak/base/error.h"
#include "yak/base/http.h"
#include "yak/io/hf_config.h"
#include "yak/model/decoder.h"

namespace yak::cli {

struct AskFlags {
  std::string question, semantic, db, today, format = "table", chart;
  std::vector<std::string> row_filters;
  bool allow_sensitive = false;
  int64_t max_rows = 1000;
  int timeout_ms = 5000;
  double threshold = 0.6;

  // The query options `ask` and `ask serve` share.
  void add_query_options(CLI::App& app) {
    app.add_option("--max-rows", max_rows, "Row limit of every query");
    app.add_option("--timeout-ms", timeout_ms, "Time limit of every query");
    app.add_option("--threshold", threshold, "Rule confidence below which the question is not understood");
    app.add_option("--row-filter", row_filters, "TABLE:CONDITION added to every read of TABLE (repeatable)");
    app.add_flag("--allow-sensitive", allow_sensitive, "Allow sensitive columns");
  }
};

// The model for hard questions: --llm local:DIR | openai:URL, plus the few-shot store.
struct LlmFlags {
  std::string llm, model, fewshot, chat_template = "auto", plugins, embed_model;
  int samples = 1;
  double temperature = 0.7, timeout = 120;
  int64_t max_tokens = 512;
  bool always = false;

  // with_template: also --chat-template (yak serve has its own).
  void add(CLI::App& app, bool with_template = true) {
    app.add_option("--llm", llm,
                   "Model for questions the rules do not understand: local:DIR (yak's engine) or "
                   "openai:http://HOST:PORT/v1 (any OpenAI-compatible server)");
    app.add_option("--llm-model", model, "Model name sent to the server (default: the first of GET /models)");
    app.add_option("--llm-samples", samples, "Self-consistency: vote over this many samples")->check(CLI::Range(1, 16));
    app.add_option("--llm-temperature", temperature, "Sampling temperature when --llm-samples > 1");
    app.add_option("--llm-max-tokens", max_tokens, "Longest reply");
    app.add_option("--llm-timeout", timeout, "Seconds to wait for the server");
    if (with_template)
      app.add_option("--chat-template", chat_template, "local models: auto, chatml, qwen3, llama2, alpaca2, plain");
    app.add_flag("--llm-always", always, "Ask the model even when the rules understood the question");
    app.add_option("--plugins", plugins, "YAML of documents and function plug-ins (see examples/music/plugins.yaml)");
    app.add_option("--embed-model", embed_model, "Model folder whose hidden states rank documents with BM25");
    app.add_option("--fewshot", fewshot,
                   "JSONL of confirmed questions and their DSL, used as examples (--confirm appends to it)");
  }

  std::unique_ptr<ask::ChatModel> open() const {
    if (llm.rfind("openai:", 0) == 0) return ask::make_openai_chat(llm.substr(7), model, timeout);
    check(llm.rfind("local:", 0) == 0, "--llm '" + llm + "': expected local:DIR or openai:http://HOST:PORT/v1");
    const std::string dir = llm.substr(6);
    check(std::filesystem::is_directory(dir), "--llm " + llm + ": no such model folder");
    auto m = model::DecoderModel::load(dir);
    auto tok = load_model_tokenizer(dir, "");
    check(tok != nullptr,
          "--llm " + llm + ": no tokenizer (tokenizer.json, vocab.json or tokenizer.model) in the folder");
    auto tmpl = pick_chat_template(chat_template, dir, m->config());
    return ask::make_local_chat(std::move(m), std::move(tok), std::move(tmpl), dir);
  }
};

// Everything the LLM path needs, alive for the command's run.
struct LlmSetup {
  std::unique_ptr<ask::ChatModel> chat;
  std::unique_ptr<ask::LlmParser> parser;
  ask::FewShotStore store;
  std::unique_ptr<ask::Plugins> plugins;
  std::unique_ptr<ask::Embedder> embedder;

  // served: the model of a running yak serve, used when no --llm is given (not owned).
  LlmSetup(const LlmFlags& f, uint64_t seed, ask::ChatModel* served = nullptr) {
    if (!f.fewshot.empty()) store = ask::FewShotStore(f.fewshot);
    check(f.embed_model.empty() || !f.plugins.empty(), "--embed-model needs --plugins with documents to rank");
    if (!f.plugins.empty()) {
      plugins = std::make_unique<ask::Plugins>(ask::Plugins::load(f.plugins));
      if (!f.embed_model.empty()) {
        check(std::filesystem::is_directory(f.embed_model),
              "--embed-model " + f.embed_model + ": no such model folder");
        auto tok = load_model_tokenizer(f.embed_model, "");
        check(tok != nullptr, "--embed-model " + f.embed_model + ": no tokenizer in the folder");
        embedder = ask::make_model_embedder(model::DecoderModel::load(f.embed_model), std::move(tok));
        plugins->docs.set_embedder(embedder.get());
      }
    }
    ask::ChatModel* model = served;
    if (!f.llm.empty()) {
      chat = f.open();
      model = chat.get();
    }
    if (!model) {
      check(!f.always, "--llm-always needs --llm");
      return;
    }
    ask::LlmOptions o;
    o.samples = f.samples;
    o.temperature = f.temperature;
    o.max_tokens = f.max_tokens;
    o.seed = seed;
    parser = std::make_unique<ask::LlmParser>(*model, o);
    parser->add_examples(store.examples());
  }
  void apply(ask::AskOptions& o, const LlmFlags& f) const {
    o.plugins = plugins.get();
    o.llm = parser.get();
    o.llm_always = f.always;
  }
};

ask::AskOptions options(const AskFlags& f);

// Questions over HTTP on one semantic model and database: one question at a time (connections
// and the knowledge base are shared).
class AskService {
 public:
  // served: the model of the yak serve process, used as the parser's model without --llm.
  AskService(const AskFlags& f, const LlmFlags& lf, ask::ChatModel* served = nullptr);
  using AddRoute = std::function<void(const std::string& method, const std::string& path, http::Server::Route)>;
  // POST /api/ask {"question", "today"?, "confirm"?}, POST /api/refresh, GET /api/health.
  void mount(const AddRoute& add);
  Json refresh();  // re-reads dimension values; {"entries", "seconds"}
  size_t entries();

 private:
  http::Reply answer(const http::Request& req);
  AskFlags flags_;
  LlmFlags llm_flags_;
  ask::AskOptions base_;
  std::unique_ptr<ask::Database> db_;
  std::unique_ptr<ask::Asker> asker_;
  std::unique_ptr<LlmSetup> llm_;
  std::mutex mu_;
};

}  // namespace yak::cli
