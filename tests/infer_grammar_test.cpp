// Constrained decoding: GBNF parsing and matching, the vocabulary walk against a per-token check,
// JSON Schema output checked by an independent JSON parser, and the end of a constrained sequence.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "yak/base/error.h"
#include "yak/infer/engine.h"
#include "yak/infer/grammar.h"
#include "yak/infer/json_schema.h"
#include "yak/tokenizer/tokenizer.h"

using namespace yak;
using namespace yak::infer;

namespace {

const std::filesystem::path kGolden = YAK_GOLDEN_DIR;

std::shared_ptr<const tok::Tokenizer> golden_tokenizer() {
  static std::shared_ptr<const tok::Tokenizer> t = tok::load_tokenizer(kGolden / "models/qwen2_chat");
  return t;
}

// Whole-string checks need no vocabulary: a trie of single bytes would do, but accept_bytes never
// looks at it.
struct Probe {
  std::shared_ptr<const Grammar> g;
  std::shared_ptr<const VocabTrie> v;
  explicit Probe(const std::string& text) : g(Grammar::parse(text)), v(std::make_shared<VocabTrie>(*golden_tokenizer())) {}
  // 'c' complete, 'p' a proper prefix, 'x' refused.
  char verdict(const std::string& s) const {
    GrammarMatcher m({g, v});
    if (!m.accept_bytes(s)) return 'x';
    return m.complete() ? 'c' : 'p';
  }
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Grammar, MatchesWhatItSays) {
  Probe p(R"(
    # a comment
    root ::= "a" b{2,3} ("x" | "yz")* end
    b    ::= [0-9]
    end  ::= "!"?
  )");
  EXPECT_EQ(p.verdict("a12"), 'c');
  EXPECT_EQ(p.verdict("a123!"), 'c');
  EXPECT_EQ(p.verdict("a12xyzx!"), 'c');
  EXPECT_EQ(p.verdict("a1"), 'p');
  EXPECT_EQ(p.verdict("a12y"), 'p');
  EXPECT_EQ(p.verdict("a1234"), 'x');
  EXPECT_EQ(p.verdict("a12yx"), 'x');
  EXPECT_EQ(p.verdict("b"), 'x');
  EXPECT_EQ(p.verdict("a12!!"), 'x');
}

TEST(Grammar, ClassesBeyondAsciiMatchWholeCharacters) {
  Probe p(R"(root ::= [一-龥]+ [^a-z]? "é")");
  EXPECT_EQ(p.verdict("中文é"), 'c');
  EXPECT_EQ(p.verdict("中文Zé"), 'c');
  EXPECT_EQ(p.verdict("中文ж" "é"), 'c');  // a two-byte character in the negated class
  EXPECT_EQ(p.verdict("中\xE6"), 'p');     // half of a character is a prefix
  EXPECT_EQ(p.verdict("中aé"), 'x');
  EXPECT_EQ(p.verdict("é"), 'x');
  Probe any(R"(root ::= "<" .{1,2} ">")");
  EXPECT_EQ(any.verdict("<😀>"), 'c');
  EXPECT_EQ(any.verdict("<\xFF>"), 'x');  // not UTF-8
  Probe esc(R"(root ::= "\x41\u00e9\n" [\t\\\]])");
  EXPECT_EQ(esc.verdict("Aé\n]"), 'c');
  EXPECT_EQ(esc.verdict("Aé\n\\"), 'c');
}

TEST(Grammar, BadGrammarsNameWhatIsWrong) {
  EXPECT_NE(message_of([] { Grammar::parse("a ::= \"x\""); }).find("no rule named 'root'"), std::string::npos);
  EXPECT_NE(message_of([] { Grammar::parse("root ::= x"); }).find("rule 'x' is used but never defined"),
            std::string::npos);
  EXPECT_NE(message_of([] { Grammar::parse("root ::= root \"a\" | \"b\""); }).find("left-recursive"), std::string::npos);
  EXPECT_NE(message_of([] { Grammar::parse("root ::= e root\ne ::= \"\"?"); }).find("left-recursive"), std::string::npos);
  EXPECT_NE(message_of([] { Grammar::parse("root ::= \"a\"\n\nroot ::= \"b\""); }).find("line 3: rule 'root' is defined twice"),
            std::string::npos);
  EXPECT_NE(message_of([] { Grammar::parse("root ::= \"abc"); }).find("unterminated literal"), std::string::npos);
  EXPECT_NE(message_of([] { Grammar::parse("root ::= [z-a]"); }).find("end before its start"), std::string::npos);
  EXPECT_NE(message_of([] { Grammar::parse("root ::= (\"a\""); }).find("without its ')'"), std::string::npos);
  EXPECT_NE(message_of([] { Grammar::parse("root ::= \"a\"{3,2}"); }).find("n < m"), std::string::npos);
  EXPECT_NE(message_of([] { Grammar::parse("root ::= \"\\q\""); }).find("unknown escape"), std::string::npos);
  EXPECT_NO_THROW(Grammar::parse("root ::= a \"x\"\na ::= \"\"?"));  // nullable, not recursive
  // Nesting that would exhaust the parser's stack is refused (a request body may hold 8 MiB).
  EXPECT_NE(message_of([] { Grammar::parse("root ::= " + std::string(100000, '(')); }).find("nest deeper"),
            std::string::npos);
}

// The trie walk allows exactly the tokens a token-by-token check accepts, at every step of a
// random walk through a JSON grammar.
TEST(Grammar, MaskEqualsPerTokenCheck) {
  auto tok = golden_tokenizer();
  auto v = std::make_shared<VocabTrie>(*tok);
  auto g = Grammar::parse(json_object_gbnf());
  GrammarMatcher m({g, v});
  std::mt19937 rng(7);
  const std::vector<int32_t> eos = {*tok->token_to_id("<|im_end|>")};
  for (int step = 0; step < 60; ++step) {
    std::vector<float> logits(static_cast<size_t>(tok->vocab_size()), 0.0f);
    const size_t n = m.mask(logits, eos);
    std::vector<int32_t> allowed;
    for (int32_t id = 0; id < tok->vocab_size(); ++id) {
      GrammarMatcher probe = m;
      const bool ok = probe.accept_token(id) || (m.complete() && id == eos[0]);
      EXPECT_EQ(ok, std::isfinite(logits[static_cast<size_t>(id)])) << "step " << step << " token " << id;
      if (ok) allowed.push_back(id);
    }
    ASSERT_EQ(n, allowed.size());
    ASSERT_FALSE(allowed.empty());
    const int32_t pick = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
    if (pick == eos[0]) break;
    ASSERT_TRUE(m.accept_token(pick));
    if (m.finished()) break;
  }
}

// The real Qwen2 vocabulary (152k tokens, when the shared data is present): the same check on
// a sample of tokens at a few states inside and outside strings.
TEST(Grammar, MaskOnALargeVocabulary) {
  const auto dir = std::filesystem::path(YAK_SHARED_DATA) / "tokenizers/qwen2";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no " << dir << " (shared data absent)";
  auto tok = tok::load_tokenizer(dir);
  auto v = std::make_shared<VocabTrie>(*tok);
  auto g = Grammar::parse(json_object_gbnf());
  for (const char* text : {"", "{", "{\"ke", "{\"key\": ", "{\"key\": [1, 2.5e", "{\"k\": \"\\u00"}) {
    GrammarMatcher m({g, v});
    ASSERT_TRUE(m.accept_bytes(text)) << text;
    std::vector<float> logits(static_cast<size_t>(tok->vocab_size()), 0.0f);
    m.mask(logits, {});
    for (int32_t id = 0; id < tok->vocab_size(); id += 7) {
      GrammarMatcher probe = m;
      EXPECT_EQ(probe.accept_token(id), std::isfinite(logits[static_cast<size_t>(id)])) << "'" << text << "' token " << id;
    }
  }
}

namespace {

// Samples a completion under a schema with random logits (every allowed token equally likely
// but a few favoured), as the engine does.
std::string sample_constrained(const std::string& gbnf, uint64_t seed, int64_t max_tokens = 400) {
  auto tok = golden_tokenizer();
  GenerateRequest req;
  req.prompt = {1};
  req.max_new_tokens = max_tokens;
  req.sampling.temperature = 1.0f;
  req.sampling.seed = seed;
  req.constraint = TokenConstraint{Grammar::parse(gbnf), std::make_shared<VocabTrie>(*tok)};
  const std::vector<int32_t> eos = {*tok->token_to_id("<|im_end|>")};
  Continuation c(req, tok.get(), eos);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> noise(0.0f, 2.0f);
  while (!c.done()) {
    std::vector<float> logits(static_cast<size_t>(tok->vocab_size()));
    for (auto& x : logits) x = noise(rng);
    logits[static_cast<size_t>(eos[0])] += 4.0f;  // a model keen to stop early
    c.step(logits);
  }
  EXPECT_EQ(c.finish(), FinishReason::Stop) << c.text();
  return c.text();
}

}  // namespace

TEST(JsonSchema, SampledOutputParsesAndValidates) {
  const std::string schema = R"({
    "type": "object",
    "properties": {
      "name": {"type": "string", "minLength": 1, "maxLength": 12},
      "age": {"type": "integer", "minimum": 0},
      "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "minItems": 1, "maxItems": 3},
      "ok": {"type": "boolean"},
      "score": {"type": ["number", "null"]},
      "pet": {"$ref": "#/$defs/pet"}
    },
    "required": ["name", "age", "tags"],
    "$defs": {"pet": {"type": "object", "properties": {"kind": {"const": "cat"}}, "required": ["kind"]}}
  })";
  const std::string gbnf = json_schema_to_gbnf(schema, "schema");
  int optional_seen = 0;
  for (uint64_t seed = 1; seed <= 25; ++seed) {
    const std::string text = sample_constrained(gbnf, seed);
    Json j;
    ASSERT_NO_THROW(j = Json::parse(text)) << text;
    ASSERT_TRUE(j.is_object()) << text;
    ASSERT_TRUE(j.contains("name") && j["name"].is_string()) << text;
    const std::string name = j["name"].get<std::string>();
    EXPECT_GE(name.size(), 1u);
    ASSERT_TRUE(j.contains("age") && j["age"].is_number_integer() && j["age"].get<int64_t>() >= 0) << text;
    ASSERT_TRUE(j["tags"].is_array() && !j["tags"].empty() && j["tags"].size() <= 3) << text;
    for (const auto& t : j["tags"]) EXPECT_TRUE(t == "red" || t == "green" || t == "blue") << text;
    if (j.contains("ok")) {
      EXPECT_TRUE(j["ok"].is_boolean()) << text;
    }
    if (j.contains("score")) {
      EXPECT_TRUE(j["score"].is_number() || j["score"].is_null()) << text;
    }
    if (j.contains("pet")) {
      EXPECT_EQ(j["pet"], Json({{"kind", "cat"}})) << text;
    }
    for (const auto& [k, _] : j.items())
      EXPECT_TRUE(k == "name" || k == "age" || k == "tags" || k == "ok" || k == "score" || k == "pet") << text;
    optional_seen += j.contains("ok") + j.contains("score") + j.contains("pet");
  }
  EXPECT_GT(optional_seen, 0);  // optional keys are written too, not only skipped
}

