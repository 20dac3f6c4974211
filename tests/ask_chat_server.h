// A scripted OpenAI-compatible chat server on loopback, the test double for `ask`'s LLM parser
// (`--llm openai:URL`). Rules match a substring of the last user message and answer with fixed
// contents (choice i of n gets reply i modulo the replies, so self-consistency votes can be
// scripted) or with an HTTP error; requests that match no rule get 404. Every request body is
// recorded. Serves POST /v1/chat/completions and GET /v1/models.
#pragma once
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "yak/base/error.h"
#include "yak/base/http.h"
#include "yak/base/json.h"

namespace yak::testing {

class ScriptedChatServer {
 public:
  struct Rule {
    std::string when;  // substring of the last user message ("" matches everything)
    std::vector<std::string> replies;
    int status = 200;  // anything else answers {"error": {"message": replies[0]}}
  };

  ScriptedChatServer() {
    srv_.post("/v1/chat/completions", [this](const std::string& body) { return complete(body); });
    srv_.get("/v1/models", [](const std::string&) {
      return http::Response{200,
                            Json{{"object", "list"}, {"data", {{{"id", "scripted"}, {"object", "model"}}}}}.dump()};
    });
    port_ = srv_.bind("127.0.0.1", 0);
    th_ = std::thread([this] { srv_.run(); });
    srv_.wait_until_running();
  }
  ~ScriptedChatServer() {
    srv_.stop();
    th_.join();
  }
  ScriptedChatServer(const ScriptedChatServer&) = delete;
  ScriptedChatServer& operator=(const ScriptedChatServer&) = delete;

  void on(const std::string& when, std::vector<std::string> replies, int status = 200) {
    std::lock_guard<std::mutex> lock(mu_);
    rules_.push_back({when, std::move(replies), status});
  }
  // The base URL an OpenAI client is given: http://127.0.0.1:PORT/v1
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  std::vector<Json> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  static http::Response error(int status, const std::string& message) {
    return {status, Json{{"error", {{"message", message}, {"type", "scripted"}}}}.dump()};
  }

  http::Response complete(const std::string& body) {
    // A malformed request is a 400 (yak::Error from parse_json / check).
    const Json req = parse_json(body, "chat request");
    check(req.contains("model") && req["model"].is_string(), "chat request: field 'model' should be a string");
    check(req.contains("messages") && req["messages"].is_array() && !req["messages"].empty(),
          "chat request: field 'messages' should be a non-empty list");
    std::string last_user;
    for (auto& m : req["messages"]) {
      check(m.contains("role") && m["role"].is_string() && m.contains("content") && m["content"].is_string(),
            "chat request: every message needs 'role' and 'content' strings");
      if (m["role"] == "user") last_user = m["content"].get<std::string>();
    }
    const int n = req.value("n", 1);
    check(n >= 1 && n <= 16, "chat request: field 'n' should be 1..16");
    Rule rule;
    int number = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
      bool found = false;
      for (auto& r : rules_)
        if (last_user.find(r.when) != std::string::npos) {
          rule = r, found = true;
          break;
        }
      if (!found) return error(404, "no scripted reply for: " + last_user);
      number = ++served_;
    }
    if (rule.status != 200) return error(rule.status, rule.replies.empty() ? "scripted error" : rule.replies[0]);
    check(!rule.replies.empty(), "scripted rule '" + rule.when + "' has no replies");
    Json choices = Json::array();
    size_t completion_chars = 0;
    for (int i = 0; i < n; ++i) {
      const auto& c = rule.replies[static_cast<size_t>(i) % rule.replies.size()];
      completion_chars += c.size();
      choices.push_back(
          {{"index", i}, {"message", {{"role", "assistant"}, {"content", c}}}, {"finish_reason", "stop"}});
    }
    const auto prompt_chars = body.size();
    Json out = {{"id", "chatcmpl-scripted-" + std::to_string(number)},
                {"object", "chat.completion"},
                {"created", 0},
                {"model", req["model"]},
                {"choices", choices},
                {"usage",
                 {{"prompt_tokens", prompt_chars / 4},
                  {"completion_tokens", completion_chars / 4},
                  {"total_tokens", (prompt_chars + completion_chars) / 4}}}};
    return {200, out.dump()};
  }

  http::Server srv_;
  std::thread th_;
  int port_ = 0;
  mutable std::mutex mu_;
  std::vector<Rule> rules_;
  std::vector<Json> requests_;
  int served_ = 0;
};

}  // namespace yak::testing
