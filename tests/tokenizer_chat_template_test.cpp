#include <unistd.h>

#include <filesystem>
#include <fstream>
#include "tokenizer_test_util.h"
#include "yak/base/error.h"
#include "yak/tokenizer/chat_template.h"

namespace yak::tok {
namespace {

using namespace yak::tok::testing;

// Content parts (the qwen3-vl cases) become the text yak's messages carry: a picture is the
// placeholder the template writes for it.
std::vector<ChatMessage> messages_of(const Json& j) {
  std::vector<ChatMessage> m;
  for (const auto& x : j) {
    std::string content;
    if (x["content"].is_string()) {
      content = x["content"].get<std::string>();
    } else {
      for (const auto& part : x["content"])
        content += part["type"] == "image" ? "<|vision_start|><|image_pad|><|vision_end|>" : part["text"].get<std::string>();
    }
    m.push_back({x["role"].get<std::string>(), content});
  }
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
  EXPECT_EQ(ChatTemplate::detect(Json::object(), "Qwen3VLForConditionalGeneration"), "qwen3-vl");
  EXPECT_FALSE(ChatTemplate::builtin_from_config(Json::object(), "Qwen3VLForConditionalGeneration").default_system());
  EXPECT_TRUE(ChatTemplate::by_name("qwen3-vl").supports_tools());
  EXPECT_EQ(ChatTemplate::builtin_from_config(cfg("chatml"), "").default_system(), "You are a helpful assistant.");
  EXPECT_EQ(ChatTemplate::builtin_from_config(cfg("chatml_shared"), "").default_system(), "You are a helpful assistant.");
  // A checkpoint with a template gets that template, rendered by the Jinja interpreter.
  EXPECT_TRUE(ChatTemplate::from_config(cfg("chatml"), "").is_jinja());
  EXPECT_FALSE(ChatTemplate::from_config(Json::object(), "LlamaForCausalLM").is_jinja());
}

TEST(TokenizerChatTemplate, JinjaRendersEveryFamilysGoldens) {
  // The same cases as MatchesJinjaRenderings, through each family's own Jinja source.
  auto g = golden_json("chat_templates.json");
  int n = 0;
  for (const auto& c : g["cases"]) {
    const std::string fam = c["family"].get<std::string>();
    if (!g["templates"].contains(fam)) continue;
    SCOPED_TRACE(fam + " / " + c["conversation"].get<std::string>());
    const Json cfg = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
    ChatTemplate t = ChatTemplate::from_jinja(g["templates"][fam].get<std::string>(), fam, cfg);
    ChatOptions o;
    o.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    o.enable_thinking = c["enable_thinking"].get<bool>();
    EXPECT_EQ(t.render(messages_of(c["messages"]), o), c["text"].get<std::string>());
    ++n;
  }
  EXPECT_GT(n, 50);
}

TEST(TokenizerChatTemplate, ReadsTheTemplateFilesOfAFolder) {
  // tokenizer_config.json's own template first, then chat_template.jinja, then a processor's
  // chat_template.json; a malformed chat_template.json names the file.
  const auto dir = std::filesystem::temp_directory_path() / ("yak_tmpl_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto put = [&](const char* name, const std::string& text) { std::ofstream(dir / name) << text; };
  EXPECT_EQ(load_tokenizer_config(dir), Json::object());
  put("chat_template.json", R"({"chat_template": "{{ 'from json' }}"})");
  EXPECT_EQ(load_tokenizer_config(dir)["chat_template"], "{{ 'from json' }}");
  put("chat_template.jinja", "{{ 'from jinja' }}");
  EXPECT_EQ(load_tokenizer_config(dir)["chat_template"], "{{ 'from jinja' }}");
  put("tokenizer_config.json", R"({"chat_template": "{{ 'own' }}", "eos_token": "</s>"})");
  EXPECT_EQ(load_tokenizer_config(dir)["chat_template"], "{{ 'own' }}");
  std::filesystem::remove(dir / "tokenizer_config.json");
  std::filesystem::remove(dir / "chat_template.jinja");
  put("chat_template.json", R"({"template": 3})");
  try {
    load_tokenizer_config(dir);
    FAIL() << "a chat_template.json without chat_template was read";
  } catch (const yak::Error& e) {
    EXPECT_NE(std::string(e.what()).find("chat_template.json: expected an object with a string 'chat_template'"),
              std::string::npos)
        << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(TokenizerChatTemplate, JinjaErrorsNameTheTemplateLine) {
  const Json cfg = Json::object();
  try {
    ChatTemplate::from_jinja("{% for m in messages %}\n{{ m.content }\n{% endfor %}", "broken.jinja", cfg);
    FAIL() << "a broken template parsed";
  } catch (const yak::Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.jinja:2"), std::string::npos) << e.what();
  }
  auto t = ChatTemplate::from_jinja("{% if messages[0].role != 'user' %}{{ raise_exception('users first') }}{% endif %}",
                                    "strict.jinja", cfg);
  std::vector<ChatMessage> m{{"assistant", "hi"}};
  try {
    t.render(m);
    FAIL() << "raise_exception did not raise";
  } catch (const yak::Error& e) {
    EXPECT_EQ(std::string(e.what()), "chat template strict.jinja:1: users first");
  }
}

TEST(TokenizerChatTemplate, DetectsTheSharedQwen2Config) {
  YAK_SKIP_UNLESS_SHARED("tokenizers/qwen2/tokenizer_config.json");
  Json cfg = read_json_file(shared("tokenizers/qwen2/tokenizer_config.json"));
  auto t = ChatTemplate::from_config(cfg, "Qwen2ForCausalLM");
  EXPECT_EQ(t.name(), "jinja");
  EXPECT_EQ(t.stop_strings().front(), "<|im_end|>");
  EXPECT_FALSE(t.add_special_tokens());
  EXPECT_FALSE(t.supports_tools()) << "this template has no tools";
  auto b = ChatTemplate::builtin_from_config(cfg, "Qwen2ForCausalLM");
  EXPECT_EQ(b.name(), "chatml");
  EXPECT_EQ(b.default_system(), "You are a helpful assistant.");
  // The built-in family and the template itself write the same conversation.
  std::vector<ChatMessage> m{{"user", "Hi"}, {"assistant", "Hello."}, {"user", "2+2?"}};
  EXPECT_EQ(t.render(m), b.render(m));
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

// Tools, tool calls and tool results as transformers renders Qwen2.5's and Qwen3's official
// templates (tools/golden/make_tool_goldens.py): the tool JSON with Python's spacing, calls as
// <tool_call> blocks, consecutive results in one user turn.
TEST(ChatTools, MatchTheOfficialTemplates) {
  std::ifstream in(std::string(YAK_GOLDEN_DIR) + "/tokenizer/chat_tools.json");
  ASSERT_TRUE(in.good());
  const auto cases = nlohmann::ordered_json::parse(in);
  ASSERT_EQ(cases.size(), 10u);
  for (const auto& c : cases) {
    const std::string family = c["family"].get<std::string>();
    auto t = yak::tok::ChatTemplate::by_name(family);
    if (family == "chatml") t.set_default_system("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
    std::vector<yak::tok::ChatMessage> msgs;
    for (const auto& m : c["messages"]) {
      yak::tok::ChatMessage cm{m["role"].get<std::string>(), m["content"].is_string() ? m["content"].get<std::string>() : "", {}};
      if (m.contains("tool_calls"))
        for (const auto& tc : m["tool_calls"])
          cm.tool_calls.push_back({tc["function"]["name"].get<std::string>(), yak::tok::python_json(tc["function"]["arguments"])});
      msgs.push_back(std::move(cm));
    }
    yak::tok::ChatOptions o;
    if (!c["tools"].is_null())
      for (const auto& tool : c["tools"]) o.tools.push_back(yak::tok::python_json(tool));
    EXPECT_EQ(t.render(msgs, o), c["rendered"].get<std::string>()) << family << ": " << c["case"];
  }
}

TEST(ChatTools, FamiliesWithoutAToolFormatRefuse) {
  auto t = yak::tok::ChatTemplate::by_name("llama2");
  yak::tok::ChatOptions o;
  o.tools = {"{}"};
  std::vector<yak::tok::ChatMessage> msgs = {{"user", "hi", {}}};
  EXPECT_THROW(t.render(msgs, o), yak::Error);
}
