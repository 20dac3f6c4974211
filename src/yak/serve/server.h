// yak serve's HTTP face: the OpenAI routes (chat, completions, models, embeddings), tokenize /
// detokenize, health and Prometheus metrics over one Scheduler, with an API key, a body limit,
// CORS and OpenAI-style errors on every route.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "yak/base/http.h"
#include "yak/serve/openai.h"
#include "yak/serve/scheduler.h"

namespace yak::serve {

enum class Pooling : uint8_t { Last, Mean };
Pooling parse_pooling(const std::string& name);  // "last" | "mean"; throws yak::Error

struct ServerOptions {
  std::string api_key;  // empty: no key needed
  std::string cors;     // allowed origin ("" = no CORS headers)
  size_t max_body_bytes = 8u << 20;
  int threads = 0;  // connections at once; 0: parallel + queue + 8
  Pooling pooling = Pooling::Last;
};

class ApiServer {
 public:
  ApiServer(Scheduler& scheduler, model::DecoderModel& model, ModelContext ctx, ServerOptions options);
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

  Scheduler& sched_;
  model::DecoderModel& model_;
  ModelContext ctx_;
  ServerOptions opt_;
  http::Server http_;
  int64_t started_;
  struct Counters;
  std::shared_ptr<Counters> counters_;
};

}  // namespace yak::serve
