#include "yak/serve/openai.h"

#include <cmath>
#include <random>

#include "yak/base/error.h"
#include "yak/base/utf8.h"
#include "yak/infer/json_schema.h"
#include "yak/infer/messages.h"

namespace yak::serve {

namespace {
const char* type_for(int status) {
  switch (status) {
    case 401:
      return "authentication_error";
    case 404:
      return "not_found_error";
    case 413:
      return "invalid_request_error";
    case 429:
    case 503:
      return "server_overloaded";
    case 500:
      return "server_error";
    default:
      return "invalid_request_error";
  }
}

// The request's fields, read with their type and range checked.
class Fields {
 public:
  explicit Fields(const Json& j) : j_(j) {}
  bool has(const char* k) const { return j_.contains(k) && !j_[k].is_null(); }
  const Json& at(const char* k) const { return j_[k]; }

  std::optional<double> number(const char* k, double lo, double hi) const {
    if (!has(k)) return std::nullopt;
    const Json& v = j_[k];
    if (!v.is_number()) throw ApiError(400, std::string("'") + k + "' must be a number", k);
    const double x = v.get<double>();
    if (!(x >= lo && x <= hi))
      throw ApiError(400, std::string("'") + k + "' must be in [" + fmt(lo) + ", " + fmt(hi) + "], got " + fmt(x), k);
    return x;
  }
  std::optional<int64_t> integer(const char* k, int64_t lo, int64_t hi) const {
    if (!has(k)) return std::nullopt;
    const Json& v = j_[k];
    if (!v.is_number_integer()) throw ApiError(400, std::string("'") + k + "' must be an integer", k);
    const int64_t x = v.is_number_unsigned() ? static_cast<int64_t>(std::min<uint64_t>(v.get<uint64_t>(), INT64_MAX))
                                             : v.get<int64_t>();
    if (x < lo || x > hi)
      throw ApiError(400, std::string("'") + k + "' must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                              "], got " + std::to_string(x),
                     k);
    return x;
  }
  std::optional<bool> boolean(const char* k) const {
    if (!has(k)) return std::nullopt;
    if (!j_[k].is_boolean()) throw ApiError(400, std::string("'") + k + "' must be true or false", k);
    return j_[k].get<bool>();
  }
  std::optional<std::string> string(const char* k) const {
    if (!has(k)) return std::nullopt;
    if (!j_[k].is_string()) throw ApiError(400, std::string("'") + k + "' must be a string", k);
    return j_[k].get<std::string>();
  }

 private:
  static std::string fmt(double x) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", x);
    return b;
  }
  const Json& j_;
};

std::string checked_text(const std::string& s, const std::string& field) {
  if (size_t bad = utf8::find_invalid(s); bad != std::string::npos)
    throw ApiError(400, "'" + field + "' is not valid UTF-8 (byte " + std::to_string(bad) + ")", field);
  return s;
}

// Fields chat and completions share: sampling, stop, n, stream, max_tokens.
// response_format (json_object, json_schema) and llama.cpp's `grammar` (GBNF): the constraint
// every sampled token keeps. The schema is read from the raw body so its properties keep their
// order (the parsed body sorts keys).
void parse_constraint(const Fields& f, const ModelContext& m, std::string_view raw, ApiRequest& r) {
  std::string gbnf, field;
  if (f.has("response_format")) {
    const Json& rf = f.at("response_format");
    if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
      throw ApiError(400, "'response_format' must be an object with a \"type\"", "response_format");
    const std::string t = rf["type"].get<std::string>();
    field = "response_format";
    const auto ordered = raw.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json::parse(raw, nullptr, false);
    // The schema at rf[path...] as the body's text orders it.
    auto schema_at = [&](std::initializer_list<const char*> path) {
      const Json* plain = &rf;
      for (const char* k : path) plain = &plain->at(k);
      const nlohmann::ordered_json* at = ordered.is_object() && ordered.contains("response_format") ? &ordered["response_format"] : nullptr;
      for (const char* k : path) at = at && at->is_object() && at->contains(k) ? &(*at)[k] : nullptr;
      return at ? *at : nlohmann::ordered_json::parse(plain->dump());
    };
    try {
      if (t == "text") {
        if (rf.size() > 1) throw ApiError(400, "'response_format' of type \"text\" takes no other field", field);
      } else if (t == "json_object") {
        // llama.cpp also takes a schema here.
        gbnf = rf.contains("schema") ? infer::json_schema_to_gbnf(schema_at({"schema"})) : infer::json_object_gbnf();
      } else if (t == "json_schema") {
        field = "response_format.json_schema";
        if (!rf.contains("json_schema") || !rf["json_schema"].is_object() || !rf["json_schema"].contains("schema"))
          throw ApiError(400, "'response_format' of type \"json_schema\" needs \"json_schema\": {\"name\", \"schema\"}",
                         field);
        gbnf = infer::json_schema_to_gbnf(schema_at({"json_schema", "schema"}));
      } else {
        throw ApiError(400, "'response_format' type must be text, json_object or json_schema, got \"" + t + "\"", field);
      }
    } catch (const Error& e) {
      throw ApiError(400, std::string("'response_format' cannot be enforced: ") + e.what(), field);
    }
  }
  if (auto g = f.string("grammar")) {
    if (!gbnf.empty()) throw ApiError(400, "'grammar' and a JSON 'response_format' cannot be combined", "grammar");
    gbnf = *g, field = "grammar";
  }
  if (gbnf.empty()) return;
  if (!m.vocab) throw ApiError(400, "the served model has no tokenizer, so its output cannot be constrained", field);
  try {
    r.constraint = infer::TokenConstraint{infer::Grammar::parse(gbnf, field), m.vocab};
  } catch (const Error& e) {
    throw ApiError(400, e.what(), field);
  }
}

