#include "yak/serve/server.h"

#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <random>

#include "yak/base/error.h"
#include "yak/base/log.h"
#include "yak/base/utf8.h"
#include "yak/train/reward.h"

namespace yak::serve {

Pooling parse_pooling(const std::string& name) {
  if (name == "last") return Pooling::Last;
  if (name == "mean") return Pooling::Mean;
  throw Error("--pooling: unknown pooling '" + name + "' (expected last or mean)");
}

struct ApiServer::Counters {
  std::mutex mu;
  std::map<std::pair<std::string, int>, int64_t> requests;  // (route, status) -> count
  void count(const std::string& route, int status) {
    std::lock_guard<std::mutex> lock(mu);
    requests[{route, status}] += 1;
  }
};

namespace {
int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char b[40];
  std::snprintf(b, sizeof b, "%s%016llx%08llx", prefix, static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng() & 0xffffffffu));
  return b;
}

http::Reply json_reply(const Json& j, int status = 200) {
  return {status, j.dump(-1, ' ', false, Json::error_handler_t::replace)};
}

http::Reply error_reply(int status, const std::string& body) {
  http::Reply r{status, body};
  if (status == 503 || status == 429) r.headers.emplace_back("Retry-After", "1");
  return r;
}

std::string base64(const void* data, size_t n) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = static_cast<const unsigned char*>(data);
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (i + 1 < n ? uint32_t{p[i + 1]} << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += i + 1 < n ? tbl[(v >> 6) & 63] : '=';
    out += i + 2 < n ? tbl[v & 63] : '=';
  }
  return out;
}

// Gathers the events of one generation into a choice.
void absorb(ChoiceResult& c, Event& e) {
  c.text += e.text;
  for (auto& lp : e.logprobs) c.logprobs.push_back(std::move(lp));
  if (e.done) {
    c.finish = e.finish;
    c.prompt_tokens = e.prompt_tokens;
    c.completion_tokens = e.completion_tokens;
    c.cached_tokens = e.cached_tokens;
  }
}

std::string sse(const Json& j) {
  return "data: " + j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n\n";
}
}  // namespace

ApiServer::ApiServer(ModelContext ctx, ServerOptions options)
    : ctx_(std::move(ctx)), opt_(std::move(options)), started_(unix_now()), counters_(std::make_shared<Counters>()) {
  http_.set_threads(opt_.threads > 0 ? opt_.threads : 16);
  http_.set_max_body_bytes(opt_.max_body_bytes);
  http_.set_error_body([](int status) {
    return error_body(status, status == 404   ? "no such route"
                              : status == 413 ? "the request body is too large"
                                              : "request refused");
  });
  for (const char* prefix : {"/v1", ""})
    http_.route("GET", std::string(prefix) + "/models", guarded([this](const http::Request&) { return models(); }));
  http_.route("POST", "/tokenize", guarded([this](const http::Request& r) { return tokenize(r); }));
  http_.route("POST", "/detokenize", guarded([this](const http::Request& r) { return detokenize(r); }));
  http_.route("GET", "/health", guarded([](const http::Request&) { return json_reply(Json{{"status", "ok"}}); }, false));
  http_.route("GET", "/metrics", guarded([this](const http::Request&) { return metrics(); }));
  if (!opt_.cors.empty())
    http_.route("OPTIONS", R"(/.*)", guarded([](const http::Request&) { return http::Reply{204, ""}; }, false));
}

void ApiServer::serve_generation(Scheduler& scheduler, model::DecoderModel& model) {
  sched_ = &scheduler;
  model_ = &model;
  const auto& so = scheduler.options();
  if (opt_.threads <= 0) http_.set_threads(so.parallel + static_cast<int>(so.queue) + 8);
  for (const char* prefix : {"/v1", ""}) {
    const std::string p = prefix;
    http_.route("POST", p + "/chat/completions",
                guarded([this](const http::Request& r) { return generate(r, Endpoint::Chat); }));
    http_.route("POST", p + "/completions",
                guarded([this](const http::Request& r) { return generate(r, Endpoint::Completion); }));
    http_.route("POST", p + "/embeddings", guarded([this](const http::Request& r) { return embeddings(r); }));
  }
  // The chat page itself holds no data; it sends the API key (asked in its settings) with its calls.
  http_.route("GET", "/", guarded([](const http::Request&) {
                return http::Reply{200, chat_page_html(), "text/html; charset=utf-8"};
              }, false));
}

