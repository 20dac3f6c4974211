#include "yak/ask/sql_guard.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <set>

#include "yak/ask/sql_lexer.h"
#include "yak/base/error.h"

namespace yak::ask {

namespace {

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

[[noreturn]] void refuse(const std::string& why) {
  throw Error("SQL refused: " + why);
}

struct Node;
using NodeP = std::unique_ptr<Node>;

struct Node {
  enum class K {
    Literal,
    Param,
    Column,
    Star,
    Unary,
    Binary,
    Func,
    Case,
    Cast,
    In,
    Between,
    Like,
    Is,
    Null,
    Exists,
    Sub
  };
  K k = K::Literal;
  std::string op;     // literal text, operator, function name, column name, type name
  std::string table;  // qualifier of Column / Star
  bool flag = false;  // NOT, DISTINCT, Case has operand
  bool star_arg = false;
  bool has_else = false;
  std::vector<NodeP> kids;
  std::unique_ptr<SqlQuery> sub;
};

}  // namespace

struct TableRef {
  std::string join;  // "" for the first, else ",", "JOIN", "LEFT JOIN", "INNER JOIN", "CROSS JOIN"
  std::string name, alias;
  std::unique_ptr<SqlQuery> sub;
  NodeP on;
  std::vector<std::string> using_cols;
};
struct ResultCol {
  NodeP e;
  std::string alias;
};
struct SelectCore {
  bool distinct = false;
  std::vector<ResultCol> cols;
  std::vector<TableRef> from;
  NodeP where, having;
  std::vector<NodeP> group;
};
struct Cte {
  std::string name;
  std::vector<std::string> cols;
  std::unique_ptr<SqlQuery> q;
};
struct OrderTerm {
  NodeP e;
  bool desc = false;
  bool explicit_dir = false;
};
struct SqlQuery {
  bool recursive = false;
  std::vector<Cte> ctes;
  std::vector<SelectCore> cores;
  std::vector<std::string> ops;  // between cores: UNION, UNION ALL, INTERSECT, EXCEPT
  std::vector<OrderTerm> order;
  NodeP limit, offset;
};

namespace {

// The functions each dialect may call, by upper-case name, with the spelling printed (ClickHouse
// names are case-sensitive).
using FunctionSet = std::map<std::string, std::string>;

FunctionSet spelled(std::initializer_list<const char*> names) {
  FunctionSet f;
  for (const char* n : names) f[upper(n)] = n;
  return f;
}

const FunctionSet& allowed_functions(const std::string& dialect) {
  static const FunctionSet sqlite =
      spelled({"ABS",          "AVG",       "COALESCE", "COUNT",     "DATE", "DATETIME", "IFNULL", "IIF",     "INSTR",
               "JULIANDAY",    "LENGTH",    "LOWER",    "LTRIM",     "MAX",  "MIN",      "NULLIF", "REPLACE", "ROUND",
               "RTRIM",        "STRFTIME",  "SUBSTR",   "SUBSTRING", "SUM",  "TIME",     "TOTAL",  "TRIM",    "UPPER",
               "GROUP_CONCAT", "UNIXEPOCH", "TYPEOF",   "SIGN",      "CEIL", "CEILING",  "FLOOR"});
  static const FunctionSet clickhouse = spelled({"count",
                                                 "sum",
                                                 "avg",
                                                 "min",
                                                 "max",
                                                 "uniqExact",
                                                 "round",
                                                 "abs",
                                                 "floor",
                                                 "ceil",
                                                 "coalesce",
                                                 "ifNull",
                                                 "nullIf",
                                                 "lower",
                                                 "upper",
                                                 "length",
                                                 "substring",
                                                 "concat",
                                                 "toString",
                                                 "toDate",
                                                 "toMonday",
                                                 "toStartOfMonth",
                                                 "toStartOfQuarter",
                                                 "toStartOfYear",
                                                 "toYear",
                                                 "toQuarter",
                                                 "toMonth",
                                                 "formatDateTime"});
  static const FunctionSet mysql =
      spelled({"COUNT",       "SUM",       "AVG",      "MIN",     "MAX",     "ROUND", "ABS",   "FLOOR",
               "CEIL",        "CEILING",   "COALESCE", "IFNULL",  "NULLIF",  "LOWER", "UPPER", "LENGTH",
               "CHAR_LENGTH", "SUBSTRING", "SUBSTR",   "CONCAT",  "REPLACE", "TRIM",  "DATE",  "DATE_FORMAT",
               "SUBDATE",     "WEEKDAY",   "YEAR",     "QUARTER", "MONTH"});
  if (dialect == "clickhouse") return clickhouse;
  if (dialect == "mysql") return mysql;
  return sqlite;
}

// How the tree prints for the database it goes to (set by guard_sql for its call).
struct PrintStyle {
  std::string dialect = "sqlite";
};
thread_local const PrintStyle* g_style = nullptr;

class Parser {
 public:
  Parser(std::vector<Token> toks, std::string dialect = "sqlite") : t_(std::move(toks)), dialect_(std::move(dialect)) {}