// tools and tool_choice: the definitions go into the chat template's system turn (in the body's
// key order, as the template prints them); "required" or a named function constrains the reply
// to one <tool_call> block whose arguments follow the function's parameter schema.
void parse_tools(const Fields& f, const ModelContext& m, std::string_view raw, ApiRequest& r, tok::ChatOptions& opt) {
  if (!f.has("tools")) {
    if (f.has("tool_choice") && !f.at("tool_choice").is_null() && f.at("tool_choice") != "none")
      throw ApiError(400, "'tool_choice' needs 'tools'", "tool_choice");
    return;
  }
  const Json& tools = f.at("tools");
  if (!tools.is_array()) throw ApiError(400, "'tools' must be an array", "tools");
  if (tools.empty()) return;
  const auto ordered = raw.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json::parse(raw, nullptr, false);
  std::vector<std::pair<std::string, nlohmann::ordered_json>> fns;  // name, parameters
  for (size_t i = 0; i < tools.size(); ++i) {
    const std::string field = "tools[" + std::to_string(i) + "]";
    const Json& t = tools[i];
    if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") || !t["function"].is_object() ||
        !t["function"].contains("name") || !t["function"]["name"].is_string())
      throw ApiError(400, "'" + field + "' must be {\"type\": \"function\", \"function\": {\"name\", ...}}", field);
    const bool have_order = ordered.is_object() && ordered.contains("tools") && ordered["tools"].is_array() &&
                            ordered["tools"].size() == tools.size();
    const nlohmann::ordered_json tool = have_order ? ordered["tools"][i] : nlohmann::ordered_json::parse(t.dump());
    opt.tools.push_back(tok::python_json(tool));
    fns.emplace_back(t["function"]["name"].get<std::string>(),
                     tool["function"].contains("parameters") ? tool["function"]["parameters"]
                                                             : nlohmann::ordered_json{{"type", "object"}});
  }
  std::string choice = "auto", only;
  if (f.has("tool_choice") && !f.at("tool_choice").is_null()) {
    const Json& tc = f.at("tool_choice");
    if (tc.is_string()) {
      choice = tc.get<std::string>();
      if (choice != "none" && choice != "auto" && choice != "required")
        throw ApiError(400, "'tool_choice' must be none, auto, required or {\"type\": \"function\", ...}", "tool_choice");
    } else if (tc.is_object() && tc.contains("function") && tc["function"].is_object() &&
               tc["function"].contains("name") && tc["function"]["name"].is_string()) {
      choice = "required", only = tc["function"]["name"].get<std::string>();
      if (std::none_of(fns.begin(), fns.end(), [&](const auto& fn) { return fn.first == only; }))
        throw ApiError(400, "'tool_choice' names '" + only + "', which is not in 'tools'", "tool_choice");
    } else {
      throw ApiError(400, "'tool_choice' must be none, auto, required or {\"type\": \"function\", ...}", "tool_choice");
    }
  }
  if (choice == "none") {
    opt.tools.clear();
    return;
  }
  if (!m.chat_template->supports_tools())
    throw ApiError(400, "the " + m.chat_template->name() + " chat template has no format for tools", "tools");
  r.tool_calls = true;
  if (choice != "required") return;
  if (r.constraint) throw ApiError(400, "a required tool call and 'response_format'/'grammar' cannot be combined", "tool_choice");
  // One call: {"name": NAME, "arguments": PARAMETERS} of one of the (or the named) functions.
  nlohmann::ordered_json any = nlohmann::ordered_json::array();
  for (const auto& [name, params] : fns)
    if (only.empty() || name == only)
      any.push_back({{"type", "object"},
                     {"properties", {{"name", {{"const", name}}}, {"arguments", params}}},
                     {"required", {"name", "arguments"}},
                     {"additionalProperties", false}});
  std::string gbnf;
  try {
    gbnf = infer::json_schema_to_gbnf(nlohmann::ordered_json{{"anyOf", any}});
  } catch (const Error& e) {
    throw ApiError(400, std::string("a tool's parameters cannot be enforced: ") + e.what(), "tools");
  }
  // The schema's start rule, wrapped in the call's tags.
  const size_t eol = gbnf.find('\n');
  gbnf = "root ::= \"<tool_call>\\n\" " + gbnf.substr(9, eol - 9) + " \"\\n</tool_call>\"" + gbnf.substr(eol);
  if (!m.vocab) throw ApiError(400, "the served model has no tokenizer, so its output cannot be constrained", "tool_choice");
  r.constraint = infer::TokenConstraint{infer::Grammar::parse(gbnf, "tool_choice"), m.vocab};
}

