#include "yak/infer/messages.h"

#include "yak/base/base64.h"
#include "yak/base/utf8.h"

namespace yak::infer {
namespace {

std::string checked_text(const std::string& s, const std::string& field) {
  if (size_t bad = utf8::find_invalid(s); bad != std::string::npos)
    throw MessagesError("'" + field + "' is not valid UTF-8 (byte " + std::to_string(bad) + ")", field);
  return s;
}

ImageSource image_source(const std::string& url, const std::string& field, const MessagesOptions& opt) {
  ImageSource src;
  src.where = field;
  if (url.rfind("data:", 0) == 0) {
    const size_t comma = url.find(',');
    const std::string head = comma == std::string::npos ? "" : url.substr(5, comma - 5);
    if (comma == std::string::npos || head.rfind("image/", 0) != 0 || head.size() < 7 ||
        head.compare(head.size() - 7, 7, ";base64") != 0)
      throw MessagesError("'" + field + "' must be a data:image/...;base64, URL", field);
    auto bytes = base64::decode(std::string_view(url).substr(comma + 1));
    if (!bytes) throw MessagesError("'" + field + "' holds invalid base64 data", field);
    src.bytes = std::move(*bytes);
    return src;
  }
  if (url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0)
    throw MessagesError("'" + field + "': images are not fetched over the network; give a file or a data: URL", field);
  if (!opt.allow_files)
    throw MessagesError("'" + field + "' must be a data:image/...;base64, URL (this server reads no local files)", field);
  std::string path = url;
  if (path.rfind("file://", 0) == 0) {
    path = path.substr(7);
    if (path.empty() || path[0] != '/') throw MessagesError("'" + field + "': a file:// URL needs an absolute path", field);
  }
  if (path.empty()) throw MessagesError("'" + field + "' is empty", field);
  src.path = std::filesystem::path(path).is_absolute() ? std::filesystem::path(path) : opt.base_dir / path;
  return src;
}

}  // namespace

ParsedMessages parse_messages(const Json& messages, const MessagesOptions& opt) {
  if (!messages.is_array() || messages.empty()) throw MessagesError("'messages' must be a non-empty array", "messages");
  ParsedMessages out;
  size_t i = 0;
  for (auto& msg : messages) {
    const std::string field = "messages[" + std::to_string(i++) + "]";
    if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string())
      throw MessagesError("'" + field + "' must be an object with a string \"role\"", field);
    std::string role = msg["role"].get<std::string>();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant" && role != "tool")
      throw MessagesError("'" + field + ".role' must be system, developer, user, assistant or tool, got '" + role + "'",
                          field + ".role");
    std::string content;
    const std::string cf = field + ".content";
    const Json c = msg.contains("content") ? msg["content"] : Json(nullptr);
    if (c.is_string()) {
      content = c.get<std::string>();
    } else if (c.is_array()) {
      bool text_before = false;
      size_t k = 0;
      for (auto& part : c) {
        const std::string pf = cf + "[" + std::to_string(k++) + "]";
        if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
          throw MessagesError("'" + cf + "' parts must be objects with a \"type\"", cf);
        const std::string t = part["type"].get<std::string>();
        if (t == "text") {
          if (!part.contains("text") || !part["text"].is_string())
            throw MessagesError("'" + cf + "' text parts need a string \"text\"", cf);
          if (text_before) content += "\n";
          content += part["text"].get<std::string>();
          text_before = true;
        } else if (t == "image_url" || t == "image") {
          const Json* u = part.contains(t) ? &part[t] : nullptr;
          if (u && u->is_object()) u = u->contains("url") ? &(*u)["url"] : nullptr;
          if (!u || !u->is_string())
            throw MessagesError("'" + pf + "' needs \"" + t + "\": {\"url\": ...} or a string", pf);
          if (role != "user") throw MessagesError("'" + pf + "': images go in user messages", pf);
          out.images.push_back(image_source(u->get<std::string>(), pf, opt));
          content += kImageMarker;
          text_before = false;
        } else {
          throw MessagesError("'" + cf + "' part type '" + t + "' is not supported", cf);
        }
      }
    } else if (!c.is_null() || role != "assistant") {
      throw MessagesError("'" + cf + "' must be a string or an array of parts", cf);
    }
    std::vector<tok::ToolCall> calls;
    if (msg.contains("tool_calls") && !msg["tool_calls"].is_null()) {
      const std::string tf = field + ".tool_calls";
      if (role != "assistant" || !msg["tool_calls"].is_array())
        throw MessagesError("'" + tf + "' must be an array, on assistant messages only", tf);
      for (const auto& tc : msg["tool_calls"]) {
        if (!tc.is_object() || !tc.contains("function") || !tc["function"].is_object() ||
            !tc["function"].contains("name") || !tc["function"]["name"].is_string())
          throw MessagesError("'" + tf + "' entries need \"function\": {\"name\", \"arguments\"}", tf);
        const Json& fn = tc["function"];
        nlohmann::ordered_json args = nlohmann::ordered_json::object();
        if (fn.contains("arguments") && fn["arguments"].is_string()) {
          args = nlohmann::ordered_json::parse(fn["arguments"].get<std::string>(), nullptr, false);
          if (args.is_discarded()) throw MessagesError("'" + tf + "' arguments must be JSON text", tf);
        } else if (fn.contains("arguments")) {
          args = nlohmann::ordered_json::parse(fn["arguments"].dump());
        }
        calls.push_back({checked_text(fn["name"].get<std::string>(), tf), tok::python_json(args)});
      }
    }
    out.messages.push_back({role, checked_text(content, cf), std::move(calls)});
  }
  return out;
}

}  // namespace yak::infer
