#include "yak/serve/ask_chat.h"

#include "yak/base/error.h"

namespace yak::serve {

std::vector<std::string> SchedulerChat::complete(const ask::ChatRequest& req) {
  check(m_.tok != nullptr && m_.chat_template.has_value(),
        "the served model " + m_.id + " has no tokenizer and chat template to answer questions with");
  const std::vector<int32_t> prompt =
      m_.tok->encode(m_.chat_template->render(req.messages), m_.chat_template->add_special_tokens());
  const int64_t room = sched_.max_sequence() - static_cast<int64_t>(prompt.size());
  check(room > 0, "the question's prompt (" + std::to_string(prompt.size()) + " tokens) does not fit the served context");
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < req.n; ++i) {
    infer::GenerateRequest g;
    g.prompt = prompt;
    g.sampling.do_sample = req.temperature > 0;
    g.sampling.temperature = static_cast<float>(req.temperature > 0 ? req.temperature : 1.0);
    g.sampling.seed = req.seed + static_cast<uint64_t>(i);
    g.max_new_tokens = std::min(req.max_tokens, room);
    g.stop = m_.chat_template->stop_strings();
    try {
      handles.push_back(sched_.submit(std::move(g)));
    } catch (const Unavailable& e) {
      for (auto& h : handles) h->cancel();
      throw Error(std::string("the served model is busy: ") + e.what());
    }
  }
  std::vector<std::string> out;
  for (auto& h : handles) {
    std::string text;
    for (Event e;;) {
      if (!h->next(e, std::chrono::milliseconds(120000))) {
        for (auto& x : handles) x->cancel();
        throw Error("the served model " + m_.id + " gave no answer within 120 s");
      }
      text += e.text;
      if (!e.error.empty()) throw Error("the served model " + m_.id + " failed: " + e.error);
      if (e.done) break;
    }
    out.push_back(std::move(text));
  }
  return out;
}

}  // namespace yak::serve
