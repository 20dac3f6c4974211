#include "yak/infer/chat.h"

#include <cstring>

#include "yak/base/error.h"

namespace yak::infer {

Conversation::Conversation(Engine& engine, tok::ChatTemplate tmpl, std::optional<std::string> system, int64_t context)
    : engine_(engine), tmpl_(std::move(tmpl)), system_(std::move(system)), session_(engine, context) {
  check(engine_.tokenizer() != nullptr, "chat needs a tokenizer in the model folder");
  reset();
}

void Conversation::reset() {
  messages_.clear();
  images_.clear();
  prepared_ = {};
  pending_ = 0;
  if (system_) messages_.push_back({"system", *system_});
  session_.reset();
}

void Conversation::set_system(std::optional<std::string> s) {
  system_ = std::move(s);
  reset();
}

void Conversation::attach_image(ImageSource image) {
  const model::DecoderModel& m = engine_.model();
  check(m.vision() != nullptr && image_cfg_.has_value(), "this model cannot see images (no vision tower)");
  PromptImages one = load_prompt_images(std::vector<ImageSource>{image}, *image_cfg_);  // errors before anything changes
  images_.push_back(std::move(image));
  const int64_t cols = one.patches.dim(1), before = prepared_.patches.defined() ? prepared_.patches.dim(0) : 0;
  Tensor all = Tensor::empty({before + one.patches.dim(0), cols});
  if (before) std::memcpy(all.data<float>(), prepared_.patches.data<float>(), sizeof(float) * before * cols);
  std::memcpy(all.data<float>() + before * cols, one.patches.data<float>(), sizeof(float) * one.patches.numel());
  prepared_.patches = all;
  prepared_.grids.push_back(one.grids[0]);
  ++pending_;
}

std::vector<int32_t> Conversation::render_tokens(std::shared_ptr<const model::VisualPrompt>* visual) const {
  if (images_.empty()) return engine_.tokenizer()->encode(tmpl_.render(messages_, options), tmpl_.add_special_tokens());
  const auto& vcfg = *engine_.model().config().vision;
  std::vector<tok::ChatMessage> msgs = messages_;
  place_images(msgs, *engine_.tokenizer(), vcfg);
  auto ids = encode_with_images(tmpl_.render(msgs, options), prepared_.grids, *engine_.tokenizer(), vcfg,
                                tmpl_.add_special_tokens());
  *visual = visual_prompt(engine_.model(), ids, prepared_);
  return ids;
}

GenerateResult Conversation::reply(const std::string& user, const SamplingParams& sampling, int64_t max_new_tokens,
                                   const TextCallback& on_text) {
  std::string content = user;
  for (size_t i = 0; i < pending_; ++i) content = std::string(kImageMarker) + content;
  messages_.push_back({"user", content});
  GenerateRequest req;
  try {
    req.prompt = render_tokens(&req.visual);
  } catch (...) {
    messages_.pop_back();
    throw;
  }
  pending_ = 0;
  req.sampling = sampling;
  req.stop = tmpl_.stop_strings();
  int64_t room = session_.capacity() - static_cast<int64_t>(req.prompt.size());
  if (room <= 0) {
    messages_.pop_back();
    throw Error("the conversation is longer than the context of " + std::to_string(session_.capacity()) +
                " tokens; /reset to start again");
  }
  req.max_new_tokens = std::min(max_new_tokens, room);
  GenerateResult r = session_.generate(req, on_text);
  messages_.push_back({"assistant", r.text});
  return r;
}

}  // namespace yak::infer
