// A multi-turn conversation: messages rendered through a chat template, answered by a Session so
// each turn only prefills the new tokens. The CLI's `yak chat` is a loop around this.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "yak/infer/engine.h"
#include "yak/infer/vision_prompt.h"
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
  // Vision-language models: the image processor's settings, then pictures for the next user
  // turn (placed before its text). Every turn sends all the conversation's pictures; the
  // session reuses the cached prefix while they stay the same.
  void enable_images(model::ImageProcessorConfig cfg) { image_cfg_ = cfg; }
  void attach_image(ImageSource image);
  size_t pending_images() const { return pending_; }
  const std::vector<tok::ChatMessage>& messages() const { return messages_; }
  tok::ChatOptions options;

 private:
  std::vector<int32_t> render_tokens(std::shared_ptr<const model::VisualPrompt>* visual) const;
  Engine& engine_;
  tok::ChatTemplate tmpl_;
  std::optional<std::string> system_;
  std::vector<tok::ChatMessage> messages_;
  Session session_;
  std::optional<model::ImageProcessorConfig> image_cfg_;
  std::vector<ImageSource> images_;  // every picture of the conversation, in order
  PromptImages prepared_;            // their patches
  size_t pending_ = 0;               // attached, not yet sent
};

}  // namespace yak::infer
