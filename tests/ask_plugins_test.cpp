// Plug-ins of `ask`: search terms, Markdown passages, BM25 arithmetic and ranking, embedding
// fusion with yak's engine, the plug-in file's validation, function plug-ins over a subprocess and
// over HTTP (and how they fail), and the routing between documents, plug-ins and data questions.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <thread>

#include "ask_chat_server.h"
#include "yak/ask/ask.h"
#include "yak/ask/demo.h"
#include "yak/ask/plugins.h"
#include "yak/ask/sqlite_db.h"
#include "yak/base/http.h"
#include "yak/model/decoder.h"
#include "yak/tokenizer/tokenizer.h"

using namespace yak::ask;
using yak::Error;
using yak::Json;
namespace fs = std::filesystem;

namespace {

const fs::path kMusic = fs::path(YAK_SOURCE_DIR) / "examples" / "music";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(AskPlugins, SearchTerms) {
  EXPECT_EQ(search_terms("What does Like-Rate mean?"), (std::vector<std::string>{"like", "rate"}));
  // CJK: characters and neighbouring pairs; particles and question words are dropped.
  EXPECT_EQ(search_terms("点赞率是什么"), (std::vector<std::string>{"点", "点赞", "赞", "赞率", "率", "率是"}));
  EXPECT_EQ(search_terms("ＱＱ音乐 2024"), (std::vector<std::string>{"qq", "音", "音乐", "乐", "2024"}));
}

TEST(AskPlugins, MarkdownPassagesKeepHeadingsAndLines) {
  const std::string md =
      "# Title\n\nintro line\n\n## Part A\n\npara one\nstill one\n\npara two\n\n```\n# not a heading\n```\n"
      "### Deep\ntext\n";
  const auto ps = DocIndex::split(md, "x.md", 20);
  ASSERT_EQ(ps.size(), 4u);
  EXPECT_EQ(ps[0].heading, "Title");
  EXPECT_EQ(ps[0].text, "intro line");
  EXPECT_EQ(ps[0].cite(), "x.md:3-3");
  EXPECT_EQ(ps[1].heading, "Title > Part A");
  EXPECT_EQ(ps[1].text, "para one\nstill one");
  EXPECT_EQ(ps[1].cite(), "x.md:7-8");
  // A short paragraph takes the next one along; a fenced block is never cut.
  EXPECT_EQ(ps[2].text, "para two\n\n```\n# not a heading\n```");
  EXPECT_EQ(ps[2].cite(), "x.md:10-14");
  EXPECT_EQ(ps[3].heading, "Title > Part A > Deep");
  EXPECT_EQ(ps[3].cite(), "x.md:16-16");
}

// BM25 with k1 = 1.2, b = 0.75 and idf = ln(1 + (N - df + 0.5) / (df + 0.5)) (Lucene's), worked
// out by hand for three one-line passages.
TEST(AskPlugins, Bm25Arithmetic) {
  DocIndex ix;
  ix.add({"a", 1, 1, "", "apple banana"});
  ix.add({"b", 1, 1, "", "apple apple cherry date"});
  ix.add({"c", 1, 1, "", "egg"});
  const double avg = (2.0 + 4.0 + 1.0) / 3.0, k1 = 1.2, b = 0.75;
  const double idf_apple = std::log(1 + (3 - 2 + 0.5) / (2 + 0.5));
  auto term = [&](double tf, double len, double idf) {
    return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg));
  };
  const auto hits = ix.search("apple", 5);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].passage->file, "b");  // tf 2 beats the shorter passage with tf 1
  EXPECT_NEAR(hits[0].score, term(2, 4, idf_apple), 1e-12);
  EXPECT_NEAR(hits[1].score, term(1, 2, idf_apple), 1e-12);
  const double idf_rare = std::log(1 + (3 - 1 + 0.5) / (1 + 0.5));
  const auto h2 = ix.search("banana apple", 5);
  ASSERT_FALSE(h2.empty());
  EXPECT_EQ(h2[0].passage->file, "a");
  EXPECT_NEAR(h2[0].score, term(1, 2, idf_apple) + term(1, 2, idf_rare), 1e-12);
  EXPECT_TRUE(ix.search("zebra", 5).empty());
}