  std::unique_ptr<SqlQuery> statement() {
    auto q = query();
    if (op(";")) next();
    if (peek().kind != Token::Kind::End) {
      if (op(";") || peek().kind == Token::Kind::Ident)
        refuse("only one statement is allowed (found more after byte " + std::to_string(peek().pos) + ")");
      fail("unexpected input");
    }
    return q;
  }

  NodeP standalone_expr() {
    auto e = expr();
    if (peek().kind != Token::Kind::End) fail("unexpected input after the condition");
    return e;
  }

 private:
  std::vector<Token> t_;
  std::string dialect_;
  size_t i_ = 0;
  int depth_ = 0;

  struct Depth {
    Parser& p;
    explicit Depth(Parser& parser) : p(parser) {
      if (++p.depth_ > 150) refuse("nesting too deep");
    }
    ~Depth() { --p.depth_; }
  };

  const Token& peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const Token& next() {
    const Token& t = t_[i_];
    if (i_ + 1 < t_.size()) ++i_;
    return t;
  }
  bool op(const char* s, size_t k = 0) const { return peek(k).kind == Token::Kind::Op && peek(k).text == s; }
  bool kw(const char* s, size_t k = 0) const { return is_keyword(peek(k), s); }
  bool accept_kw(const char* s) {
    if (!kw(s)) return false;
    next();
    return true;
  }
  bool accept_op(const char* s) {
    if (!op(s)) return false;
    next();
    return true;
  }
  [[noreturn]] void fail(const std::string& what) const {
    const auto& t = peek();
    std::string near = t.kind == Token::Kind::End ? "the end" : "'" + t.text + "'";
    refuse(what + " near " + near + " at byte " + std::to_string(t.pos));
  }
  void expect_kw(const char* s) {
    if (!accept_kw(s)) fail(std::string("expected ") + s);
  }
  void expect_op(const char* s) {
    if (!accept_op(s)) fail(std::string("expected '") + s + "'");
  }
  bool is_name(size_t k = 0) const {
    const auto& t = peek(k);
    return t.kind == Token::Kind::Ident && (t.quoted || !reserved_word(t.text));
  }
  std::string name(const char* what) {
    if (!is_name()) {
      const auto& t = peek();
      if (t.kind == Token::Kind::Ident && !t.quoted) {
        static const std::set<std::string> write = {"INSERT", "UPDATE", "DELETE", "DROP",   "CREATE", "ALTER",
                                                    "ATTACH", "DETACH", "PRAGMA", "VACUUM", "REPLACE"};
        if (write.count(upper(t.text))) refuse(upper(t.text) + " is not allowed: only SELECT/WITH queries run");
      }
      fail(std::string("expected ") + what);
    }
    return next().text;
  }

