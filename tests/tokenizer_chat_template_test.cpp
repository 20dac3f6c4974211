#include "tokenizer_test_util.h"
#include "yak/base/error.h"
#include "yak/tokenizer/chat_template.h"

namespace yak::tok {
namespace {

using namespace yak::tok::testing;

std::vector<ChatMessage> messages_of(const Json& j) {
  std::vector<ChatMessage> m;
  for (const auto& x : j) m.push_back({x["role"].get<std::string>(), x["content"].get<std::string>()});
  return m;
}

TEST(TokenizerChatTemplate, MatchesJinjaRenderings) {
  auto g = golden_json("chat_templates.json");
  int n = 0;
  for (const auto& c : g["cases"]) {
    std::string fam = c["family"].get<std::string>();
    SCOPED_TRACE(fam + " / " + c["conversation"].get<std::string>() +
                 " agp=" + std::to_string(c["add_generation_prompt"].get<bool>()) +
                 " thinking=" + std::to_string(c["enable_thinking"].get<bool>()));
    // chatml_shared is the shared Qwen2 fine-tune's template, read the way the engine reads it.
    ChatTemplate t = fam == "chatml_shared"
                         ? ChatTemplate::from_config(Json{{"chat_template", g["templates"][fam]}}, "Qwen2ForCausalLM")
                         : ChatTemplate::by_name(fam);
    ChatOptions o;
    o.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    o.enable_thinking = c["enable_thinking"].get<bool>();
    auto msgs = messages_of(c["messages"]);
    EXPECT_EQ(t.render(msgs, o), c["text"].get<std::string>());
    ++n;
  }
  EXPECT_GT(n, 50);
}

TEST(TokenizerChatTemplate, DetectsFamilies) {
  auto g = golden_json("chat_templates.json");
  auto cfg = [&](const char* fam) { return Json{{"chat_template", g["templates"][fam]}}; };
  EXPECT_EQ(ChatTemplate::detect(cfg("chatml"), ""), "chatml");
  EXPECT_EQ(ChatTemplate::detect(cfg("qwen3"), ""), "qwen3");
  EXPECT_EQ(ChatTemplate::detect(cfg("chatml"), "Qwen3ForCausalLM"), "qwen3");
  EXPECT_EQ(ChatTemplate::detect(cfg("llama2"), ""), "llama2");
  EXPECT_EQ(ChatTemplate::detect(cfg("alpaca2"), ""), "alpaca2");
  EXPECT_EQ(ChatTemplate::detect(Json::object(), "LlamaForCausalLM"), "llama2");
  EXPECT_EQ(ChatTemplate::detect(Json::object(), "GPT2LMHeadModel"), "plain");
  EXPECT_EQ(ChatTemplate::from_config(cfg("chatml"), "").default_system(), "You are a helpful assistant.");
  EXPECT_EQ(ChatTemplate::from_config(cfg("chatml_shared"), "").default_system(), "You are a helpful assistant.");
}

TEST(TokenizerChatTemplate, DetectsTheSharedQwen2Config) {
  YAK_SKIP_UNLESS_SHARED("tokenizers/qwen2/tokenizer_config.json");
  Json cfg = read_json_file(shared("tokenizers/qwen2/tokenizer_config.json"));
  auto t = ChatTemplate::from_config(cfg, "Qwen2ForCausalLM");
  EXPECT_EQ(t.name(), "chatml");
  EXPECT_EQ(t.default_system(), "You are a helpful assistant.");
  EXPECT_EQ(t.stop_strings().front(), "<|im_end|>");
  EXPECT_FALSE(t.add_special_tokens());
}

TEST(TokenizerChatTemplate, ErrorsAndPlain) {
  try {
    ChatTemplate::by_name("vicuna");
    FAIL();
  } catch (const yak::Error& e) {
    EXPECT_NE(std::string(e.what()).find("chatml"), std::string::npos);
  }
  auto l = ChatTemplate::by_name("llama2");
  EXPECT_FALSE(l.add_special_tokens());
  EXPECT_TRUE(ChatTemplate::by_name("plain").add_special_tokens());
  std::vector<ChatMessage> bad{{"assistant", "hi"}};
  EXPECT_THROW(l.render(bad), yak::Error);
  std::vector<ChatMessage> p{{"user", "Once upon a time"}};
  EXPECT_EQ(ChatTemplate::by_name("plain").render(p), "Once upon a time");
  EXPECT_TRUE(ChatTemplate::by_name("plain").stop_strings().empty());
}

}  // namespace
}  // namespace yak::tok
