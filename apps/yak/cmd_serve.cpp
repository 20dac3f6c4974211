// `yak serve`: an OpenAI-compatible server over one model with continuous batching and a prefix
// cache (src/yak/serve). Flags follow llama-server's names where they exist.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <thread>

#include "ask_service.h"
#include "common.h"
#include "yak/base/error.h"
#include "yak/ops/ops.h"
#include "yak/serve/ask_chat.h"
#include "yak/serve/server.h"
#include "yak/train/reward.h"

namespace yak::cli {
namespace fs = std::filesystem;

namespace {
std::atomic<bool> g_stop{false};
void on_stop_signal(int) {
  g_stop = true;
}

// Serves until SIGINT/SIGTERM: then stops listening, runs drain (finish in-flight work) and
// returns once every connection is done.
void serve_until_signal(serve::ApiServer& server, const std::function<void()>& drain) {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGPIPE, SIG_IGN);
  std::thread watcher([&] {
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    server.stop();  // no new connections
    drain();
  });
  server.run();
  g_stop = true;
  watcher.join();
  std::fprintf(stderr, "yak serve: stopped\n");
}

struct ServeFlags {
  std::string model, draft_model, tokenizer, lora, host = "127.0.0.1", api_key, cors, chat_template = "auto", alias;
  std::string cache_type = "f32", matmul_precision, pooling = "last", alpha, media_dir;
  int port = 8080, parallel = 4, threads = 0, max_n = 16, draft_max = 4;
  int64_t ctx = 0, kv_size = 0, batch = 256, queue = 64, max_body_mb = 8;
  int64_t rm_max_len = 0, rm_batch = 16;  // serve-rm: --max_len, --batch_size
  double shutdown_timeout = 10, draft_p_min = 0.75;
  bool no_prefix_cache = false, reward = false, normalize_reward = false;
  AskFlags ask;  // --semantic/--db: POST /api/ask beside the OpenAI routes
  LlmFlags llm;
};

// `yak serve --reward`: a reward model behind POST /get_reward (and the common routes).
void run_reward_server(const ServeFlags& f) {
  ops::set_num_threads(f.threads);
  apply_matmul_precision(f.matmul_precision);
  train::RewardModelScorer scorer(f.model, f.normalize_reward);
  scorer.set_limits(f.rm_max_len, static_cast<size_t>(f.rm_batch));
  auto tokenizer = load_model_tokenizer(f.model, f.tokenizer);
  serve::ModelContext mc;
  mc.id = !f.alias.empty() ? f.alias : fs::path(f.model).filename().string();
  mc.tok = tokenizer.get();
  serve::ServerOptions opt;
  opt.api_key = f.api_key;
  opt.cors = f.cors;
  opt.max_body_bytes = static_cast<size_t>(f.max_body_mb) << 20;
  serve::ApiServer server(mc, opt);
  server.serve_rewards(scorer);
  const int port = server.bind(f.host, f.port);
  std::printf("yak serve: reward model %s, listening on http://%s:%d/get_reward\n", mc.id.c_str(), f.host.c_str(), port);
  std::fflush(stdout);
  serve_until_signal(server, [] {});
}

// The draft model must spell its tokens as the target does: ids are compared, not text.
void check_draft_vocabulary(const tok::Tokenizer* target, const std::string& draft_dir) {
  auto draft = load_model_tokenizer(draft_dir, "");
  if (!target || !draft) return;  // ids only: nothing to compare
  const int32_t n = std::min(target->vocab_size(), draft->vocab_size());
  if (std::abs(target->vocab_size() - draft->vocab_size()) > 128)
    throw Error("--draft-model " + draft_dir + ": its vocabulary has " + std::to_string(draft->vocab_size()) +
                " tokens, the model's " + std::to_string(target->vocab_size()) + " (a draft must share the tokenizer)");
  for (int32_t id = 0; id < n; ++id)
    if (target->token_bytes(id) != draft->token_bytes(id))
      throw Error("--draft-model " + draft_dir + ": token " + std::to_string(id) + " is '" + draft->id_to_token(id) +
                  "' there and '" + target->id_to_token(id) + "' in the model (a draft must share the tokenizer)");
}

void run_serve(const ServeFlags& f) {
  ops::set_num_threads(f.threads);
  apply_matmul_precision(f.matmul_precision);
  auto model = model::DecoderModel::load(f.model);
  apply_ntk_alpha(*model, f.alpha);
  if (!f.lora.empty()) model->load_lora(f.lora);
  auto tokenizer = load_model_tokenizer(f.model, f.tokenizer);
  const auto& cfg = model->config();

  serve::ModelContext mc;
  mc.id = !f.alias.empty() ? f.alias : fs::path(f.model).filename().string();
  if (mc.id.empty()) mc.id = fs::path(f.model).parent_path().filename().string();
  mc.tok = tokenizer.get();
  mc.defaults = io::GenerationDefaults::load(f.model);
  if (tokenizer && f.chat_template != "none") mc.chat_template = pick_chat_template(f.chat_template, f.model, cfg);
  mc.max_n = f.max_n;
  if (tokenizer) mc.vocab = std::make_shared<infer::VocabTrie>(*tokenizer);  // for constrained output
  if (model->vision()) {
    mc.vision = *cfg.vision;
    mc.image_processor = model::ImageProcessorConfig::load(f.model, *cfg.vision);
  }
  if (!f.media_dir.empty()) {
    check(fs::is_directory(f.media_dir), "--allowed-local-media-path " + f.media_dir + ": not a folder");
    mc.media_dir = f.media_dir;
  }

  serve::SchedulerOptions so;
  so.parallel = f.parallel;
  so.ctx = f.ctx > 0 ? f.ctx : std::min<int64_t>(cfg.max_position_embeddings, 4096);
  so.kv_tokens = f.kv_size;
  so.prefill_chunk = f.batch;
  so.queue = f.queue;
  so.prefix_cache = !f.no_prefix_cache;
  so.cache_type = parse_cache_type(f.cache_type);
  check(f.max_n >= 1, "--max-n must be at least 1");
  std::vector<int32_t> eos;
  for (auto id : cfg.eos_token_ids) eos.push_back(static_cast<int32_t>(id));
  for (auto id : mc.defaults.eos_token_ids) eos.push_back(static_cast<int32_t>(id));
  if (tokenizer && tokenizer->eos_id()) eos.push_back(*tokenizer->eos_id());
  std::unique_ptr<model::DecoderModel> draft;
  if (!f.draft_model.empty()) {
    check_draft_vocabulary(tokenizer.get(), f.draft_model);
    draft = model::DecoderModel::load(f.draft_model);
    so.draft_max = f.draft_max;
    so.draft_p_min = static_cast<float>(f.draft_p_min);
  }
  serve::Scheduler sched(*model, tokenizer.get(), eos, so, draft.get());
  mc.ctx = sched.max_sequence();

  serve::ServerOptions opt;
  opt.api_key = f.api_key;
  opt.cors = f.cors;
  opt.max_body_bytes = static_cast<size_t>(f.max_body_mb) << 20;
  opt.pooling = serve::parse_pooling(f.pooling);
  serve::ApiServer server(mc, opt);
  server.serve_generation(sched, *model);
  serve::SchedulerChat served_chat(sched, mc);
  std::unique_ptr<AskService> asking;
  if (!f.ask.semantic.empty()) {
    check(!f.ask.db.empty(), "--semantic needs --db (the database its questions are answered from)");
    // Questions the rules do not understand go to the served model (or to --llm when given).
    asking = std::make_unique<AskService>(f.ask, f.llm, mc.chat_template ? &served_chat : nullptr);
    asking->mount([&](const std::string& method, const std::string& path, http::Server::Route r) {
      server.add_route(method, path, std::move(r));
    });
  } else {
    check(f.ask.db.empty(), "--db needs --semantic (the semantic model of its tables)");
  }
  const int port = server.bind(f.host, f.port);
  std::printf("yak serve: %s (%s), %d slots x %lld tokens, listening on http://%s:%d/v1\n", mc.id.c_str(),
              std::string(io::arch_name(cfg.arch)).c_str(), so.parallel, static_cast<long long>(mc.ctx), f.host.c_str(), port);
  if (draft)
    std::printf("yak serve: speculative decoding with %s (%lld layers), up to %d drafts per step at p >= %.2f\n",
                f.draft_model.c_str(), static_cast<long long>(draft->config().num_layers), so.draft_max, static_cast<double>(so.draft_p_min));
  if (mc.vision)
    std::printf("yak serve: sees images (data: URLs%s)\n",
                mc.media_dir.empty() ? "" : (", and files under " + mc.media_dir.string()).c_str());
  if (asking)
    std::printf("yak serve: questions on %s at http://%s:%d/api/ask (%zu knowledge-base entries)\n",
                ask::redact_url(f.ask.db).c_str(), f.host.c_str(), port, asking->entries());
  std::fflush(stdout);

  serve_until_signal(server, [&] {
    std::fprintf(stderr, "yak serve: stopping (in-flight requests get %.0f s)\n", f.shutdown_timeout);
    sched.shutdown(std::chrono::milliseconds(static_cast<int64_t>(f.shutdown_timeout * 1000)));
  });
}
}  // namespace