void parse_common(const Fields& f, const ModelContext& m, std::string_view raw, ApiRequest& r) {
  if (auto s = f.string("model")) r.model = *s;
  auto& p = r.sampling;
  p = infer::sampling_defaults(m.defaults);
  if (auto t = f.number("temperature", 0, 2)) {
    p.temperature = static_cast<float>(*t);
    p.do_sample = *t > 0;
  }
  if (auto v = f.number("top_p", 0, 1)) {
    if (*v <= 0) throw ApiError(400, "'top_p' must be in (0, 1]", "top_p");
    p.top_p = static_cast<float>(*v);
  }
  if (auto v = f.integer("top_k", -1, 1 << 30)) p.top_k = *v < 0 ? 0 : static_cast<int>(*v);
  if (auto v = f.number("min_p", 0, 1)) p.min_p = static_cast<float>(*v);
  if (auto v = f.number("presence_penalty", -2, 2)) p.presence_penalty = static_cast<float>(*v);
  if (auto v = f.number("frequency_penalty", -2, 2)) p.frequency_penalty = static_cast<float>(*v);
  if (auto v = f.number("repetition_penalty", 0, 1e6)) {
    if (*v <= 0) throw ApiError(400, "'repetition_penalty' must be > 0", "repetition_penalty");
    p.repetition_penalty = static_cast<float>(*v);
  }
  if (auto v = f.integer("seed", INT64_MIN, INT64_MAX))
    p.seed = static_cast<uint64_t>(*v);
  else
    p.seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  if (f.has("stop")) {
    const Json& s = f.at("stop");
    if (s.is_string()) {
      if (!s.get<std::string>().empty()) r.stop.push_back(checked_text(s.get<std::string>(), "stop"));
    } else if (s.is_array()) {
      if (s.size() > 16) throw ApiError(400, "'stop' may hold at most 16 strings", "stop");
      for (auto& x : s) {
        if (!x.is_string()) throw ApiError(400, "'stop' must be a string or an array of strings", "stop");
        if (!x.get<std::string>().empty()) r.stop.push_back(checked_text(x.get<std::string>(), "stop"));
      }
    } else {
      throw ApiError(400, "'stop' must be a string or an array of strings", "stop");
    }
  }
  r.n = static_cast<int>(f.integer("n", 1, m.max_n).value_or(1));
  r.stream = f.boolean("stream").value_or(false);
  if (f.has("stream_options")) {
    const Json& so = f.at("stream_options");
    if (!so.is_object()) throw ApiError(400, "'stream_options' must be an object", "stream_options");
    if (!r.stream) throw ApiError(400, "'stream_options' is only allowed with \"stream\": true", "stream_options");
    Fields sf(so);
    r.include_usage = sf.boolean("include_usage").value_or(false);
  }
  r.ignore_eos = f.boolean("ignore_eos").value_or(false);
  parse_constraint(f, m, raw, r);
  if (r.endpoint == Endpoint::Completion && (f.has("tools") || f.has("tool_choice")))
    throw ApiError(400, "'tools' belong to /v1/chat/completions", "tools");
  if (f.has("suffix")) throw ApiError(400, "'suffix' is not supported", "suffix");
  if (auto b = f.integer("best_of", 1, m.max_n); b && *b != r.n)
    throw ApiError(400, "'best_of' other than n is not supported", "best_of");
}