  std::unique_ptr<SqlQuery> query() {
    Depth d(*this);
    auto q = std::make_unique<SqlQuery>();
    if (accept_kw("WITH")) {
      q->recursive = accept_kw("RECURSIVE");
      do {
        Cte c;
        c.name = name("a CTE name");
        if (accept_op("(")) {
          do c.cols.push_back(name("a column name"));
          while (accept_op(","));
          expect_op(")");
        }
        expect_kw("AS");
        if (kw("NOT") || kw("MATERIALIZED")) {
          accept_kw("NOT");
          expect_kw("MATERIALIZED");
        }
        expect_op("(");
        c.q = query();
        expect_op(")");
        q->ctes.push_back(std::move(c));
      } while (accept_op(","));
    }
    q->cores.push_back(core());
    for (;;) {
      std::string o;
      if (accept_kw("UNION"))
        o = accept_kw("ALL") ? "UNION ALL" : "UNION";
      else if (accept_kw("INTERSECT"))
        o = "INTERSECT";
      else if (accept_kw("EXCEPT"))
        o = "EXCEPT";
      else
        break;
      q->ops.push_back(o);
      q->cores.push_back(core());
    }
    if (accept_kw("ORDER")) {
      expect_kw("BY");
      do {
        OrderTerm t;
        t.e = expr();
        if (accept_kw("COLLATE")) fail("COLLATE is not supported");
        if (accept_kw("ASC"))
          t.explicit_dir = true;
        else if (accept_kw("DESC"))
          t.desc = t.explicit_dir = true;
        if (kw("NULLS")) fail("NULLS FIRST/LAST is not supported");
        q->order.push_back(std::move(t));
      } while (accept_op(","));
    }
    if (accept_kw("LIMIT")) {
      q->limit = expr();
      if (accept_kw("OFFSET"))
        q->offset = expr();
      else if (accept_op(","))  // LIMIT offset, count
      {
        q->offset = std::move(q->limit);
        q->limit = expr();
      }
    }
    return q;
  }

  SelectCore core() {
    Depth d(*this);
    SelectCore c;
    if (!kw("SELECT")) {
      if (peek().kind == Token::Kind::Ident && !peek().quoted) name("SELECT");  // names a write verb if it is one
      fail("expected SELECT");
    }
    next();
    if (accept_kw("DISTINCT"))
      c.distinct = true;
    else
      accept_kw("ALL");
    do {
      ResultCol rc;
      if (op("*")) {
        next();
        rc.e = make(Node::K::Star);
      } else if (is_name() && op(".", 1) && op("*", 2)) {
        auto n = make(Node::K::Star);
        n->table = next().text;
        next(), next();
        rc.e = std::move(n);
      } else {
        rc.e = expr();
        if (accept_kw("AS"))
          rc.alias = alias_name();
        else if (is_name() || peek().kind == Token::Kind::String)
          rc.alias = alias_name();
      }
      c.cols.push_back(std::move(rc));
    } while (accept_op(","));
    if (accept_kw("FROM")) {
      c.from.push_back(table_ref(""));
      for (;;) {
        std::string j;
        if (accept_op(","))
          j = ",";
        else if (accept_kw("JOIN"))
          j = "JOIN";
        else if (kw("LEFT") || kw("INNER") || kw("CROSS")) {
          j = upper(next().text);
          if (j == "LEFT") accept_kw("OUTER");
          expect_kw("JOIN");
          j += " JOIN";
        } else if (kw("NATURAL") || kw("RIGHT") || kw("FULL")) {
          fail("this join is not supported");
        } else {
          break;
        }
        c.from.push_back(table_ref(j));
      }
    }
    if (accept_kw("WHERE")) c.where = expr();
    if (accept_kw("GROUP")) {
      expect_kw("BY");
      do c.group.push_back(expr());
      while (accept_op(","));
    }
    if (accept_kw("HAVING")) c.having = expr();
    if (kw("WINDOW")) fail("WINDOW is not supported");
    return c;
  }

  std::string alias_name() {
    if (peek().kind == Token::Kind::String) return next().text;
    return name("an alias");
  }

  TableRef table_ref(const std::string& join) {
    TableRef r;
    r.join = join;
    if (accept_op("(")) {
      r.sub = query();
      expect_op(")");
    } else {
      r.name = name("a table name");
      if (op(".")) fail("schema-qualified tables are not allowed");
      if (op("(")) fail("table-valued functions are not allowed");
    }
    if (accept_kw("AS"))
      r.alias = name("an alias");
    else if (is_name())
      r.alias = next().text;
    if (kw("INDEXED") || kw("NOT")) fail("INDEXED BY is not supported");
    if (accept_kw("ON")) {
      if (join.empty() || join == ",") fail("ON without JOIN");
      r.on = expr();
    } else if (accept_kw("USING")) {
      if (join.empty() || join == ",") fail("USING without JOIN");
      expect_op("(");
      do r.using_cols.push_back(name("a column name"));
      while (accept_op(","));
      expect_op(")");
    }
    return r;
  }

