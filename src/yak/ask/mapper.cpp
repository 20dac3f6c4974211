#include "yak/ask/mapper.h"

#include <algorithm>
#include <functional>

#include "yak/base/error.h"

namespace yak::ask {

namespace {

using U = std::u32string;

bool ascii_alnum(char32_t c) {
  return c < 0x80 && std::isalnum(static_cast<int>(c));
}
bool is_digit(char32_t c) {
  return c >= U'0' && c <= U'9';
}

bool punct(char32_t c) {
  if (c == U' ') return true;
  if (c < 0x80) return std::ispunct(static_cast<int>(c)) != 0;
  static const U p = U"，。？！、；：“”‘’（）《》【】…—·～";
  return p.find(c) != U::npos || (c >= 0x3000 && c <= 0x303F);
}

// A match of `key` at q[i] that does not cut an ASCII word in two.
bool matches_at(const U& q, size_t i, const U& key) {
  if (i + key.size() > q.size() || q.compare(i, key.size(), key) != 0) return false;
  if (ascii_alnum(key.front()) && i > 0 && ascii_alnum(q[i - 1])) return false;
  if (ascii_alnum(key.back()) && i + key.size() < q.size() && ascii_alnum(q[i + key.size()])) return false;
  return true;
}

// Digits or Chinese numerals (一..十, 两, 百) at q[i]: value and length.
std::optional<std::pair<int, size_t>> read_num(const U& q, size_t i) {
  size_t j = i;
  long v = 0;
  while (j < q.size() && is_digit(q[j]) && j - i < 6) v = v * 10 + (q[j++] - U'0');
  if (j > i) {
    if (j < q.size() && is_digit(q[j])) return std::nullopt;
    return std::make_pair(static_cast<int>(v), j - i);
  }
  static const U digits = U"零一二三四五六七八九";
  int total = 0, cur = 0;
  for (; j < q.size(); ++j) {
    const char32_t c = q[j];
    const auto d = digits.find(c);
    if (d != U::npos)
      cur = static_cast<int>(d);
    else if (c == U'两')
      cur = 2;
    else if (c == U'〇')
      cur = 0;
    else if (c == U'十')
      total += (cur == 0 ? 1 : cur) * 10, cur = 0;
    else if (c == U'百')
      total += (cur == 0 ? 1 : cur) * 100, cur = 0;
    else
      break;
  }
  if (j == i) return std::nullopt;
  return std::make_pair(total + cur, j - i);
}

std::optional<std::pair<int, size_t>> read_digits(const U& q, size_t i, size_t min_len, size_t max_len) {
  size_t j = i;
  int v = 0;
  while (j < q.size() && is_digit(q[j]) && j - i < max_len) v = v * 10 + (q[j++] - U'0');
  if (j - i < min_len || (j < q.size() && is_digit(q[j]))) return std::nullopt;
  return std::make_pair(v, j - i);
}

bool starts(const U& q, size_t i, const U& s) {
  return i + s.size() <= q.size() && q.compare(i, s.size(), s) == 0;
}

struct DateCand {
  Element e;
  bool explicit_year = true;
  int unit = 0;  // 1 day, 2 month
  int m = 0, d = 0;
};

Element date_el(size_t b, size_t e, DateRange r) {
  Element el;
  el.kind = Element::Kind::Date;
  el.name = "date";
  el.begin = b, el.end = e;
  el.range = r;
  return el;
}

void absolute_dates(const U& q, const Date& today, std::vector<DateCand>& out) {
  static const std::vector<std::pair<U, int>> months = {
      {U"january", 1}, {U"february", 2}, {U"march", 3},     {U"april", 4},    {U"may", 5},       {U"june", 6},
      {U"july", 7},    {U"august", 8},   {U"september", 9}, {U"october", 10}, {U"november", 11}, {U"december", 12},
      {U"jan", 1},     {U"feb", 2},      {U"mar", 3},       {U"apr", 4},      {U"jun", 6},       {U"jul", 7},
      {U"aug", 8},     {U"sep", 9},      {U"sept", 9},      {U"oct", 10},     {U"nov", 11},      {U"dec", 12}};
  for (size_t i = 0; i < q.size(); ++i) {
    if (i > 0 && is_digit(q[i - 1])) continue;
    // YYYY...
    if (auto y4 = read_digits(q, i, 4, 4); y4 && y4->first >= 1900 && y4->first <= 2100) {
      const int y = y4->first;
      size_t j = i + 4;
      if (j < q.size() && q[j] == U'年') {
        ++j;
        if (j < q.size() && q[j] == U'度') ++j;
        if (auto mo = read_num(q, j);
            mo && j + mo->second < q.size() && q[j + mo->second] == U'月' && mo->first >= 1 && mo->first <= 12) {
          size_t k = j + mo->second + 1;
          if (auto dd = read_num(q, k); dd && k + dd->second < q.size() &&
                                        (q[k + dd->second] == U'日' || q[k + dd->second] == U'号') &&
                                        valid_date(y, mo->first, dd->first)) {
            Date d{y, mo->first, dd->first};
            out.push_back({date_el(i, k + dd->second + 1, {d, d, {}}), true, 1, mo->first, dd->first});
          } else {
            out.push_back({date_el(i, k, month_range(y, mo->first)), true, 2, mo->first, 0});
          }
          continue;
        }
        size_t k = j;
        if (k < q.size() && q[k] == U'第') ++k;
        if (k + 1 < q.size() && q[k] == U'q' && q[k + 1] >= U'1' && q[k + 1] <= U'4') {
          out.push_back({date_el(i, k + 2, quarter_range(y, q[k + 1] - U'0'))});
          continue;
        }
        if (auto qn = read_num(q, k); qn && qn->first >= 1 && qn->first <= 4) {
          size_t e = k + qn->second;
          if (starts(q, e, U"季度") || starts(q, e, U"季")) {
            out.push_back({date_el(i, e + (starts(q, e, U"季度") ? 2 : 1), quarter_range(y, qn->first))});
            continue;
          }
        }
        if (starts(q, j, U"上半年")) {
          out.push_back({date_el(i, j + 3, {{y, 1, 1}, {y, 6, 30}, {}})});
          continue;
        }
        if (starts(q, j, U"下半年")) {
          out.push_back({date_el(i, j + 3, {{y, 7, 1}, {y, 12, 31}, {}})});
          continue;
        }
        out.push_back({date_el(i, j, year_range(y))});
        continue;
      }
      if (j < q.size() && (q[j] == U'-' || q[j] == U'/' || q[j] == U'.')) {
        const char32_t sep = q[j];
        if (auto mo = read_digits(q, j + 1, 1, 2); mo && mo->first >= 1 && mo->first <= 12) {
          size_t k = j + 1 + mo->second;
          if (k < q.size() && q[k] == sep)
            if (auto dd = read_digits(q, k + 1, 1, 2); dd && valid_date(y, mo->first, dd->first)) {
              Date d{y, mo->first, dd->first};
              out.push_back({date_el(i, k + 1 + dd->second, {d, d, {}})});
              continue;
            }
          out.push_back({date_el(i, k, month_range(y, mo->first))});
          continue;
        }
      }
      size_t k = j;
      if (k < q.size() && q[k] == U' ') ++k;
      if (k + 1 < q.size() && q[k] == U'q' && q[k + 1] >= U'1' && q[k + 1] <= U'4' &&
          (k + 2 >= q.size() || !ascii_alnum(q[k + 2]))) {
        out.push_back({date_el(i, k + 2, quarter_range(y, q[k + 1] - U'0'))});
        continue;
      }
      if ((i == 0 || !ascii_alnum(q[i - 1])) && (j >= q.size() || !ascii_alnum(q[j]))) {
        out.push_back({date_el(i, j, year_range(y))});
        continue;
      }
    }
    // Qn YYYY
    if (q[i] == U'q' && i + 1 < q.size() && q[i + 1] >= U'1' && q[i + 1] <= U'4' &&
        (i == 0 || !ascii_alnum(q[i - 1]))) {
      size_t k = i + 2;
      if (k < q.size() && q[k] == U' ') ++k;
      if (auto y4 = read_digits(q, k, 4, 4); y4 && y4->first >= 1900 && y4->first <= 2100) {
        out.push_back({date_el(i, k + 4, quarter_range(y4->first, q[i + 1] - U'0'))});
        continue;
      }
    }
    // Month name [YYYY]
    if (i == 0 || !ascii_alnum(q[i - 1])) {
      for (auto& [name, mo] : months) {
        if (!matches_at(q, i, name)) continue;
        size_t k = i + name.size();
        if (k < q.size() && q[k] == U' ') ++k;
        if (auto y4 = read_digits(q, k, 4, 4); y4 && y4->first >= 1900 && y4->first <= 2100) {
          out.push_back({date_el(i, k + 4, month_range(y4->first, mo))});
          break;
        }
        if (name.size() >= 5 || name == U"june" || name == U"july" || name == U"april") {  // full names only
          out.push_back({date_el(i, i + name.size(), month_range(today.y, mo)), false, 2, mo, 0});
          break;
        }
      }
    }
    // M月[D日] in today's year
    if (auto mo = read_num(q, i); mo && mo->first >= 1 && mo->first <= 12 && i + mo->second < q.size() &&
                                  q[i + mo->second] == U'月' && (i == 0 || q[i - 1] != U'个')) {
      size_t k = i + mo->second + 1;
      if (auto dd = read_num(q, k); dd && k + dd->second < q.size() &&
                                    (q[k + dd->second] == U'日' || q[k + dd->second] == U'号') &&
                                    valid_date(today.y, mo->first, dd->first)) {
        Date d{today.y, mo->first, dd->first};
        out.push_back({date_el(i, k + dd->second + 1, {d, d, {}}), false, 1, mo->first, dd->first});
      } else {
        out.push_back({date_el(i, k, month_range(today.y, mo->first)), false, 2, mo->first, 0});
      }
    }
  }
}

void relative_dates(const U& q, const Date& t, std::vector<DateCand>& out) {
  const Date last_month = add_months(Date{t.y, t.m, 1}, -1);
  const int qtr = (t.m - 1) / 3 + 1;
  const DateRange this_q = quarter_range(t.y, qtr);
  const DateRange last_q = qtr == 1 ? quarter_range(t.y - 1, 4) : quarter_range(t.y, qtr - 1);
  const std::vector<std::pair<std::vector<U>, DateRange>> fixed = {
      {{U"今天", U"今日", U"today"}, {t, t, {}}},
      {{U"昨天", U"昨日", U"yesterday"}, {add_days(t, -1), add_days(t, -1), {}}},
      {{U"前天", U"day before yesterday"}, {add_days(t, -2), add_days(t, -2), {}}},
      {{U"本周", U"这周", U"这一周", U"本星期", U"这个星期", U"this week"}, week_range(t)},
      {{U"上周", U"上一周", U"上个星期", U"上星期", U"last week", U"previous week"}, week_range(add_days(t, -7))},
      {{U"本月", U"这个月", U"当月", U"this month"}, month_range(t.y, t.m)},
      {{U"上个月", U"上月", U"上一个月", U"last month", U"previous month"}, month_range(last_month.y, last_month.m)},
      {{U"本季度", U"这个季度", U"this quarter"}, this_q},
      {{U"上季度", U"上个季度", U"上一季度", U"last quarter", U"previous quarter"}, last_q},
      {{U"今年", U"本年", U"今年以来", U"this year", U"year to date"}, year_range(t.y)},
      {{U"去年", U"上一年", U"last year", U"previous year"}, year_range(t.y - 1)},
      {{U"前年"}, year_range(t.y - 2)},
  };
  for (size_t i = 0; i < q.size(); ++i) {
    for (auto& [words, r] : fixed)
      for (auto& w : words)
        if (matches_at(q, i, w)) out.push_back({date_el(i, i + w.size(), r)});
    // Rolling windows ending today: 近7天, 最近30天, 过去3个月, past 30 days, last 2 weeks.
    static const std::vector<U> zh_pre = {U"最近", U"近", U"过去", U"过去的"};
    static const std::vector<U> en_pre = {U"the past ", U"the last ", U"past ", U"last "};
    static const std::vector<std::pair<U, int>> zh_unit = {{U"天", 1},   {U"日", 1},    {U"周", 7},  {U"个星期", 7},
                                                           {U"星期", 7}, {U"个月", 30}, {U"月", 30}, {U"年", 365}};
    static const std::vector<std::pair<U, int>> en_unit = {{U"days", 1},    {U"day", 1},     {U"weeks", 7},
                                                           {U"week", 7},    {U"months", 30}, {U"month", 30},
                                                           {U"years", 365}, {U"year", 365}};
    auto window = [&](int n, int unit) -> DateRange {
      if (unit == 30) return {add_days(add_months(t, -n), 1), t, {}};
      if (unit == 365) return {add_days(add_months(t, -12 * n), 1), t, {}};
      return {add_days(t, -(n * unit) + 1), t, {}};
    };
    for (auto& p : zh_pre) {
      if (!starts(q, i, p)) continue;
      size_t k = i + p.size();
      auto n = read_num(q, k);
      if (!n || n->first <= 0 || n->first > 3650) continue;
      k += n->second;
      for (auto& [u, days] : zh_unit)
        if (starts(q, k, u)) {
          out.push_back({date_el(i, k + u.size(), window(n->first, days))});
          break;
        }
    }
    for (auto& p : en_pre) {
      if (!matches_at(q, i, p.substr(0, p.size() - 1)) || !starts(q, i, p)) continue;
      size_t k = i + p.size();
      int n = 1;
      if (auto d = read_digits(q, k, 1, 4)) {
        n = d->first;
        k += d->second;
        if (k < q.size() && q[k] == U' ') ++k;
      } else if (p == U"last " || p == U"the last ") {
        continue;  // "last week" is the calendar week before, handled above
      }
      if (n <= 0) continue;
      for (auto& [u, days] : en_unit)
        if (matches_at(q, k, u)) {
          out.push_back({date_el(i, k + u.size(), window(n, days))});
          break;
        }
    }
  }
}

struct Lex {
  U key;
  Element::Kind kind;
  std::string name;
};

const std::vector<Lex>& lexicon() {
  static const std::vector<Lex> lex = [] {
    std::vector<Lex> v;
    auto add = [&](Element::Kind k, const std::string& name, std::initializer_list<const char32_t*> words) {
      for (auto* w : words) v.push_back({U(w), k, name});
    };
    using K = Element::Kind;
    add(K::Agg, "max",
        {U"最高",    U"最多",    U"最大",         U"最火",     U"最热",    U"最热门",  U"最受欢迎", U"最好", U"最强",
         U"排名",    U"排行",    U"排行榜",       U"领先",     U"top",     U"highest", U"most",     U"best", U"largest",
         U"biggest", U"hottest", U"most popular", U"greatest", U"leading", U"ranking", U"ranked",   U"rank"});
    add(K::Agg, "min",
        {U"最低", U"最少", U"最小", U"最冷门", U"最差", U"垫底", U"倒数", U"lowest", U"least", U"fewest", U"smallest",
         U"worst", U"bottom"});
    add(K::Agg, "avg", {U"平均", U"均值", U"average", U"avg", U"mean"});
    add(K::Agg, "sum", {U"总", U"总共", U"合计", U"总计", U"累计", U"总的", U"total", U"sum", U"overall", U"in total"});
    add(K::Agg, "count",
        {U"多少个", U"多少位", U"多少首", U"多少张", U"多少家", U"多少名", U"多少", U"几个", U"几位", U"几首", U"几张",
         U"几家", U"数量", U"个数", U"how many", U"number of", U"count of", U"count"});
    add(K::Grain, "day",
        {U"每天", U"每日", U"按天", U"按日", U"逐日", U"日度", U"每一天", U"daily", U"per day", U"by day", U"each day",
         U"day by day"});
    add(K::Grain, "week",
        {U"每周", U"按周", U"每个星期", U"每星期", U"逐周", U"周度", U"weekly", U"per week", U"by week", U"each week"});
    add(K::Grain, "month",
        {U"每月", U"每个月", U"按月", U"逐月", U"月度", U"monthly", U"per month", U"by month", U"each month"});
    add(K::Grain, "quarter",
        {U"每季度", U"每个季度", U"按季度", U"季度", U"quarterly", U"per quarter", U"by quarter", U"each quarter"});
    add(K::Grain, "year",
        {U"每年", U"按年", U"逐年", U"年度", U"yearly", U"annual", U"annually", U"per year", U"by year", U"each year"});
    add(K::Word, "trend",
        {U"趋势", U"走势", U"变化", U"变化趋势", U"走向", U"trend", U"trends", U"over time", U"change"});
    add(K::Word, "each",
        {U"各", U"各个", U"每个", U"每一个", U"分别", U"按", U"按照", U"不同", U"各自", U"by", U"per", U"each",
         U"every", U"for each", U"across", U"breakdown", U"分布", U"broken down by"});
    add(K::Word, "detail",
        {U"列出", U"列举", U"列一下", U"有哪些", U"都有哪些", U"哪些", U"显示", U"明细", U"清单", U"列表", U"名单",
         U"list", U"show", U"show me", U"display", U"what are", U"which are", U"give me", U"find"});
    add(K::Word, "which",
        {U"是谁", U"谁", U"哪个", U"哪位", U"哪首", U"哪张", U"哪家", U"哪一个", U"哪一位", U"who", U"which", U"what"});
    // Words that carry no meaning here: they count neither for nor against the coverage.
    add(K::Word, "stop",
        {U"的",    U"了",   U"是",     U"在",       U"有",    U"吗",     U"呢",      U"和",    U"与",     U"及",
         U"以及",  U"中",   U"里",     U"里面",     U"上",    U"我",     U"我想",    U"想",    U"想知道", U"看",
         U"看看",  U"查",   U"查询",   U"查一下",   U"请",    U"请问",   U"帮我",    U"一下",  U"给我",   U"告诉我",
         U"所有",  U"全部", U"都",     U"共",       U"从",    U"自",     U"期间",    U"时",    U"为",     U"以来",
         U"这些",  U"那些", U"情况",   U"统计",     U"数据",  U"分别是", U"多少钱",  U"如何",  U"怎么样", U"个",
         U"位",    U"首",   U"张",     U"家",       U"名",    U"the",    U"a",       U"an",    U"of",     U"in",
         U"on",    U"at",   U"for",    U"with",     U"is",    U"are",    U"was",     U"were",  U"did",    U"do",
         U"does",  U"me",   U"please", U"to",       U"from",  U"and",    U"that",    U"have",  U"has",    U"had",
         U"there", U"all",  U"its",    U"their",    U"it",    U"during", U"between", U"since", U"get",    U"tell",
         U"i",     U"want", U"know",   U"how",      U"much",  U"data",   U"got",     U"been",  U"so",     U"far",
         U"?",     U"s",    U"'s",     U"what's",   U"whats", U"by the", U"we",      U"our",   U"those",  U"these",
         U"they",  U"be",   U"made",   U"generated"});
    return v;
  }();
  return lex;
}

int priority(Element::Kind k) {
  switch (k) {
    case Element::Kind::Date:
      return 9;
    case Element::Kind::Number:
      return 8;
    case Element::Kind::Term:
      return 7;
    case Element::Kind::Metric:
      return 6;
    case Element::Kind::Dimension:
      return 5;
    case Element::Kind::Value:
      return 4;
    default:
      return 2;
  }
}

Element::Kind from_entry(Entry::Kind k) {
  switch (k) {
    case Entry::Kind::Metric:
      return Element::Kind::Metric;
    case Entry::Kind::Dimension:
      return Element::Kind::Dimension;
    case Entry::Kind::Value:
      return Element::Kind::Value;
    case Entry::Kind::Term:
      return Element::Kind::Term;
  }
  return Element::Kind::Word;
}

Element from_hit(const Entry& e, size_t b, size_t end, double score, const char* how) {
  Element el;
  el.kind = from_entry(e.kind);
  el.name = e.name;
  if (e.kind == Entry::Kind::Value) el.dimension = e.name, el.value = e.value;
  el.begin = b, el.end = end;
  el.score = score;
  el.how = how;
  return el;
}

}  // namespace

const char* element_kind_name(Element::Kind k) {
  switch (k) {
    case Element::Kind::Metric:
      return "metric";
    case Element::Kind::Dimension:
      return "dimension";
    case Element::Kind::Value:
      return "value";
    case Element::Kind::Term:
      return "term";
    case Element::Kind::Date:
      return "date";
    case Element::Kind::Number:
      return "number";
    case Element::Kind::Agg:
      return "aggregate";
    case Element::Kind::Grain:
      return "grain";
    case Element::Kind::Word:
      return "word";
  }
  return "";
}

std::vector<const Element*> Mapping::of(Element::Kind k) const {
  std::vector<const Element*> v;
  for (auto& e : elements)
    if (e.kind == k) v.push_back(&e);
  return v;
}

const Element* Mapping::first(Element::Kind k, const std::string& name) const {
  for (auto& e : elements)
    if (e.kind == k && (name.empty() || e.name == name)) return &e;
  return nullptr;
}

Json Mapping::to_json() const {
  Json arr = Json::array();
  for (auto& e : elements) {
    Json j = {{"kind", element_kind_name(e.kind)}, {"text", e.text}};
    if (!e.name.empty()) j["name"] = e.name;
    if (e.kind == Element::Kind::Value) j["value"] = e.value;
    if (e.kind == Element::Kind::Date) j["range"] = {e.range.start.str(), e.range.end.str()};
    if (e.kind == Element::Kind::Number) j["number"] = e.number;
    if (e.how != "exact") j["match"] = e.how, j["score"] = e.score;
    arr.push_back(j);
  }
  return {{"elements", arr}, {"coverage", coverage}, {"unknown", unknown}};
}

Mapping map_question(const std::string& question, const KnowledgeBase& kb, const Date& today) {
  Mapping out;
  out.question = question;
  out.today = today;
  const U q = normalize(question);
  std::vector<char> covered(q.size(), 0);
  std::vector<Element> chosen;
  auto free_span = [&](size_t b, size_t e) {
    for (size_t k = b; k < e; ++k)
      if (covered[k]) return false;
    return true;
  };
  auto take = [&](std::vector<Element>& cands) {
    std::stable_sort(cands.begin(), cands.end(), [](const Element& a, const Element& b) {
      const size_t la = a.end - a.begin, lb = b.end - b.begin;
      if (la != lb) return la > lb;
      if (priority(a.kind) != priority(b.kind)) return priority(a.kind) > priority(b.kind);
      if (a.score != b.score) return a.score > b.score;
      return a.begin < b.begin;
    });
    for (auto& c : cands) {
      if (c.end <= c.begin || !free_span(c.begin, c.end)) continue;
      for (size_t k = c.begin; k < c.end; ++k) covered[k] = 1;
      chosen.push_back(c);
    }
  };

  // 1. Dates, merging "X 到 Y" into one range.
  {
    std::vector<DateCand> dc;
    absolute_dates(q, today, dc);
    relative_dates(q, today, dc);
    std::vector<Element> cands;
    for (auto& d : dc) cands.push_back(d.e);
    const size_t before = chosen.size();
    take(cands);
    std::vector<Element> dates(chosen.begin() + before, chosen.end());
    chosen.resize(before);
    std::sort(dates.begin(), dates.end(), [](auto& a, auto& b) { return a.begin < b.begin; });
    auto cand_of = [&](const Element& e) -> const DateCand* {
      for (auto& d : dc)
        if (d.e.begin == e.begin && d.e.end == e.end) return &d;
      return nullptr;
    };
    static const std::vector<U> joins = {U"到", U"至", U"~", U"-", U"—", U"to", U"through", U"until", U"and", U"till"};
    for (size_t k = 0; k < dates.size(); ++k) {
      Element e = dates[k];
      if (k + 1 < dates.size()) {
        U gap = q.substr(e.end, dates[k + 1].begin - e.end);
        while (!gap.empty() && gap.front() == U' ') gap.erase(gap.begin());
        while (!gap.empty() && gap.back() == U' ') gap.pop_back();
        if (std::find(joins.begin(), joins.end(), gap) != joins.end()) {
          Element second = dates[k + 1];
          const DateCand* sc = cand_of(second);
          if (sc && !sc->explicit_year && sc->unit && second.range.start.y != e.range.start.y) {
            const int y = e.range.start.y;
            second.range = sc->unit == 1 ? DateRange{{y, sc->m, sc->d}, {y, sc->m, sc->d}, {}} : month_range(y, sc->m);
          }
          e.range.end = second.range.end;
          e.end = second.end;
          ++k;
        }
      }
      chosen.push_back(e);
    }
    for (auto& e : chosen)
      for (size_t k = e.begin; k < e.end; ++k) covered[k] = 1;
  }

  // 2. Numbers: 前10, 前十, top 5, 10位, 十大, a bare number in English.
  {
    std::vector<Element> cands;
    auto number = [&](size_t b, size_t e, int n) {
      Element el;
      el.kind = Element::Kind::Number;
      el.name = "limit";
      el.begin = b, el.end = e, el.number = n;
      cands.push_back(el);
    };
    static const U classifiers = U"位首个名张家条大支款";
    for (size_t i = 0; i < q.size(); ++i) {
      if (covered[i]) continue;
      if (q[i] == U'前') {
        size_t k = i + 1;
        if (k < q.size() && q[k] == U' ') ++k;
        if (auto n = read_num(q, k); n && n->first > 0) {
          size_t e = k + n->second;
          if (e < q.size() && classifiers.find(q[e]) != U::npos) ++e;
          number(i, e, n->first);
          continue;
        }
      }
      if (matches_at(q, i, U"top") || starts(q, i, U"top")) {
        size_t k = i + 3;
        if (k < q.size() && q[k] == U' ') ++k;
        if (auto n = read_digits(q, k, 1, 4); n && n->first > 0) {
          number(i, k + n->second, n->first);
          continue;
        }
        static const std::vector<std::pair<U, int>> words = {
            {U"three", 3}, {U"five", 5}, {U"ten", 10}, {U"twenty", 20}, {U"hundred", 100}};
        for (auto& [w, n] : words)
          if (matches_at(q, k, w)) number(i, k + w.size(), n);
        continue;
      }
      if (i > 0 && (is_digit(q[i - 1]) || read_num(q, i - 1))) continue;
      if (auto n = read_num(q, i); n && n->first > 0) {
        const size_t e = i + n->second;
        if (e < q.size() && classifiers.find(q[e]) != U::npos) {
          if (q[e] == U'个' && e + 1 < q.size() && (q[e + 1] == U'月' || q[e + 1] == U'星' || q[e + 1] == U'季'))
            continue;
          number(i, e + 1, n->first);
        } else if (is_digit(q[i]) && (i == 0 || !ascii_alnum(q[i - 1])) && (e >= q.size() || !ascii_alnum(q[e]))) {
          number(i, e, n->first);
        }
      }
    }
    take(cands);
  }

  // 3. Dictionary and lexicon, exact, longest first.
  {
    std::vector<Element> cands;
    const size_t maxlen = std::max<size_t>(kb.max_key_length(), 24);
    for (size_t i = 0; i < q.size(); ++i) {
      if (covered[i]) continue;
      for (size_t len = 1; len <= maxlen && i + len <= q.size(); ++len) {
        if (covered[i + len - 1]) break;
        const U key = q.substr(i, len);
        if (!matches_at(q, i, key)) continue;
        if (auto* hits = kb.exact(key)) {
          const Entry* best = nullptr;
          for (auto idx : *hits) {
            const auto& e = kb.entry(idx);
            if (!best || priority(from_entry(e.kind)) > priority(from_entry(best->kind))) best = &e;
          }
          cands.push_back(from_hit(*best, i, i + len, 1.0, "exact"));
        }
      }
      for (auto& l : lexicon())
        if (matches_at(q, i, l.key) && free_span(i, i + l.key.size())) {
          Element el;
          el.kind = l.kind;
          el.name = l.name;
          el.begin = i, el.end = i + l.key.size();
          el.score = 0.9;
          cands.push_back(el);
        }
    }
    take(cands);
  }

  // 4. Fuzzy, prefix and suffix matches for what is left (typos, partial names).
  {
    for (size_t i = 0; i < q.size(); ++i) {
      if (covered[i] || punct(q[i])) continue;
      size_t run = i;
      while (run < q.size() && !covered[run] && !punct(q[run])) ++run;
      bool found = false;
      for (size_t len = std::min<size_t>(run - i, 10); len >= 2 && !found; --len) {
        const U key = q.substr(i, len);
        const bool ascii = std::all_of(key.begin(), key.end(), [](char32_t c) { return c < 0x80; });
        if (ascii && (len < 4 || !matches_at(q, i, key))) continue;
        for (auto& h : kb.search_key(key, 3)) {
          if (std::string(h.how) == "exact" || h.score < 0.55) continue;
          // One changed letter turns a short English word into another word ("make" / "male").
          if (std::string(h.how) == "fuzzy" && (len < 3 || (ascii && len < 5))) continue;
          std::vector<Element> one = {from_hit(*h.entry, i, i + len, h.score, h.how)};
          take(one);
          found = true;
          i += len - 1;
          break;
        }
      }
    }
  }

  // Coverage over content characters, stop words left out.
  size_t content = 0, explained = 0;
  std::vector<char> stop(q.size(), 0);
  for (auto& e : chosen)
    if (e.kind == Element::Kind::Word && e.name == "stop")
      for (size_t k = e.begin; k < e.end; ++k) stop[k] = 1;
  U run;
  auto flush = [&] {
    if (!run.empty()) out.unknown.push_back(to_utf8(run));
    run.clear();
  };
  for (size_t k = 0; k < q.size(); ++k) {
    if (punct(q[k]) || stop[k]) {
      flush();
      continue;
    }
    ++content;
    if (covered[k])
      ++explained, flush();
    else
      run += q[k];
  }
  flush();
  out.coverage = content ? static_cast<double>(explained) / static_cast<double>(content) : 0.0;
  for (auto& e : chosen) {
    if (e.kind == Element::Kind::Word && e.name == "stop") continue;
    e.text = to_utf8(q.substr(e.begin, e.end - e.begin));
    if (e.kind == Element::Kind::Date) e.range.label = e.text;
    out.elements.push_back(e);
  }
  std::sort(out.elements.begin(), out.elements.end(), [](auto& a, auto& b) { return a.begin < b.begin; });
  return out;
}

}  // namespace yak::ask