TEST(AskPlugins, MusicDocumentsAnswerDefinitionsAndPolicies) {
  const auto p = Plugins::load(kMusic / "plugins.yaml");
  ASSERT_GE(p.docs.size(), 8u);
  auto top = [&](const std::string& q) {
    const auto h = p.docs.search(q, 3);
    return h.empty() ? std::string("(none)") : h[0].passage->heading;
  };
  EXPECT_NE(top("点赞率是什么意思").find("点赞率"), std::string::npos);
  EXPECT_NE(top("How is revenue calculated?").find("Revenue"), std::string::npos);
  EXPECT_NE(top("敏感字段有哪些规定").find("Sensitive"), std::string::npos);
  EXPECT_NE(top("when is the data loaded? freshness").find("freshness"), std::string::npos);
  EXPECT_NE(top("听众数能跨天相加吗").find("Listeners"), std::string::npos);
  const auto h = p.docs.search("点赞率是什么意思", 3);
  EXPECT_EQ(h[0].passage->file, "docs/metrics.md");
  for (auto& x : h) EXPECT_GE(x.score, 0.25 * h[0].score);
}

// With an embedder the cosine ranking joins BM25's: a passage whose text is the query itself has
// cosine 1 and wins even with a random tiny model.
TEST(AskPlugins, EmbeddingsFuseWithBm25) {
  const fs::path dir = fs::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat";
  auto emb = make_model_embedder(yak::model::DecoderModel::load(dir), yak::tok::load_tokenizer(dir));
  const auto v = emb->embed("hello world");
  double norm = 0;
  for (float x : v) norm += static_cast<double>(x) * x;
  EXPECT_NEAR(norm, 1.0, 1e-5);
  EXPECT_EQ(emb->embed("hello world"), v);
  DocIndex ix;
  ix.add({"a", 1, 1, "", "zebra crossing rules"});
  ix.add({"b", 1, 1, "", "quiet evening by the river"});
  ix.add({"c", 1, 1, "", "zebra zebra zebra stripes"});
  EXPECT_EQ(ix.search("quiet evening by the river", 3)[0].passage->file, "b");
  ix.set_embedder(emb.get());
  const auto hits = ix.search("quiet evening by the river", 3);
  ASSERT_EQ(hits.size(), 3u);  // fusion ranks every passage
  EXPECT_EQ(hits[0].passage->file, "b");
  EXPECT_NEAR(hits[0].score, 2.0 / 61.0, 1e-12);  // first by BM25 and by cosine
}

TEST(AskPlugins, PluginFileErrorsNameTheLine) {
  auto parse = [](const std::string& y) { return error_of([&] { PluginConfig::parse(y, "p.yaml", "."); }); };
  EXPECT_NE(parse("documnets: [a]\n").find("p.yaml:1: unknown field 'documnets'"), std::string::npos);
  EXPECT_NE(parse("plugins:\n  - name: x\n    command: c\n").find("p.yaml:2: missing field 'description'"),
            std::string::npos);
  EXPECT_NE(parse("plugins:\n  - {name: x, description: d}\n").find("needs 'command' or 'url'"), std::string::npos);
  EXPECT_NE(parse("plugins:\n  - {name: x, description: d, command: c, url: 'http://h/'}\n").find("(one)"),
            std::string::npos);
  EXPECT_NE(parse("plugins:\n  - {name: docs, description: d, command: c}\n").find("reserved"), std::string::npos);
  EXPECT_NE(parse("plugins:\n  - {name: x, description: d, command: c, timeout: -1}\n").find("'timeout'"),
            std::string::npos);
  EXPECT_NE(parse("plugins:\n  - {name: x, description: d, command: c}\n  - {name: x, description: d, command: c}\n")
                .find("defined twice"),
            std::string::npos);
  EXPECT_NE(parse("plugins: [: bad\n").find("bad YAML"), std::string::npos);
  const auto missing = error_of([] { DocIndex::build({"nope"}, "/nonexistent-base"); });
  EXPECT_NE(missing.find("nope: no such document"), std::string::npos) << missing;
}

