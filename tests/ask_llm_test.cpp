// The LLM parser against a scripted OpenAI-compatible server on loopback (and yak's own engine on
// a tiny checkpoint): what the prompt carries and hides, how the corrector repairs a model's DSL,
// the self-consistency vote, few-shot examples from the semantic model and from confirmed
// questions, failures of the server, and model output that tries injection.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "ask_chat_server.h"
#include "yak/ask/ask.h"
#include "yak/ask/demo.h"
#include "yak/ask/eval.h"
#include "yak/ask/llm.h"
#include "yak/ask/sqlite_db.h"
#include "yak/model/decoder.h"
#include "yak/tokenizer/tokenizer.h"

using namespace yak::ask;
using yak::Error;
using yak::Json;
using yak::testing::ScriptedChatServer;
namespace fs = std::filesystem;

namespace {

class AskLlm : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("yak_ask_llm_" + std::to_string(::getpid())));
    write_demo_database(*dir_ / "music.db");
    db_ = new SqliteDb(*dir_ / "music.db");
    asker_ = new Asker(SemanticModel::load(fs::path(YAK_SOURCE_DIR) / "examples/music/semantic.yaml"), *db_);
  }
  static void TearDownTestSuite() {
    delete asker_;
    delete db_;
    fs::remove_all(*dir_);
    delete dir_;
  }
  static AskOptions opts(const LlmParser* llm) {
    AskOptions o;
    o.today = *Date::parse("2024-12-31");
    o.llm = llm;
    return o;
  }
  static QueryResult reference(const std::string& sql) { return db_->query(sql, {}, {}); }
  // The question as the prompt ends with it (examples in the prompt end "JSON: {...}").
  static std::string asked(const std::string& q) { return "Question: " + q + "\nJSON:"; }

  static fs::path* dir_;
  static SqliteDb* db_;
  static Asker* asker_;
};
fs::path* AskLlm::dir_ = nullptr;
SqliteDb* AskLlm::db_ = nullptr;
Asker* AskLlm::asker_ = nullptr;

const char* kNickname = "老唐的歌在QQ上一共被听了多少次";

}  // namespace

TEST_F(AskLlm, TheModelAnswersWhatTheRulesCannotAndTheCorrectorFixesItsNames) {
  ScriptedChatServer s;
  // Names as a model writes them: a metric in snake case, an English alias, a value alias, and
  // an "sql" field that must be ignored.
  s.on(asked(kNickname),
       {"Sure, here is the query:\n```json\n"
        R"({"query_type":"aggregate","metrics":["play_count"],"filters":[{"dimension":"singer","op":"=",)"
        R"("values":["唐俊子"]},{"dimension":"platform","values":["qq"]}],"sql":"DROP TABLE songs"})"
        "\n```"});
  auto chat = make_openai_chat(s.base_url(), "", 5, 0);
  LlmParser llm(*chat, {});

  // Without the model the rules give up on the nickname.
  const auto rules_only = asker_->ask(kNickname, opts(nullptr));
  ASSERT_FALSE(rules_only.understood);

  const auto a = asker_->ask(kNickname, opts(&llm));
  ASSERT_TRUE(a.understood) << a.message;
  EXPECT_EQ(a.path, "llm");
  EXPECT_EQ(a.dsl.rule, "llm");
  EXPECT_EQ(a.dsl.metrics, std::vector<std::string>{"plays"});
  const auto want = reference(
      "SELECT SUM(p.plays) FROM daily_plays p JOIN songs s ON p.song_id = s.song_id JOIN artists a ON "
      "s.artist_id = a.artist_id WHERE a.name = '唐俊子' AND p.platform = 'QQ音乐'");
  std::string why;
  EXPECT_TRUE(same_result(a.result, want, false, &why)) << why;
  std::string notes;
  for (auto& n : a.notes) notes += n + "\n";
  EXPECT_NE(notes.find("metric 'play_count' -> 'plays'"), std::string::npos) << notes;
  EXPECT_NE(notes.find("dimension 'singer' -> 'artist'"), std::string::npos) << notes;
  EXPECT_NE(notes.find("value 'qq' -> 'QQ音乐'"), std::string::npos) << notes;
  EXPECT_EQ(a.sql.find("DROP"), std::string::npos);
  EXPECT_EQ(a.to_json()["path"], "llm");

  // The request: a model name from GET /models, greedy, business names only.
  const auto reqs = s.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0]["model"], "scripted");
  EXPECT_EQ(reqs[0]["temperature"].get<double>(), 0.0);
  const std::string system = reqs[0]["messages"][0]["content"], user = reqs[0]["messages"][1]["content"];
  EXPECT_EQ(reqs[0]["messages"][0]["role"], "system");
  for (const char* hidden : {"daily_plays", "SUM(", "revenue_cny", "artist_id", "gender", "性别"})
    EXPECT_EQ(system.find(hidden), std::string::npos) << "the prompt shows '" << hidden << "'";
  for (const char* shown : {"plays", "播放量", "artist", "歌手", "QQ音乐", "2024-12-31"})
    EXPECT_NE(system.find(shown), std::string::npos) << "the prompt lacks '" << shown << "'";
  EXPECT_NE(user.find("value \"qq\": platform = \"QQ音乐\""), std::string::npos) << user;
  EXPECT_NE(user.find("Examples:"), std::string::npos);
}

