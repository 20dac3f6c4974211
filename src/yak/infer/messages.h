// OpenAI-style chat messages, for `yak generate --messages` and `yak serve`: roles, content as a
// string or as parts ({"type": "text"}, {"type": "image_url", "image_url": {"url"}} with
// file:// URLs, data:image/...;base64 URLs or paths, and Qwen's {"type": "image", "image"}),
// assistant tool calls. Each image part becomes an `<image>` marker in its message's text, in
// order, and its source is listed; text parts are joined by a newline.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/tokenizer/chat_template.h"

namespace yak::infer {

// The marker users write where an image goes (and image parts become).
inline constexpr std::string_view kImageMarker = "<image>";

// A problem with one field of the messages: `field` names it (e.g. "messages[2].content").
struct MessagesError : Error {
  MessagesError(const std::string& message, std::string field) : Error(message), field(std::move(field)) {}
  std::string field;
};

struct ImageSource {
  std::filesystem::path path;  // a file, or
  std::vector<uint8_t> bytes;  // the decoded data: URL
  std::string where;           // how errors name it
};

struct ParsedMessages {
  std::vector<tok::ChatMessage> messages;
  std::vector<ImageSource> images;  // image i is the i-th `<image>` marker of the messages
};

struct MessagesOptions {
  std::filesystem::path base_dir = ".";  // relative image paths start here
  bool allow_files = true;               // false: only data: URLs (a server reads no local files)
};

ParsedMessages parse_messages(const Json& messages, const MessagesOptions& opt = {});

}  // namespace yak::infer
