// The OpenAI request parser of yak serve: prompts equal what the chat template and tokenizer
// give, sampling defaults come from generation_config.json with the request on top, max_tokens
// is resolved against the context, and every bad field is refused with OpenAI's error naming it.
#include <gtest/gtest.h>

#include <filesystem>

#include "yak/base/json.h"
#include "yak/serve/openai.h"

using namespace yak;
namespace fs = std::filesystem;

namespace {

const fs::path kDir = fs::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat";

class OpenAiParse : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_ = tok::load_tokenizer(kDir);
    m_.id = "qwen2_chat";
    m_.tok = tok_.get();
    m_.chat_template = tok::ChatTemplate::by_name("chatml");
    m_.defaults.do_sample = true;
    m_.defaults.temperature = 0.7;
    m_.defaults.top_p = 0.8;
    m_.ctx = 256;
  }
  // The error a body gets (status, param, code).
  std::tuple<int, std::string, std::string> error_of(const std::string& body, bool chat = true) {
    try {
      const Json j = serve::parse_body(body);
      chat ? serve::parse_chat_request(j, m_) : serve::parse_completion_request(j, m_);
    } catch (const serve::ApiError& e) {
      return {e.status, e.param, e.code};
    }
    return {0, "", ""};
  }
  std::unique_ptr<tok::Tokenizer> tok_;
  serve::ModelContext m_;
};

TEST_F(OpenAiParse, ChatPromptIsTheTemplatesTokens) {
  const auto r = serve::parse_chat_request(
      Json::parse(R"({"messages":[{"role":"system","content":"Be brief."},
                     {"role":"user","content":[{"type":"text","text":"Hi"},{"type":"text","text":"there"}]}],
                     "stop":"END","max_tokens":10})"),
      m_);
  std::vector<tok::ChatMessage> msgs{{"system", "Be brief."}, {"user", "Hi\nthere"}};
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0], tok_->encode(m_.chat_template->render(msgs), false));
  EXPECT_EQ(r.max_tokens, 10);
  // The request's stop string, then the template's own.
  std::vector<std::string> stops{"END"};
  for (auto& s : m_.chat_template->stop_strings()) stops.push_back(s);
  EXPECT_EQ(r.stop, stops);
  // generation_config.json's defaults where the request says nothing.
  EXPECT_TRUE(r.sampling.do_sample);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.7f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.8f);
}

TEST_F(OpenAiParse, RequestFieldsOverrideDefaults) {
  const auto r = serve::parse_chat_request(
      Json::parse(R"({"messages":[{"role":"user","content":"x"}],"temperature":0,"top_p":1,"top_k":-1,
                     "seed":9,"n":3,"logprobs":true,"top_logprobs":4,"presence_penalty":0.5,
                     "frequency_penalty":-1,"repetition_penalty":1.2,"min_p":0.1})"),
      m_);
  EXPECT_TRUE(r.sampling.greedy());
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_EQ(r.sampling.seed, 9u);
  EXPECT_EQ(r.n, 3);
  EXPECT_EQ(r.logprobs, 4);
  EXPECT_FLOAT_EQ(r.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, -1.0f);
  EXPECT_FLOAT_EQ(r.sampling.repetition_penalty, 1.2f);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
  // No max_tokens: the rest of the context.
  EXPECT_EQ(r.max_tokens, 256 - static_cast<int64_t>(r.prompts[0].size()));
}

TEST_F(OpenAiParse, CompletionPromptsAsTextAndIds) {
  const auto r = serve::parse_completion_request(
      Json::parse(R"({"prompt":["The yak",[5,6,7]],"max_tokens":4,"logprobs":2})"), m_);
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.prompts[0], tok_->encode("The yak", true));
  EXPECT_EQ(r.prompts[1], (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(r.logprobs, 2);
  EXPECT_TRUE(r.stop.empty());
}

TEST_F(OpenAiParse, BadFieldsAreNamed) {
  using T = std::tuple<int, std::string, std::string>;
  const std::string u = R"("messages":[{"role":"user","content":"x"}])";
  EXPECT_EQ(error_of("{"), T(400, "", ""));
  EXPECT_EQ(error_of("[1]"), T(400, "", ""));
  EXPECT_EQ(error_of(R"({"messages":[]})"), T(400, "messages", ""));
  EXPECT_EQ(error_of(R"({"messages":[{"role":"robot","content":"x"}]})"), T(400, "messages[0].role", ""));
  EXPECT_EQ(error_of(R"({"messages":[{"role":"user","content":5}]})"), T(400, "messages[0].content", ""));
  EXPECT_EQ(error_of("{" + u + R"(,"temperature":2.5})"), T(400, "temperature", ""));
  EXPECT_EQ(error_of("{" + u + R"(,"top_p":0})"), T(400, "top_p", ""));
  EXPECT_EQ(error_of("{" + u + R"(,"n":17})"), T(400, "n", ""));
  EXPECT_EQ(error_of("{" + u + R"(,"max_tokens":0})"), T(400, "max_tokens", ""));
  EXPECT_EQ(error_of("{" + u + R"(,"max_tokens":300})"), T(400, "max_tokens", "context_length_exceeded"));
  EXPECT_EQ(error_of("{" + u + R"(,"max_completion_tokens":1.5})"), T(400, "max_completion_tokens", ""));
  EXPECT_EQ(error_of("{" + u + R"(,"stop":[1]})"), T(400, "stop", ""));
  EXPECT_EQ(error_of("{" + u + R"(,"top_logprobs":2})"), T(400, "top_logprobs", ""));
  EXPECT_EQ(error_of("{" + u + R"(,"stream_options":{"include_usage":true}})"), T(400, "stream_options", ""));
  EXPECT_EQ(error_of("{" + u + R"(,"tools":[{"type":"function"}]})"), T(400, "tools[0]", ""));
  EXPECT_EQ(error_of("{" + u + R"(,"tools":{}})"), T(400, "tools", ""));
  EXPECT_EQ(error_of("{" + u + R"(,"tool_choice":"required"})"), T(400, "tool_choice", ""));
  EXPECT_EQ(error_of("{" + u + R"(,"response_format":{"type":"json_schema"}})"),
            T(400, "response_format.json_schema", ""));
  EXPECT_EQ(error_of("{" + u + R"(,"response_format":{"type":"yaml"}})"), T(400, "response_format", ""));
  EXPECT_EQ(error_of("{" + u + R"(,"grammar":"root ::= ("})"), T(400, "grammar", ""));
  EXPECT_EQ(error_of(R"({"prompt":[5,100000]})", false), T(400, "prompt", ""));
  EXPECT_EQ(error_of(R"({"prompt":"\u00ff", "echo":true, "logprobs":1})", false), T(400, "echo", ""));
  EXPECT_EQ(error_of(R"({"max_tokens":3})", false), T(400, "prompt", ""));
  const std::string long_prompt(2000, 'a');
  EXPECT_EQ(error_of(R"({"prompt":")" + long_prompt + R"("})", false), T(400, "prompt", "context_length_exceeded"));
  const auto body = Json::parse(serve::error_body(serve::ApiError(400, "bad", "temperature")));
  EXPECT_EQ(body["error"]["message"], "bad");
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_EQ(body["error"]["param"], "temperature");
  EXPECT_TRUE(body["error"]["code"].is_null());
}

}  // namespace
