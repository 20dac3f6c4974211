// The engine with images (tiny random Qwen3-VL of tools/golden/make_vl_goldens.py): from image
// files and chat text to transformers' greedy tokens through the library calls the CLI makes;
// prompts with different image counts (two, one, none) batched in one generate() give each
// prompt's tokens alone, whatever the prefill chunk; equal prompts with different images never
// share KV pages; a session never reuses another picture's cached tokens, and a conversation
// with pictures in several turns equals a fresh prompt of the whole conversation each turn.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/infer/chat.h"
#include "yak/infer/engine.h"
#include "yak/infer/vision_prompt.h"
#include "yak/tokenizer/chat_template.h"
#include "yak/tokenizer/tokenizer.h"

using namespace yak;

namespace {

const std::filesystem::path kVision = std::filesystem::path(YAK_GOLDEN_DIR) / "vision";
const std::filesystem::path kModel = kVision / "qwen3_vl";

struct Fixture {
  std::unique_ptr<model::DecoderModel> model = model::DecoderModel::load(kModel);
  std::unique_ptr<tok::Tokenizer> tok = tok::load_tokenizer(kModel);
  Json golden;
  Fixture() {
    std::ifstream f(kModel / "golden.json");
    golden = Json::parse(f);
  }
  // The chat template's rendering of one user message, as `yak generate --chat-template auto` makes it.
  infer::GenerateRequest request(const std::string& text, const std::vector<std::string>& files) {
    const auto& v = *model->config().vision;
    std::vector<std::string> paths;
    for (auto& f : files) paths.push_back((kVision / "images" / f).string());
    infer::PromptImages images =
        infer::load_prompt_images(paths, model::ImageProcessorConfig::load(kModel, v));
    const std::string rendered = "<|im_start|>user\n" + infer::place_images(text, files.size(), *tok, v) +
                                 "<|im_end|>\n<|im_start|>assistant\n";
    infer::GenerateRequest r;
    r.prompt = infer::encode_with_images(rendered, images.grids, *tok, v, false);
    if (!files.empty()) r.visual = infer::visual_prompt(*model, r.prompt, images);
    r.max_new_tokens = golden["new_tokens"].get<int64_t>();  // transformers' greedy length
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    return r;
  }
};

}  // namespace

TEST(VisionEngine, EndToEndEqualsTransformers) {
  Fixture fx;
  infer::Engine engine(*fx.model, fx.tok.get());
  for (const auto& c : fx.golden["end_to_end"]) {
    auto r = fx.request(c["text"].get<std::string>(), c["images"].get<std::vector<std::string>>());
    EXPECT_EQ(r.prompt, c["prompt_ids"].get<std::vector<int32_t>>()) << "expanded input_ids";
    const auto out = engine.generate({r});
    EXPECT_EQ(out[0].tokens, c["greedy"].get<std::vector<int32_t>>());
  }
}

TEST(VisionEngine, BatchedPromptsWithDifferentImageCountsEqualEachAlone) {
  Fixture fx;
  std::vector<infer::GenerateRequest> reqs = {
      fx.request("Compare the two pictures.", {"rgba_30x22.png", "rgb_96x64.png"}),
      fx.request("Describe the picture.", {"photo_420_50x37.jpg"}),
      fx.request("What is in the image?", {}),
      // The same text and image count as the second, another picture: the pads are equal tokens.
      fx.request("Describe the picture.", {"grey_13x9.png"})};
  infer::Engine engine(*fx.model, fx.tok.get());
  std::vector<std::vector<int32_t>> alone;
  for (auto& r : reqs) alone.push_back(engine.generate({r})[0].tokens);
  EXPECT_NE(alone[1], alone[3]) << "two different pictures gave the same tokens";
  for (int64_t chunk : {512, 7}) {
    engine.prefill_chunk = chunk;
    const auto together = engine.generate(reqs);
    for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(together[i].tokens, alone[i]) << "prompt " << i << ", chunk " << chunk;
  }
}