TEST_F(AskLlm, RulesThatUnderstandAreNotOverruled) {
  ScriptedChatServer s;
  s.on("", {R"({"metrics":["likes"]})"});
  auto chat = make_openai_chat(s.base_url(), "m", 5, 0);
  LlmParser llm(*chat, {});
  const auto a = asker_->ask("2024年各平台的播放量", opts(&llm));
  ASSERT_TRUE(a.understood);
  EXPECT_EQ(a.path, "rule");
  EXPECT_TRUE(s.requests().empty());
  // --llm-always asks anyway and takes the model's query.
  auto o = opts(&llm);
  o.llm_always = true;
  const auto b = asker_->ask("2024年各平台的播放量", o);
  ASSERT_TRUE(b.understood) << b.message;
  EXPECT_EQ(b.path, "llm");
  EXPECT_EQ(b.dsl.metrics, std::vector<std::string>{"likes"});
  // The mapper's dates win over none from the model.
  EXPECT_EQ(b.dsl.start, "2024-01-01");
  EXPECT_EQ(b.dsl.end, "2024-12-31");
  EXPECT_EQ(b.dsl.time_dimension, "dt");
}

TEST_F(AskLlm, SelfConsistencyVotesOnTheCorrectedQuery) {
  ScriptedChatServer s;
  const std::string q = "播放量环比增长的走势";
  // Samples 1 and 3 differ in spelling but mean the same query; sample 2 is another query and
  // sample 4 is not JSON.
  s.on(asked(q), {R"({"metrics":["plays"],"granularity":"month","time_range":["2024-01-01","2024-12-31"]})",
                  R"({"metrics":["likes"]})",
                  R"({"time_range":["2024-01-01","2024-12-31"],"granularity":"month","metrics":["播放量"],)"
                  R"("time_dimension":"日期","order":[{"field":"month","desc":false}]})",
                  "I cannot answer that."});
  auto chat = make_openai_chat(s.base_url(), "m", 5, 0);
  LlmOptions lo;
  lo.samples = 4;
  LlmParser llm(*chat, lo);
  const auto a = asker_->ask(q, opts(&llm));
  ASSERT_TRUE(a.understood) << a.message;
  EXPECT_EQ(a.dsl.granularity, "month");
  EXPECT_NEAR(a.dsl.confidence, 0.5, 1e-12);  // 2 of 4
  EXPECT_EQ(a.replies.size(), 4u);
  EXPECT_NE(a.notes.back().find("2 of 4 samples agree"), std::string::npos);
  EXPECT_EQ(a.result.rows.size(), 12u);
  const auto reqs = s.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0]["n"], 4);
  EXPECT_GT(reqs[0]["temperature"].get<double>(), 0.0);
}