void ApiServer::serve_rewards(train::RewardModelScorer& scorer) {
  scorer_ = &scorer;
  http_.route("POST", "/get_reward", guarded([this](const http::Request& r) { return reward(r); }));
}

http::Reply ApiServer::reward(const http::Request& req) {
  std::lock_guard<std::mutex> lock(reward_mu_);
  return {200, train::answer_reward_request(*scorer_, req.body)};
}

http::Server::Route ApiServer::guarded(std::function<http::Reply(const http::Request&)> f, bool needs_key) {
  return [this, f = std::move(f), needs_key](const http::Request& req) {
    http::Reply out;
    try {
      if (needs_key && !opt_.api_key.empty() && req.header("authorization") != "Bearer " + opt_.api_key)
        throw ApiError(401, "a valid API key is needed (Authorization: Bearer KEY)", "", "invalid_api_key");
      out = f(req);
    } catch (const ApiError& e) {
      out = error_reply(e.status, error_body(e));
    } catch (const Unavailable& e) {
      out = error_reply(503, error_body(503, e.what()));
    } catch (const Error& e) {
      out = error_reply(400, error_body(400, e.what()));
    } catch (const std::exception& e) {
      out = error_reply(500, error_body(500, std::string("internal error: ") + e.what()));
    }
    if (!opt_.cors.empty()) {
      out.headers.emplace_back("Access-Control-Allow-Origin", opt_.cors);
      out.headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type");
      out.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    }
    // Preflights match any path: counted under one name, so clients cannot grow the label set.
    counters_->count(req.method == "OPTIONS" ? "(preflight)" : req.path, out.status);
    return out;
  };
}