// max_tokens (or max_completion_tokens): the request's, checked against the context, or the rest
// of the context.
void resolve_max_tokens(const Fields& f, const ModelContext& m, ApiRequest& r) {
  std::optional<int64_t> asked = f.integer("max_completion_tokens", 1, INT32_MAX);
  if (!asked) asked = f.integer("max_tokens", 1, INT32_MAX);
  const char* field = f.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  int64_t longest = 0;
  for (auto& p : r.prompts) {
    if (p.empty()) throw ApiError(400, "the prompt has no tokens", "prompt");
    longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
  }
  if (longest >= m.ctx)
    throw ApiError(400,
                   "this model's context is " + std::to_string(m.ctx) + " tokens; the prompt has " +
                       std::to_string(longest),
                   r.endpoint == Endpoint::Chat ? "messages" : "prompt", "context_length_exceeded");
  if (asked && longest + *asked > m.ctx)
    throw ApiError(400,
                   "this model's context is " + std::to_string(m.ctx) + " tokens; the prompt has " +
                       std::to_string(longest) + " and " + field + " asks for " + std::to_string(*asked),
                   field, "context_length_exceeded");
  r.max_tokens = asked ? *asked : m.ctx - longest;
}

const tok::Tokenizer& need_tokenizer(const ModelContext& m, const std::string& field = "prompt") {
  if (!m.tok) throw ApiError(400, "the served model has no tokenizer; send token ids", field);
  return *m.tok;
}

// Invalid bytes (half a character of a byte-level piece) as U+FFFD; "bytes" keeps the raw ones.
std::string sanitize(std::string_view s) {
  std::string out;
  for (;;) {
    const size_t bad = utf8::find_invalid(s);
    if (bad == std::string_view::npos) return out.append(s);
    out.append(s.substr(0, bad)).append("\xEF\xBF\xBD");
    s.remove_prefix(bad + 1);
  }
}

Json logprob_entry(const ModelContext& m, int32_t id, float lp) {
  // Ids past the tokenizer (a model's padded vocabulary) have no text, as in the streamed reply.
  std::string t = !m.tok ? std::to_string(id)
                  : id < m.tok->vocab_size() ? m.tok->decode(std::span<const int32_t>(&id, 1), false)
                                              : std::string();
  Json bytes = Json::array();
  for (unsigned char c : t) bytes.push_back(static_cast<int>(c));
  if (utf8::find_invalid(t) != std::string::npos) t = sanitize(t);
  return Json{{"token", t}, {"logprob", lp}, {"bytes", bytes}};
}

Json chat_logprobs(const ModelContext& m, const std::vector<TokenLogprob>& lps) {
  Json content = Json::array();
  for (auto& lp : lps) {
    Json e = logprob_entry(m, lp.id, lp.logprob);
    Json top = Json::array();
    for (auto [id, v] : lp.top) top.push_back(logprob_entry(m, id, v));
    e["top_logprobs"] = top;
    content.push_back(e);
  }
  return Json{{"content", content}};
}

