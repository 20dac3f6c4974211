#include "yak/ask/llm.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <thread>
#include <unordered_set>

#include "yak/ask/rule_parser.h"
#include "yak/base/error.h"
#include "yak/base/http.h"
#include "yak/infer/engine.h"
#include "yak/model/decoder.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::ask {

// ---- chat models ----------------------------------------------------------------------------

namespace {

class OpenAiChat : public ChatModel {
 public:
  OpenAiChat(std::string base, std::string model, double timeout, int retries)
      : base_(std::move(base)), model_(std::move(model)), timeout_(timeout), retries_(retries) {
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
    http::parse_url(base_);  // refuse a malformed URL up front
    if (model_.empty()) model_ = first_model();
  }
  std::string name() const override { return "openai:" + base_ + " (" + model_ + ")"; }

  std::vector<std::string> complete(const ChatRequest& req) override {
    std::vector<std::string> out;
    // Servers that ignore "n" answer with one choice: ask again until there are enough.
    for (int round = 0; static_cast<int>(out.size()) < req.n; ++round) {
      check(round < req.n,
            who() + ": answered " + std::to_string(out.size()) + " of " + std::to_string(req.n) + " completions");
      Json msgs = Json::array();
      for (auto& m : req.messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
      Json body = {{"model", model_},
                   {"messages", msgs},
                   {"n", req.n - static_cast<int>(out.size())},
                   {"temperature", req.temperature},
                   {"max_tokens", req.max_tokens},
                   {"seed", req.seed + static_cast<uint64_t>(round)}};
      const Json res = post(body.dump());
      check(res.contains("choices") && res["choices"].is_array() && !res["choices"].empty(),
            who() + ": the answer has no 'choices'");
      for (auto& c : res["choices"]) {
        check(c.contains("message") && c["message"].is_object() && c["message"].contains("content"),
              who() + ": a choice has no message content");
        const auto& content = c["message"]["content"];
        out.push_back(content.is_string() ? content.get<std::string>() : std::string());
        if (static_cast<int>(out.size()) == req.n) break;
      }
    }
    return out;
  }

 private:
  std::string who() const { return "chat model " + base_; }

  Json post(const std::string& body) {
    for (int attempt = 0;; ++attempt) {
      try {
        const auto res = http::post(base_ + "/chat/completions", body, "application/json", timeout_);
        if (res.status / 100 != 2) {
          std::string msg = res.body.substr(0, 300);
          try {
            const Json e = Json::parse(res.body);
            if (e.contains("error") && e["error"].is_object() && e["error"].contains("message"))
              msg = e["error"]["message"].dump();
          } catch (const std::exception&) {
          }
          const Error err(who() + " answered HTTP " + std::to_string(res.status) + ": " + msg);
          if (res.status / 100 == 4) throw FatalError(err.what());  // a bad request does not get better
          throw err;
        }
        return parse_json(res.body, who() + " answer");
      } catch (const FatalError& e) {
        throw Error(e.what());
      } catch (const Error&) {
        if (attempt + 1 > retries_) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
      }
    }
  }

  std::string first_model() const {
    const auto res = http::get(base_ + "/models", timeout_);
    check(res.status / 100 == 2,
          who() + ": GET /models answered HTTP " + std::to_string(res.status) + "; name the model with --llm-model");
    const Json j = parse_json(res.body, who() + " /models");
    check(j.contains("data") && j["data"].is_array() && !j["data"].empty() && j["data"][0].contains("id") &&
              j["data"][0]["id"].is_string(),
          who() + ": GET /models lists no model; name one with --llm-model");
    return j["data"][0]["id"].get<std::string>();
  }

  // Thrown inside post() for answers that retrying cannot fix.
  struct FatalError : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  std::string base_, model_;
  double timeout_;
  int retries_;
};

class LocalChat : public ChatModel {
 public:
  LocalChat(std::unique_ptr<model::DecoderModel> model, std::unique_ptr<tok::Tokenizer> tok, tok::ChatTemplate tmpl,
            std::string name)
      : model_(std::move(model)), tok_(std::move(tok)), tmpl_(std::move(tmpl)), name_(std::move(name)) {
    check(tok_ != nullptr, "local chat model " + name_ + ": no tokenizer");
    engine_ = std::make_unique<infer::Engine>(*model_, tok_.get());
  }
  std::string name() const override { return "local:" + name_; }

