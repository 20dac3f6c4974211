// The scripted OpenAI-compatible server the LLM parser will be tested against: it must speak the
// chat-completions shape a client expects, answer n samples, fail the way real servers fail, and
// record what it was asked.
#include <gtest/gtest.h>

#include "ask_chat_server.h"

using yak::Json;
using yak::testing::ScriptedChatServer;
namespace http = yak::http;

namespace {

Json chat(const std::string& user, int n = 1) {
  Json req = {
      {"model", "scripted"},
      {"messages",
       {{{"role", "system"}, {"content", "Answer with the DSL as JSON."}}, {{"role", "user"}, {"content", user}}}},
      {"temperature", 0.7}};
  if (n != 1) req["n"] = n;
  return req;
}

}  // namespace

TEST(ask_chat_server, AnswersScriptedRepliesInTheOpenAIShape) {
  ScriptedChatServer s;
  s.on("去年", {R"({"metrics":["plays"]})"});
  const auto r =
      http::post(s.base_url() + "/chat/completions", chat("去年各平台的播放量").dump(), "application/json", 5);
  ASSERT_EQ(r.status, 200) << r.body;
  const auto j = Json::parse(r.body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "scripted");
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], R"({"metrics":["plays"]})");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_GT(j["usage"]["total_tokens"].get<int>(), 0);
  const auto got = http::get(s.base_url() + "/models", 5);
  EXPECT_EQ(Json::parse(got.body)["data"][0]["id"], "scripted");
}

TEST(ask_chat_server, SamplesCycleThroughTheRepliesForVotes) {
  ScriptedChatServer s;
  s.on("", {"A", "B", "A"});
  const auto j =
      Json::parse(http::post(s.base_url() + "/chat/completions", chat("q", 5).dump(), "application/json", 5).body);
  ASSERT_EQ(j["choices"].size(), 5u);
  std::string seq;
  for (auto& c : j["choices"]) seq += c["message"]["content"].get<std::string>();
  EXPECT_EQ(seq, "ABAAB");
  EXPECT_EQ(j["choices"][4]["index"], 4);
}

TEST(ask_chat_server, FirstMatchingRuleWinsAndUnscriptedPromptsAre404) {
  ScriptedChatServer s;
  s.on("QQ", {"first"});
  s.on("QQ音乐", {"second"});
  auto content = [&](const std::string& q) {
    const auto r = http::post(s.base_url() + "/chat/completions", chat(q).dump(), "application/json", 5);
    return std::to_string(r.status) + " " +
           (r.status == 200 ? Json::parse(r.body)["choices"][0]["message"]["content"].get<std::string>()
                            : Json::parse(r.body)["error"]["message"].get<std::string>());
  };
  EXPECT_EQ(content("QQ音乐的播放量"), "200 first");
  EXPECT_EQ(content("天气"), "404 no scripted reply for: 天气");
}

TEST(ask_chat_server, ScriptedErrorsAndMalformedRequests) {
  ScriptedChatServer s;
  s.on("overloaded", {"server overloaded"}, 503);
  auto r = http::post(s.base_url() + "/chat/completions", chat("overloaded?").dump(), "application/json", 5);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(Json::parse(r.body)["error"]["message"], "server overloaded");
  r = http::post(s.base_url() + "/chat/completions", "{not json", "application/json", 5);
  EXPECT_EQ(r.status, 400);
  r = http::post(s.base_url() + "/chat/completions", Json{{"model", "m"}}.dump(), "application/json", 5);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("messages"), std::string::npos) << r.body;
  r = http::post(s.base_url() + "/chat/completions", chat("x", 99).dump(), "application/json", 5);
  EXPECT_EQ(r.status, 400);
}

TEST(ask_chat_server, RecordsEveryRequest) {
  ScriptedChatServer s;
  s.on("", {"ok"});
  http::post(s.base_url() + "/chat/completions", chat("first question").dump(), "application/json", 5);
  http::post(s.base_url() + "/chat/completions", chat("second question", 3).dump(), "application/json", 5);
  const auto reqs = s.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0]["messages"][1]["content"], "first question");
  EXPECT_EQ(reqs[1]["n"], 3);
  EXPECT_EQ(reqs[1]["messages"][0]["role"], "system");
}