http::Reply ApiServer::generate(const http::Request& req, Endpoint endpoint) {
  const Json body = parse_body(req.body);
  auto r = std::make_shared<ApiRequest>(endpoint == Endpoint::Chat ? parse_chat_request(body, ctx_, req.body)
                                                                   : parse_completion_request(body, ctx_, req.body));
  static std::atomic<int64_t> next_group{0};
  // Pictures: the vision tower runs between two steps, on the model's thread.
  std::shared_ptr<const model::VisualPrompt> visual;
  if (r->images) sched_->run_exclusive([&] { visual = infer::visual_prompt(*model_, r->prompts.at(0), *r->images); });
  std::vector<std::shared_ptr<RequestHandle>> handles;
  try {
    for (auto& prompt : r->prompts) {
      const int64_t group = r->n > 1 ? next_group++ : -1;
      for (int i = 0; i < r->n; ++i) {
        infer::GenerateRequest g;
        g.prompt = prompt;
        g.sampling = r->sampling;
        g.sampling.seed = r->sampling.seed + static_cast<uint64_t>(i);
        g.max_new_tokens = r->max_tokens;
        g.stop = r->stop;
        g.ignore_eos = r->ignore_eos;
        g.constraint = r->constraint;
        g.visual = visual;
        handles.push_back(sched_->submit(std::move(g), r->logprobs, group));
      }
    }
  } catch (...) {
    for (auto& h : handles) h->cancel();
    throw;
  }
  const std::string id = random_id(endpoint == Endpoint::Chat ? "chatcmpl-" : "cmpl-");
  const int64_t created = unix_now();
  std::vector<std::string> echo(r->prompts.size());
  if (r->echo && ctx_.tok)
    for (size_t p = 0; p < r->prompts.size(); ++p) echo[p] = ctx_.tok->decode(r->prompts[p], false);

  if (!r->stream) {
    std::vector<ChoiceResult> choices(handles.size());
    for (size_t i = 0; i < handles.size(); ++i) {
      Event e;
      for (;;) {
        if (!handles[i]->next(e, std::chrono::milliseconds(1000))) continue;
        absorb(choices[i], e);
        if (!e.done) continue;
        if (!e.error.empty()) {
          for (auto& h : handles) h->cancel();
          throw Unavailable(e.error);
        }
        break;
      }
      if (r->echo) choices[i].text = echo[i / static_cast<size_t>(r->n)] + choices[i].text;
    }
    return json_reply(completion_reply(*r, ctx_, id, created, choices));
  }

  http::Reply out;
  out.content_type = "text/event-stream";
  out.headers.emplace_back("Cache-Control", "no-cache");
  out.stream = [this, r, handles, id, created, echo](http::StreamSink& sink) {
    std::vector<bool> done(handles.size(), false), first(handles.size(), true);
    std::vector<std::string> whole(handles.size());  // tool-call replies: the text so far
    std::vector<size_t> sent(handles.size(), 0);      // and how much of it went out
    int64_t prompt = 0, completion = 0, cached = 0;
    size_t left = handles.size();
    auto cancel_all = [&] {
      for (auto& h : handles) h->cancel();
    };
    auto send = [&](size_t i, const std::string& text, const std::vector<TokenLogprob>& lps, infer::FinishReason f) {
      const bool ok = sink.write(sse(stream_chunk(*r, ctx_, id, created, static_cast<int>(i), text, lps, f, first[i])));
      first[i] = false;
      return ok;
    };
    if (r->endpoint == Endpoint::Chat || r->echo)
      for (size_t i = 0; i < handles.size(); ++i)
        if (!send(i, r->echo ? echo[i / static_cast<size_t>(r->n)] : "", {}, infer::FinishReason::None))
          return cancel_all();
    while (left > 0) {
      bool got = false;
      for (size_t i = 0; i < handles.size(); ++i) {
        if (done[i]) continue;
        Event e;
        // Wait on the first unfinished stream, poll the others.
        const auto wait = got ? std::chrono::milliseconds(0) : std::chrono::milliseconds(50);
        if (!handles[i]->next(e, wait)) continue;
        got = true;
        if (e.done && !e.error.empty()) {
          cancel_all();
          sink.write(sse(Json::parse(error_body(500, e.error))));
          return;
        }
        std::string text = e.text;
        if (r->tool_calls) {  // text that may open a <tool_call> waits until the reply is complete
          whole[i] += e.text;
          const size_t upto = e.done ? whole[i].size() : whole[i].size() - tool_call_holdback(whole[i]);
          text = upto > sent[i] ? whole[i].substr(sent[i], upto - sent[i]) : "";
          sent[i] = std::max(sent[i], upto);
        }
        infer::FinishReason finish = e.finish;
        if (e.done && r->tool_calls) {
          auto split = split_tool_calls(whole[i]);
          if (!split.calls.empty()) {
            text.clear();  // the calls go out as tool_calls, not as text
            for (size_t k = 0; k < split.calls.size(); ++k) split.calls[k]["index"] = k;
            Json chunk = stream_chunk(*r, ctx_, id, created, static_cast<int>(i), "", {}, infer::FinishReason::None, first[i]);
            chunk["choices"][0]["delta"]["tool_calls"] = split.calls;
            first[i] = false;
            if (!sink.write(sse(chunk))) return cancel_all();
            if (finish == infer::FinishReason::Stop) finish = infer::FinishReason::ToolCalls;
          }
        }
        if ((!text.empty() || !e.logprobs.empty()) && !send(i, text, e.logprobs, infer::FinishReason::None))
          return cancel_all();
        if (e.done) {
          done[i] = true;
          --left;
          if (i % static_cast<size_t>(r->n) == 0) prompt += e.prompt_tokens;
          completion += e.completion_tokens;
          cached += e.cached_tokens;
          if (!send(i, "", {}, finish)) return cancel_all();
        }
      }
      if (!got && !sink.alive()) return cancel_all();  // the client went away
    }
    if (r->include_usage && !sink.write(sse(usage_chunk(*r, ctx_, id, created, prompt, completion, cached)))) return;
    sink.write("data: [DONE]\n\n");
  };
  return out;
}