TEST(AskPlugins, FunctionPluginsOverCommandAndHttp) {
  const auto p = Plugins::load(kMusic / "plugins.yaml");
  ASSERT_EQ(p.config.functions.size(), 1u);
  const auto& fx = p.config.functions[0];
  EXPECT_GE(plugin_score(fx, "美元兑人民币汇率是多少"), 0.99);
  EXPECT_GE(plugin_score(fx, "What's the exchange rate of USD?"), 0.5);
  EXPECT_LT(plugin_score(fx, "2024年各平台的播放量"), 0.3);
  const auto r = call_plugin(fx, "美元汇率", *Date::parse("2024-12-31"), {});
  EXPECT_NE(r.text.find("USD"), std::string::npos);
  ASSERT_EQ(r.table.columns, (std::vector<std::string>{"currency", "cny"}));
  ASSERT_EQ(r.table.rows.size(), 3u);
  EXPECT_DOUBLE_EQ(r.table.rows[0][1].as_double(), 7.10);

  // HTTP: the request carries the question, today and the mapped elements.
  yak::http::Server srv;
  Json seen;
  srv.post("/fx", [&](const std::string& body) {
    seen = Json::parse(body);
    return yak::http::Response{200, R"({"text": "ok from http"})"};
  });
  srv.post("/bad", [](const std::string&) {
    return yak::http::Response{200, R"({"columns": ["a"], "rows": [[1, 2]]})"};
  });
  srv.post("/down", [](const std::string&) { return yak::http::Response{503, "busy"}; });
  const int port = srv.bind("127.0.0.1", 0);
  std::thread th([&] { srv.run(); });
  srv.wait_until_running();
  FunctionPlugin h{"h", "d", {}, "", "", "http://127.0.0.1:" + std::to_string(port) + "/fx", 5, 0.5};
  Mapping m;
  m.elements.push_back({Element::Kind::Metric, "plays", "", "", "播放量", 0, 3});
  EXPECT_EQ(call_plugin(h, "q?", *Date::parse("2024-12-31"), m).text, "ok from http");
  EXPECT_EQ(seen["plugin"], "h");
  EXPECT_EQ(seen["question"], "q?");
  EXPECT_EQ(seen["today"], "2024-12-31");
  EXPECT_EQ(seen["elements"]["elements"][0]["name"], "plays");
  h.url = "http://127.0.0.1:" + std::to_string(port) + "/bad";
  EXPECT_NE(error_of([&] { call_plugin(h, "q", {}, {}); }).find("every row should be a list of 1 cells"),
            std::string::npos);
  h.url = "http://127.0.0.1:" + std::to_string(port) + "/down";
  EXPECT_NE(error_of([&] { call_plugin(h, "q", {}, {}); }).find("answered HTTP 503"), std::string::npos);
  srv.stop();
  th.join();

  FunctionPlugin slow{"slow", "d", {}, "sleep 5", "", "", 0.2, 0.5};
  EXPECT_NE(error_of([&] { call_plugin(slow, "q", {}, {}); }).find("killed"), std::string::npos);
  FunctionPlugin junk{"junk", "d", {}, "echo not json", "", "", 5, 0.5};
  EXPECT_NE(error_of([&] { call_plugin(junk, "q", {}, {}); }).find("plug-in 'junk' answer"), std::string::npos);
  FunctionPlugin failing{"failing", "d", {}, "exit 3", "", "", 5, 0.5};
  EXPECT_NE(error_of([&] { call_plugin(failing, "q", {}, {}); }).find("exited with status 3"), std::string::npos);
}

TEST(AskPlugins, DefinitionWords) {
  for (const char* q : {"点赞率是什么意思", "收入口径", "What does like rate mean?", "data policy on gender",
                        "How is revenue calculated?"})
    EXPECT_TRUE(asks_for_definition(q)) << q;
  for (const char* q : {"2024年各平台的播放量", "top 10 artists by plays", "每月收入趋势"})
    EXPECT_FALSE(asks_for_definition(q)) << q;
}

