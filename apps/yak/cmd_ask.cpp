#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "ask_service.h"
#include "common.h"
#include "yak/ask/ask.h"
#include "yak/ask/demo.h"
#include "yak/ask/eval.h"
#include "yak/ask/loader.h"
#include "yak/ask/sqlite_db.h"
#include "yak/base/http.h"
#include "yak/io/hf_config.h"
#include "yak/model/decoder.h"

namespace yak::cli {

namespace {

std::string describe(const ask::Element& e) {
  std::string s = std::string(ask::element_kind_name(e.kind)) + " '" + e.text + "'";
  switch (e.kind) {
    case ask::Element::Kind::Value:
      s += " " + e.dimension + "=" + e.value;
      break;
    case ask::Element::Kind::Date:
      s += " " + e.range.start.str() + ".." + e.range.end.str();
      break;
    case ask::Element::Kind::Number:
      s += " " + std::to_string(e.number);
      break;
    default:
      if (!e.name.empty() && e.name != e.text) s += " " + e.name;
  }
  if (e.how != "exact") s += " (" + e.how + ")";
  return s;
}

// Prints one answer; false when the question was not understood.
bool print_answer(const ask::Answer& a, const std::string& format, const std::string& chart) {
  if (format == "json") {
    std::printf("%s\n", a.to_json().dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
  } else if (format == "csv") {
    if (a.understood) std::fputs(ask::format_csv(a.result).c_str(), stdout);
  } else {
    std::printf("question: %s\n", a.question.c_str());
    std::string mapped;
    for (auto& e : a.mapping.elements) mapped += (mapped.empty() ? "" : " | ") + describe(e);
    std::printf("mapped:   %s\n", mapped.empty() ? "(nothing)" : mapped.c_str());
    if (a.path != "rule") std::printf("path:     %s\n", a.path.c_str());
    for (auto& n : a.notes) std::printf("note:     %s\n", n.c_str());
    if (a.understood && !a.text.empty()) {
      std::printf("\n%s\n", a.text.c_str());
      int n = 0;
      for (auto& c : a.citations)
        std::printf("  [%d] %s%s (score %.3g)\n", ++n, c.passage.cite().c_str(),
                    c.passage.heading.empty() ? "" : (" " + c.passage.heading).c_str(), c.score);
    }
    if (a.understood && a.sql.empty() && !a.result.columns.empty())
      std::printf("\n%s", ask::format_table(a.result).c_str());
    if (a.understood && !a.sql.empty()) {
      std::printf("dsl:      %s\n", a.dsl.to_json().dump().c_str());
      std::printf("sql:      %s\n", a.sql.c_str());
      if (!a.params.empty()) {
        std::string p;
        for (auto& v : a.params) p += (p.empty() ? "" : ", ") + v.to_string();
        std::printf("params:   %s\n", p.c_str());
      }
      std::printf("\n%s", ask::format_table(a.result).c_str());
    }
  }
  if (!a.understood) {
    std::fflush(stdout);
    std::fprintf(stderr, "yak: %s\n", a.message.c_str());
    return false;
  }
  if (!chart.empty()) {
    // Table output keeps the chart line with the answer; json and csv keep stdout clean.
    std::FILE* to = format == "table" ? stdout : stderr;
    if (ask::write_chart(chart, a))
      std::fprintf(to, "chart: %s\n", chart.c_str());
    else
      std::fprintf(to, "chart: none (the answer has one row or no numbers)\n");
  }
  return true;
}

http::Server* g_ask_server = nullptr;
void stop_ask_server(int) {
  if (g_ask_server) g_ask_server->stop();
}

}  // namespace

void register_ask(CLI::App& app) {
  auto f = std::make_shared<AskFlags>();
  auto* a = app.add_subcommand(
      "ask", "Answer a question (Chinese or English) with SQL over a database through a semantic model");
  a->add_option("question", f->question, "The question");
  a->add_option("--semantic", f->semantic, "Semantic model (YAML)");
  a->add_option("--db", f->db,
                "Database: sqlite:PATH, clickhouse://[USER[:PASS]@]HOST:PORT/DB or mysql://USER[:PASS]@HOST:PORT/DB");
  a->add_option("--today", f->today, "Date that relative dates count from (YYYY-MM-DD; default: today)");
  a->add_option("--format", f->format, "Output: table, json or csv")->check(CLI::IsMember({"table", "json", "csv"}));
  a->add_option("--chart", f->chart, "Write a PNG chart for trends (line) and rankings (bar)");
  f->add_query_options(*a);
  auto lf = std::make_shared<LlmFlags>();
  lf->add(*a);
  auto confirm = std::make_shared<bool>(false);
  a->add_flag("--confirm", *confirm, "Add the answered question and its DSL to the --fewshot file");
  a->footer("Exit codes: 0 answered, 2 bad input, 3 question not understood (eval: 4 below --min-accuracy).");

  auto dir = std::make_shared<std::string>("music-demo");
  auto demo_db = std::make_shared<std::string>();
  auto* demo = a->add_subcommand("demo", "Build the music demo database and answer its example questions");
  demo->add_option("--dir", *dir, "Folder for music.db and semantic.yaml");
  demo->add_option("--db", *demo_db,
                   "Also copy the demo into this server (clickhouse://... or mysql://...) and answer there");
  demo->callback([dir, demo_db] {
    const std::filesystem::path d = *dir;
    std::filesystem::create_directories(d);
    const auto t0 = std::chrono::steady_clock::now();
    const auto st = ask::write_demo_database(d / "music.db");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    {
      std::ofstream y(d / "semantic.yaml", std::ios::binary);
      y << ask::demo_semantic_yaml();
      check(static_cast<bool>(y), (d / "semantic.yaml").string() + ": cannot write");
    }
    std::printf("demo database: %s (%.1f MB, %.2f s): %lld artists, %lld albums, %lld songs, %lld daily_plays rows\n",
                (d / "music.db").string().c_str(), static_cast<double>(st.bytes) / 1e6, secs,
                static_cast<long long>(st.artists), static_cast<long long>(st.albums), static_cast<long long>(st.songs),
                static_cast<long long>(st.daily_plays));
    std::printf("semantic model: %s\n", (d / "semantic.yaml").string().c_str());
    std::string url = "sqlite:" + (d / "music.db").string();
    if (!demo_db->empty()) {
      ask::SqliteDb src(d / "music.db");
      auto dst = ask::open_database(*demo_db, /*writable=*/true);
      const auto t1 = std::chrono::steady_clock::now();
      const auto cs = ask::copy_database(src, ask::SemanticModel::load(d / "semantic.yaml"), *dst);
      std::printf("loaded into %s (%s): %lld tables, %lld rows in %.2f s\n", ask::redact_url(*demo_db).c_str(),
                  dst->server().c_str(), static_cast<long long>(cs.tables), static_cast<long long>(cs.rows),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
      url = *demo_db;
    }
    std::printf("\n");
    auto db = ask::open_database(url);
    ask::Asker asker(ask::SemanticModel::load(d / "semantic.yaml"), *db);
    ask::AskOptions o;
    o.today = *ask::Date::parse(ask::kDemoToday);
    o.max_rows = 12;
    int n = 0;
    for (auto& q : ask::demo_questions()) {
      const auto ans = asker.ask(q, o);
      const auto chart = (d / ("chart" + std::to_string(++n) + ".png")).string();
      print_answer(ans, "table", ans.dsl.rule == "trend" || ans.dsl.rule == "topn" ? chart : "");
      std::printf("\n");
    }
    std::printf("try: yak ask \"2024年各平台的收入\" --semantic %s --db %s --today %s\n",
                (d / "semantic.yaml").string().c_str(), ask::redact_url(url).c_str(), ask::kDemoToday);
  });

  // Execution accuracy of any database against reference SQL run on a SQLite copy.
  struct EvalFlags {
    std::string semantic, db, reference, questions, today = ask::kDemoToday;
    double min_accuracy = 0;
  };
  auto ef = std::make_shared<EvalFlags>();
  auto* ev = a->add_subcommand(
      "eval", "Answer questions (JSONL with reference SQL) on --db and compare with the reference SQL on --reference");
  ev->add_option("--semantic", ef->semantic, "Semantic model (YAML)")->required();
  ev->add_option("--db", ef->db, "Database the questions are answered on")->required();
  ev->add_option("--reference", ef->reference, "SQLite database the reference SQL runs on (sqlite:PATH)")->required();
  ev->add_option("--questions", ef->questions, "Questions: JSONL with id, type, question, sql, ordered")->required();
  ev->add_option("--today", ef->today, "Date that relative dates count from (YYYY-MM-DD)");
  ev->add_option("--min-accuracy", ef->min_accuracy, "Exit 4 when the accuracy is below this (0..1)");
  auto elf = std::make_shared<LlmFlags>();
  elf->add(*ev);
  ev->callback([ef, elf] {
    const auto today = ask::Date::parse(ef->today);
    check(today.has_value(), "--today '" + ef->today + "': expected a date YYYY-MM-DD");
    const auto questions = ask::load_questions(ef->questions);
    check(!questions.empty(), ef->questions + ": no questions");
    ask::SqliteDb ref(ask::sqlite_path_from_url(ef->reference));
    auto db = ask::open_database(ef->db);
    ask::Asker asker(ask::SemanticModel::load(ef->semantic), *db);
    ask::AskOptions o;
    o.today = *today;
    o.max_rows = 100000;
    LlmSetup llm(*elf, 0);
    llm.apply(o, *elf);
    int via_llm = 0, via_llm_right = 0;
    ask::QueryOptions ro;
    ro.max_rows = 100000;
    std::map<std::string, std::pair<int, int>> by_type;
    int right = 0;
    for (auto& q : questions) {
      const auto want = ref.query(q.sql, {}, ro);
      std::string why;
      bool ok = false;
      try {
        const auto got = asker.ask(q.question, o);
        why = got.message;
        ok = got.understood && ask::same_result(got.result, want, q.ordered, &why);
        if (got.path == "llm") via_llm++, via_llm_right += ok;
        if (!ok) why += "\n     sql: " + got.sql;
      } catch (const Error& e) {
        why = e.what();
      }
      auto& t = by_type[q.type];
      ++t.second;
      if (ok)
        ++t.first, ++right;
      else
        std::printf("MISS %d [%s] %s: %s\n", q.id, q.type.c_str(), q.question.c_str(), why.c_str());
    }
    std::printf("execution accuracy on %s (%s):\n", ask::redact_url(ef->db).c_str(), db->server().c_str());
    for (auto& [type, n] : by_type)
      std::printf("  %-20s %2d/%2d  %5.1f%%\n", type.c_str(), n.first, n.second, 100.0 * n.first / n.second);
    const double acc = static_cast<double>(right) / static_cast<double>(questions.size());
    std::printf("  %-20s %2d/%2zu  %5.1f%%\n", "all", right, questions.size(), 100 * acc);
    if (llm.parser)
      std::printf("  the model (%s) answered %d questions, %d right\n", llm.chat->name().c_str(), via_llm,
                  via_llm_right);
    std::fflush(stdout);
    if (acc < ef->min_accuracy) std::exit(4);
  });

  // A long-running service: questions over HTTP, the knowledge base refreshed on demand or on a
  // timer (new songs and artists become recognisable without a restart).
  struct ServeFlags {
    std::string host = "127.0.0.1";
    int port = 8080;
    double refresh_seconds = 0;
  };
  auto sf = std::make_shared<ServeFlags>();
  auto sfl = std::make_shared<AskFlags>();
  auto slf = std::make_shared<LlmFlags>();
  auto* sv = a->add_subcommand(
      "serve", "Answer questions over HTTP: POST /api/ask {\"question\"}, POST /api/refresh, GET /api/health");
  sv->add_option("--semantic", sfl->semantic, "Semantic model (YAML)")->required();
  sv->add_option("--db", sfl->db, "Database URL")->required();
  sv->add_option("--today", sfl->today,
                 "Date that relative dates count from (default: today; requests may give \"today\")");
  sfl->add_query_options(*sv);
  sv->add_option("--host", sf->host, "Address to listen on");
  sv->add_option("--port", sf->port, "Port (0: any free port; the URL is printed)");
  sv->add_option("--refresh-seconds", sf->refresh_seconds,
                 "Re-read dimension values this often (0: only on POST /api/refresh)");
  slf->add(*sv);
  sv->callback([sf, sfl, slf] {
    AskService service(*sfl, *slf);
    http::Server server;
    service.mount([&](const std::string& method, const std::string& path, http::Server::Route r) {
      server.route(method, path, std::move(r));
    });
    const int port = server.bind(sf->host, sf->port);
    std::printf("listening on http://%s:%d/api/ask (%zu knowledge-base entries)\n", sf->host.c_str(), port,
                service.entries());
    std::fflush(stdout);
    g_ask_server = &server;
    std::signal(SIGINT, stop_ask_server);
    std::signal(SIGTERM, stop_ask_server);
    std::atomic<bool> done{false};
    std::thread timer;
    if (sf->refresh_seconds > 0)
      timer = std::thread([&] {
        auto next = std::chrono::steady_clock::now();
        while (!done) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          if (std::chrono::steady_clock::now() - next < std::chrono::duration<double>(sf->refresh_seconds)) continue;
          next = std::chrono::steady_clock::now();
          try {
            service.refresh();
          } catch (const Error& e) {
            std::fprintf(stderr, "yak: knowledge-base refresh failed: %s\n", e.what());
          }
        }
      });
    server.run();
    done = true;
    if (timer.joinable()) timer.join();
    g_ask_server = nullptr;
  });

  a->callback([a, demo, ev, sv, f, lf, confirm] {
    if (demo->parsed() || ev->parsed() || sv->parsed()) return;
    check(!f->question.empty(), "ask: expected a question (or: yak ask demo)");
    check(!f->semantic.empty(), "ask: --semantic FILE is required");
    check(!f->db.empty(), "ask: --db URL is required (sqlite:PATH, clickhouse://..., mysql://...)");
    auto opt = options(*f);
    check(!*confirm || !lf->fewshot.empty(), "--confirm needs --fewshot FILE to add the question to");
    auto db = ask::open_database(f->db);
    ask::Asker asker(ask::SemanticModel::load(f->semantic), *db);
    LlmSetup llm(*lf, 0);
    llm.apply(opt, *lf);
    const auto ans = asker.ask(f->question, opt);
    if (*confirm && ans.understood && !ans.sql.empty()) {
      llm.store.add(f->question, ans.dsl);
      std::fprintf(f->format == "table" ? stdout : stderr, "confirmed: added to %s\n", lf->fewshot.c_str());
    }
    if (!print_answer(ans, f->format, f->chart)) {
      std::fflush(stdout);
      std::fflush(stderr);
      std::exit(3);
    }
  });
}

}  // namespace yak::cli