TEST(JsonSchema, PropertiesKeepTheSchemaOrder) {
  const std::string gbnf = json_schema_to_gbnf(
      std::string(R"({"type":"object","properties":{"zeta":{"type":"null"},"alpha":{"type":"null"}},"required":["zeta","alpha"]})"),
      "schema");
  Probe p(gbnf);
  EXPECT_EQ(p.verdict(R"({"zeta": null, "alpha": null})"), 'c');
  EXPECT_EQ(p.verdict(R"({"alpha": null)"), 'x');
}

TEST(JsonSchema, JsonObjectAcceptsAnyObject) {
  Probe p(json_object_gbnf());
  EXPECT_EQ(p.verdict(R"({"a": [1, -2.5e3, true, null, {"b": "\u00e9\n"}], "c": {}})"), 'c');
  EXPECT_EQ(p.verdict("{\n  \"a\": \"x\"\n}"), 'c');
  EXPECT_EQ(p.verdict(R"([1])"), 'x');
  EXPECT_EQ(p.verdict(R"({"a": 01})"), 'x');
  EXPECT_EQ(p.verdict("{\"a\": \"tab\there\"}"), 'x');  // raw control characters are not JSON
}

TEST(JsonSchema, RefusesWhatItCannotEnforce) {
  auto msg = [](const std::string& s) { return message_of([&] { json_schema_to_gbnf(s, "schema"); }); };
  EXPECT_NE(msg(R"({"type":"object","properties":{"age":{"type":"integer","maximum":9}}})")
                .find("schema.properties.age: 'maximum' is not supported"),
            std::string::npos);
  EXPECT_NE(msg(R"({"type":"string","pattern":"^a"})").find("'pattern' is not supported"), std::string::npos);
  EXPECT_NE(msg(R"({"$ref":"#/$defs/none"})").find("points at nothing"), std::string::npos);
  EXPECT_NE(msg(R"({"type":"strange"})").find("unknown type 'strange'"), std::string::npos);
  EXPECT_NE(msg("{not json").find("schema: not valid JSON"), std::string::npos);
  std::string deep;
  for (int i = 0; i < 5000; ++i) deep += R"({"type":"array","items":)";
  deep += "{}" + std::string(5000, '}');
  EXPECT_NE(msg(deep).find("deeper than 64 levels"), std::string::npos);
}

TEST(JsonSchema, RecursiveReferences) {
  const std::string gbnf = json_schema_to_gbnf(std::string(R"({"$ref":"#/$defs/node","$defs":{"node":{"type":"object",
      "properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"]}}})"),
                                               "schema");
  Probe p(gbnf);
  EXPECT_EQ(p.verdict(R"({"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": []}]})"), 'c');
  EXPECT_EQ(p.verdict(R"({"kids": []})"), 'x');
}

// A constrained sequence ends (Stop) the moment the grammar allows nothing more, without EOS.
TEST(Grammar, SequenceEndsWhenTheGrammarDoes) {
  const std::string text = sample_constrained(R"(root ::= "yes" | "no")", 3);
  EXPECT_TRUE(text == "yes" || text == "no") << text;
}