TEST(AskPlugins, AskerRoutesBetweenDocumentsPluginsAndData) {
  const auto dir = fs::temp_directory_path() / ("yak_ask_plugins_" + std::to_string(::getpid()));
  write_demo_database(dir / "music.db");
  SqliteDb db(dir / "music.db");
  Asker asker(SemanticModel::load(kMusic / "semantic.yaml"), db);
  const auto plugins = Plugins::load(kMusic / "plugins.yaml");
  AskOptions o;
  o.today = *Date::parse("2024-12-31");
  o.plugins = &plugins;

  const auto d = asker.ask("点赞率是什么意思", o);
  ASSERT_TRUE(d.understood);
  EXPECT_EQ(d.path, "docs");
  ASSERT_FALSE(d.citations.empty());
  EXPECT_EQ(d.citations[0].passage.file, "docs/metrics.md");
  EXPECT_TRUE(d.sql.empty());
  const auto j = d.to_json();
  EXPECT_EQ(j["path"], "docs");
  EXPECT_TRUE(j["citations"][0]["source"].get<std::string>().rfind("docs/metrics.md:", 0) == 0);

  const auto f = asker.ask("美元兑人民币汇率是多少", o);
  ASSERT_TRUE(f.understood);
  EXPECT_EQ(f.path, "plugin:fx_rate");
  EXPECT_EQ(f.result.rows.size(), 3u);

  const auto q = asker.ask("2024年各平台的播放量", o);
  ASSERT_TRUE(q.understood);
  EXPECT_EQ(q.path, "rule");
  EXPECT_EQ(q.result.rows.size(), 4u);

  // Not understood by rules or description: the chat model routes it.
  yak::testing::ScriptedChatServer s;
  s.on("换算成美金", {R"({"route": "fx_rate"})"});
  s.on("用户隐私", {"```json\n{\"route\": \"docs\"}\n```"});
  s.on("随便", {R"({"route": "weather"})"});  // no such route: back to the data path
  s.on("Question: 随便", {R"({"metrics": ["plays"]})"});
  auto chat = make_openai_chat(s.base_url(), "m", 5, 0);
  LlmParser llm(*chat, {});
  o.llm = &llm;
  EXPECT_EQ(asker.ask("收入换算成美金", o).path, "plugin:fx_rate");
  const auto priv = asker.ask("用户隐私与敏感字段", o);
  EXPECT_EQ(priv.path, "docs");
  const auto other = asker.ask("随便", o);
  EXPECT_EQ(other.path, "llm");
  EXPECT_TRUE(other.understood) << other.message;
  fs::remove_all(dir);
}

// The knowledge base reads dimension values once; refresh_knowledge() picks up rows added since
// (a new artist becomes a recognised value, and questions about it get answered).
TEST(AskKnowledge, RefreshPicksUpNewValues) {
  const auto dir = fs::temp_directory_path() / ("yak_ask_refresh_" + std::to_string(::getpid()));
  write_demo_database(dir / "music.db");
  SqliteDb db(dir / "music.db");
  Asker asker(SemanticModel::load(kMusic / "semantic.yaml"), db);
  AskOptions o;
  o.today = *Date::parse("2024-12-31");
  o.use_rollups = false;  // the demo's rollup tables are copies made once; the new rows are only in the base
  const std::string q = "新人歌手甄好听的播放量";
  EXPECT_FALSE(asker.ask(q, o).understood);
  const size_t before = asker.knowledge().size();
  {
    SqliteDb w(dir / "music.db", /*writable=*/true);
    w.exec("INSERT INTO artists VALUES (9001, '甄好听', 'Haoting Zhen', '女', '中国内地', '流行', 1, 2024)");
    w.exec("INSERT INTO songs VALUES (90001, '新歌', 9001, NULL, 'zh', 200, '2024-12-01')");
    w.exec("INSERT INTO daily_plays VALUES ('2024-12-02', 'QQ音乐', 90001, 1234, 5, 1, 100)");
  }
  EXPECT_FALSE(asker.ask(q, o).understood);  // not known yet
  EXPECT_GT(asker.refresh_knowledge(), before);
  const auto a = asker.ask(q, o);
  ASSERT_TRUE(a.understood) << a.message;
  ASSERT_EQ(a.result.rows.size(), 1u);
  EXPECT_EQ(a.result.rows[0][0].i, 1234);
  fs::remove_all(dir);
}