http::Reply ApiServer::embeddings(const http::Request& req) {
  const Json body = parse_body(req.body);
  if (!body.contains("input")) throw ApiError(400, "'input' is required", "input");
  const auto inputs = parse_prompts(body["input"], ctx_, "input", 256, model_->config().vocab_size);
  std::string format = "float";
  if (body.contains("encoding_format") && !body["encoding_format"].is_null()) {
    if (!body["encoding_format"].is_string()) throw ApiError(400, "'encoding_format' must be a string", "encoding_format");
    format = body["encoding_format"].get<std::string>();
    if (format != "float" && format != "base64")
      throw ApiError(400, "'encoding_format' must be \"float\" or \"base64\"", "encoding_format");
  }
  int64_t total = 0;
  for (auto& v : inputs) {
    if (v.empty()) throw ApiError(400, "an 'input' has no tokens", "input");
    if (static_cast<int64_t>(v.size()) > ctx_.ctx)
      throw ApiError(400, "an 'input' of " + std::to_string(v.size()) + " tokens exceeds the context of " +
                              std::to_string(ctx_.ctx), "input", "context_length_exceeded");
    total += static_cast<int64_t>(v.size());
  }
  const int64_t H = model_->config().hidden_size;
  std::vector<std::vector<float>> vecs(inputs.size());
  sched_->run_exclusive([&] {
    for (size_t i = 0; i < inputs.size(); ++i) {
      const auto& v = inputs[i];
      model::KVCache cache(model_->config(), 1, static_cast<int64_t>(v.size()), DType::F32, model_->device());
      model::Batch b;
      b.ids = v;
      for (size_t p = 0; p < v.size(); ++p) {
        b.pos.push_back(static_cast<int32_t>(p));
        b.slot.push_back(0);
        if (opt_.pooling == Pooling::Mean || p + 1 == v.size()) b.logits_for.push_back(static_cast<int32_t>(p));
      }
      Tensor h = model_->hidden_states(b, cache).to(cpu_device());
      const float* x = h.data<float>();
      const auto rows = static_cast<int64_t>(b.logits_for.size());
      std::vector<double> acc(static_cast<size_t>(H), 0.0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < H; ++j) acc[static_cast<size_t>(j)] += x[r * H + j];
      double norm = 0;
      for (auto& a : acc) norm += (a / static_cast<double>(rows)) * (a / static_cast<double>(rows));
      norm = std::sqrt(norm);
      auto& out = vecs[i];
      out.resize(static_cast<size_t>(H));
      for (int64_t j = 0; j < H; ++j)
        out[static_cast<size_t>(j)] =
            static_cast<float>(acc[static_cast<size_t>(j)] / static_cast<double>(rows) / (norm > 0 ? norm : 1.0));
    }
  });
  Json data = Json::array();
  for (size_t i = 0; i < vecs.size(); ++i) {
    Json e{{"object", "embedding"}, {"index", i}};
    if (format == "base64")
      e["embedding"] = base64(vecs[i].data(), vecs[i].size() * sizeof(float));
    else
      e["embedding"] = vecs[i];
    data.push_back(e);
  }
  std::string model = body.contains("model") && body["model"].is_string() ? body["model"].get<std::string>() : ctx_.id;
  return json_reply(Json{{"object", "list"},
                         {"data", data},
                         {"model", model},
                         {"usage", {{"prompt_tokens", total}, {"total_tokens", total}}}});
}

http::Reply ApiServer::tokenize(const http::Request& req) {
  const Json body = parse_body(req.body);
  if (!ctx_.tok) throw ApiError(400, "the served model has no tokenizer");
  const char* key = body.contains("content") ? "content" : "prompt";
  if (!body.contains(key) || !body[key].is_string())
    throw ApiError(400, "'content' (or 'prompt') must be a string", "content");
  const std::string text = body[key].get<std::string>();
  if (!utf8::is_valid(text)) throw ApiError(400, "'content' is not valid UTF-8", "content");
  bool add_special = false;
  if (body.contains("add_special")) {
    if (!body["add_special"].is_boolean()) throw ApiError(400, "'add_special' must be true or false", "add_special");
    add_special = body["add_special"].get<bool>();
  }
  auto ids = ctx_.tok->encode(text, add_special);
  return json_reply(Json{{"tokens", ids}, {"count", ids.size()}, {"max_model_len", ctx_.ctx}});
}

http::Reply ApiServer::detokenize(const http::Request& req) {
  const Json body = parse_body(req.body);
  if (!ctx_.tok) throw ApiError(400, "the served model has no tokenizer");
  if (!body.contains("tokens") || !body["tokens"].is_array()) throw ApiError(400, "'tokens' must be an array", "tokens");
  std::vector<int32_t> ids;
  for (auto& x : body["tokens"]) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= ctx_.tok->vocab_size())
      throw ApiError(400, "'tokens' must hold ids in the vocabulary", "tokens");
    ids.push_back(x.get<int32_t>());
  }
  const std::string text = ctx_.tok->decode(ids, false);
  return json_reply(Json{{"content", text}, {"prompt", text}});
}