  NodeP make(Node::K k, std::string o = {}) {
    auto n = std::make_unique<Node>();
    n->k = k;
    n->op = std::move(o);
    return n;
  }
  NodeP binary(std::string o, NodeP a, NodeP b) {
    auto n = make(Node::K::Binary, std::move(o));
    n->kids.push_back(std::move(a));
    n->kids.push_back(std::move(b));
    return n;
  }

 public:
  NodeP expr() {
    Depth d(*this);
    auto a = and_expr();
    while (accept_kw("OR")) a = binary("OR", std::move(a), and_expr());
    return a;
  }

 private:
  NodeP and_expr() {
    auto a = not_expr();
    while (accept_kw("AND")) a = binary("AND", std::move(a), not_expr());
    return a;
  }
  NodeP not_expr() {
    Depth d(*this);
    if (accept_kw("NOT")) {
      auto n = make(Node::K::Unary, "NOT");
      n->kids.push_back(not_expr());
      return n;
    }
    return equality();
  }
  NodeP equality() {
    auto a = comparison();
    for (;;) {
      if (op("=") || op("==") || op("!=") || op("<>")) {
        std::string o = next().text;
        if (o == "==") o = "=";
        if (o == "<>") o = "!=";
        a = binary(o, std::move(a), comparison());
        continue;
      }
      if (accept_kw("ISNULL") || (kw("NOT") && kw("NULL", 1))) {
        if (kw("NOT")) next(), next();
        auto n = make(Node::K::Null);
        n->kids.push_back(std::move(a));
        a = std::move(n);
        continue;
      }
      if (accept_kw("NOTNULL")) {
        auto n = make(Node::K::Null);
        n->flag = true;
        n->kids.push_back(std::move(a));
        a = std::move(n);
        continue;
      }
      if (accept_kw("IS")) {
        auto n = make(Node::K::Is);
        n->flag = accept_kw("NOT");
        if (kw("DISTINCT")) fail("IS DISTINCT FROM is not supported");
        n->kids.push_back(std::move(a));
        n->kids.push_back(comparison());
        a = std::move(n);
        continue;
      }
      const bool neg = kw("NOT") && (kw("IN", 1) || kw("LIKE", 1) || kw("GLOB", 1) || kw("BETWEEN", 1));
      if (neg) next();
      if (accept_kw("IN")) {
        auto n = make(Node::K::In);
        n->flag = neg;
        n->kids.push_back(std::move(a));
        expect_op("(");
        if (kw("SELECT") || kw("WITH")) {
          n->sub = query();
        } else if (!op(")")) {
          do n->kids.push_back(expr());
          while (accept_op(","));
        }
        expect_op(")");
        a = std::move(n);
        continue;
      }
      if (kw("LIKE") || kw("GLOB")) {
        auto n = make(Node::K::Like, upper(next().text));
        n->flag = neg;
        n->kids.push_back(std::move(a));
        n->kids.push_back(comparison());
        if (accept_kw("ESCAPE")) n->kids.push_back(comparison());
        a = std::move(n);
        continue;
      }
      if (accept_kw("BETWEEN")) {
        auto n = make(Node::K::Between);
        n->flag = neg;
        n->kids.push_back(std::move(a));
        n->kids.push_back(comparison());
        expect_kw("AND");
        n->kids.push_back(comparison());
        a = std::move(n);
        continue;
      }
      if (neg) fail("unexpected NOT");
      if (kw("REGEXP") || kw("MATCH")) fail(upper(peek().text) + " is not supported");
      return a;
    }
  }
  NodeP comparison() {
    auto a = bitwise();
    while (op("<") || op("<=") || op(">") || op(">=")) {
      std::string o = next().text;
      a = binary(o, std::move(a), bitwise());
    }
    return a;
  }
  NodeP bitwise() {
    auto a = additive();
    while (op("&") || op("|") || op("<<") || op(">>")) {
      std::string o = next().text;
      a = binary(o, std::move(a), additive());
    }
    return a;
  }
  NodeP additive() {
    auto a = multiplicative();
    while (op("+") || op("-")) {
      std::string o = next().text;
      a = binary(o, std::move(a), multiplicative());
    }
    return a;
  }
  NodeP multiplicative() {
    auto a = concat();
    while (op("*") || op("/") || op("%")) {
      std::string o = next().text;
      a = binary(o, std::move(a), concat());
    }
    return a;
  }
  NodeP concat() {
    auto a = unary();
    while (op("||")) {
      next();
      a = binary("||", std::move(a), unary());
    }
    return a;
  }
  NodeP unary() {
    Depth d(*this);
    if (op("-") || op("+") || op("~")) {
      auto n = make(Node::K::Unary, next().text);
      n->kids.push_back(unary());
      return n;
    }
    auto p = primary();
    if (kw("COLLATE")) fail("COLLATE is not supported");
    return p;
  }
  NodeP primary() {
    Depth d(*this);
    const Token& t = peek();
    switch (t.kind) {
      case Token::Kind::Number:
        return make(Node::K::Literal, next().text);
      case Token::Kind::String: {
        // Only SQLite reads backslashes in strings literally in every mode: elsewhere refuse them
        // rather than guess the server's escaping.
        if (dialect_ != "sqlite" && t.text.find('\\') != std::string::npos)
          fail("backslashes in string literals are not supported on " + dialect_);
        auto n = make(Node::K::Literal, quote_string(next().text));
        return n;
      }
      case Token::Kind::Blob:
        return make(Node::K::Literal, "X'" + next().text + "'");
      case Token::Kind::Param:
        if (t.text != "?") fail("only ? parameters are supported");
        next();
        return make(Node::K::Param, "?");
      case Token::Kind::End:
        fail("expected an expression");
      case Token::Kind::Op:
        if (accept_op("(")) {
          if (kw("SELECT") || kw("WITH")) {
            auto n = make(Node::K::Sub);
            n->sub = query();
            expect_op(")");
            return n;
          }
          auto e = expr();
          if (op(",")) fail("row values are not supported");
          expect_op(")");
          return e;
        }
        fail("expected an expression");
      case Token::Kind::Ident:
        break;
    }
    if (!t.quoted) {
      const std::string u = upper(t.text);
      if (u == "NULL" || u == "TRUE" || u == "FALSE" || u == "CURRENT_DATE" || u == "CURRENT_TIME" ||
          u == "CURRENT_TIMESTAMP") {
        next();
        return make(Node::K::Literal, u);
      }
      if (u == "CASE") return case_expr();
      if (u == "CAST") {
        next();
        expect_op("(");
        auto n = make(Node::K::Cast);
        n->kids.push_back(expr());
        expect_kw("AS");
        std::string type = upper(name("a type name"));
        static const std::set<std::string> types = {"INTEGER", "INT", "REAL", "TEXT", "NUMERIC", "FLOAT", "DOUBLE"};
        if (!types.count(type)) fail("CAST to " + type + " is not supported");
        n->op = type;
        expect_op(")");
        return n;
      }
      if (u == "EXISTS" || (u == "NOT" && kw("EXISTS", 1))) {
        auto n = make(Node::K::Exists);
        if (u == "NOT") next(), n->flag = true;
        next();
        expect_op("(");
        n->sub = query();
        expect_op(")");
        return n;
      }
    }
    if (op("(", 1) && !t.quoted) {
      const auto& allowed = allowed_functions(dialect_);
      const auto it = allowed.find(upper(t.text));
      if (it == allowed.end()) refuse("function " + upper(t.text) + "() is not allowed");
      const std::string fname = it->second;
      next();
      next();  // (
      auto n = make(Node::K::Func, fname);
      if (accept_op("*")) {
        if (upper(fname) != "COUNT") fail("* is only allowed in COUNT(*)");
        n->star_arg = true;
      } else if (!op(")")) {
        n->flag = accept_kw("DISTINCT");
        do n->kids.push_back(expr());
        while (accept_op(","));
      }
      expect_op(")");
      if (kw("FILTER") || kw("OVER")) fail("window and filter clauses are not supported");
      return n;
    }
    auto n = make(Node::K::Column, name("a column name"));
    if (accept_op(".")) {
      n->table = n->op;
      n->op = name("a column name");
      if (op(".")) fail("three-part names are not allowed");
    }
    return n;
  }
  NodeP case_expr() {
    next();  // CASE
    auto n = make(Node::K::Case);
    if (!kw("WHEN")) {
      n->flag = true;
      n->kids.push_back(expr());
    }
    if (!kw("WHEN")) fail("expected WHEN");
    while (accept_kw("WHEN")) {
      n->kids.push_back(expr());
      expect_kw("THEN");
      n->kids.push_back(expr());
    }
    if (accept_kw("ELSE")) {
      n->has_else = true;
      n->kids.push_back(expr());
    }
    expect_kw("END");
    return n;
  }
};

// ---- printing ----

std::string ident(const std::string& s) {
  bool plain = !s.empty() && (std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_') && !reserved_word(s);
  for (char c : s) plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (plain) return s;
  if (g_style && g_style->dialect == "mysql") {
    std::string q = "`";
    for (char c : s) q += c == '`' ? std::string("``") : std::string(1, c);
    return q + "`";
  }
  return quote_ident(s);
}

std::string print(const SqlQuery& q);

std::string print(const Node& n) {
  switch (n.k) {
    case Node::K::Literal:
    case Node::K::Param:
      return n.op;
    case Node::K::Column:
      return (n.table.empty() ? "" : ident(n.table) + ".") + ident(n.op);
    case Node::K::Star:
      return n.table.empty() ? "*" : ident(n.table) + ".*";
    case Node::K::Unary:
      return n.op == "NOT" ? "(NOT " + print(*n.kids[0]) + ")" : "(" + n.op + print(*n.kids[0]) + ")";
    case Node::K::Binary:
      return "(" + print(*n.kids[0]) + " " + n.op + " " + print(*n.kids[1]) + ")";
    case Node::K::Func: {
      std::string s = n.op + "(";
      if (n.star_arg) s += "*";
      if (n.flag) s += "DISTINCT ";
      for (size_t i = 0; i < n.kids.size(); ++i) s += (i ? ", " : "") + print(*n.kids[i]);
      return s + ")";
    }
    case Node::K::Case: {
      std::string s = "CASE";
      size_t i = 0;
      if (n.flag) s += " " + print(*n.kids[i++]);
      const size_t stop = n.kids.size() - (n.has_else ? 1 : 0);
      for (; i + 1 < stop; i += 2) s += " WHEN " + print(*n.kids[i]) + " THEN " + print(*n.kids[i + 1]);
      if (n.has_else) s += " ELSE " + print(*n.kids.back());
      return s + " END";
    }
    case Node::K::Cast:
      return "CAST(" + print(*n.kids[0]) + " AS " + n.op + ")";
    case Node::K::In: {
      std::string s = "(" + print(*n.kids[0]) + (n.flag ? " NOT IN (" : " IN (");
      if (n.sub) return s + print(*n.sub) + "))";
      for (size_t i = 1; i < n.kids.size(); ++i) s += (i > 1 ? ", " : "") + print(*n.kids[i]);
      return s + "))";
    }
    case Node::K::Between:
      return "(" + print(*n.kids[0]) + (n.flag ? " NOT BETWEEN " : " BETWEEN ") + print(*n.kids[1]) + " AND " +
             print(*n.kids[2]) + ")";
    case Node::K::Like: {
      std::string s = "(" + print(*n.kids[0]) + (n.flag ? " NOT " : " ") + n.op + " " + print(*n.kids[1]);
      if (n.kids.size() > 2) s += " ESCAPE " + print(*n.kids[2]);
      return s + ")";
    }
    case Node::K::Is:
      return "(" + print(*n.kids[0]) + (n.flag ? " IS NOT " : " IS ") + print(*n.kids[1]) + ")";
    case Node::K::Null:
      return "(" + print(*n.kids[0]) + (n.flag ? " IS NOT NULL)" : " IS NULL)");
    case Node::K::Exists:
      return std::string(n.flag ? "(NOT EXISTS (" : "(EXISTS (") + print(*n.sub) + "))";
    case Node::K::Sub:
      return "(" + print(*n.sub) + ")";
  }
  return "";
}

std::string print(const SelectCore& c) {
  std::string s = c.distinct ? "SELECT DISTINCT " : "SELECT ";
  for (size_t i = 0; i < c.cols.size(); ++i) {
    s += (i ? ", " : "") + print(*c.cols[i].e);
    if (!c.cols[i].alias.empty()) s += " AS " + ident(c.cols[i].alias);
  }
  for (size_t i = 0; i < c.from.size(); ++i) {
    const auto& r = c.from[i];
    s += i == 0 ? " FROM " : (r.join == "," ? ", " : " " + r.join + " ");
    s += r.sub ? "(" + print(*r.sub) + ")" : ident(r.name);
    if (!r.alias.empty()) s += " AS " + ident(r.alias);
    if (r.on) s += " ON " + print(*r.on);
    if (!r.using_cols.empty()) {
      s += " USING (";
      for (size_t k = 0; k < r.using_cols.size(); ++k) s += (k ? ", " : "") + ident(r.using_cols[k]);
      s += ")";
    }
  }
  if (c.where) s += " WHERE " + print(*c.where);
  if (!c.group.empty()) {
    s += " GROUP BY ";
    for (size_t i = 0; i < c.group.size(); ++i) s += (i ? ", " : "") + print(*c.group[i]);
  }
  if (c.having) s += " HAVING " + print(*c.having);
  return s;
}

std::string print(const SqlQuery& q) {
  std::string s;
  if (!q.ctes.empty()) {
    s = q.recursive ? "WITH RECURSIVE " : "WITH ";
    for (size_t i = 0; i < q.ctes.size(); ++i) {
      const auto& c = q.ctes[i];
      s += (i ? ", " : "") + ident(c.name);
      if (!c.cols.empty()) {
        s += "(";
        for (size_t k = 0; k < c.cols.size(); ++k) s += (k ? ", " : "") + ident(c.cols[k]);
        s += ")";
      }
      s += " AS (" + print(*c.q) + ")";
    }
    s += " ";
  }
  for (size_t i = 0; i < q.cores.size(); ++i) s += (i ? " " + q.ops[i - 1] + " " : "") + print(q.cores[i]);
  if (!q.order.empty()) {
    s += " ORDER BY ";
    for (size_t i = 0; i < q.order.size(); ++i)
      s += (i ? ", " : "") + print(*q.order[i].e) + (q.order[i].desc ? " DESC" : "");
  }
  if (q.limit) s += " LIMIT " + print(*q.limit);
  if (q.offset) s += " OFFSET " + print(*q.offset);
  return s;
}

// ---- checks and rewrites ----

NodeP clone(const Node& n);
std::unique_ptr<SqlQuery> clone_query(const SqlQuery& q) {
  // Only row filters are cloned, and they hold no subqueries (refused when parsed).
  (void)q;
  refuse("subqueries are not allowed in row filters");
}
NodeP clone(const Node& n) {
  auto c = std::make_unique<Node>();
  c->k = n.k, c->op = n.op, c->table = n.table, c->flag = n.flag, c->star_arg = n.star_arg, c->has_else = n.has_else;
  for (auto& k : n.kids) c->kids.push_back(clone(*k));
  if (n.sub) c->sub = clone_query(*n.sub);
  return c;
}

struct Checker {
  const GuardOptions& opt;
  std::set<std::string> tables;     // base tables read
  std::set<std::string> sensitive;  // lower-case column names
  std::map<std::string, std::set<std::string>> sensitive_by_table;
  std::vector<std::pair<std::string, NodeP>> filters;  // lower table name, parsed condition

  void node(Node& n, std::set<std::string>& ctes) {
    if (n.k == Node::K::Column && !opt.allow_sensitive && sensitive.count(lower(n.op)))
      refuse("column '" + n.op + "' is sensitive");
    for (auto& k : n.kids) node(*k, ctes);
    if (n.sub) query(*n.sub, ctes);
  }

  void query(SqlQuery& q, std::set<std::string> ctes) {
    for (auto& c : q.ctes) {
      if (q.recursive) ctes.insert(lower(c.name));
      query(*c.q, ctes);
      ctes.insert(lower(c.name));
    }
    for (auto& c : q.cores) core(c, ctes);
    for (auto& o : q.order) node(*o.e, ctes);
    if (q.limit) node(*q.limit, ctes);
    if (q.offset) node(*q.offset, ctes);
  }

  void core(SelectCore& c, const std::set<std::string>& ctes) {
    std::vector<std::string> base_here;
    for (auto& r : c.from) {
      if (r.sub) {
        query(*r.sub, ctes);
      } else if (!ctes.count(lower(r.name))) {
        const auto ln = lower(r.name);
        if (ln.rfind("sqlite_", 0) == 0) refuse("table '" + r.name + "' is internal");
        if (!opt.schema.empty()) {
          bool found = false;
          for (auto& [t, _] : opt.schema) found = found || lower(t) == ln;
          if (!found) refuse("unknown table '" + r.name + "'");
        }
        tables.insert(r.name);
        base_here.push_back(ln);
        // Row filters: qualified with the name this SELECT uses for the table.
        for (auto& [ft, cond] : filters) {
          if (ft != ln) continue;
          auto f = clone(*cond);
          qualify(*f, r.alias.empty() ? r.name : r.alias);
          c.where = c.where ? and_node(std::move(c.where), std::move(f)) : std::move(f);
        }
      }
      if (r.on) node(*r.on, const_cast<std::set<std::string>&>(ctes));
      if (!opt.allow_sensitive)
        for (auto& u : r.using_cols)
          if (sensitive.count(lower(u))) refuse("column '" + u + "' is sensitive");
    }
    auto& cs = const_cast<std::set<std::string>&>(ctes);
    for (auto& col : c.cols) {
      if (col.e->k == Node::K::Star && !opt.allow_sensitive) {
        for (auto& t : base_here) {
          auto it = sensitive_by_table.find(t);
          if (it != sensitive_by_table.end() && !it->second.empty())
            refuse("* would read sensitive column '" + *it->second.begin() + "' of table '" + t + "'");
        }
      }
      node(*col.e, cs);
    }
    if (c.where) node(*c.where, cs);
    for (auto& g : c.group) node(*g, cs);
    if (c.having) node(*c.having, cs);
  }

  static NodeP and_node(NodeP a, NodeP b) {
    auto n = std::make_unique<Node>();
    n->k = Node::K::Binary;
    n->op = "AND";
    n->kids.push_back(std::move(a));
    n->kids.push_back(std::move(b));
    return n;
  }
  static void qualify(Node& n, const std::string& table) {
    if (n.k == Node::K::Column && n.table.empty()) n.table = table;
    for (auto& k : n.kids) qualify(*k, table);
  }
};

int64_t literal_int(const Node& n, const char* what) {
  if (n.k != Node::K::Literal || n.op.empty() || !std::all_of(n.op.begin(), n.op.end(), ::isdigit) || n.op.size() > 15)
    refuse(std::string(what) + " should be a non-negative integer literal");
  return std::stoll(n.op);
}

}  // namespace

GuardedSql guard_sql(const std::string& sql, const GuardOptions& opt) {
  std::vector<Token> toks;
  try {
    toks = tokenize_sql(sql, "SQL");
  } catch (const Error& e) {
    refuse(e.what());
  }
  Parser p(std::move(toks), opt.dialect);
  auto q = p.statement();

  Checker ck{opt, {}, {}, {}, {}};
  for (auto& s : opt.sensitive) {
    const auto dot = s.find('.');
    const auto col = lower(dot == std::string::npos ? s : s.substr(dot + 1));
    ck.sensitive.insert(col);
    if (dot != std::string::npos) ck.sensitive_by_table[lower(s.substr(0, dot))].insert(col);
  }
  for (auto& f : opt.row_filters) {
    std::vector<Token> ft;
    try {
      ft = tokenize_sql(f.condition, "row filter");
    } catch (const Error& e) {
      refuse(e.what());
    }
    Parser fp(std::move(ft), opt.dialect);
    auto cond = fp.standalone_expr();
    std::function<void(const Node&)> no_sub = [&](const Node& n) {
      if (n.sub) refuse("row filter on '" + f.table + "' may not hold subqueries");
      if (n.k == Node::K::Param) refuse("row filter on '" + f.table + "' may not hold parameters");
      for (auto& k : n.kids) no_sub(*k);
    };
    no_sub(*cond);
    ck.filters.emplace_back(lower(f.table), std::move(cond));
  }
  ck.query(*q, {});

  GuardedSql out;
  if (q->offset) literal_int(*q->offset, "OFFSET");
  int64_t limit = opt.max_limit;
  if (q->limit && q->limit->k == Node::K::Literal) {
    const auto& t = q->limit->op;
    if (!t.empty() && std::all_of(t.begin(), t.end(), ::isdigit) && t.size() <= 15)
      limit = std::min<int64_t>(limit, std::stoll(t));
  }
  auto lim = std::make_unique<Node>();
  lim->k = Node::K::Literal;
  lim->op = std::to_string(limit);
  q->limit = std::move(lim);
  out.limit = limit;
  const PrintStyle style{opt.dialect};
  g_style = &style;
  out.sql = print(*q);
  g_style = nullptr;
  out.tables.assign(ck.tables.begin(), ck.tables.end());
  return out;
}

}  // namespace yak::ask
