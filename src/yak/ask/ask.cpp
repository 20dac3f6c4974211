#include "yak/ask/ask.h"

#include <algorithm>
#include <cmath>

#include "yak/ask/rule_parser.h"
#include "yak/base/error.h"
#include "yak/base/png.h"
#include "yak/base/utf8.h"

namespace yak::ask {

Json Answer::to_json() const {
  Json j = {{"question", question},
            {"dsl", understood ? dsl.to_json() : Json(nullptr)},
            {"sql", sql},
            {"columns", result.columns},
            {"path", path}};
  Json rows = Json::array();
  for (auto& row : result.rows) {
    Json r = Json::array();
    for (auto& v : row) r.push_back(v.to_json());
    rows.push_back(r);
  }
  j["rows"] = rows;
  if (!understood) j["error"] = message;
  if (!notes.empty()) j["notes"] = notes;
  if (!text.empty()) j["text"] = text;
  if (!citations.empty()) {
    Json c = Json::array();
    for (auto& x : citations)
      c.push_back(
          {{"source", x.passage.cite()}, {"heading", x.passage.heading}, {"text", x.passage.text}, {"score", x.score}});
    j["citations"] = c;
  }
  return j;
}

Asker::Asker(SemanticModel model, Database& db)
    : model_(std::move(model)), db_(db), dialect_(dialect_for(db.dialect())) {
  model_.validate_against(db_.schema());
  kb_ = KnowledgeBase::build(model_, &db_);
  for (auto& d : model_.dimensions)
    if (d.sensitive)
      for (auto& b : d.bindings)
        for (auto& c : expr_columns(b.expr)) sensitive_.push_back(b.table + "." + c);
  examples_for(Date{});  // checks them now; the LLM path reads them again for its today
}

size_t Asker::refresh_knowledge() {
  kb_ = KnowledgeBase::build(model_, &db_);
  return kb_.size();
}

std::vector<Example> Asker::examples_for(const Date& today) const {
  // Examples without a DSL are questions the rules must understand; given DSLs must translate.
  std::vector<Example> out;
  for (auto& x : model_.examples) {
    Example e;
    e.question = x.question;
    e.source = "model";
    if (x.dsl.is_null()) {
      const auto r = parse_rules(map_question(x.question, kb_, today), model_);
      check(r.understood, x.where + ": example '" + x.question + "' has no 'dsl' and the rules do not understand it (" +
                              r.message + ")");
      e.dsl = r.dsl;
    } else {
      e.dsl = Dsl::from_json(x.dsl, x.where + ": example '" + x.question + "' dsl");
      try {
        translate(e.dsl, model_, *dialect_, {});
      } catch (const Error& err) {
        throw Error(x.where + ": example '" + x.question + "': " + err.what());
      }
    }
    out.push_back(std::move(e));
  }
  return out;
}

Answer Asker::ask(const std::string& question, const AskOptions& opt) const {
  check(utf8::is_valid(question), "question: not valid UTF-8");
  Answer a;
  a.question = question;
  a.mapping = map_question(question, kb_, opt.today);
  RuleOptions ro;
  ro.threshold = opt.threshold;
  ro.allow_sensitive = opt.allow_sensitive;
  auto r = parse_rules(a.mapping, model_, ro);
  if (opt.plugins) {
    auto p = try_plugins(a, r.understood ? std::optional<Dsl>(r.dsl) : std::nullopt, opt);
    if (p) return std::move(*p);
  }
  if (opt.llm && (!r.understood || opt.llm_always)) {
    LlmResult l;
    try {
      l = opt.llm->parse(question, a.mapping, model_, kb_, examples_for(opt.today), opt.today, opt.allow_sensitive);
    } catch (const Error& e) {
      if (!opt.llm_failure_answers) throw;
      l.message = std::string("the model gave no answer: ") + e.what();
    }
    Answer b;
    if (l.understood) {
      try {
        b = run_dsl(question, l.dsl, opt);
      } catch (const Error& e) {  // e.g. the guard refused it
        b.message = e.what();
      }
    }
    if (!l.understood || !b.understood) {
      // The model did not help: the rules' answer if they had one, else both reasons.
      if (r.understood && opt.llm_always) {
        Answer c = run_dsl(question, r.dsl, opt);
        c.mapping = std::move(a.mapping);
        c.notes.push_back("the model's query failed, answered by the rules: " + (l.understood ? b.message : l.message));
        return c;
      }
      a.message = r.message + "; " + (l.understood ? "the model's query: " + b.message : l.message);
      a.replies = std::move(l.replies);
      a.path = "llm";
      return a;
    }
    b.mapping = std::move(a.mapping);
    b.path = "llm";
    b.notes = std::move(l.notes);
    b.replies = std::move(l.replies);
    return b;
  }
  if (!r.understood) {
    a.message = r.message;
    return a;
  }
  Answer b = run_dsl(question, r.dsl, opt);
  b.mapping = std::move(a.mapping);
  return b;
}

std::optional<Answer> Asker::try_plugins(const Answer& a, const std::optional<Dsl>& rules,
                                         const AskOptions& opt) const {
  const Plugins& P = *opt.plugins;
  auto docs = [&](const std::string& why) -> std::optional<Answer> {
    const auto hits = P.docs.search(a.question, 3);
    if (hits.empty()) return std::nullopt;
    Answer d;
    d.question = a.question;
    d.mapping = a.mapping;
    d.understood = true;
    d.path = "docs";
    for (auto& h : hits) d.citations.push_back({*h.passage, h.score});
    d.text = hits[0].passage->text;
    d.notes.push_back(why);
    return d;
  };
  auto call = [&](const FunctionPlugin& f, const std::string& why) {
    Answer d;
    d.question = a.question;
    d.mapping = a.mapping;
    auto reply = call_plugin(f, a.question, opt.today, a.mapping);
    d.understood = true;
    d.path = "plugin:" + f.name;
    d.text = std::move(reply.text);
    d.result = std::move(reply.table);
    d.notes.push_back(why);
    return d;
  };
  // What a word means or what a rule says: the documents, before any number.
  if (P.docs.size() && asks_for_definition(a.question))
    if (auto d = docs("the question asks for a definition or a rule: passages from the documents")) return d;
  // A function plug-in whose description or examples hold the question better than the rules do.
  const FunctionPlugin* best = nullptr;
  double best_score = 0;
  for (auto& f : P.config.functions) {
    const double s = plugin_score(f, a.question);
    if (s >= f.min_score && s > best_score) best = &f, best_score = s;
  }
  if (best && (!rules || best_score > rules->confidence)) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "plug-in '%s' holds %.0f%% of the question's words", best->name.c_str(),
                  100 * best_score);
    return call(*best, buf);
  }
  // The rules did not understand: the model may route it.
  if (!rules && opt.llm && (P.docs.size() || !P.config.functions.empty())) {
    const auto route = route_with_model(opt.llm->chat(), a.question, P.config.functions, P.docs.size() > 0);
    if (route == "docs") return docs("the model routed the question to the documents");
    for (auto& f : P.config.functions)
      if (f.name == route) return call(f, "the model routed the question to plug-in '" + f.name + "'");
  }
  return std::nullopt;
}