TEST_F(AskLlm, UnusableRepliesAreNotUnderstoodWithTheReason) {
  ScriptedChatServer s;
  s.on(asked("播放量环比增长"), {"The plays grew by 5%."});
  s.on(asked("各性别歌手的播放量排行"), {R"({"metrics":["plays"],"group_by":["gender"]})"});
  s.on(asked("随便看看"), {R"({"metrics":["happiness"]})"});
  auto chat = make_openai_chat(s.base_url(), "m", 5, 0);
  LlmParser llm(*chat, {});
  const auto a = asker_->ask("播放量环比增长", opts(&llm));
  EXPECT_FALSE(a.understood);
  EXPECT_NE(a.message.find("holds no JSON object"), std::string::npos) << a.message;
  EXPECT_NE(a.message.find("The plays grew"), std::string::npos) << a.message;
  // A sensitive dimension from the model is refused like one from the rules...
  const auto b = asker_->ask("各性别歌手的播放量排行", opts(&llm));
  EXPECT_FALSE(b.understood);
  EXPECT_NE(b.message.find("sensitive"), std::string::npos) << b.message;
  // ...and allowed with permission.
  auto o = opts(&llm);
  o.allow_sensitive = true;
  EXPECT_TRUE(asker_->ask("各性别歌手的播放量排行", o).understood);
  const auto c = asker_->ask("随便看看", opts(&llm));
  EXPECT_FALSE(c.understood);
  EXPECT_NE(c.message.find("unknown metric 'happiness'"), std::string::npos) << c.message;
}

