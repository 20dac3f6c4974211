// The rule path on the music demo: execution accuracy against the hand-written reference SQL of
// examples/music/questions.jsonl (and of the held-out examples/music/heldout.jsonl), and latency
// per question (map + rules + translate + guard, and the same plus running the SQL), p50/p99 over
// repeated rounds.
//   bench_ask [ROUNDS] [DB_URL]
// DB_URL (clickhouse://... or mysql://...) answers on a server that `yak ask demo --db DB_URL`
// loaded; the reference SQL always runs on the generated SQLite file.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include "yak/ask/ask.h"
#include "yak/ask/demo.h"
#include "yak/ask/eval.h"
#include "yak/ask/rule_parser.h"
#include "yak/ask/sqlite_db.h"
#include "yak/base/utf8.h"

using namespace yak::ask;
using Clock = std::chrono::steady_clock;

static double ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

static double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 20;
  const auto dir = std::filesystem::temp_directory_path() / "yak_bench_ask";
  auto t0 = Clock::now();
  const auto st = write_demo_database(dir / "music.db");
  auto t1 = Clock::now();
  std::printf("demo database: %.1f MB, %lld daily_plays rows, built in %.0f ms\n", static_cast<double>(st.bytes) / 1e6,
              static_cast<long long>(st.daily_plays), ms(t0, t1));
  SqliteDb ref_db(dir / "music.db");
  std::unique_ptr<Database> server;
  if (argc > 2) server = open_database(argv[2]);
  Database& db = server ? *server : ref_db;
  std::printf("answering on %s\n",
              server ? (redact_url(argv[2]) + " (" + db.server() + ")").c_str() : db.server().c_str());
  const auto dialect = dialect_for(db.dialect());
  t0 = Clock::now();
  Asker asker(SemanticModel::load(std::filesystem::path(YAK_SOURCE_DIR) / "examples/music/semantic.yaml"), db);
  t1 = Clock::now();
  std::printf("knowledge base: %zu entries, built in %.1f ms\n", asker.knowledge().size(), ms(t0, t1));
  AskOptions opt;
  opt.today = *Date::parse("2024-12-31");
  opt.max_rows = 100000;
  QueryOptions ref;
  ref.max_rows = 100000;
  auto accuracy = [&](const std::filesystem::path& file, const char* title) {
    const auto qs = load_questions(file);
    std::map<std::string, std::pair<int, int>> by_type;
    int right = 0;
    for (auto& q : qs) {
      const auto got = asker.ask(q.question, opt);
      const bool ok = got.understood && same_result(got.result, ref_db.query(q.sql, {}, ref), q.ordered);
      auto& t = by_type[q.type];
      t.first += ok, ++t.second, right += ok;
    }
    std::printf("execution accuracy (rule path), %s:\n", title);
    for (auto& [type, n] : by_type)
      std::printf("  %-20s %2d/%2d  %5.1f%%\n", type.c_str(), n.first, n.second, 100.0 * n.first / n.second);
    std::printf("  %-20s %2d/%2zu  %5.1f%%\n", "all", right, qs.size(), 100.0 * right / static_cast<double>(qs.size()));
    return qs;
  };
  const std::filesystem::path music = std::filesystem::path(YAK_SOURCE_DIR) / "examples/music";
  const auto qs = accuracy(music / "questions.jsonl", "example questions (written with the rules)");
  if (std::filesystem::exists(music / "heldout.jsonl"))
    accuracy(music / "heldout.jsonl", "held-out questions (written after the rules, never used to tune them)");

  // Latency with the rollups of semantic.yaml, and reading daily_plays for every question.
  for (const bool rollups : {false, true}) {
    opt.use_rollups = rollups;
    std::vector<double> parse, total;
    std::vector<std::pair<double, std::string>> slowest;
    for (int r = 0; r < rounds; ++r)
      for (auto& q : qs) {
        const auto a = Clock::now();
        const auto m = map_question(q.question, asker.knowledge(), opt.today);
        const auto rr = parse_rules(m, asker.model());
        TranslateOptions to;
        to.use_rollups = rollups;
        if (rr.understood) translate(rr.dsl, asker.model(), *dialect, to);
        const auto b = Clock::now();
        asker.ask(q.question, opt);
        const auto c = Clock::now();
        parse.push_back(ms(a, b));
        total.push_back(ms(b, c));
        if (r == 0) slowest.push_back({ms(b, c), q.question});
      }
    std::sort(slowest.rbegin(), slowest.rend());
    std::printf(
        "rollups %-3s latency over %zu answers: question -> SQL p50 %.3f ms, p99 %.3f ms; question -> rows p50 "
        "%.2f ms, p99 %.2f ms, max %.2f ms\n",
        rollups ? "on" : "off", total.size(), pct(parse, 0.5), pct(parse, 0.99), pct(total, 0.5), pct(total, 0.99),
        pct(total, 1.0));
    std::printf("  slowest: ");
    for (size_t i = 0; i < 3 && i < slowest.size(); ++i)
      std::printf("%s (%.1f ms)  ", slowest[i].second.c_str(), slowest[i].first);
    std::printf("\n");
  }

  // The knowledge base at scale: the demo's names plus 50 000 generated song titles (Chinese and
  // English), then lookups of exact, prefix and misspelled titles and whole questions naming one.
  {
    KnowledgeBase kb = asker.knowledge();
    // Chinese titles of 2-5 characters from 5 000 common-range ideographs; English ones of 1-3
    // made-up words (consonant-vowel syllables).
    const char* cons = "bcdfghjklmnprstvwyz";
    const char* vows = "aeiou";
    uint64_t x = 42;
    auto rnd = [&] { return x = x * 6364136223846793005ULL + 1442695040888963407ULL, x >> 33; };
    std::vector<std::string> titles;
    const auto b0 = Clock::now();
    while (titles.size() < 50000) {
      std::string t;
      if (titles.size() % 2) {
        for (int k = 0, n = 2 + static_cast<int>(rnd() % 4); k < n; ++k)
          yak::utf8::append(t, 0x4E00 + static_cast<uint32_t>(rnd() % 5000));
      } else {
        for (int w = 0, n = 1 + static_cast<int>(rnd() % 3); w < n; ++w) {
          if (w) t += ' ';
          for (int k = 0, m = 2 + static_cast<int>(rnd() % 2); k < m; ++k) t += cons[rnd() % 19], t += vows[rnd() % 5];
        }
      }
      const auto before = kb.size();
      kb.add({Entry::Kind::Value, {}, t, "song", t});
      if (kb.size() > before) titles.push_back(t);
    }
    const double build_ms = ms(b0, Clock::now());
    std::vector<double> exact, prefix, fuzzy, question;
    for (int i = 0; i < 2000; ++i) {
      const auto& t = titles[rnd() % titles.size()];
      const auto key = normalize(t);
      auto a = Clock::now();
      kb.search_key(key, 10);
      auto b = Clock::now();
      kb.search_key(key.substr(0, key.size() * 3 / 4 + 1), 10);
      auto c = Clock::now();
      auto typo = key;
      typo[typo.size() / 2] = U'x';
      kb.search_key(typo, 10);
      auto d = Clock::now();
      map_question(t + "的播放量", kb, opt.today);
      auto e = Clock::now();
      exact.push_back(ms(a, b)), prefix.push_back(ms(b, c)), fuzzy.push_back(ms(c, d)), question.push_back(ms(d, e));
    }
    std::printf(
        "knowledge base with 50000 more values (%zu entries, added in %.0f ms): lookup p50/p99 exact %.3f/%.3f ms, "
        "prefix %.3f/%.3f ms, misspelled %.3f/%.3f ms; mapping a question naming one %.3f/%.3f ms\n",
        kb.size(), build_ms, pct(exact, 0.5), pct(exact, 0.99), pct(prefix, 0.5), pct(prefix, 0.99), pct(fuzzy, 0.5),
        pct(fuzzy, 0.99), pct(question, 0.5), pct(question, 0.99));
  }
  std::filesystem::remove_all(dir);
}
