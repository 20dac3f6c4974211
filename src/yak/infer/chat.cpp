#include "yak/infer/chat.h"

#include "yak/base/error.h"

namespace yak::infer {

Conversation::Conversation(Engine& engine, tok::ChatTemplate tmpl, std::optional<std::string> system, int64_t context)
    : engine_(engine), tmpl_(std::move(tmpl)), system_(std::move(system)), session_(engine, context) {
  check(engine_.tokenizer() != nullptr, "chat needs a tokenizer in the model folder");
  reset();
}

void Conversation::reset() {
  messages_.clear();
  if (system_) messages_.push_back({"system", *system_});
  session_.reset();
}

void Conversation::set_system(std::optional<std::string> s) {
  system_ = std::move(s);
  reset();
}

std::vector<int32_t> Conversation::render_tokens() const {
  std::string text = tmpl_.render(messages_, options);
  return engine_.tokenizer()->encode(text, tmpl_.add_special_tokens());
}

GenerateResult Conversation::reply(const std::string& user, const SamplingParams& sampling, int64_t max_new_tokens,
                                   const TextCallback& on_text) {
  messages_.push_back({"user", user});
  GenerateRequest req;
  req.prompt = render_tokens();
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