http::Reply ApiServer::models() const {
  Json m{{"id", ctx_.id}, {"object", "model"}, {"created", started_}, {"owned_by", "yak"}, {"max_model_len", ctx_.ctx}};
  return json_reply(Json{{"object", "list"}, {"data", Json::array({m})}});
}

http::Reply ApiServer::metrics() const {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + value +
           "\n";
  };
  auto num = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.6g", v);
    return std::string(b);
  };
  out += "# HELP yak_http_requests_total HTTP requests answered, by path and status.\n";
  out += "# TYPE yak_http_requests_total counter\n";
  {
    std::lock_guard<std::mutex> lock(counters_->mu);
    for (auto& [k, v] : counters_->requests) {
      std::string path;  // a label value: backslash, quote and newline escaped
      for (char c : k.first) path += c == '\\' ? "\\\\" : c == '"' ? "\\\"" : c == '\n' ? "\\n" : std::string(1, c);
      out += "yak_http_requests_total{path=\"" + path + "\",status=\"" + std::to_string(k.second) + "\"} " +
             std::to_string(v) + "\n";
    }
  }
  if (!sched_) return {200, out, "text/plain; version=0.0.4"};
  const auto m = sched_->metrics();
  out += "# HELP yak_requests_total Generations ended, by outcome.\n# TYPE yak_requests_total counter\n";
  out += "yak_requests_total{outcome=\"finished\"} " + std::to_string(m.requests_finished) + "\n";
  out += "yak_requests_total{outcome=\"cancelled\"} " + std::to_string(m.requests_cancelled) + "\n";
  out += "yak_requests_total{outcome=\"failed\"} " + std::to_string(m.requests_failed) + "\n";
  metric("yak_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", std::to_string(m.prompt_tokens));
  metric("yak_prefill_tokens_total", "counter", "Prompt tokens computed (not taken from the prefix cache).",
         std::to_string(m.prefill_tokens));
  metric("yak_generation_tokens_total", "counter", "Tokens generated.", std::to_string(m.generated_tokens));
  metric("yak_steps_total", "counter", "Forward steps of the scheduler.", std::to_string(m.steps));
  metric("yak_queue_length", "gauge", "Requests waiting for a slot.", std::to_string(m.queue));
  metric("yak_running_requests", "gauge", "Requests holding a slot.", std::to_string(m.running));
  metric("yak_batch_tokens", "gauge", "Tokens in the last step's batch.", std::to_string(m.last_batch_tokens));
  metric("yak_batch_sequences", "gauge", "Sequences sampled in the last step.", std::to_string(m.last_batch_sequences));
  metric("yak_kv_cache_usage_ratio", "gauge", "KV pages held by running requests / all pages.",
         num(m.pages.pages ? static_cast<double>(m.pages.in_use) / static_cast<double>(m.pages.pages) : 0));
  metric("yak_kv_cache_pages", "gauge", "KV pages in the pool.", std::to_string(m.pages.pages));
  metric("yak_prefix_cache_pages", "gauge", "Unused KV pages kept for their prefix.", std::to_string(m.pages.cached));
  metric("yak_prefix_cache_hit_ratio", "gauge", "Prompt tokens taken from the prefix cache / prompt tokens looked up.",
         num(m.pages.looked_up_tokens ? static_cast<double>(m.pages.hit_tokens) /
                                            static_cast<double>(m.pages.looked_up_tokens)
                                      : 0));
  metric("yak_prefix_cache_hit_tokens_total", "counter", "Prompt tokens taken from the prefix cache.",
         std::to_string(m.pages.hit_tokens));
  metric("yak_prefix_cache_evictions_total", "counter", "Cached pages evicted.", std::to_string(m.pages.evictions));
  metric("yak_speculative_draft_tokens_total", "counter", "Tokens the draft model proposed.",
         std::to_string(m.draft_tokens));
  metric("yak_speculative_accepted_tokens_total", "counter", "Proposed tokens the model kept.",
         std::to_string(m.draft_accepted));
  metric("yak_speculative_acceptance_ratio", "gauge", "Kept / proposed draft tokens (0 before any).",
         num(m.draft_tokens ? static_cast<double>(m.draft_accepted) / static_cast<double>(m.draft_tokens) : 0));
  return {200, out, "text/plain; version=0.0.4"};
}

}  // namespace yak::serve