Answer Asker::run_dsl(const std::string& question, const Dsl& dsl, const AskOptions& opt) const {
  Answer a;
  a.question = question;
  a.dsl = dsl;
  Translation tr;
  try {
    TranslateOptions to;
    to.use_rollups = opt.use_rollups && opt.row_filters.empty();
    tr = translate(dsl, model_, *dialect_, to);
  } catch (const Error& e) {
    a.message = std::string("not understood: ") + e.what();
    return a;
  }
  GuardOptions g;
  g.max_limit = opt.max_rows;
  g.schema = db_.schema();
  g.sensitive = sensitive_;
  g.allow_sensitive = opt.allow_sensitive;
  g.row_filters = opt.row_filters;
  g.dialect = dialect_->name();
  const auto checked = guard_sql(tr.sql, g);
  a.sql = checked.sql;
  a.params = tr.params;
  QueryOptions qo;
  qo.max_rows = opt.max_rows;
  qo.timeout_ms = opt.timeout_ms;
  a.result = db_.query(a.sql, a.params, qo);
  a.understood = true;
  return a;
}

namespace {

size_t display_width(const std::string& s) {
  size_t w = 0, i = 0;
  while (i < s.size()) {
    const uint32_t c = utf8::next(s, i);
    w += (c >= 0x1100 && (c <= 0x115F || (c >= 0x2E80 && c <= 0xA4CF) || (c >= 0xAC00 && c <= 0xD7A3) ||
                          (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFF00 && c <= 0xFF60) || (c >= 0x20000)))
             ? 2
             : 1;
  }
  return w;
}

}  // namespace

std::string format_table(const QueryResult& r) {
  std::vector<size_t> w(r.columns.size());
  for (size_t c = 0; c < r.columns.size(); ++c) w[c] = display_width(r.columns[c]);
  for (auto& row : r.rows)
    for (size_t c = 0; c < row.size(); ++c) w[c] = std::max(w[c], display_width(row[c].to_string()));
  auto line = [&](const std::vector<std::string>& cells, const std::vector<bool>& right) {
    std::string s;
    for (size_t c = 0; c < cells.size(); ++c) {
      const std::string pad(w[c] - display_width(cells[c]), ' ');
      s += (c ? "  " : "") + (right[c] ? pad + cells[c] : cells[c] + (c + 1 < cells.size() ? pad : ""));
    }
    return s + "\n";
  };
  std::vector<bool> right(r.columns.size(), false);
  for (size_t c = 0; c < r.columns.size(); ++c)
    right[c] =
        !r.rows.empty() && std::all_of(r.rows.begin(), r.rows.end(), [&](auto& row) { return row[c].is_number(); });
  std::string out = line(r.columns, std::vector<bool>(r.columns.size(), false));
  std::vector<std::string> rule;
  for (auto x : w) rule.push_back(std::string(x, '-'));
  out += line(rule, std::vector<bool>(r.columns.size(), false));
  for (auto& row : r.rows) {
    std::vector<std::string> cells;
    for (auto& v : row) cells.push_back(v.to_string());
    out += line(cells, right);
  }
  out += "(";
  out += std::to_string(r.rows.size()) + (r.rows.size() == 1 ? " row" : " rows") +
         (r.truncated ? ", cut at the row limit)" : ")") + "\n";
  return out;
}