void register_serve(CLI::App& app) {
  auto f = std::make_shared<ServeFlags>();
  auto* s = app.add_subcommand("serve", "OpenAI-compatible server: /v1/chat/completions, /v1/completions, /v1/embeddings");
  s->add_option("-m,--model", f->model, "Hugging Face model folder or GGUF file")->required();
  s->add_option("--host", f->host, "Address to listen on (default 127.0.0.1)");
  s->add_option("--port", f->port, "Port (default 8080; 0: any free port, printed)");
  s->add_flag("--reward", f->reward, "Serve a reward model (POST /get_reward, OpenRLHF's protocol) instead of generation");
  s->add_flag("--normalize_reward", f->normalize_reward, "--reward: normalize scores with the mean/std in config.json");
  s->add_option("--api-key", f->api_key, "Require Authorization: Bearer KEY on every route but /health");
  s->add_option("--parallel,--np", f->parallel, "Sequences decoded together (slots; default 4)");
  s->add_option("-c,--ctx-size", f->ctx, "Largest prompt + completion per request (default: the model's, at most 4096)");
  s->add_option("--kv-size", f->kv_size, "Positions in the shared KV page pool (default: parallel x ctx-size)");
  s->add_option("-b,--batch-size", f->batch, "Prompt tokens computed per step over all slots (default 256)");
  s->add_option("--queue", f->queue, "Requests that may wait for a slot before 503 (default 64)");
  s->add_option("--draft-model,--model-draft", f->draft_model,
                "Speculative decoding: a smaller model with the same tokenizer proposes tokens the model checks "
                "(output unchanged)");
  s->add_option("--draft-max,--draft", f->draft_max, "Tokens the draft proposes per step and request (default 4)");
  s->add_option("--draft-p-min", f->draft_p_min,
                "Draft a token only while the draft model gives it at least this probability (default 0.75; 0: always "
                "draft --draft-max)")
      ->check(CLI::Range(0.0, 1.0));
  s->add_flag("--no-prefix-cache", f->no_prefix_cache, "Do not share KV pages of common prompt prefixes");
  s->add_option("--cache-type", f->cache_type, "KV cache element type: f32 (default), f16, bf16");
  s->add_option("--chat-template", f->chat_template, "auto (default: the checkpoint's Jinja template, else a built-in by architecture), chatml, qwen3, "
                "qwen3-vl, llama2, alpaca2, plain, none, or FILE.jinja");
  s->add_option("--alias", f->alias, "Model name in /v1/models (default: the folder or file name)");
  s->add_option("--tokenizer", f->tokenizer, "Tokenizer file or folder (default: the model's)");
  s->add_option("--lora", f->lora, "Apply a PEFT LoRA adapter folder");
  s->add_option("--cors", f->cors, "Allow browser requests from this origin (default: none)");
  s->add_option("--max-body-mb", f->max_body_mb, "Largest request body in MiB (413 beyond; default 8)");
  s->add_option("--max-n", f->max_n, "Largest 'n' (samples per prompt; default 16)");
  s->add_option("--allowed-local-media-path", f->media_dir,
                "Vision models: image parts may name files under this folder (default: data: URLs only)");
  s->add_option("--pooling", f->pooling, "Embeddings: last (last token's hidden state, default) or mean");
  s->add_option("--shutdown-timeout", f->shutdown_timeout, "Seconds in-flight requests get after SIGTERM (default 10)");
  s->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  add_matmul_precision_flag(*s, f->matmul_precision);
  add_ntk_alpha_flag(*s, f->alpha);
  s->add_option("--semantic", f->ask.semantic, "Semantic model (YAML): also answer POST /api/ask as `yak ask serve` does");
  s->add_option("--db", f->ask.db, "--semantic: database URL (sqlite:FILE, clickhouse://..., mysql://...)");
  s->add_option("--today", f->ask.today, "--semantic: date that relative dates count from (default: today)");
  f->ask.add_query_options(*s);
  f->llm.add(*s, false);
  s->callback([f] { f->reward ? run_reward_server(*f) : run_serve(*f); });
}

void register_serve_rm(CLI::App& app) {
  auto f = std::make_shared<ServeFlags>();
  f->port = 5000;
  f->reward = true;
  auto* s = app.add_subcommand("serve-rm", "Serve a reward model over HTTP (= yak serve --reward): POST /get_reward");
  s->add_option("-m,--model,--reward_pretrain", f->model, "Reward model folder")->required();
  s->add_option("--host", f->host, "Address to listen on");
  s->add_option("--port", f->port, "Port (0: any free port; the URL is printed)");
  s->add_flag("--normalize_reward", f->normalize_reward, "Normalize scores with the mean/std in config.json");
  s->add_option("--max_len", f->rm_max_len, "Longest query in tokens; longer ones keep their end (default: the model's context)");
  s->add_option("--batch_size", f->rm_batch, "Queries scored per forward (default 16)")->check(CLI::PositiveNumber);
  add_matmul_precision_flag(*s, f->matmul_precision);
  s->add_option("--api-key", f->api_key, "Require Authorization: Bearer KEY on every route but /health");
  s->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  s->callback([f] { run_reward_server(*f); });
}

}  // namespace yak::cli