TEST(VisionEngine, ASessionNeverReusesAnotherPicturesTokens) {
  // The same text with another picture: the image tokens are equal ids, so only the prefix
  // before them may come from the cache.
  Fixture fx;
  infer::Engine engine(*fx.model, fx.tok.get());
  infer::Session session(engine, 256);
  auto a = fx.request("Describe the picture.", {"grey_13x9.png"});
  auto b = fx.request("Describe the picture.", {"palette_alpha_24x18.png"});
  ASSERT_EQ(a.prompt, b.prompt);  // both resize to the same 4x6 grid
  const auto alone_a = engine.generate({a})[0].tokens, alone_b = engine.generate({b})[0].tokens;
  ASSERT_NE(alone_a, alone_b);
  EXPECT_EQ(session.generate(a).tokens, alone_a);
  EXPECT_EQ(session.generate(b).tokens, alone_b);
  EXPECT_EQ(session.generate(a).tokens, alone_a);
  EXPECT_EQ(session.generate(fx.request("Hello", {})).tokens.size(), fx.golden["new_tokens"].get<size_t>());  // text alone after images
}

TEST(VisionEngine, AConversationWithImagesReusesItsCacheAndEqualsAFreshPrompt) {
  Fixture fx;
  std::ifstream jf(kModel / "chat_template.jinja");
  const std::string src{std::istreambuf_iterator<char>(jf), std::istreambuf_iterator<char>()};
  const auto tmpl = tok::ChatTemplate::from_jinja(src, "chat_template.jinja", Json::object());
  infer::Engine engine(*fx.model, fx.tok.get());
  infer::Conversation conv(engine, tmpl, std::nullopt, 512);
  const auto& v = *fx.model->config().vision;
  conv.enable_images(model::ImageProcessorConfig::load(kModel, v));
  EXPECT_THROW(conv.attach_image({kVision / "images" / "none.png", {}, "none.png"}), Error);
  infer::SamplingParams greedy;
  greedy.temperature = 0;
  // What a fresh prompt of the whole conversation so far (before the new reply) generates.
  std::vector<infer::ImageSource> all;
  auto fresh = [&](const std::vector<tok::ChatMessage>& history) {
    std::vector<tok::ChatMessage> msgs = history;
    infer::place_images(msgs, *fx.tok, v);
    const auto images = infer::load_prompt_images(all, model::ImageProcessorConfig::load(kModel, v));
    infer::GenerateRequest r;
    r.prompt = infer::encode_with_images(tmpl.render(msgs, {}), images.grids, *fx.tok, v, tmpl.add_special_tokens());
    r.visual = infer::visual_prompt(*fx.model, r.prompt, images);
    r.max_new_tokens = 8;
    r.sampling = greedy;
    r.stop = tmpl.stop_strings();
    infer::Engine other(*fx.model, fx.tok.get());
    return std::make_pair(other.generate({r})[0].tokens, static_cast<int64_t>(r.prompt.size()));
  };
  struct Turn {
    std::vector<std::string> images;
    std::string text;
  };
  const Turn turns[] = {{{"rgb_45x70.png"}, "Describe the picture."},
                        {{}, "And the colours?"},
                        {{"photo_420_50x37.jpg"}, "Which is brighter?"}};
  int reused = 0;
  for (const Turn& t : turns) {
    for (const auto& f : t.images) {
      all.push_back({kVision / "images" / f, {}, f});
      conv.attach_image(all.back());
    }
    const auto r = conv.reply(t.text, greedy, 8);
    const auto& st = engine.last_stats();
    auto history = conv.messages();
    history.pop_back();  // the reply just made
    const auto [want, prompt_len] = fresh(history);
    EXPECT_EQ(r.tokens, want) << t.text;
    reused += st.prefill_tokens < prompt_len;
  }
  EXPECT_EQ(reused, 2) << "turns 2 and 3 should prefill only what follows the cached prefix";
}