  std::vector<std::string> complete(const ChatRequest& req) override {
    const std::string text = tmpl_.render(req.messages);
    const auto ids = tok_->encode(text, tmpl_.add_special_tokens());
    const int64_t ctx = model_->config().max_position_embeddings;
    check(static_cast<int64_t>(ids.size()) + req.max_tokens <= ctx,
          "local chat model " + name_ + ": the prompt has " + std::to_string(ids.size()) + " tokens, plus " +
              std::to_string(req.max_tokens) + " to generate exceeds the context of " + std::to_string(ctx));
    std::vector<infer::GenerateRequest> reqs(static_cast<size_t>(req.n));
    for (int i = 0; i < req.n; ++i) {
      auto& g = reqs[static_cast<size_t>(i)];
      g.prompt = ids;
      g.max_new_tokens = req.max_tokens;
      g.stop = tmpl_.stop_strings();
      g.sampling.do_sample = req.temperature > 0;
      g.sampling.temperature = static_cast<float>(req.temperature > 0 ? req.temperature : 1.0);
      g.sampling.seed = req.seed + static_cast<uint64_t>(i);
    }
    std::vector<std::string> out;
    for (auto& r : engine_->generate(reqs)) out.push_back(r.text);
    return out;
  }

 private:
  std::unique_ptr<model::DecoderModel> model_;
  std::unique_ptr<tok::Tokenizer> tok_;
  tok::ChatTemplate tmpl_;
  std::string name_;
  std::unique_ptr<infer::Engine> engine_;
};

}  // namespace

std::unique_ptr<ChatModel> make_openai_chat(const std::string& base_url, std::string model, double timeout_seconds,
                                            int retries) {
  return std::make_unique<OpenAiChat>(base_url, std::move(model), timeout_seconds, retries);
}

std::unique_ptr<ChatModel> make_local_chat(std::unique_ptr<model::DecoderModel> model,
                                           std::unique_ptr<tok::Tokenizer> tokenizer, tok::ChatTemplate tmpl,
                                           std::string name) {
  return std::make_unique<LocalChat>(std::move(model), std::move(tokenizer), std::move(tmpl), std::move(name));
}

// ---- few-shot examples ----------------------------------------------------------------------

FewShotStore::FewShotStore(std::filesystem::path path) : path_(std::move(path)) {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path_.string() + ":" + std::to_string(n);
    const Json j = parse_json(line, where);
    check(j.is_object(), where + ": expected a JSON object with 'question' and 'dsl'");
    Example e;
    e.question = json_get<std::string>(j, "question", where);
    check(j.contains("dsl"), where + ": missing field 'dsl'");
    e.dsl = Dsl::from_json(j["dsl"], where + " dsl");
    e.source = path_.string();
    examples_.push_back(std::move(e));
  }
}

void FewShotStore::add(const std::string& question, const Dsl& dsl) {
  check(!path_.empty(), "few-shot store: no file to add to");
  Dsl d = dsl;
  d.confidence = 0;
  const Json j = {{"question", question}, {"dsl", d.to_json()}};
  std::ofstream out(path_, std::ios::binary | std::ios::app);
  out << j.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  out.flush();
  check(static_cast<bool>(out), path_.string() + ": cannot append the confirmed question");
  examples_.push_back({question, d, path_.string()});
}

namespace {

std::unordered_set<uint64_t> bigrams_of(const std::string& text) {
  const auto k = normalize(text);
  std::unordered_set<uint64_t> g;
  for (size_t i = 0; i + 1 < k.size(); ++i)
    if (k[i] != U' ' && k[i + 1] != U' ') g.insert((static_cast<uint64_t>(k[i]) << 32) | k[i + 1]);
  return g;
}

}  // namespace

