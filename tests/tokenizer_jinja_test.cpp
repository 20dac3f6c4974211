// The Jinja interpreter against jinja2 as transformers runs it (tools/golden/make_jinja_goldens.py):
// small templates of our own, each checking one language rule, compared text for text; and the
// released models' chat templates in ../shared/data/chat-templates/ over ten conversations
// (system prompts, several turns, content parts, tools and tool calls, thinking off), compared
// by length and FNV-1a hash of the rendering, or by the error class when jinja2 refused.
#include "yak/tokenizer/jinja/jinja.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "tokenizer_test_util.h"

namespace yak::jinja {
namespace {

using tok::testing::show;
using tok::testing::shared;

std::string read_file_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}


// The goldens as written (keys in file order: templates print dicts in their order).
nlohmann::ordered_json golden_ordered() {
  return nlohmann::ordered_json::parse(read_file_text(tok::testing::golden("jinja_templates.json")));
}

// 2025-01-15 12:00, the clock of the goldens.
std::tm fixed_clock() {
  std::tm tm{};
  tm.tm_year = 125;
  tm.tm_mon = 0;
  tm.tm_mday = 15;
  tm.tm_hour = 12;
  tm.tm_wday = 3;
  tm.tm_yday = 14;
  return tm;
}

// What jinja2 said: the text, or the error class.
std::string outcome(const std::string& source, const std::string& name, const Value& vars, bool hash) {
  try {
    Template t(source, name);
    const std::string out = t.render(vars, fixed_clock);
    return hash ? std::to_string(utf8_decode(out).size()) + ":" + fnv1a64(out) : out;
  } catch (const TemplateError& e) {
    return "error " + e.kind() + " (" + e.what() + ")";
  }
}

TEST(Jinja, SnippetsRenderAsJinja2Does) {
  const auto g = golden_ordered();
  int n = 0;
  for (const auto& s : g.at("snippets")) {
    const std::string src = s.at("template").get<std::string>();
    const Value vars = Value::from_json(s.at("variables"));
    const std::string got = outcome(src, "snippet", vars, false);
    if (s.contains("error")) {
      EXPECT_EQ(got.rfind("error " + s.at("error").get<std::string>(), 0), 0u) << src << "\n got: " << show(got);
    } else {
      EXPECT_EQ(got, s.at("output").get<std::string>()) << src;
    }
    ++n;
  }
  EXPECT_GE(n, 20);
}

TEST(Jinja, ErrorsNameTheTemplateAndLine) {
  try {
    Template t("line one\n{% if x %}\n{{ raise_exception('nope') }}\n{% endif %}", "demo.jinja");
    Value vars = Value::dict();
    vars.dict_ref().set(Value("x"), Value(true));
    t.render(vars);
    FAIL() << "raise_exception did not raise";
  } catch (const TemplateError& e) {
    EXPECT_EQ(e.kind(), "TemplateError");
    EXPECT_EQ(std::string(e.what()), "demo.jinja:3: nope");
  }
  try {
    Template t("a\nb\n{% for x in %}", "bad.jinja");
    FAIL() << "a broken for loop parsed";
  } catch (const TemplateError& e) {
    EXPECT_EQ(e.kind(), "TemplateSyntaxError");
    EXPECT_NE(std::string(e.what()).find("bad.jinja:3:"), std::string::npos) << e.what();
  }
}

TEST(Jinja, RunawayTemplatesStop) {
  Template t("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "deep");
  EXPECT_THROW(t.render(Value::dict()), TemplateError);
  Template loop("{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}", "long");
  EXPECT_THROW(loop.render(Value::dict()), TemplateError);
}

TEST(Jinja, ReleasedChatTemplatesRenderAsTransformersDoes) {
  YAK_SKIP_UNLESS_SHARED("chat-templates");
  const auto g = golden_ordered();
  const auto& cases = g.at("cases");
  int templates = 0, identical = 0, compared = 0, agreed = 0;
  std::vector<std::string> differing;
  for (const auto& [file, row] : g.at("templates").items()) {
    const auto path = shared("chat-templates/" + file);
    if (!std::filesystem::exists(path)) {
      ADD_FAILURE() << "missing " << path;
      continue;
    }
    const std::string src = read_file_text(path);
    ++templates;
    bool all = true;
    std::string first_diff;
    for (const auto& [cname, want] : row.items()) {
      const auto& c = cases.at(cname);
      nlohmann::ordered_json vars = g.at("special_tokens");
      vars["messages"] = c.at("messages");
      vars["tools"] = c.contains("tools") ? c.at("tools") : nlohmann::ordered_json();
      vars["documents"] = nullptr;
      vars["add_generation_prompt"] = c.value("add_generation_prompt", true);
      if (c.contains("extra"))
        for (const auto& [k, v] : c.at("extra").items()) vars[k] = v;
      const std::string got = outcome(src, file, Value::from_json(vars), true);
      const std::string expect = want.contains("error") ? "error " + want.at("error").get<std::string>()
                                                        : std::to_string(want.at("len").get<int64_t>()) + ":" +
                                                              want.at("fnv1a64").get<std::string>();
      const bool ok = want.contains("error") ? got.rfind(expect, 0) == 0 : got == expect;
      ++compared;
      agreed += ok;
      if (!ok && first_diff.empty()) first_diff = cname + ": want " + expect + ", got " + got;
      all = all && ok;
    }
    identical += all;
    if (!all) differing.push_back(file + " (" + first_diff + ")");
  }
  std::printf("%d of %d templates render identically to transformers in every case (%d of %d renderings)\n", identical,
              templates, agreed, compared);
  for (const auto& d : differing) std::printf("  differs: %s\n", d.c_str());
  EXPECT_EQ(templates, 53);
  EXPECT_EQ(identical, templates) << "README: all 53 render identically";
}

}  // namespace
}  // namespace yak::jinja