Json completion_logprobs(const ModelContext& m, const std::vector<TokenLogprob>& lps, size_t text_offset) {
  Json tokens = Json::array(), values = Json::array(), tops = Json::array(), offsets = Json::array();
  for (auto& lp : lps) {
    Json e = logprob_entry(m, lp.id, lp.logprob);
    tokens.push_back(e["token"]);
    values.push_back(lp.logprob);
    Json top = Json::object();
    for (auto [id, v] : lp.top) top[logprob_entry(m, id, v)["token"].get<std::string>()] = v;
    tops.push_back(top);
    offsets.push_back(text_offset);
    text_offset += e["token"].get<std::string>().size();
  }
  return Json{{"tokens", tokens}, {"token_logprobs", values}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

// Every image file must lie under the media folder once links and ".." are resolved.
void check_media_paths(const std::vector<infer::ImageSource>& images, const std::filesystem::path& media_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(fs::absolute(media_dir, ec), ec);
  for (const auto& img : images) {
    if (img.path.empty()) continue;
    const fs::path p = fs::weakly_canonical(fs::absolute(img.path, ec), ec);
    const fs::path rel = p.lexically_relative(root);
    if (ec || rel.empty() || *rel.begin() == "..")
      throw ApiError(400, "'" + img.where + "': the file is outside the server's media folder (--allowed-local-media-path)",
                     img.where);
  }
}

const char* finish_json(infer::FinishReason f) {
  return infer::finish_reason_name(f);
}
}  // namespace

ApiError::ApiError(int status_, const std::string& message, std::string param_, std::string code_, std::string type_)
    : std::runtime_error(message),
      status(status_),
      type(type_.empty() ? type_for(status_) : std::move(type_)),
      param(std::move(param_)),
      code(std::move(code_)) {}

std::string error_body(int status, const std::string& message, const std::string& type, const std::string& param,
                       const std::string& code) {
  Json e{{"message", message},
         {"type", type.empty() ? type_for(status) : type},
         {"param", param.empty() ? Json(nullptr) : Json(param)},
         {"code", code.empty() ? Json(nullptr) : Json(code)}};
  return Json{{"error", e}}.dump();
}

std::string error_body(const ApiError& e) {
  return error_body(e.status, e.what(), e.type, e.param, e.code);
}

Json parse_body(const std::string& body) {
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded()) throw ApiError(400, "the request body is not valid JSON");
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return j;
}

ApiRequest parse_chat_request(const Json& body, const ModelContext& m, std::string_view raw) {
  Fields f(body);
  ApiRequest r;
  r.endpoint = Endpoint::Chat;
  parse_common(f, m, raw, r);
  if (!f.has("messages")) throw ApiError(400, "'messages' must be a non-empty array", "messages");
  // The parser `yak generate --messages` uses; files only under the media folder (a model that
  // cannot see reads none: it refuses every picture below).
  infer::ParsedMessages parsed;
  try {
    parsed = infer::parse_messages(f.at("messages"),
                                   {.base_dir = m.media_dir, .allow_files = !m.media_dir.empty() || !m.vision});
  } catch (const infer::MessagesError& e) {
    throw ApiError(400, e.what(), e.field);
  }
  if (!parsed.images.empty()) {
    if (!m.vision || !m.image_processor) throw ApiError(400, "the served model cannot see images", parsed.images[0].where);
    check_media_paths(parsed.images, m.media_dir);
    try {
      r.images = std::make_shared<const infer::PromptImages>(infer::load_prompt_images(parsed.images, *m.image_processor));
    } catch (const Error& e) {
      throw ApiError(400, e.what(), "messages");
    }
  }
  std::vector<tok::ChatMessage> msgs = std::move(parsed.messages);
  if (f.has("logprobs")) r.logprobs = f.boolean("logprobs").value() ? 0 : -1;
  if (auto k = f.integer("top_logprobs", 0, 20)) {
    if (r.logprobs < 0) throw ApiError(400, "'top_logprobs' needs \"logprobs\": true", "top_logprobs");
    r.logprobs = static_cast<int>(*k);
  }
  tok::ChatOptions opt;
  if (f.has("chat_template_kwargs")) {
    const Json& kw = f.at("chat_template_kwargs");
    if (!kw.is_object()) throw ApiError(400, "'chat_template_kwargs' must be an object", "chat_template_kwargs");
    if (auto t = Fields(kw).boolean("enable_thinking")) opt.enable_thinking = *t;
  }
  const auto& tk = need_tokenizer(m);
  if (!m.chat_template) throw ApiError(400, "the served model has no chat template; use /v1/completions", "messages");
  parse_tools(f, m, raw, r, opt);
  std::string text;
  try {
    if (r.images) infer::place_images(msgs, tk, *m.vision);
    text = m.chat_template->render(msgs, opt);
  } catch (const Error& e) {
    throw ApiError(400, std::string("the messages do not fit the chat template: ") + e.what(), "messages");
  }
  const bool add_special = m.chat_template->add_special_tokens();
  if (r.images) {
    try {
      r.prompts.push_back(infer::encode_with_images(text, r.images->grids, tk, *m.vision, add_special));
    } catch (const Error& e) {
      throw ApiError(400, std::string("the images do not fit the prompt: ") + e.what(), "messages");
    }
  } else {
    r.prompts.push_back(tk.encode(text, add_special));
  }
  for (auto& s : m.chat_template->stop_strings()) r.stop.push_back(s);
  resolve_max_tokens(f, m, r);
  return r;
}

