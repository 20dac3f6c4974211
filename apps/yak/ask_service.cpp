#include "ask_service.h"

#include <chrono>

#include "yak/ask/loader.h"

namespace yak::cli {

ask::AskOptions options(const AskFlags& f) {
  ask::AskOptions o;
  if (f.today.empty()) {
    const auto now = std::chrono::system_clock::now();
    const auto days = std::chrono::duration_cast<std::chrono::hours>(now.time_since_epoch()).count() / 24;
    o.today = ask::Date::from_days(static_cast<int>(days));
  } else {
    auto d = ask::Date::parse(f.today);
    check(d.has_value(), "--today '" + f.today + "': expected a date YYYY-MM-DD");
    o.today = *d;
  }
  check(f.max_rows > 0, "--max-rows: expected a positive number");
  check(f.timeout_ms > 0, "--timeout-ms: expected a positive number");
  o.max_rows = f.max_rows;
  o.timeout_ms = f.timeout_ms;
  o.threshold = f.threshold;
  o.allow_sensitive = f.allow_sensitive;
  for (auto& rf : f.row_filters) {
    const auto colon = rf.find(':');
    check(colon != std::string::npos && colon > 0, "--row-filter '" + rf + "': expected TABLE:CONDITION");
    o.row_filters.push_back({rf.substr(0, colon), rf.substr(colon + 1)});
  }
  return o;
}

AskService::AskService(const AskFlags& f, const LlmFlags& lf, ask::ChatModel* served)
    : flags_(f), llm_flags_(lf), base_(options(f)), db_(ask::open_database(f.db)) {
  asker_ = std::make_unique<ask::Asker>(ask::SemanticModel::load(f.semantic), *db_);
  llm_ = std::make_unique<LlmSetup>(lf, 0, served);
}

Json AskService::refresh() {
  std::lock_guard<std::mutex> lock(mu_);
  const auto t0 = std::chrono::steady_clock::now();
  const size_t n = asker_->refresh_knowledge();
  return Json{{"entries", n}, {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}};
}

size_t AskService::entries() {
  std::lock_guard<std::mutex> lock(mu_);
  return asker_->knowledge().size();
}

http::Reply AskService::answer(const http::Request& http_req) {
  const Json req = parse_json(http_req.body, "ask request");
  check(req.is_object(), "ask request: expected a JSON object with 'question'");
  const auto question = json_get<std::string>(req, "question", "ask request");
  check(!question.empty(), "ask request: field 'question' is empty");
  auto o = base_;
  llm_->apply(o, llm_flags_);
  o.llm_failure_answers = true;
  if (req.contains("today")) {
    const auto d = ask::Date::parse(json_get<std::string>(req, "today", "ask request"));
    check(d.has_value(), "ask request: field 'today' should be a date YYYY-MM-DD");
    o.today = *d;
  }
  std::lock_guard<std::mutex> lock(mu_);
  const auto ans = asker_->ask(question, o);
  if (json_get_or<bool>(req, "confirm", false, "ask request") && ans.understood && !ans.sql.empty()) {
    check(!llm_flags_.fewshot.empty(), "ask request: 'confirm' needs the server to run with --fewshot FILE");
    llm_->store.add(question, ans.dsl);
  }
  return {200, ans.to_json().dump(-1, ' ', false, Json::error_handler_t::replace)};
}

void AskService::mount(const AddRoute& add) {
  add("POST", "/api/ask", [this](const http::Request& r) { return answer(r); });
  add("POST", "/api/refresh", [this](const http::Request&) { return http::Reply{200, refresh().dump()}; });
  add("GET", "/api/health", [this](const http::Request&) {
    std::lock_guard<std::mutex> lock(mu_);
    return http::Reply{200, Json{{"status", "ok"}, {"server", db_->server()}, {"entries", asker_->knowledge().size()}}.dump()};
  });
}

}  // namespace yak::cli
