// JSON Schema -> GBNF: one rule per schema node, shared primitives, objects as chains of
// "properties from index i on, with or without a comma first" so optional keys may be skipped.
#include "yak/infer/json_schema.h"

#include <map>
#include <set>

#include "yak/base/error.h"

namespace yak::infer {

std::string gbnf_literal(const std::string& text) {
  std::string out = "\"";
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      static const char* hex = "0123456789ABCDEF";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

namespace {

using OJson = nlohmann::ordered_json;

// The JSON primitives, written once and referred to by name.
const std::map<std::string, std::string>& primitives() {
  static const std::map<std::string, std::string> p = {
      {"ws", R"(| " " | "\n" [ \t]{0,20})"},
      {"char", R"([^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}))"},
      {"string", R"("\"" char* "\"")"},
      {"uint", R"("0" | [1-9] [0-9]{0,15})"},
      {"posint", R"([1-9] [0-9]{0,15})"},
      {"integer", R"("-"? uint)"},
      {"frac-exp", R"(("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?)"},
      {"number", R"("-"? uint frac-exp)"},
      {"unumber", R"(uint frac-exp)"},
      {"boolean", R"("true" | "false")"},
      {"null", R"("null")"},
      {"value", R"(object | array | string | number | boolean | null)"},
      {"object", R"("{" ws (string ws ":" ws value ws ("," ws string ws ":" ws value ws)*)? "}")"},
      {"array", R"("[" ws (value ws ("," ws value ws)*)? "]")"},
  };
  return p;
}
// What each primitive needs besides itself.
const std::map<std::string, std::vector<std::string>>& primitive_deps() {
  static const std::map<std::string, std::vector<std::string>> d = {
      {"string", {"char"}},
      {"integer", {"uint"}},
      {"number", {"uint", "frac-exp"}},
      {"unumber", {"uint", "frac-exp"}},
      {"value", {"object", "array", "string", "number", "boolean", "null"}},
      {"object", {"ws", "string", "value"}},
      {"array", {"ws", "value"}},
  };
  return d;
}

const std::set<std::string>& annotations() {
  static const std::set<std::string> a = {"title", "description", "default", "examples", "format", "$schema", "$id",
                                          "$comment", "readOnly", "writeOnly", "deprecated", "$defs", "definitions",
                                          "strict", "nullable"};
  return a;
}
const std::set<std::string>& keywords() {
  static const std::set<std::string> k = {"type", "properties", "required", "additionalProperties", "items",
                                          "prefixItems", "minItems", "maxItems", "minLength", "maxLength",
                                          "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "minimum",
                                          "exclusiveMinimum"};
  return k;
}

class Converter {
 public:
  explicit Converter(const OJson& root) : root_(root) {}

  std::string convert() {
    const std::string top = visit(root_, "schema");
    std::string out = "root ::= " + top + "\n";
    for (const auto& [name, body] : order_) out += name + " ::= " + body + "\n";
    return out;
  }

 private:
  [[noreturn]] static void refuse(const std::string& where, const std::string& what) {
    throw Error(where + ": " + what);
  }

  std::string use(const std::string& prim) {
    if (used_.insert(prim).second) {
      order_.emplace_back(prim, primitives().at(prim));
      auto d = primitive_deps().find(prim);
      if (d != primitive_deps().end())
        for (const auto& x : d->second) use(x);
    }
    return prim;
  }
  // A rule with this body (the same body gets the same rule).
  std::string rule(const std::string& hint, const std::string& body) {
    auto it = by_body_.find(body);
    if (it != by_body_.end()) return it->second;
    const std::string name = fresh(hint);
    order_.emplace_back(name, body);
    by_body_.emplace(body, name);
    return name;
  }
  std::string fresh(const std::string& hint) {
    std::string base;
    for (char c : hint) base += (std::isalnum(static_cast<unsigned char>(c)) != 0) ? static_cast<char>(std::tolower(c)) : '-';
    if (base.empty() || !std::isalpha(static_cast<unsigned char>(base[0]))) base = "s-" + base;
    std::string name = base;
    for (int i = 2; used_.count(name) || primitives().count(name); ++i) name = base + "-" + std::to_string(i);
    used_.insert(name);
    return name;
  }

  std::string visit(const OJson& s, const std::string& where) {
    // The conversion recurses with the schema; a schema this deep is not one a model can fill.
    struct Depth {
      int& d;
      explicit Depth(int& x) : d(++x) {}
      ~Depth() { --d; }
    } depth(depth_);
    if (depth_ > 64) refuse(where, "the schema nests deeper than 64 levels");
    if (s.is_boolean()) {
      if (!s.get<bool>()) refuse(where, "the schema false matches nothing");
      return use("value");
    }
    if (!s.is_object()) refuse(where, "a schema must be an object or a boolean");
    for (auto it = s.begin(); it != s.end(); ++it)
      if (!keywords().count(it.key()) && !annotations().count(it.key()))
        refuse(where, "'" + it.key() + "' is not supported in constrained output");
    if (s.contains("$ref")) return reference(s, where);
    if (s.contains("const")) return rule(hint(where), gbnf_literal(s["const"].dump()));
    if (s.contains("enum")) {
      const OJson& e = s["enum"];
      if (!e.is_array() || e.empty()) refuse(where + ".enum", "must be a non-empty array");
      std::string body;
      for (const auto& v : e) body += (body.empty() ? "" : " | ") + gbnf_literal(v.dump());
      return rule(hint(where), body);
    }
    for (const char* k : {"anyOf", "oneOf"})
      if (s.contains(k)) {
        const OJson& a = s[k];
        if (!a.is_array() || a.empty()) refuse(where + "." + k, "must be a non-empty array");
        std::string body;
        for (size_t i = 0; i < a.size(); ++i)
          body += (i ? " | " : "") + visit(a[i], where + "." + k + "[" + std::to_string(i) + "]");
        return rule(hint(where), body);
      }
    if (s.contains("allOf")) {
      const OJson& a = s["allOf"];
      if (!a.is_array() || a.size() != 1) refuse(where + ".allOf", "only an allOf of one schema is supported");
      return visit(a[0], where + ".allOf[0]");
    }
    if (!s.contains("type")) {
      if (s.contains("properties") || s.contains("additionalProperties") || s.contains("required"))
        return object(s, where);
      if (s.contains("items") || s.contains("prefixItems")) return array(s, where);
      return use("value");
    }
    const OJson& t = s["type"];
    if (t.is_array()) {
      if (t.empty()) refuse(where + ".type", "an empty list of types matches nothing");
      std::string body;
      for (const auto& one : t) {
        OJson copy = s;
        copy["type"] = one;
        body += (body.empty() ? "" : " | ") + typed(copy, where);
      }
      return rule(hint(where), body);
    }
    return typed(s, where);
  }

  std::string typed(const OJson& s, const std::string& where) {
    const OJson& t = s["type"];
    if (!t.is_string()) refuse(where + ".type", "must be a string or a list of strings");
    const std::string type = t.get<std::string>();
    if (type == "object") return object(s, where);
    if (type == "array") return array(s, where);
    if (type == "string") return string(s, where);
    if (type == "integer" || type == "number") return number(s, where, type == "integer");
    if (type == "boolean") return use("boolean");
    if (type == "null") return use("null");
    refuse(where + ".type", "unknown type '" + type + "'");
  }

  static std::string hint(const std::string& where) {
    const size_t dot = where.rfind('.');
    return dot == std::string::npos ? where : where.substr(dot + 1);
  }

  static int64_t count(const OJson& s, const char* key, const std::string& where) {
    const OJson& v = s[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0) refuse(where + "." + key, "must be a non-negative integer");
    if (v.get<int64_t>() > 1000) refuse(where + "." + key, "values above 1000 are not supported");
    return v.get<int64_t>();
  }
  static std::string repeat(const std::string& x, int64_t min, int64_t max) {  // max < 0: unbounded
    if (min == 0 && max < 0) return x + "*";
    if (min == 1 && max < 0) return x + "+";
    if (max < 0) return x + "{" + std::to_string(min) + ",}";
    if (min == max) return x + "{" + std::to_string(min) + "}";
    return x + "{" + std::to_string(min) + "," + std::to_string(max) + "}";
  }

  std::string string(const OJson& s, const std::string& where) {
    if (!s.contains("minLength") && !s.contains("maxLength")) return use("string");
    const int64_t min = s.contains("minLength") ? count(s, "minLength", where) : 0;
    const int64_t max = s.contains("maxLength") ? count(s, "maxLength", where) : -1;
    if (max >= 0 && max < min) refuse(where, "maxLength is below minLength");
    use("char");
    return rule(hint(where), "\"\\\"\" " + repeat("char", min, max) + " \"\\\"\"");
  }

  std::string number(const OJson& s, const std::string& where, bool integer) {
    double lo = -1;
    bool bounded = false;
    if (s.contains("minimum")) {
      if (!s["minimum"].is_number()) refuse(where + ".minimum", "must be a number");
      lo = s["minimum"].get<double>(), bounded = true;
    }
    if (s.contains("exclusiveMinimum")) {
      if (!s["exclusiveMinimum"].is_number() || s["exclusiveMinimum"].get<double>() != 0 || !integer)
        refuse(where + ".exclusiveMinimum", "only exclusiveMinimum 0 on integers is supported");
      lo = 1, bounded = true;
    }
    if (!bounded) return use(integer ? "integer" : "number");
    if (lo == 0) return use(integer ? "uint" : "unumber");
    if (lo == 1 && integer) return use("posint");
    refuse(where + ".minimum", "only a minimum of 0 (or 1 on integers) is supported");
  }

  std::string array(const OJson& s, const std::string& where) {
    std::string item = use("value");
    if (s.contains("items")) {
      if (s["items"].is_boolean() && !s["items"].get<bool>()) {
        item.clear();
      } else {
        item = visit(s["items"], where + ".items");
      }
    }
    use("ws");
    const int64_t min = s.contains("minItems") ? count(s, "minItems", where) : 0;
    const int64_t max = s.contains("maxItems") ? count(s, "maxItems", where) : -1;
    if (max >= 0 && max < min) refuse(where, "maxItems is below minItems");
    if (s.contains("prefixItems")) {
      const OJson& p = s["prefixItems"];
      if (!p.is_array() || p.empty()) refuse(where + ".prefixItems", "must be a non-empty array");
      if (s.contains("minItems") || s.contains("maxItems"))
        refuse(where, "prefixItems together with minItems/maxItems is not supported");
      std::string body = "\"[\" ws";
      for (size_t i = 0; i < p.size(); ++i)
        body += std::string(i ? " \",\" ws " : " ") + visit(p[i], where + ".prefixItems[" + std::to_string(i) + "]") + " ws";
      if (s.contains("items") && !item.empty()) body += " (\",\" ws " + item + " ws)*";
      return rule(hint(where), body + " \"]\"");
    }
    if (item.empty()) return rule(hint(where), "\"[\" ws \"]\"");
    const std::string more = "(\",\" ws " + item + " ws)";
    std::string inner = item + " ws " + repeat(more, std::max<int64_t>(min - 1, 0), max < 0 ? -1 : max - 1);
    if (max == 0) return rule(hint(where), "\"[\" ws \"]\"");
    if (min == 0) inner = "(" + inner + ")?";
    return rule(hint(where), "\"[\" ws " + inner + " \"]\"");
  }

  std::string object(const OJson& s, const std::string& where) {
    use("ws");
    std::vector<std::pair<std::string, std::string>> props;  // key literal, value rule
    std::vector<bool> required;
    std::set<std::string> req;
    if (s.contains("required")) {
      if (!s["required"].is_array()) refuse(where + ".required", "must be an array of names");
      for (const auto& r : s["required"]) {
        if (!r.is_string()) refuse(where + ".required", "must be an array of names");
        req.insert(r.get<std::string>());
      }
    }
    std::set<std::string> listed;
    if (s.contains("properties")) {
      const OJson& p = s["properties"];
      if (!p.is_object()) refuse(where + ".properties", "must be an object");
      // In the schema's own order (an ordered_json keeps it).
      for (const auto& [key, sub] : p.items()) {
        props.emplace_back(gbnf_literal(OJson(key).dump()), visit(sub, where + ".properties." + key));
        required.push_back(req.count(key) > 0);
        listed.insert(key);
      }
    }
    for (const auto& r : req)
      if (!listed.count(r)) {
        props.emplace_back(gbnf_literal(OJson(r).dump()), use("value"));
        required.push_back(true);
      }
    std::string extra;  // rule of one further key-value pair, "" when none may follow
    if (s.contains("additionalProperties")) {
      const OJson& a = s["additionalProperties"];
      if (!(a.is_boolean() && !a.get<bool>()))
        extra = rule(hint(where) + "-extra", use("string") + " ws \":\" ws " +
                                                 (a.is_boolean() ? use("value") : visit(a, where + ".additionalProperties")) +
                                                 " ws");
    } else if (props.empty()) {
      return use("object");
    }
    std::vector<std::string> kv;
    for (size_t i = 0; i < props.size(); ++i)
      kv.push_back(rule(hint(where) + "-kv", props[i].first + " ws \":\" ws " + props[i].second + " ws"));
    // rest(i, first): properties i.. with nothing written yet (first) or after one (comma).
    std::map<std::pair<size_t, bool>, std::string> memo;
    std::function<std::string(size_t, bool)> rest = [&](size_t i, bool first) -> std::string {
      auto m = memo.find({i, first});
      if (m != memo.end()) return m->second;
      std::string body;
      if (i == props.size()) {
        if (extra.empty()) return "";
        body = first ? "(" + extra + " (\",\" ws " + extra + ")*)?" : "(\",\" ws " + extra + ")*";
      } else {
        const std::string sep = first ? "" : "\",\" ws ";
        const std::string next = rest(i + 1, false);
        const std::string take = sep + kv[i] + (next.empty() ? "" : " " + next);
        if (required[i]) {
          body = take;
        } else {
          const std::string skip = rest(i + 1, first);
          body = "(" + take + ")" + (skip.empty() ? "?" : " | " + skip);
        }
      }
      const std::string name = rule(hint(where) + "-rest", body);
      memo[{i, first}] = name;
      return name;
    };
    const std::string body = rest(0, true);
    return rule(hint(where), "\"{\" ws " + (body.empty() ? "" : body + " ") + "\"}\"");
  }

  std::string reference(const OJson& s, const std::string& where) {
    const OJson& r = s["$ref"];
    if (!r.is_string()) refuse(where + ".$ref", "must be a string");
    const std::string ref = r.get<std::string>();
    auto it = refs_.find(ref);
    if (it != refs_.end()) return it->second;
    if (ref.rfind("#/", 0) != 0) refuse(where + ".$ref", "only references inside the schema (#/...) are supported");
    OJson::json_pointer ptr;
    try {
      ptr = OJson::json_pointer(ref.substr(1));
    } catch (const std::exception&) {
      refuse(where + ".$ref", "'" + ref + "' is not a JSON pointer");
    }
    if (!root_.contains(ptr)) refuse(where + ".$ref", "'" + ref + "' points at nothing in the schema");
    // Name the rule first so that a recursive reference finds it.
    const std::string name = fresh(ref.substr(ref.rfind('/') + 1));
    refs_.emplace(ref, name);
    const size_t slot = order_.size();
    order_.emplace_back(name, "");
    const std::string target = visit(root_.at(ptr), ref);
    order_[slot].second = target;
    return name;
  }

  const OJson& root_;
  int depth_ = 0;
  std::vector<std::pair<std::string, std::string>> order_;  // rules in the order written
  std::set<std::string> used_;
  std::map<std::string, std::string> by_body_, refs_;
};

}  // namespace

std::string json_schema_to_gbnf(const nlohmann::ordered_json& schema) { return Converter(schema).convert(); }

std::string json_schema_to_gbnf(const std::string& schema_text, const std::string& where) {
  OJson schema;
  try {
    schema = OJson::parse(schema_text);
  } catch (const std::exception& e) {
    throw Error(where + ": not valid JSON (" + e.what() + ")");
  }
  return json_schema_to_gbnf(schema);
}

std::string json_object_gbnf() { return json_schema_to_gbnf(OJson{{"type", "object"}}); }

}  // namespace yak::infer