std::vector<std::vector<int32_t>> parse_prompts(const Json& p, const ModelContext& m, const std::string& field,
                                                size_t max_items, int64_t vocab) {
  const std::string what = "'" + field + "' must be a string, an array of strings or of token ids";
  auto text = [&](const Json& s) { return need_tokenizer(m, field).encode(checked_text(s.get<std::string>(), field), true); };
  auto ids = [&](const Json& a) {
    std::vector<int32_t> out;
    for (auto& x : a) {
      if (!x.is_number_integer()) throw ApiError(400, "'" + field + "' token arrays must hold integers", field);
      const int64_t v = x.get<int64_t>();
      if (v < 0 || v >= vocab)
        throw ApiError(400, "'" + field + "' token id " + std::to_string(v) + " is out of range", field);
      out.push_back(static_cast<int32_t>(v));
    }
    return out;
  };
  std::vector<std::vector<int32_t>> out;
  if (p.is_string()) {
    out.push_back(text(p));
  } else if (p.is_array() && !p.empty() && p[0].is_number_integer()) {
    out.push_back(ids(p));
  } else if (p.is_array() && !p.empty()) {
    if (p.size() > max_items)
      throw ApiError(400, "'" + field + "' may hold at most " + std::to_string(max_items) + " items", field);
    for (auto& x : p) {
      if (x.is_string())
        out.push_back(text(x));
      else if (x.is_array())
        out.push_back(ids(x));
      else
        throw ApiError(400, what, field);
    }
  } else {
    throw ApiError(400, what, field);
  }
  return out;
}

ApiRequest parse_completion_request(const Json& body, const ModelContext& m, std::string_view raw) {
  Fields f(body);
  ApiRequest r;
  r.endpoint = Endpoint::Completion;
  parse_common(f, m, raw, r);
  if (!f.has("prompt")) throw ApiError(400, "'prompt' is required", "prompt");
  r.prompts = parse_prompts(f.at("prompt"), m, "prompt", 64, m.tok ? m.tok->vocab_size() : INT32_MAX);
  if (r.prompts.size() * static_cast<size_t>(r.n) > static_cast<size_t>(m.max_n) * 4)
    throw ApiError(400, "prompts x n may be at most " + std::to_string(m.max_n * 4), "n");
  if (auto k = f.integer("logprobs", 0, 20)) r.logprobs = static_cast<int>(*k);
  r.echo = f.boolean("echo").value_or(false);
  if (r.echo && r.logprobs >= 0) throw ApiError(400, "'echo' with 'logprobs' is not supported", "echo");
  resolve_max_tokens(f, m, r);
  return r;
}