std::vector<const Example*> nearest_examples(const std::string& question, const std::vector<const Example*>& pool,
                                             size_t k) {
  const auto q = bigrams_of(question);
  std::vector<std::pair<double, const Example*>> scored;
  for (const auto* e : pool) {
    const auto g = bigrams_of(e->question);
    size_t common = 0;
    for (auto x : g) common += q.count(x);
    const size_t uni = q.size() + g.size() - common;
    scored.push_back({uni ? static_cast<double>(common) / static_cast<double>(uni) : 0.0, e});
  }
  std::stable_sort(scored.begin(), scored.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::vector<const Example*> out;
  for (size_t i = 0; i < scored.size() && i < k; ++i) out.push_back(scored[i].second);
  return out;
}

// ---- prompt ---------------------------------------------------------------------------------

namespace {

std::string names_of(const std::string& zh, const std::string& en, const std::vector<std::string>& aliases) {
  std::string s;
  auto add = [&](const std::string& w) {
    if (!w.empty()) s += (s.empty() ? "" : ", ") + w;
  };
  add(zh), add(en);
  for (auto& a : aliases) add(a);
  return s;
}

std::string dsl_line(const Dsl& d) {
  Dsl x = d;
  x.rule.clear();
  x.confidence = 0;
  Json j = x.to_json();
  j.erase("rule");
  j.erase("confidence");
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string element_line(const Element& e) {
  std::string s = std::string(element_kind_name(e.kind)) + " \"" + e.text + "\"";
  switch (e.kind) {
    case Element::Kind::Value:
      s += ": " + e.dimension + " = \"" + e.value + "\"";
      break;
    case Element::Kind::Date:
      s += ": " + e.range.start.str() + " .. " + e.range.end.str();
      break;
    case Element::Kind::Number:
      s += ": " + std::to_string(e.number);
      break;
    default:
      if (!e.name.empty()) s += ": " + e.name;
  }
  return s;
}

}  // namespace

std::vector<tok::ChatMessage> build_prompt(const std::string& question, const Mapping& mapping, const SemanticModel& m,
                                           const KnowledgeBase& kb, const std::vector<const Example*>& examples,
                                           const Date& today) {
  std::string sys =
      "You turn questions about data into a JSON query over a semantic model. Use only the names listed "
      "below, never table or column names, and never write SQL.\n\n";
  sys += "Model: " + m.name + (m.description.empty() ? "" : " - " + m.description) +
         "\n\nMetrics (name: words people use):\n";
  for (auto& x : m.metrics)
    sys += "- " + x.name + ": " + names_of(x.zh, x.en, x.aliases) + (x.unit.empty() ? "" : " [" + x.unit + "]") + "\n";
  // A few stored values per categorical dimension show what filters look like.
  std::map<std::string, std::vector<std::string>> samples;
  for (size_t i = 0; i < kb.size(); ++i) {
    const auto& e = kb.entry(static_cast<uint32_t>(i));
    if (e.kind != Entry::Kind::Value) continue;
    auto& v = samples[e.name];
    if (v.size() < 5 && std::find(v.begin(), v.end(), e.value) == v.end()) v.push_back(e.value);
  }
  sys += "\nDimensions (name: words people use):\n";
  for (auto& d : m.dimensions) {
    if (d.sensitive) continue;
    sys += "- " + d.name + (d.time ? " (time, YYYY-MM-DD)" : "") + ": " + names_of(d.zh, d.en, d.aliases);
    if (auto it = samples.find(d.name); it != samples.end()) {
      std::string v;
      for (auto& x : it->second) v += (v.empty() ? "" : ", ") + x;
      sys += "; values such as " + v;
    }
    sys += "\n";
  }
  if (!m.terms.empty()) {
    sys += "\nBusiness terms:\n";
    for (auto& t : m.terms) {
      std::string what;
      for (auto& f : t.filters) {
        std::string vals;
        for (auto& v : f.values) vals += (vals.empty() ? "" : ", ") + v;
        what += (what.empty() ? "" : " and ") + f.dimension + " " + f.op + " " + vals;
      }
      if (!t.metric.empty()) what += (what.empty() ? "" : "; ") + std::string("metric ") + t.metric;
      sys += "- " + names_of(t.name, "", t.aliases) + ": " + what + "\n";
    }
  }
  sys +=
      "\nAnswer with one JSON object and nothing else:\n"
      "{\"query_type\": \"aggregate\" or \"detail\", \"metrics\": [metric names], \"count_distinct\": [dimensions "
      "whose distinct members are counted], \"group_by\": [dimensions; for detail the columns listed], "
      "\"filters\": [{\"dimension\": name, \"op\": \"=\" | \"!=\" | \"<\" | \"<=\" | \">\" | \">=\" | \"in\", "
      "\"values\": [text]}], \"time_dimension\": a time dimension, \"time_range\": [\"YYYY-MM-DD\", "
      "\"YYYY-MM-DD\"] (inclusive), \"granularity\": \"day\" | \"week\" | \"month\" | \"quarter\" | \"year\" for "
      "trends, \"order\": [{\"field\": an output column (metric, dimension, count_<dimension> or the "
      "granularity), \"desc\": true|false}], \"limit\": number (0: no limit)}\n"
      "Leave out fields you do not need. Today is " +
      today.str() + ".";

  std::string user;
  if (!examples.empty()) {
    user += "Examples:\n";
    for (const auto* e : examples) user += "Question: " + e->question + "\nJSON: " + dsl_line(e->dsl) + "\n";
    user += "\n";
  }
  std::string found;
  for (auto& e : mapping.elements)
    if (e.kind != Element::Kind::Word) found += "- " + element_line(e) + "\n";
  if (!found.empty()) user += "Recognised in the question:\n" + found + "\n";
  user += "Question: " + question + "\nJSON:";
  return {{"system", sys}, {"user", user}};
}

// ---- reply and corrector --------------------------------------------------------------------

Json extract_json_object(const std::string& reply) {
  // Try every '{' in order; the first that starts a complete, parseable object wins.
  for (size_t start = reply.find('{'); start != std::string::npos; start = reply.find('{', start + 1)) {
    int depth = 0;
    JsonStringTracker str;
    for (size_t i = start; i < reply.size(); ++i) {
      const char c = reply[i];
      if (str.feed(c)) continue;
      if (c == '{') ++depth;
      if (c == '}' && --depth == 0) {
        try {
          Json j = Json::parse(reply.substr(start, i - start + 1));
          if (j.is_object()) return j;
        } catch (const std::exception&) {
        }
        break;
      }
    }
  }
  return nullptr;
}

namespace {

// The known name of a metric or dimension the model wrote, via the knowledge base.
std::string resolve(const std::string& written, Entry::Kind kind, const SemanticModel& m, const KnowledgeBase& kb,
                    std::vector<std::string>* notes) {
  const bool metric = kind == Entry::Kind::Metric;
  if (metric ? m.metric(written) != nullptr : m.dimension(written) != nullptr) return written;
  std::string spaced = written;
  std::replace(spaced.begin(), spaced.end(), '_', ' ');
  for (const auto& phrase : {written, spaced})
    for (auto& h : kb.search(phrase, 20)) {
      std::string name;
      if (h.entry->kind == kind) name = h.entry->name;
      if (metric && h.entry->kind == Entry::Kind::Term && m.term(h.entry->name) &&
          !m.term(h.entry->name)->metric.empty())
        name = m.term(h.entry->name)->metric;
      if (!name.empty()) {
        if (notes)
          notes->push_back(std::string(metric ? "metric" : "dimension") + " '" + written + "' -> '" + name + "' (" +
                           h.how + ")");
        return name;
      }
    }
  throw Error(std::string("the model used an unknown ") + (metric ? "metric" : "dimension") + " '" + written + "'");
}

void dedupe(std::vector<std::string>& v) {
  std::vector<std::string> out;
  for (auto& x : v)
    if (std::find(out.begin(), out.end(), x) == out.end()) out.push_back(x);
  v = std::move(out);
}

}  // namespace

Dsl correct_dsl(Dsl d, const Mapping& mp, const SemanticModel& m, const KnowledgeBase& kb, bool allow_sensitive,
                std::vector<std::string>* notes) {
  auto note = [&](const std::string& s) {
    if (notes) notes->push_back(s);
  };
  for (auto& x : d.metrics) x = resolve(x, Entry::Kind::Metric, m, kb, notes);
  for (auto* list : {&d.group_by, &d.count_distinct})
    for (auto& x : *list) x = resolve(x, Entry::Kind::Dimension, m, kb, notes);
  dedupe(d.metrics), dedupe(d.group_by), dedupe(d.count_distinct);
  for (auto& f : d.filters) {
    f.dimension = resolve(f.dimension, Entry::Kind::Dimension, m, kb, notes);
    const auto* dim = m.dimension(f.dimension);
    if (dim->time) continue;
    // Values people say ("QQ", "周杰伦") become the stored values the knowledge base knows.
    for (auto& v : f.values) {
      bool stored = false;
      std::string best;
      for (auto& h : kb.search(v, 20)) {
        if (h.entry->kind != Entry::Kind::Value || h.entry->name != f.dimension) continue;
        if (h.entry->value == v) {
          stored = true;
          break;
        }
        if (best.empty() && h.score >= 0.6) best = h.entry->value;
      }
      if (!stored && !best.empty()) {
        note("value '" + v + "' -> '" + best + "' (" + f.dimension + ")");
        v = best;
      }
    }
  }
  auto sensitive = [&](const std::string& dim) {
    if (m.dimension(dim)->sensitive && !allow_sensitive) throw Error("dimension '" + dim + "' is sensitive");
  };
  for (auto& x : d.group_by) sensitive(x);
  for (auto& x : d.count_distinct) sensitive(x);
  for (auto& f : d.filters) sensitive(f.dimension);

  // Aggregation rules.
  if (d.query_type == "detail" && (!d.metrics.empty() || !d.count_distinct.empty())) {
    d.query_type = "aggregate";
    note("a list with metrics is an aggregate");
  }
  if (d.query_type == "detail" && d.group_by.empty()) throw Error("the model's list names no columns");
  if (d.query_type == "aggregate" && d.metrics.empty() && d.count_distinct.empty()) {
    check(!m.default_metric.empty(), "the model's query names no metric");
    d.metrics.push_back(m.default_metric);
    note("no metric: the default '" + m.default_metric + "'");
  }

  // Dates: the mapper's reading of the question wins over the model's arithmetic.
  if (const Element* date = mp.first(Element::Kind::Date)) {
    const auto s = date->range.start.str(), e = date->range.end.str();
    if (d.start != s || d.end != e) {
      if (!d.start.empty() || !d.end.empty())
        note("time range " + d.start + ".." + d.end + " -> " + s + ".." + e);
      else
        note("time range from the question: " + s + ".." + e);
      d.start = s, d.end = e;
    }
  } else {
    for (auto* x : {&d.start, &d.end})
      if (!x->empty() && !Date::parse(*x)) {
        note("dropped the time range: '" + *x + "' is not a date");
        d.start.clear(), d.end.clear();
        break;
      }
    if (apply_default_time_range(d, m, mp.today))
      note("no time range: the model's default, the last " + std::to_string(m.default_time_range_days) + " days");
  }
  if (!d.start.empty() || !d.end.empty() || !d.granularity.empty()) {
    const auto* td = d.time_dimension.empty() ? nullptr : m.dimension(d.time_dimension);
    if (!td || !td->time) {
      const auto chosen = choose_time_dimension(d, m);
      check(!chosen.empty(), "the query has a time range but the model has no time dimension");
      if (!d.time_dimension.empty()) note("time dimension '" + d.time_dimension + "' -> '" + chosen + "'");
      d.time_dimension = chosen;
    }
  } else if (!d.time_dimension.empty()) {
    d.time_dimension.clear();  // no range, no grain: nothing to apply it to
  }

  // Order by output columns only.
  std::vector<std::string> outputs = d.metrics;
  outputs.insert(outputs.end(), d.group_by.begin(), d.group_by.end());
  for (auto& c : d.count_distinct) outputs.push_back(count_column(c));
  if (!d.granularity.empty()) outputs.push_back(d.granularity);
  std::vector<DslOrder> order;
  for (auto o : d.order) {
    if (std::find(outputs.begin(), outputs.end(), o.field) == outputs.end()) {
      std::string fixed;
      try {
        fixed = resolve(o.field, Entry::Kind::Metric, m, kb, nullptr);
      } catch (const Error&) {
      }
      if (fixed.empty() || std::find(outputs.begin(), outputs.end(), fixed) == outputs.end()) {
        note("dropped the order by '" + o.field + "': not an output column");
        continue;
      }
      note("order by '" + o.field + "' -> '" + fixed + "'");
      o.field = fixed;
    }
    if (std::none_of(order.begin(), order.end(), [&](auto& x) { return x.field == o.field; })) order.push_back(o);
  }
  d.order = std::move(order);
  if (!d.granularity.empty() && d.order.empty()) d.order.push_back({d.granularity, false});  // trends run forward
  if (d.limit > 0 && d.order.empty() && !d.metrics.empty() && !d.group_by.empty() && d.granularity.empty()) {
    d.order.push_back({d.metrics[0], true});
    note("a limit without an order ranks by '" + d.metrics[0] + "'");
  }
  return d;
}

// ---- the parser -----------------------------------------------------------------------------

LlmResult LlmParser::parse(const std::string& question, const Mapping& mapping, const SemanticModel& model,
                           const KnowledgeBase& kb, const std::vector<Example>& model_examples, const Date& today,
                           bool allow_sensitive) const {
  LlmResult r;
  std::vector<const Example*> pool;
  for (auto& e : model_examples) pool.push_back(&e);
  for (auto& e : extra_) pool.push_back(&e);
  r.prompt = build_prompt(question, mapping, model, kb, nearest_examples(question, pool, opt_.shots), today);
  ChatRequest req;
  req.messages = r.prompt;
  req.n = std::max(1, opt_.samples);
  req.temperature = req.n > 1 ? opt_.temperature : 0.0;
  req.max_tokens = opt_.max_tokens;
  req.seed = opt_.seed;
  r.replies = chat_.complete(req);
  r.samples = static_cast<int>(r.replies.size());

  // Parse and correct every sample; vote on the corrected DSL.
  struct Candidate {
    Dsl dsl;
    std::vector<std::string> notes;
    int votes = 0;
    size_t first = 0;
  };
  std::map<std::string, Candidate> by_key;
  std::vector<std::string> errors;
  for (size_t i = 0; i < r.replies.size(); ++i) {
    try {
      const Json j = extract_json_object(r.replies[i]);
      check(!j.is_null(), "the reply holds no JSON object");
      std::vector<std::string> notes;
      Dsl d = correct_dsl(Dsl::from_json(j, "the model's DSL"), mapping, model, kb, allow_sensitive, &notes);
      const auto key = dsl_line(d);
      auto [it, fresh] = by_key.emplace(key, Candidate{d, notes, 0, i});
      ++it->second.votes;
    } catch (const Error& e) {
      errors.push_back("sample " + std::to_string(i + 1) + ": " + e.what());
    }
  }
  if (by_key.empty()) {
    r.message = "the model's answer was not a usable query (" + chat_.name() + ")";
    for (auto& e : errors) r.message += "; " + e;
    if (!r.replies.empty()) r.message += "; reply: " + r.replies[0].substr(0, 200);
    return r;
  }
  const Candidate* best = nullptr;
  for (auto& [key, c] : by_key)
    if (!best || c.votes > best->votes || (c.votes == best->votes && c.first < best->first)) best = &c;
  r.understood = true;
  r.dsl = best->dsl;
  r.dsl.rule = "llm";
  r.votes = best->votes;
  r.dsl.confidence = static_cast<double>(best->votes) / static_cast<double>(r.samples);
  r.notes = best->notes;
  if (r.samples > 1)
    r.notes.push_back("self-consistency: " + std::to_string(best->votes) + " of " + std::to_string(r.samples) +
                      " samples agree");
  return r;
}

}  // namespace yak::ask
