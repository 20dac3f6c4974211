#include "yak/tokenizer/chat_template.h"

#include <algorithm>

#include "yak/base/error.h"
#include "yak/base/mmap.h"
#include "yak/tokenizer/jinja/jinja.h"

namespace yak::tok {

namespace {

const char* const kQwenSystem = "You are a helpful assistant.";
const char* const kAlpaca2System = "You are a helpful assistant. 你是一个乐于助人的助手。";
// Chinese-LLaMA-Alpaca-2's prompts/alpaca-2-long.txt: the system prompt for long replies.
const char* const kAlpaca2LongSystem =
    "You are a helpful assistant. 你是一个乐于助人的助手。请你提供专业、有逻辑、内容真实、有价值的详细回复。";

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Python's str.strip()/lstrip()/rstrip() with a character set (ASCII whitespace by default).
std::string strip(std::string_view s, std::string_view chars = {}, bool left = true, bool right = true) {
  auto drop = [&](char c) { return chars.empty() ? is_space(c) : chars.find(c) != std::string_view::npos; };
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && drop(s[b])) ++b;
  if (right)
    while (e > b && drop(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

// The system turn that lists the tools (Qwen2.5's and Qwen3's wording); `system` leads it.
std::string tools_system_turn(const std::optional<std::string>& system, const std::vector<std::string>& tools) {
  std::string out = "<|im_start|>system\n";
  if (system) out += *system + "\n\n";
  out += "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with "
         "function signatures within <tools></tools> XML tags:\n<tools>";
  for (const auto& t : tools) out += "\n" + t;
  out += "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
         "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
         "<args-json-object>}\n</tool_call><|im_end|>\n";
  return out;
}

// An assistant turn's calls: "<tool_call>...</tool_call>" blocks, newline-separated after content.
std::string tool_call_blocks(const ChatMessage& m, bool newline_first) {
  std::string out;
  for (size_t k = 0; k < m.tool_calls.size(); ++k) {
    if (k > 0 || newline_first) out += "\n";
    out += "<tool_call>\n{\"name\": \"" + m.tool_calls[k].name + "\", \"arguments\": " + m.tool_calls[k].arguments +
           "}\n</tool_call>";
  }
  return out;
}

// Consecutive tool results go into one user turn as <tool_response> blocks.
void tool_response(std::span<const ChatMessage> msgs, size_t i, std::string& out) {
  if (i == 0 || msgs[i - 1].role != "tool") out += "<|im_start|>user";
  out += "\n<tool_response>\n" + msgs[i].content + "\n</tool_response>";
  if (i + 1 == msgs.size() || msgs[i + 1].role != "tool") out += "<|im_end|>\n";
}

// ChatML; with tools, Qwen2.5's template: the tools in the system turn, calls and responses.
std::string render_chatml(std::span<const ChatMessage> msgs, const ChatOptions& o,
                          const std::optional<std::string>& def_system) {
  std::string out;
  const bool has_system = !msgs.empty() && msgs[0].role == "system";
  size_t start = 0;
  if (!o.tools.empty()) {
    out += tools_system_turn(has_system ? std::optional<std::string>(msgs[0].content) : def_system, o.tools);
    start = has_system ? 1 : 0;
  } else if (def_system && !has_system) {
    out += "<|im_start|>system\n" + *def_system + "<|im_end|>\n";
  }
  for (size_t i = start; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    if (m.role == "tool") {
      tool_response(msgs, i, out);
    } else if (m.role == "assistant" && !m.tool_calls.empty()) {
      out += "<|im_start|>assistant";
      if (!m.content.empty()) out += "\n" + m.content;
      out += tool_call_blocks(m, true) + "<|im_end|>\n";
    } else {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    }
  }
  if (o.add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

bool is_tool_response(const std::string& c) {
  const std::string a = "<tool_response>", b = "</tool_response>";
  return c.size() >= a.size() && c.compare(0, a.size(), a) == 0 && c.size() >= b.size() &&
         c.compare(c.size() - b.size(), b.size(), b) == 0;
}

// Qwen3's official template, tools aside: reasoning is kept only for assistant turns after the
// last user query, and enable_thinking=false pre-fills an empty think block.
std::string render_qwen3(std::span<const ChatMessage> msgs, const ChatOptions& o) {
  std::string out;
  const bool has_system = !msgs.empty() && msgs[0].role == "system";
  if (!o.tools.empty())
    out += tools_system_turn(has_system ? std::optional<std::string>(msgs[0].content) : std::nullopt, o.tools);
  else if (has_system)
    out += "<|im_start|>system\n" + msgs[0].content + "<|im_end|>\n";
  long last_query = static_cast<long>(msgs.size()) - 1;
  for (long i = static_cast<long>(msgs.size()) - 1; i >= 0; --i) {
    if (msgs[i].role == "user" && !is_tool_response(msgs[i].content)) {
      last_query = i;
      break;
    }
  }
  for (size_t i = 0; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    bool last = i + 1 == msgs.size();
    if (m.role == "user" || (m.role == "system" && i != 0)) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    } else if (m.role == "assistant") {
      std::string content = m.content, reasoning;
      size_t close = m.content.find("</think>");
      if (close != std::string::npos) {
        size_t last_close = m.content.rfind("</think>");
        content = strip(std::string_view(m.content).substr(last_close + 8), "\n", true, false);
        reasoning = strip(std::string_view(m.content).substr(0, close), "\n", false, true);
        size_t open = reasoning.rfind("<think>");
        if (open != std::string::npos) reasoning = reasoning.substr(open + 7);
        reasoning = strip(reasoning, "\n", true, false);
      }
      if (static_cast<long>(i) > last_query && (last || !reasoning.empty())) {
        out += "<|im_start|>assistant\n<think>\n" + strip(reasoning, "\n") + "\n</think>\n\n" +
               strip(content, "\n", true, false);
      } else {
        out += "<|im_start|>assistant\n" + content;
      }
      out += tool_call_blocks(m, !content.empty()) + "<|im_end|>\n";
    } else if (m.role == "tool") {
      tool_response(msgs, i, out);
    }
  }
  if (o.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (!o.enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

// Llama-2-chat's template: the system prompt folds into the first user turn.
std::string render_llama2(std::span<const ChatMessage> msgs, const std::optional<std::string>& def_system) {
  std::optional<std::string> system = def_system;
  size_t start = 0;
  if (!msgs.empty() && msgs[0].role == "system") {
    system = msgs[0].content;
    start = 1;
  }
  std::string out;
  for (size_t i = start; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    bool want_user = (i - start) % 2 == 0;
    if ((m.role == "user") != want_user)
      throw Error("chat template llama2: conversation roles must alternate user/assistant/user/... (message " +
                  std::to_string(i) + " is '" + m.role + "')");
    std::string content = m.content;
    if (i == start && system) content = "<<SYS>>\n" + *system + "\n<</SYS>>\n\n" + m.content;
    if (m.role == "user")
      out += "<s>[INST] " + strip(content) + " [/INST]";
    else if (m.role == "assistant")
      out += " " + strip(content) + " </s>";
  }
  return out;
}

}  // namespace

std::vector<std::string> ChatTemplate::known_names() {
  return {"chatml", "qwen3", "qwen3-vl", "llama2", "alpaca2", "alpaca2-long", "plain"};
}

ChatTemplate ChatTemplate::by_name(const std::string& name) {
  ChatTemplate t;
  t.name_ = name;
  if (name == "chatml") {
    t.default_system_ = kQwenSystem;
  } else if (name == "alpaca2") {
    t.default_system_ = kAlpaca2System;
  } else if (name == "alpaca2-long") {
    t.name_ = "alpaca2";
    t.default_system_ = kAlpaca2LongSystem;
  } else if (name != "qwen3" && name != "qwen3-vl" && name != "llama2" && name != "plain") {
    std::string known;
    for (const auto& n : known_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown chat template '" + name + "' (known: " + known + ")");
  }
  return t;
}

std::optional<std::string> ChatTemplate::jinja_source(const Json& cfg) {
  if (!cfg.is_object()) return std::nullopt;
  auto it = cfg.find("chat_template");
  if (it == cfg.end()) return std::nullopt;
  if (it->is_string() && !it->get<std::string>().empty()) return it->get<std::string>();
  if (it->is_array())
    for (const auto& e : *it)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
        return e["template"].get<std::string>();
  return std::nullopt;
}

ChatTemplate ChatTemplate::from_jinja(const std::string& source, const std::string& where, const Json& cfg) {
  ChatTemplate t;
  t.name_ = "jinja";
  try {
    t.jinja_ = std::make_shared<const jinja::Template>(source, where);
  } catch (const jinja::TemplateError& e) {
    throw Error(std::string("chat template ") + e.what());
  }
  std::string eos;
  for (const char* k : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
    if (!cfg.is_object() || !cfg.contains(k)) continue;
    const Json& v = cfg[k];
    const Json* text = v.is_string() ? &v : v.is_object() && v.contains("content") && v["content"].is_string() ? &v["content"] : nullptr;
    if (!text) continue;
    t.special_.emplace_back(k, text->get<std::string>());
    if (std::string(k) == "eos_token") eos = text->get<std::string>();
  }
  // Replies end at the model's EOS (the engine stops on its id) or at an end-of-turn marker the
  // template writes.
  for (const char* m : {"<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|END_OF_TURN_TOKEN|>", "<|eom_id|>",
                        "<|endoftext|>", "<｜end▁of▁sentence｜>", "<|return|>", "</s>"})
    if (source.find(m) != std::string::npos) t.jinja_stops_.emplace_back(m);
  if (!eos.empty() && std::find(t.jinja_stops_.begin(), t.jinja_stops_.end(), eos) == t.jinja_stops_.end())
    t.jinja_stops_.push_back(eos);
  t.jinja_tools_ = source.find("tools") != std::string::npos;
  return t;
}

std::string ChatTemplate::detect(const Json& cfg, const std::string& arch) {
  const std::string src = jinja_source(cfg).value_or("");
  if (src.find("enable_thinking") != std::string::npos || arch == "Qwen3ForCausalLM" || arch == "Qwen3MoeForCausalLM")
    return "qwen3";
  if (src.find("<|im_start|>") != std::string::npos) return "chatml";
  if (src.find("[INST]") != std::string::npos)
    return src.find("你是一个乐于助人的助手") != std::string::npos ? "alpaca2" : "llama2";
  if (src.empty() && (arch == "Qwen2ForCausalLM" || arch == "Qwen2MoeForCausalLM")) return "chatml";
  if (src.empty() && arch == "LlamaForCausalLM") return "llama2";
  if (src.empty() && arch == "Qwen3VLForConditionalGeneration") return "qwen3-vl";
  return "plain";
}

ChatTemplate ChatTemplate::from_config(const Json& cfg, const std::string& arch) {
  if (auto src = jinja_source(cfg)) return from_jinja(*src, "chat_template", cfg);
  return builtin_from_config(cfg, arch);
}

ChatTemplate ChatTemplate::builtin_from_config(const Json& cfg, const std::string& arch) {
  ChatTemplate t = by_name(detect(cfg, arch));
  if (t.name_ != "chatml" || !cfg.is_object() || !cfg.contains("chat_template") || !cfg["chat_template"].is_string())
    return t;
  // A ChatML template names its default system prompt either as a literal system turn or as
  // `set system_message = '...'`; without either, the conversation gets no default system turn.
  const std::string src = cfg["chat_template"].get<std::string>();
  t.default_system_.reset();
  // Every occurrence counts: Qwen2.5's first system turn is the tools one, built from pieces.
  for (const std::string marker : {"<|im_start|>system\\n", "<|im_start|>system\n"}) {
    for (size_t p = src.find(marker); p != std::string::npos; p = src.find(marker, p + 1)) {
      size_t b = p + marker.size(), e = src.find("<|im_end|>", b);
      if (e == std::string::npos) continue;
      std::string lit = src.substr(b, e - b);
      if (lit.find('\'') == std::string::npos && lit.find('"') == std::string::npos &&
          lit.find('+') == std::string::npos && lit.find('{') == std::string::npos && !lit.empty()) {
        t.default_system_ = lit;
        return t;
      }
    }
  }
  const std::string set = "set system_message = '";
  size_t p = src.find(set);
  if (p != std::string::npos) {
    size_t e = src.find('\'', p + set.size());
    if (e != std::string::npos) t.default_system_ = src.substr(p + set.size(), e - p - set.size());
  }
  return t;
}

Json load_tokenizer_config(const std::filesystem::path& dir) {
  Json tc = Json::object();
  const auto cfg = dir / "tokenizer_config.json";
  if (std::filesystem::exists(cfg)) tc = read_json_file(cfg);
  if (!tc.is_object()) throw Error(cfg.string() + ": expected a JSON object");
  if (tc.contains("chat_template")) return tc;
  if (std::filesystem::exists(dir / "chat_template.jinja")) {
    tc["chat_template"] = read_text_file(dir / "chat_template.jinja");
  } else if (const auto js = dir / "chat_template.json"; std::filesystem::exists(js)) {
    const Json j = read_json_file(js);
    if (!j.is_object() || !j.contains("chat_template") || !j["chat_template"].is_string())
      throw Error(js.string() + ": expected an object with a string 'chat_template'");
    tc["chat_template"] = j["chat_template"];
  }
  return tc;
}

std::string python_json(const nlohmann::ordered_json& j) {
  if (j.is_object()) {
    std::string out = "{";
    bool first = true;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!first) out += ", ";
      first = false;
      out += nlohmann::ordered_json(it.key()).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) +
             ": " + python_json(it.value());
    }
    return out + "}";
  }
  if (j.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < j.size(); ++i) out += (i ? ", " : "") + python_json(j[i]);
    return out + "]";
  }
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

namespace {
// The conversation as transformers hands it to a template: OpenAI-style message dicts (tool
// calls with their arguments as a dict when they parse as JSON), tools as dicts.
jinja::Value conversation(std::span<const ChatMessage> msgs) {
  jinja::List out;
  for (const auto& m : msgs) {
    jinja::Value d = jinja::Value::dict();
    d.dict_ref().set(jinja::Value("role"), jinja::Value(m.role));
    d.dict_ref().set(jinja::Value("content"), jinja::Value(m.content));
    if (!m.tool_calls.empty()) {
      jinja::List calls;
      for (const auto& c : m.tool_calls) {
        jinja::Value args;
        try {
          args = jinja::Value::from_json(nlohmann::ordered_json::parse(c.arguments));
        } catch (const std::exception&) {
          args = jinja::Value(c.arguments);
        }
        jinja::Value fn = jinja::Value::dict();
        fn.dict_ref().set(jinja::Value("name"), jinja::Value(c.name));
        fn.dict_ref().set(jinja::Value("arguments"), args);
        jinja::Value call = jinja::Value::dict();
        call.dict_ref().set(jinja::Value("type"), jinja::Value("function"));
        call.dict_ref().set(jinja::Value("function"), fn);
        calls.push_back(call);
      }
      d.dict_ref().set(jinja::Value("tool_calls"), jinja::Value::list(std::move(calls)));
    }
    out.push_back(d);
  }
  return jinja::Value::list(std::move(out));
}
}  // namespace

std::string ChatTemplate::render(std::span<const ChatMessage> msgs, const ChatOptions& o) const {
  if (jinja_) {
    jinja::Value vars = jinja::Value::dict();
    auto& d = vars.dict_ref();
    for (const auto& [k, v] : special_) d.set(jinja::Value(k), jinja::Value(v));
    d.set(jinja::Value("messages"), conversation(msgs));
    jinja::List tools;
    for (const auto& t : o.tools) tools.push_back(jinja::Value::from_json(nlohmann::ordered_json::parse(t)));
    d.set(jinja::Value("tools"), tools.empty() ? jinja::Value(jinja::None{}) : jinja::Value::list(std::move(tools)));
    d.set(jinja::Value("documents"), jinja::Value(jinja::None{}));
    d.set(jinja::Value("add_generation_prompt"), jinja::Value(o.add_generation_prompt));
    if (!o.enable_thinking) d.set(jinja::Value("enable_thinking"), jinja::Value(false));
    try {
      return jinja_->render(vars);
    } catch (const jinja::TemplateError& e) {
      throw Error(std::string("chat template ") + e.what());
    }
  }
  if (!supports_tools()) {
    if (!o.tools.empty()) throw Error("the " + name_ + " chat template has no format for tools");
    for (const auto& m : msgs)
      if (!m.tool_calls.empty() || m.role == "tool")
        throw Error("the " + name_ + " chat template has no format for tool calls and tool results");
  }
  if (name_ == "chatml" || name_ == "qwen3-vl") return render_chatml(msgs, o, default_system_);
  if (name_ == "qwen3") return render_qwen3(msgs, o);
  if (name_ == "llama2" || name_ == "alpaca2") return render_llama2(msgs, default_system_);
  std::string out;
  for (const auto& m : msgs) out += m.content;
  return out;
}

std::vector<std::string> ChatTemplate::stop_strings() const {
  if (jinja_) return jinja_stops_;
  if (name_ == "chatml" || name_ == "qwen3" || name_ == "qwen3-vl") return {"<|im_end|>", "<|endoftext|>"};
  if (name_ == "llama2" || name_ == "alpaca2") return {"</s>"};
  return {};
}

}  // namespace yak::tok