Json usage_json(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) {
  return Json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

Json completion_reply(const ApiRequest& r, const ModelContext& m, const std::string& id, int64_t created,
                      const std::vector<ChoiceResult>& choices) {
  const bool chat = r.endpoint == Endpoint::Chat;
  Json out{{"id", id},
           {"object", chat ? "chat.completion" : "text_completion"},
           {"created", created},
           {"model", r.model.empty() ? m.id : r.model}};
  Json cs = Json::array();
  int64_t prompt = 0, completion = 0, cached = 0;
  for (size_t i = 0; i < choices.size(); ++i) {
    const auto& c = choices[i];
    Json choice{{"index", i}, {"finish_reason", finish_json(c.finish)}};
    if (chat && r.tool_calls) {
      auto split = split_tool_calls(c.text);
      const bool called = !split.calls.empty();
      choice["message"] = Json{{"role", "assistant"}, {"content", called && split.content.empty() ? Json(nullptr) : Json(split.content)}};
      if (called) {
        choice["message"]["tool_calls"] = split.calls;
        if (c.finish == infer::FinishReason::Stop) choice["finish_reason"] = finish_json(infer::FinishReason::ToolCalls);
      }
      choice["logprobs"] = r.logprobs >= 0 ? chat_logprobs(m, c.logprobs) : Json(nullptr);
    } else if (chat) {
      choice["message"] = Json{{"role", "assistant"}, {"content", c.text}};
      choice["logprobs"] = r.logprobs >= 0 ? chat_logprobs(m, c.logprobs) : Json(nullptr);
    } else {
      choice["text"] = c.text;
      choice["logprobs"] = r.logprobs >= 0 ? completion_logprobs(m, c.logprobs, 0) : Json(nullptr);
    }
    cs.push_back(choice);
    // Usage counts each prompt once (its n samples share it), as OpenAI does.
    if (i % static_cast<size_t>(r.n) == 0) prompt += c.prompt_tokens;
    completion += c.completion_tokens;
    cached += c.cached_tokens;
  }
  out["choices"] = cs;
  out["usage"] = usage_json(prompt, completion, cached);
  return out;
}

Json stream_chunk(const ApiRequest& r, const ModelContext& m, const std::string& id, int64_t created, int index,
                  const std::string& text, const std::vector<TokenLogprob>& logprobs, infer::FinishReason finish,
                  bool first) {
  const bool chat = r.endpoint == Endpoint::Chat;
  Json choice{{"index", index},
              {"finish_reason", finish == infer::FinishReason::None ? Json(nullptr) : Json(finish_json(finish))}};
  if (chat) {
    Json delta = Json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || (first && finish == infer::FinishReason::None)) delta["content"] = text;
    choice["delta"] = delta;
    choice["logprobs"] = r.logprobs >= 0 && !logprobs.empty() ? chat_logprobs(m, logprobs) : Json(nullptr);
  } else {
    choice["text"] = text;
    choice["logprobs"] = r.logprobs >= 0 && !logprobs.empty() ? completion_logprobs(m, logprobs, 0) : Json(nullptr);
  }
  Json out{{"id", id},
           {"object", chat ? "chat.completion.chunk" : "text_completion"},
           {"created", created},
           {"model", r.model.empty() ? m.id : r.model},
           {"choices", Json::array({choice})}};
  if (r.include_usage) out["usage"] = nullptr;
  return out;
}

Json usage_chunk(const ApiRequest& r, const ModelContext& m, const std::string& id, int64_t created,
                 int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) {
  return Json{{"id", id},
              {"object", r.endpoint == Endpoint::Chat ? "chat.completion.chunk" : "text_completion"},
              {"created", created},
              {"model", r.model.empty() ? m.id : r.model},
              {"choices", Json::array()},
              {"usage", usage_json(prompt_tokens, completion_tokens, cached_tokens)}};
}

ToolCallSplit split_tool_calls(const std::string& text) {
  static const std::string open = "<tool_call>", close = "</tool_call>";
  ToolCallSplit out;
  size_t at = 0;
  for (;;) {
    const size_t b = text.find(open, at);
    if (b == std::string::npos) break;
    const size_t e = text.find(close, b + open.size());
    if (e == std::string::npos) break;
    const Json call = Json::parse(text.substr(b + open.size(), e - b - open.size()), nullptr, false);
    if (!call.is_object() || !call.contains("name") || !call["name"].is_string()) {
      out.content += text.substr(at, e + close.size() - at);
      at = e + close.size();
      continue;
    }
    out.content += text.substr(at, b - at);
    const Json args = call.contains("arguments") ? call["arguments"] : Json::object();
    out.calls.push_back(Json{{"id", "call_" + std::to_string(out.calls.size()) + "_" + std::to_string(std::hash<std::string>{}(text) % 100000000)},
                             {"type", "function"},
                             {"function", {{"name", call["name"]}, {"arguments", args.is_string() ? args.get<std::string>() : args.dump()}}}});
    at = e + close.size();
  }
  out.content += text.substr(at);
  // The template separates blocks and content with newlines: they are not part of the reply.
  const size_t first = out.content.find_first_not_of(" \n");
  out.content = first == std::string::npos ? "" : out.content.substr(first, out.content.find_last_not_of(" \n") - first + 1);
  return out;
}

size_t tool_call_holdback(const std::string& text) {
  static const std::string open = "<tool_call>";
  const size_t b = text.find(open);
  if (b != std::string::npos) return text.size() - b;
  for (size_t n = std::min(open.size() - 1, text.size()); n > 0; --n)
    if (text.compare(text.size() - n, n, open, 0, n) == 0) return n;
  return 0;
}

}  // namespace yak::serve
