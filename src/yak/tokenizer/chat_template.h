// Chat templates: a checkpoint's own Jinja template (tokenizer_config.json `chat_template`,
// chat_template.jinja, a processor's chat_template.json, a GGUF's tokenizer.chat_template, or
// --chat-template FILE.jinja) rendered by yak's Jinja interpreter as transformers'
// apply_chat_template renders it; and, for checkpoints without one, built-in families (ChatML/Qwen2,
// Qwen3 thinking switch, Qwen3-VL, Llama-2, Chinese-Alpaca-2, plain completion) written in C++ to
// match the official templates.
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "yak/base/json.h"

namespace yak::jinja {
class Template;
}

namespace yak::tok {

// A function call an assistant turn made: the name and the arguments as JSON text (written as
// the template writes them: Python's json.dumps spacing, see python_json).
struct ToolCall {
  std::string name, arguments;
};

struct ChatMessage {
  std::string role;  // system, user, assistant, tool (chatml and qwen3)
  std::string content;
  std::vector<ToolCall> tool_calls = {};  // assistant turns that called tools
};

struct ChatOptions {
  bool add_generation_prompt = true;
  bool enable_thinking = true;  // qwen3 only: false pre-fills an empty <think></think> block
  // Tool definitions as the template prints them (`tool | tojson`: python_json of each
  // {"type": "function", "function": {...}}); chatml (Qwen2.5's tool format) and qwen3 only.
  std::vector<std::string> tools;
};

// JSON text as Python's json.dumps(x, ensure_ascii=False) writes it (", " and ": " separators,
// keys in the given order): what Hugging Face chat templates print with `| tojson`.
std::string python_json(const nlohmann::ordered_json& j);

// A Hugging Face folder's tokenizer_config.json (an empty object when there is none) with its
// `chat_template` filled, when the JSON has none, from chat_template.jinja (where transformers 5
// saves it) or else chat_template.json (`{"chat_template": "..."}`, where processors of
// vision-language models saved it). Throws yak::Error naming the file when one is malformed.
Json load_tokenizer_config(const std::filesystem::path& dir);

class ChatTemplate {
 public:
  // Known names: chatml, qwen3, qwen3-vl, llama2, alpaca2, plain. Throws yak::Error listing them otherwise.
  static ChatTemplate by_name(const std::string& name);
  // A Jinja template's source; `where` names it in errors (a file, "tokenizer_config.json"). The
  // special tokens (bos_token, eos_token, unk_token, pad_token: strings or {"content": ...}) come
  // from tokenizer_config. Throws yak::Error naming the line when the source does not parse.
  static ChatTemplate from_jinja(const std::string& source, const std::string& where, const Json& tokenizer_config);
  // The Jinja source a tokenizer_config holds (a string, or the "default" of a named list).
  static std::optional<std::string> jinja_source(const Json& tokenizer_config);
  static std::vector<std::string> known_names();
  // Built-in family closest to a checkpoint: from the Jinja source in tokenizer_config.json,
  // then the architecture (config.json "architectures"[0]).
  static std::string detect(const Json& tokenizer_config, const std::string& architecture);
  // The checkpoint's own Jinja template when it has one (from_jinja), else the built-in family
  // by_name(detect(...)).
  static ChatTemplate from_config(const Json& tokenizer_config, const std::string& architecture);
  // The built-in family closest to a checkpoint, with the template's own default system prompt
  // when it has one (what from_config gave before Jinja templates were rendered).
  static ChatTemplate builtin_from_config(const Json& tokenizer_config, const std::string& architecture);

  const std::string& name() const { return name_; }  // "jinja" for a Jinja template
  bool is_jinja() const { return jinja_ != nullptr; }
  // Throws yak::Error when the messages break the family's rules (e.g. llama2 role order).
  std::string render(std::span<const ChatMessage> messages, const ChatOptions& options = {}) const;
  // Strings that end a reply in this family (the engine also stops on EOS).
  std::vector<std::string> stop_strings() const;
  // Whether rendered text is tokenized with the tokenizer's own special tokens (BOS) added. Only
  // plain completion does; templates write what they need themselves (llama2 writes <s>), exactly
  // as transformers' apply_chat_template tokenizes without add_special_tokens.
  bool add_special_tokens() const { return name_ == "plain"; }
  // Whether the template renders tools and tool calls (Qwen's format for the built-in families;
  // a Jinja template that reads `tools`).
  bool supports_tools() const { return name_ == "chatml" || name_ == "qwen3" || name_ == "qwen3-vl" || jinja_tools_; }

  // System prompt used when the conversation has none (chatml: Qwen2's; alpaca2: Chinese-Alpaca-2's).
  const std::optional<std::string>& default_system() const { return default_system_; }
  void set_default_system(std::optional<std::string> s) { default_system_ = std::move(s); }

 private:
  std::string name_;
  std::optional<std::string> default_system_;
  std::shared_ptr<const jinja::Template> jinja_;
  std::vector<std::pair<std::string, std::string>> special_;  // bos_token, eos_token, ... as the template sees them
  std::vector<std::string> jinja_stops_;
  bool jinja_tools_ = false;
};

}  // namespace yak::tok
