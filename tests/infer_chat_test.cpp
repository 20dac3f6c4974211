// Multi-turn chat through the library against transformers: apply_chat_template + generate +
// decode on the tiny Qwen2 folder that carries a real tokenizer and ChatML template.
#include <gtest/gtest.h>

#include <filesystem>

#include "yak/base/json.h"
#include "yak/infer/chat.h"

using namespace yak;

namespace {

const std::filesystem::path kDir = std::filesystem::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat";

TEST(Conversation, MultiTurnMatchesTransformers) {
  Json golden = read_json_file(kDir / "chat_golden.json");
  auto model = model::DecoderModel::load(kDir);
  auto tokenizer = tok::load_tokenizer(kDir);
  infer::Engine engine(*model, tokenizer.get());
  Json tc = read_json_file(kDir / "tokenizer_config.json");
  if (!tc.contains("chat_template")) tc["chat_template"] = read_text_file(kDir / "chat_template.jinja");
  auto tmpl = tok::ChatTemplate::from_config(tc, "Qwen2ForCausalLM");
  ASSERT_TRUE(tmpl.is_jinja()) << "the checkpoint's own template, rendered by the Jinja interpreter";
  infer::SamplingParams greedy;
  const int64_t n = golden["max_new_tokens"].get<int64_t>();

  for (const auto& c : golden["cases"]) {
    const auto& msgs = c["messages"];
    std::optional<std::string> system;
    if (msgs[0]["role"] == "system") system = msgs[0]["content"].get<std::string>();
    infer::Conversation conv(engine, tmpl, system, 512);
    for (size_t i = system ? 1 : 0; i + 1 < msgs.size(); ++i)
      conv.push({msgs[i]["role"].get<std::string>(), msgs[i]["content"].get<std::string>()});
    std::string streamed;
    auto r = conv.reply(msgs.back()["content"].get<std::string>(), greedy, n,
                        [&](size_t, const std::string& t) { streamed += t; });
    EXPECT_EQ(r.tokens, c["greedy_ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(r.text, c["greedy_text"].get<std::string>());
    EXPECT_EQ(streamed, r.text);
    EXPECT_EQ(infer::finish_reason_name(r.finish_reason), c["finish"].get<std::string>());
    EXPECT_EQ(conv.messages().back().role, "assistant");
    EXPECT_EQ(conv.messages().back().content, r.text);

    // A follow-up turn prefills only what is new since the cached prefix (at least the whole first
    // prompt is reused; the answer itself is re-tokenized from its text, as transformers would).
    auto before = conv.messages().size();
    conv.reply("more", greedy, 4);
    EXPECT_EQ(conv.messages().size(), before + 2);
    std::vector<tok::ChatMessage> second(conv.messages().begin(), conv.messages().end() - 1);
    const auto full = tokenizer->encode(tmpl.render(second), false).size();
    EXPECT_LE(engine.last_stats().prefill_tokens, static_cast<int64_t>(full - c["prompt_ids"].size()) + 1);
  }
}

TEST(Conversation, ResetAndContextLimit) {
  auto model = model::DecoderModel::load(kDir);
  auto tokenizer = tok::load_tokenizer(kDir);
  infer::Engine engine(*model, tokenizer.get());
  infer::Conversation conv(engine, tok::ChatTemplate::by_name("chatml"), std::string("sys"), 40);
  infer::SamplingParams greedy;
  conv.reply("hi", greedy, 4);
  EXPECT_EQ(conv.messages().size(), 3u);
  conv.reset();
  ASSERT_EQ(conv.messages().size(), 1u);
  EXPECT_EQ(conv.messages()[0].role, "system");
  // A message longer than the context is refused and leaves the history as it was.
  EXPECT_THROW(conv.reply(std::string(400, 'x'), greedy, 4), Error);
  EXPECT_EQ(conv.messages().size(), 1u);
}

}  // namespace

namespace {

// Stop strings cut the text before the first occurrence, streaming never shows any part of it,
// and a seeded sampler repeats itself exactly.
TEST(Engine, StopStringsAndSeededSampling) {
  Json golden = read_json_file(kDir / "chat_golden.json");
  const auto& c = golden["cases"][0];
  auto model = model::DecoderModel::load(kDir);
  auto tokenizer = tok::load_tokenizer(kDir);
  infer::Engine engine(*model, tokenizer.get());
  infer::GenerateRequest r;
  r.prompt = c["prompt_ids"].get<std::vector<int32_t>>();
  r.max_new_tokens = golden["max_new_tokens"].get<int64_t>();
  const std::string full = c["greedy_text"].get<std::string>();
  const std::string stop = " l l";  // occurs mid-way through the greedy text
  const size_t at = full.find(stop);
  ASSERT_NE(at, std::string::npos);
  r.stop = {"never-there", stop};
  std::string streamed;
  auto out = engine.generate({r}, [&](size_t, const std::string& t) { streamed += t; })[0];
  EXPECT_EQ(out.text, full.substr(0, at));
  EXPECT_EQ(streamed, out.text);
  EXPECT_EQ(out.finish_reason, infer::FinishReason::Stop);
  EXPECT_LT(out.tokens.size(), c["greedy_ids"].size());

  infer::GenerateRequest s = r;
  s.stop.clear();
  s.sampling.do_sample = true;
  s.sampling.temperature = 1.5f;
  s.sampling.top_p = 0.95f;
  s.sampling.seed = 42;
  auto a = engine.generate({s})[0], b = engine.generate({s})[0];
  EXPECT_EQ(a.tokens, b.tokens);
  s.sampling.seed = 43;
  EXPECT_NE(engine.generate({s})[0].tokens, a.tokens);
}

}  // namespace
