// yak serve's HTTP face: the OpenAI routes (chat, completions, models, embeddings), tokenize /
// detokenize, health and Prometheus metrics over one Scheduler, with an API key, a body limit,
// CORS and OpenAI-style errors on every route.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "yak/base/http.h"
#include "yak/serve/openai.h"
#include "yak/serve/scheduler.h"

namespace yak::train {
class RewardModelScorer;
}

namespace yak::serve {

// The chat page served at GET / (src/yak/serve/web/chat.html, built into the binary).
const char* chat_page_html();

enum class Pooling : uint8_t { Last, Mean };
Pooling parse_pooling(const std::string& name);  // "last" | "mean"; throws yak::Error

struct ServerOptions {
  std::string api_key;  // empty: no key needed
  std::string cors;     // allowed origin ("" = no CORS headers)
  size_t max_body_bytes = 8u << 20;
  int threads = 0;  // connections at once; 0: parallel + queue + 8
  Pooling pooling = Pooling::Last;
};

// The routes every server has (health, metrics, models, tokenize, detokenize), then what it
// serves: generation over a scheduler, rewards over a reward model, or both.
class ApiServer {
 public:
  ApiServer(ModelContext ctx, ServerOptions options);
  // /v1/chat/completions, /v1/completions, /v1/embeddings (the scheduler's model).
  void serve_generation(Scheduler& scheduler, model::DecoderModel& model);
  // POST /get_reward: OpenRLHF's remote reward-model protocol (what `yak serve-rm` answers).
  void serve_rewards(train::RewardModelScorer& scorer);
  // A further route behind the same key, CORS and error handling (e.g. `ask`'s /api/ask).
  void add_route(const std::string& method, const std::string& path, http::Server::Route route, bool needs_key = true) {
    http_.route(method, path, guarded(std::move(route), needs_key));
  }
  int bind(const std::string& host, int port) { return http_.bind(host, port); }
  void run() { http_.run(); }
  void wait_until_running() const { http_.wait_until_running(); }
  void stop() { http_.stop(); }
  const ModelContext& context() const { return ctx_; }

 private:
  http::Reply generate(const http::Request& req, Endpoint endpoint);
  http::Reply embeddings(const http::Request& req);
  http::Reply tokenize(const http::Request& req);
  http::Reply detokenize(const http::Request& req);
  http::Reply models() const;
  http::Reply metrics() const;
  // Wraps a route: API key, CORS headers, ApiError / Unavailable / yak::Error -> error JSON.
  http::Server::Route guarded(std::function<http::Reply(const http::Request&)> f, bool needs_key = true);

  http::Reply reward(const http::Request& req);
  Scheduler* sched_ = nullptr;
  model::DecoderModel* model_ = nullptr;
  train::RewardModelScorer* scorer_ = nullptr;
  std::mutex reward_mu_;  // one scoring at a time: the reward model and the thread pool are shared
  ModelContext ctx_;
  ServerOptions opt_;
  http::Server http_;
  int64_t started_;
  struct Counters;
  std::shared_ptr<Counters> counters_;
};

}  // namespace yak::serve
