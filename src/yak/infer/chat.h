// A multi-turn conversation: messages rendered through a chat template, answered by a Session so
// each turn only prefills the new tokens. The CLI's `yak chat` is a loop around this.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "yak/infer/engine.h"
#include "yak/tokenizer/chat_template.h"

namespace yak::infer {

class Conversation {
 public:
  Conversation(Engine& engine, tok::ChatTemplate tmpl, std::optional<std::string> system, int64_t context);
  // Adds the user's message, generates the assistant's answer (streamed through on_text) and
  // keeps it in the history.
  GenerateResult reply(const std::string& user, const SamplingParams& sampling, int64_t max_new_tokens,
                       const TextCallback& on_text = {});
  // Appends a message to the history without generating (e.g. an earlier assistant answer).
  void push(tok::ChatMessage message) { messages_.push_back(std::move(message)); }
  void reset();                                   // forget the turns, keep the system prompt
  void set_system(std::optional<std::string> s);  // takes effect from a fresh conversation
  const std::vector<tok::ChatMessage>& messages() const { return messages_; }
  tok::ChatOptions options;

 private:
  std::vector<int32_t> render_tokens() const;
  Engine& engine_;
  tok::ChatTemplate tmpl_;
  std::optional<std::string> system_;
  std::vector<tok::ChatMessage> messages_;
  Session session_;
};

}  // namespace yak::infer