std::string format_csv(const QueryResult& r) {
  auto cell = [](const std::string& s) {
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  std::string out;
  for (size_t c = 0; c < r.columns.size(); ++c) {
    if (c) out += ',';
    out += cell(r.columns[c]);
  }
  out += "\n";
  for (auto& row : r.rows) {
    for (size_t c = 0; c < row.size(); ++c) {
      if (c) out += ',';
      out += cell(row[c].to_string());
    }
    out += "\n";
  }
  return out;
}

bool write_chart(const std::filesystem::path& path, const Answer& a) {
  const auto& r = a.result;
  if (!a.understood || r.rows.size() < 2 || r.columns.size() < 2) return false;
  const size_t vcol = r.columns.size() - 1;  // the first metric after the labels
  size_t label_cols = 0;
  while (label_cols < r.columns.size() && !r.rows[0][label_cols].is_number()) ++label_cols;
  if (label_cols == 0 || label_cols >= r.columns.size()) return false;
  const size_t value_col = label_cols;
  (void)vcol;
  auto ascii = [](const std::string& s) {
    std::string o;
    for (char c : s)
      if (static_cast<unsigned char>(c) < 0x80) o += c;
    return o;
  };
  const std::string title = ascii(a.dsl.metrics.empty() ? r.columns[value_col] : a.dsl.metrics[0]) +
                            (a.dsl.start.empty() ? "" : " " + a.dsl.start + " .. " + a.dsl.end);
  if (!a.dsl.granularity.empty() && label_cols == 1) {
    Series s;
    s.name = ascii(r.columns[value_col]);
    for (size_t i = 0; i < r.rows.size(); ++i) {
      s.x.push_back(static_cast<double>(i + 1));
      s.y.push_back(r.rows[i][value_col].is_number() ? r.rows[i][value_col].as_double() : NAN);
    }
    plot_lines(path, title,
               a.dsl.granularity + " " + r.rows.front()[0].to_string() + " .. " + r.rows.back()[0].to_string(),
               r.columns[value_col], {s});
    return true;
  }
  // Bars, in result order.
  const size_t n = std::min<size_t>(r.rows.size(), 30);
  const int W = 900, H = 480, left = 90, right = 20, top = 40, bottom = 70;
  Image img(W, H);
  double vmax = 0;
  for (size_t i = 0; i < n; ++i)
    if (r.rows[i][value_col].is_number()) vmax = std::max(vmax, r.rows[i][value_col].as_double());
  if (vmax <= 0) vmax = 1;
  const int pw = W - left - right, ph = H - top - bottom;
  img.text((W - Image::text_width(title, 2)) / 2, 10, title, 0x000000, 2);
  img.line(left, top, left, top + ph, 0x000000);
  img.line(left, top + ph, left + pw, top + ph, 0x000000);
  for (int k = 0; k <= 4; ++k) {
    const int y = top + ph - ph * k / 4;
    img.line(left, y, left + pw, y, 0xE6E6E6);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", vmax * k / 4);
    img.text(left - 6 - Image::text_width(buf), y - 3, buf, 0x333333);
  }
  const int slot = pw / static_cast<int>(n), bw = std::max(2, slot * 2 / 3);
  for (size_t i = 0; i < n; ++i) {
    const double v = r.rows[i][value_col].is_number() ? r.rows[i][value_col].as_double() : 0;
    const int h = static_cast<int>(v / vmax * ph);
    const int x0 = left + static_cast<int>(i) * slot + (slot - bw) / 2;
    for (int x = x0; x < x0 + bw; ++x) img.line(x, top + ph, x, top + ph - h, 0x1f77b4);
    std::string label = ascii(r.rows[i][0].to_string());
    if (label.empty() || label.size() * 6 > static_cast<size_t>(slot)) label = std::to_string(i + 1);
    img.text(x0 + bw / 2 - Image::text_width(label) / 2, top + ph + 8, label, 0x333333);
  }
  img.text(left, H - 20, "bars: " + ascii(r.columns[0]) + " in result order (non-ASCII names as rank numbers)",
           0x333333);
  write_png(path, img);
  return true;
}

}  // namespace yak::ask