TEST_F(AskLlm, ServerFailuresAreErrorsNamingTheServer) {
  ScriptedChatServer s;
  s.on(asked("播放量环比增长"), {"overloaded"}, 503);
  s.on(asked("收入环比增长"), {"bad request"}, 400);
  auto chat = make_openai_chat(s.base_url(), "m", 5, 2);
  LlmParser llm(*chat, {});
  try {
    asker_->ask("播放量环比增长", opts(&llm));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(s.base_url()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("503"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s.requests().size(), 3u);  // retried twice
  EXPECT_THROW(asker_->ask("收入环比增长", opts(&llm)), Error);
  EXPECT_EQ(s.requests().size(), 4u);  // a 4xx is not retried
  EXPECT_THROW(make_openai_chat("http://127.0.0.1:1/v1", "m", 2, 0)->complete({{{"user", "hi"}}}), Error);
  EXPECT_THROW(make_openai_chat("not a url", "m"), Error);
}

TEST_F(AskLlm, InjectionThroughTheModelChangesNothing) {
  ScriptedChatServer s;
  const std::string q = "老唐'; DROP TABLE songs; -- 的歌被听了多少次";
  s.on(asked(q),
       {R"({"metrics":["plays"],"filters":[{"dimension":"artist","values":["唐俊子'; DROP TABLE songs; --"]},)"
        R"({"dimension":"platform","op":"in","values":["QQ音乐') OR 1=1 --"]}]})"});
  auto chat = make_openai_chat(s.base_url(), "m", 5, 0);
  LlmParser llm(*chat, {});
  const auto before = reference("SELECT COUNT(*) FROM songs");
  const auto a = asker_->ask(q, opts(&llm));
  ASSERT_TRUE(a.understood) << a.message;
  EXPECT_EQ(a.sql.find("DROP"), std::string::npos);
  EXPECT_EQ(a.sql.find("OR 1=1"), std::string::npos);
  ASSERT_EQ(a.params.size(), 2u);
  EXPECT_EQ(a.params[0].to_string(), "唐俊子'; DROP TABLE songs; --");
  ASSERT_EQ(a.result.rows.size(), 1u);
  EXPECT_TRUE(a.result.rows[0][0].type == Value::Type::Null || a.result.rows[0][0].to_string() == "0");
  EXPECT_EQ(reference("SELECT COUNT(*) FROM songs").rows[0][0].i, before.rows[0][0].i);
}

TEST_F(AskLlm, FewShotExamplesComeFromTheModelAndFromConfirmedQuestions) {
  // The semantic model's examples carry the rules' DSL or their own.
  const auto ex = asker_->examples_for(*Date::parse("2024-12-31"));
  ASSERT_GE(ex.size(), 3u);
  bool given = false;
  for (auto& e : ex) given = given || e.dsl.granularity == "week";
  EXPECT_TRUE(given);

  const auto store_path = *dir_ / "fewshot.jsonl";
  {
    FewShotStore store(store_path);
    EXPECT_TRUE(store.examples().empty());
    Dsl d;
    d.metrics = {"plays"};
    d.filters = {{"artist", "=", {"唐俊子"}}};
    store.add(kNickname, d);
  }
  FewShotStore store(store_path);
  ASSERT_EQ(store.examples().size(), 1u);
  EXPECT_EQ(store.examples()[0].dsl.filters[0].values[0], "唐俊子");

  ScriptedChatServer s;
  const std::string q = "老唐的歌在酷狗上一共被听了多少次";
  s.on(asked(q), {R"({"metrics":["plays"],"filters":[{"dimension":"artist","values":["唐俊子"]},)"
                  R"({"dimension":"platform","values":["酷狗"]}]})"});
  auto chat = make_openai_chat(s.base_url(), "m", 5, 0);
  LlmOptions lo;
  lo.shots = 2;
  LlmParser llm(*chat, lo);
  llm.add_examples(store.examples());
  const auto a = asker_->ask(q, opts(&llm));
  ASSERT_TRUE(a.understood) << a.message;
  const std::string user = s.requests()[0]["messages"][1]["content"];
  // The confirmed question is the nearest example, so it comes first.
  const auto first = user.find("Question: ");
  EXPECT_EQ(user.substr(first, 10 + std::string(kNickname).size()), std::string("Question: ") + kNickname);
  EXPECT_EQ(std::count(user.begin(), user.end(), '\n') > 0, true);
  size_t shots = 0;
  for (size_t p = 0; (p = user.find("Question: ", p)) != std::string::npos; ++p) ++shots;
  EXPECT_EQ(shots, 3u);  // two examples and the question

  // A broken store line names its file and line.
  std::ofstream(store_path, std::ios::app) << "{\"question\": \"x\"}\n";
  try {
    FewShotStore bad(store_path);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fewshot.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST_F(AskLlm, ModelExamplesTheRulesCannotReadNeedADsl) {
  const auto yaml = [](const std::string& examples) {
    std::string y = demo_semantic_yaml();
    const auto at = y.find("\nexamples:\n");
    EXPECT_NE(at, std::string::npos);
    return y.insert(at + 11, examples);
  };
  EXPECT_NO_THROW(Asker(SemanticModel::parse(yaml("  - 2024年各平台的播放量\n"), "m.yaml"), *db_));
  try {
    Asker(SemanticModel::parse(yaml("  - question: 播放量环比增长\n"), "m.yaml"), *db_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("m.yaml"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("has no 'dsl'"), std::string::npos) << e.what();
  }
  try {
    Asker(SemanticModel::parse(yaml("  - question: x\n    dsl: {metrics: [nope]}\n"), "m.yaml"), *db_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown metric 'nope'"), std::string::npos) << e.what();
  }
}

TEST(AskLlmUnits, ExtractsTheFirstJsonObject) {
  EXPECT_EQ(extract_json_object(R"(x {"a": 1} y)"), Json({{"a", 1}}));
  EXPECT_EQ(extract_json_object("```json\n{\"a\": \"}{\", \"b\": {\"c\": 2}}\n```"),
            Json::parse(R"({"a": "}{", "b": {"c": 2}})"));
  EXPECT_EQ(extract_json_object(R"({broken} then {"ok": true})"), Json({{"ok", true}}));
  EXPECT_TRUE(extract_json_object("no json here").is_null());
  EXPECT_TRUE(extract_json_object("{\"unterminated\": 1").is_null());
}

TEST_F(AskLlm, CorrectorRules) {
  const auto mp = map_question("去年各平台的播放量", asker_->knowledge(), *Date::parse("2024-12-31"));
  Dsl d;
  d.query_type = "detail";
  d.metrics = {"播放量", "plays"};
  d.group_by = {"平台"};
  d.start = "2022-01-01", d.end = "2022-12-31";  // the model's arithmetic is a year off
  d.order = {{"播放量", true}, {"popularity", true}};
  std::vector<std::string> notes;
  const auto c = correct_dsl(d, mp, asker_->model(), asker_->knowledge(), false, &notes);
  EXPECT_EQ(c.query_type, "aggregate");
  EXPECT_EQ(c.metrics, std::vector<std::string>{"plays"});
  EXPECT_EQ(c.group_by, std::vector<std::string>{"platform"});
  EXPECT_EQ(c.start, "2023-01-01");
  EXPECT_EQ(c.end, "2023-12-31");
  EXPECT_EQ(c.time_dimension, "dt");
  ASSERT_EQ(c.order.size(), 1u);
  EXPECT_EQ(c.order[0].field, "plays");
  EXPECT_GE(notes.size(), 4u);

  // No date in the question: a malformed model date is dropped, and a limit ranks by the metric.
  const auto none = map_question("各平台的播放量", asker_->knowledge(), *Date::parse("2024-12-31"));
  Dsl e;
  e.metrics = {"plays"};
  e.group_by = {"platform"};
  e.start = "last year", e.end = "2024-12-31";
  e.limit = 2;
  const auto f = correct_dsl(e, none, asker_->model(), asker_->knowledge(), false, nullptr);
  EXPECT_TRUE(f.start.empty() && f.end.empty() && f.time_dimension.empty());
  ASSERT_EQ(f.order.size(), 1u);
  EXPECT_EQ(f.order[0].field, "plays");
}

// yak's own engine as the chat model: a tiny random checkpoint cannot write the DSL, and the
// music prompt does not fit its 256-token context; both are clear answers, not crashes.
TEST_F(AskLlm, LocalEngineAsTheChatModel) {
  const fs::path dir = fs::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat";
  auto chat = make_local_chat(yak::model::DecoderModel::load(dir), yak::tok::load_tokenizer(dir),
                              yak::tok::ChatTemplate::by_name("chatml"), dir.string());
  ChatRequest r;
  r.messages = {{"user", "hi"}};
  r.n = 2;
  r.max_tokens = 8;
  const auto a = chat->complete(r), b = chat->complete(r);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a, b);        // greedy is deterministic
  EXPECT_EQ(a[0], a[1]);  // and the same for every sample
  LlmParser llm(*chat, {});
  try {
    asker_->ask(kNickname, opts(&llm));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the context of 256"), std::string::npos) << e.what();
  }
}

// default_time_range_days: questions with metrics and no time get the last N days, on the rule
// path and in the corrector alike; counts over dimension tables and explicit dates are untouched.
TEST_F(AskLlm, DefaultTimeRange) {
  std::string yaml = demo_semantic_yaml();
  yaml.insert(yaml.find("\ndefault_metric:"), "\ndefault_time_range_days: 30");
  Asker a(SemanticModel::parse(yaml, "m.yaml"), *db_);
  auto o = opts(nullptr);
  const auto total = a.ask("总播放量是多少", o);
  ASSERT_TRUE(total.understood) << total.message;
  EXPECT_EQ(total.dsl.start, "2024-12-02");
  EXPECT_EQ(total.dsl.end, "2024-12-31");
  std::string why;
  EXPECT_TRUE(
      same_result(total.result, reference("SELECT SUM(plays) FROM daily_plays WHERE dt >= '2024-12-02'"), false, &why))
      << why;
  EXPECT_EQ(a.ask("2023年的总播放量", o).dsl.start, "2023-01-01");
  EXPECT_TRUE(a.ask("有多少首歌曲", o).dsl.start.empty());

  const auto mp = map_question("播放量环比增长", a.knowledge(), *Date::parse("2024-12-31"));
  Dsl d;
  d.metrics = {"plays"};
  std::vector<std::string> notes;
  const auto c = correct_dsl(d, mp, a.model(), a.knowledge(), false, &notes);
  EXPECT_EQ(c.start, "2024-12-02");
  EXPECT_EQ(c.time_dimension, "dt");
  ASSERT_FALSE(notes.empty());
  EXPECT_NE(notes.back().find("last 30 days"), std::string::npos);

  EXPECT_THROW(SemanticModel::parse(demo_semantic_yaml() + "\ndefault_time_range_days: soon\n", "m.yaml"), Error);
}
