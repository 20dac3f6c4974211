// The evaluator: statements write text, expressions give Values, with jinja2's scoping (a for
// loop's body and a macro's body are scopes of their own; if blocks are not), its attribute and
// item lookup (a dict's methods win over its keys for `.name`, keys win for `[...]`), and the
// filters, tests, methods and globals of builtins.cpp.
#include <ctime>
#include <new>
#include <stdexcept>

#include "yak/tokenizer/jinja/builtins.h"
#include "yak/tokenizer/jinja/jinja.h"
#include "yak/tokenizer/jinja/parse.h"

namespace yak::jinja {

struct TemplateNode {
  Body body;
};

Template::Template(const std::string& source, std::string name) : name_(std::move(name)), source_(source) {
  root_ = std::make_unique<TemplateNode>();
  root_->body = parse_template(source, name_);
}
Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

namespace {

enum class Flow { Normal, Break, Continue };

struct Frame {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Frame> parent;
  Value* find(const std::string& n) {
    for (auto& [k, v] : vars)
      if (k == n) return &v;
    return nullptr;
  }
  void set(const std::string& n, Value v) {
    if (Value* x = find(n)) *x = std::move(v);
    else vars.emplace_back(n, std::move(v));
  }
};
using FramePtr = std::shared_ptr<Frame>;

constexpr int64_t kMaxSteps = 2'000'000;  // a long chat with many tools takes ~100k
constexpr size_t kMaxOutput = size_t{256} << 20;
constexpr int kMaxDepth = 200;

class Renderer final : public Host {
 public:
  Renderer(const std::string& name, std::function<std::tm()> clock) : name_(name), clock_(std::move(clock)) {}

  std::string run(const Body& body, const Value& variables) {
    globals_ = std::make_shared<Frame>();
    for (auto& [k, v] : builtin_globals(*this, clock_)) globals_->set(k, std::move(v));
    if (variables.is_dict())
      for (const auto& [k, v] : variables.dict_ref().entries) globals_->set(k.to_str(), v);
    auto top = std::make_shared<Frame>();
    top->parent = globals_;
    std::string out;
    exec(body, top, out);
    return out;
  }

  [[noreturn]] void fail(const std::string& kind, const std::string& msg) override {
    throw TemplateError(kind, name_ + ":" + std::to_string(line_) + ": " + msg);
  }
  Value call(const Value& f, Args& a) override {
    if (f.is_undefined()) fail("UndefinedError", "'" + f.undefined_name() + "' is undefined");
    if (!f.is_function()) fail("TypeError", "'" + f.type_name() + "' object is not callable");
    if (++depth_ > kMaxDepth) fail("RecursionError", "maximum recursion depth exceeded");
    Value r = f.fn()(a);
    --depth_;
    return r;
  }
  Value getattr(const Value& obj, const std::string& name) override {
    if (obj.is_undefined()) fail("UndefinedError", undefined_message(obj));
    if (!name.empty() && name[0] == '_') return Value(Undefined{name});  // the sandbox hides these
    if (obj.is_dict() && obj.dict_ref().is_namespace) {
      const Value* v = obj.dict_ref().find(Value(name));
      return v ? *v : Value(Undefined{name});
    }
    Value m = method(obj, name, *this);
    if (!m.is_undefined()) return m;
    if (obj.is_dict()) {
      const Value* v = obj.dict_ref().find(Value(name));
      if (v) return *v;
    }
    return Value(Undefined{name});
  }
  Value getitem(const Value& obj, const Value& key) override {
    if (obj.is_undefined()) fail("UndefinedError", undefined_message(obj));
    if (obj.is_dict()) {
      const Value* v = obj.dict_ref().find(key);
      if (v) return *v;
    } else if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
      int64_t i = key.as_int();
      if (obj.is_list()) {
        const auto n = static_cast<int64_t>(obj.items().size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return obj.items()[static_cast<size_t>(i)];
      } else {
        const auto cps = utf8_decode(obj.str());
        const auto n = static_cast<int64_t>(cps.size());
        if (i < 0) i += n;
        if (i >= 0 && i < n) return Value(utf8_encode(std::u32string(1, cps[static_cast<size_t>(i)])));
      }
      return Value(Undefined{key.to_str()});
    }
    if (key.is_string()) return getattr(obj, key.str());
    return Value(Undefined{key.to_str()});
  }
  void tick() override {
    if (++steps_ > kMaxSteps) fail("RuntimeError", "the template ran for too long");
  }

 private:
  static std::string undefined_message(const Value& u) {
    return u.undefined_name().empty() ? "a value is undefined" : "'" + u.undefined_name() + "' is undefined";
  }

  Value lookup(const FramePtr& f, const std::string& n) {
    for (Frame* x = f.get(); x; x = x->parent.get())
      if (Value* v = x->find(n)) return *v;
    return Value(Undefined{n});
  }

  void unpack(const FramePtr& f, const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      f->set(targets[0], v);
      return;
    }
    List items;
    if (v.is_list()) items = v.items();
    else if (v.is_string()) for (char32_t c : utf8_decode(v.str())) items.emplace_back(utf8_encode(std::u32string(1, c)));
    else if (v.is_dict()) for (const auto& [k, x] : v.dict_ref().entries) items.push_back(k);
    else fail("TypeError", "cannot unpack non-iterable " + v.type_name() + " object");
    if (items.size() != targets.size())
      fail("ValueError", (items.size() > targets.size() ? "too many values to unpack (expected " : "not enough values to unpack (expected ") +
                             std::to_string(targets.size()) + ")");
    for (size_t i = 0; i < targets.size(); ++i) f->set(targets[i], items[i]);
  }

  // Whether v holds the dict `d` (a reference cycle that would outlive the render).
  static bool reaches(const Value& v, const Dict* d, int depth) {
    if (depth > 64) return true;  // too deep to tell: refuse
    if (v.is_dict()) {
      if (&v.dict_ref() == d) return true;
      for (const auto& [k, x] : v.dict_ref().entries)
        if (reaches(x, d, depth + 1)) return true;
    } else if (v.is_list()) {
      for (const auto& x : v.items())
        if (reaches(x, d, depth + 1)) return true;
    }
    return false;
  }

  void emit(std::string& out, const std::string& s) {
    out += s;
    if (out.size() > kMaxOutput) fail("RuntimeError", "the template's output passed 256 MB");
  }

  Flow exec(const Body& body, const FramePtr& f, std::string& out) {
    for (const Node& n : body) {
      const Flow fl = exec(n, f, out);
      if (fl != Flow::Normal) return fl;
    }
    return Flow::Normal;
  }

  Flow exec(const Node& n, const FramePtr& f, std::string& out) {
    tick();
    line_ = n.line;
    try {
      switch (n.kind) {
        case NodeKind::Text: emit(out, n.text); return Flow::Normal;
        case NodeKind::Output: emit(out, eval(*n.expr, f).to_str()); return Flow::Normal;
        case NodeKind::If:
          for (size_t i = 0; i < n.conds.size(); ++i)
            if (eval(*n.conds[i], f).truthy()) return exec(n.bodies[i], f, out);
          return exec(n.else_body, f, out);
        case NodeKind::For: return exec_for(n, f, out);
        case NodeKind::Set: {
          Value v = eval(*n.expr, f);
          if (!n.text.empty()) {
            Value ns = lookup(f, n.targets[0]);
            line_ = n.line;
            if (!ns.is_dict() || !ns.dict_ref().is_namespace)
              fail("TemplateRuntimeError", "cannot assign attribute on non-namespace object");
            if (reaches(v, &ns.dict_ref(), 0))
              fail("TemplateRuntimeError", "a namespace cannot hold itself (" + n.targets[0] + "." + n.text + ")");
            ns.dict_ref().set(Value(n.text), std::move(v));
          } else {
            unpack(f, n.targets, v);
          }
          return Flow::Normal;
        }
        case NodeKind::SetBlock: {
          std::string s;
          exec(n.bodies[0], f, s);
          f->set(n.targets[0], n.expr ? filter_chain(*n.expr, f, Value(s)) : Value(s));
          return Flow::Normal;
        }
        case NodeKind::Macro: f->set(n.text, make_macro(n, f)); return Flow::Normal;
        case NodeKind::CallBlock: return exec_call_block(n, f, out);
        case NodeKind::FilterBlock: {
          std::string s;
          exec(n.bodies[0], f, s);
          emit(out, filter_chain(*n.expr, f, Value(s)).to_str());
          return Flow::Normal;
        }
        case NodeKind::Break: return Flow::Break;
        case NodeKind::Continue: return Flow::Continue;
        case NodeKind::Generation: return exec(n.bodies[0], f, out);
      }
    } catch (const TemplateError&) {
      throw;
    } catch (const Error& e) {
      fail("TypeError", e.what());
    }
    return Flow::Normal;
  }

  Flow exec_for(const Node& n, const FramePtr& f, std::string& out) {
    const Value seq = eval(*n.expr, f);
    List items = iterate(seq, *this);
    if (n.cond) {
      List kept;
      for (const Value& x : items) {
        auto fr = std::make_shared<Frame>();
        fr->parent = f;
        unpack(fr, n.targets, x);
        if (eval(*n.cond, fr).truthy()) kept.push_back(x);
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(n.else_body, f, out);
    const auto len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      tick();
      auto fr = std::make_shared<Frame>();
      fr->parent = f;
      unpack(fr, n.targets, items[static_cast<size_t>(i)]);
      Value loop = Value::dict();
      auto& d = loop.dict_ref();
      d.set(Value("index"), Value(i + 1));
      d.set(Value("index0"), Value(i));
      d.set(Value("revindex"), Value(len - i));
      d.set(Value("revindex0"), Value(len - i - 1));
      d.set(Value("first"), Value(i == 0));
      d.set(Value("last"), Value(i == len - 1));
      d.set(Value("length"), Value(len));
      d.set(Value("depth"), Value(1));
      d.set(Value("depth0"), Value(0));
      d.set(Value("previtem"), i > 0 ? items[static_cast<size_t>(i - 1)] : Value(Undefined{"previtem"}));
      d.set(Value("nextitem"), i + 1 < len ? items[static_cast<size_t>(i + 1)] : Value(Undefined{"nextitem"}));
      d.set(Value("cycle"), Value::function([i](Args& a) -> Value {
              if (a.pos.empty()) throw Error("no items for cycling given");
              return a.pos[static_cast<size_t>(i) % a.pos.size()];
            }));
      fr->set("loop", loop);
      const Flow fl = exec(n.bodies[0], fr, out);
      if (fl == Flow::Break) break;
    }
    return Flow::Normal;
  }

  // A macro (or a call block's caller): parameters bound from the call, defaults evaluated in
  // the macro's own scope, the body rendered to a string.
  Value make_macro(const Node& n, const FramePtr& scope) {
    const Node* node = &n;
    // The macro is usually stored in the scope it closes over: a weak reference breaks the cycle
    // (a scope that ended leaves the macro the template's globals).
    std::weak_ptr<Frame> closure = scope;
    return Value::function([this, node, closure](Args& a) -> Value {
      auto fr = std::make_shared<Frame>();
      fr->parent = closure.lock();
      if (!fr->parent) fr->parent = globals_;
      const int saved = line_;
      List varargs;
      for (size_t i = 0; i < a.pos.size(); ++i) {
        if (i < node->targets.size()) fr->set(node->targets[i], a.pos[i]);
        else varargs.push_back(a.pos[i]);
      }
      Value kwargs = Value::dict();
      for (const auto& [k, v] : a.kw) {
        bool param = false;
        for (const auto& t : node->targets) param = param || t == k;
        if (param) fr->set(k, v);
        else if (k == "caller") fr->set("caller", v);
        else kwargs.dict_ref().set(Value(k), v);
      }
      for (size_t i = 0; i < node->targets.size(); ++i) {
        if (fr->find(node->targets[i])) continue;
        fr->set(node->targets[i], node->defaults[i] ? eval(*node->defaults[i], fr) : Value(Undefined{node->targets[i]}));
      }
      fr->set("varargs", Value::tuple(std::move(varargs)));
      fr->set("kwargs", kwargs);
      std::string s;
      exec(node->bodies[0], fr, s);
      line_ = saved;
      return Value(std::move(s));
    });
  }

  Flow exec_call_block(const Node& n, const FramePtr& f, std::string& out) {
    const Expr& c = *n.expr;
    if (c.kind != ExprKind::Call) fail("TemplateSyntaxError", "a call block needs a call");
    Value callee = eval(*c.kids[0], f);
    Args a = eval_args(c, 1, f);
    a.kw.emplace_back("caller", make_macro(n, f));
    line_ = n.line;
    emit(out, call(callee, a).to_str());
    return Flow::Normal;
  }

  Args eval_args(const Expr& e, size_t from, const FramePtr& f) {
    Args a;
    for (size_t i = from; i < e.kids.size(); ++i) {
      Value v = eval(*e.kids[i], f);
      const std::string& k = e.arg_names[i - from];
      if (k == "*") {
        for (Value& x : iterate(v, *this)) a.pos.push_back(std::move(x));
      } else if (k == "**") {
        if (!v.is_dict()) fail("TypeError", "argument after ** must be a mapping, not " + v.type_name());
        for (const auto& [key, x] : v.dict_ref().entries) a.kw.emplace_back(key.to_str(), x);
      } else if (k.empty()) a.pos.push_back(std::move(v));
      else a.kw.emplace_back(k, std::move(v));
    }
    return a;
  }

  // A filter chain whose innermost operand is missing (a block's filters) applied to `input`.
  Value filter_chain(const Expr& e, const FramePtr& f, const Value& input) {
    Value v = e.kids[0] ? (e.kids[0]->kind == ExprKind::Filter ? filter_chain(*e.kids[0], f, input) : eval(*e.kids[0], f))
                        : input;
    Args a = eval_args(e, 1, f);
    line_ = e.line;
    return apply_filter(e.name, v, a, *this);
  }

  Value eval(const Expr& e, const FramePtr& f) {
    tick();
    switch (e.kind) {
      case ExprKind::Literal: return e.value;
      case ExprKind::Name: return lookup(f, e.name);
      case ExprKind::Attr: {
        Value o = eval(*e.kids[0], f);
        line_ = e.line;
        return getattr(o, e.name);
      }
      case ExprKind::Item: {
        Value o = eval(*e.kids[0], f);
        Value k = eval(*e.kids[1], f);
        line_ = e.line;
        return getitem(o, k);
      }
      case ExprKind::Slice: {
        Value o = eval(*e.kids[0], f);
        Value lo = e.kids[1] ? eval(*e.kids[1], f) : Value(None{});
        Value hi = e.kids[2] ? eval(*e.kids[2], f) : Value(None{});
        Value st = e.kids[3] ? eval(*e.kids[3], f) : Value(None{});
        line_ = e.line;
        if (o.is_undefined()) fail("UndefinedError", undefined_message(o));
        return slice(o, lo, hi, st, *this);
      }
      case ExprKind::Call: {
        Value callee = eval(*e.kids[0], f);
        Args a = eval_args(e, 1, f);
        line_ = e.line;
        return call(callee, a);
      }
      case ExprKind::Filter: return filter_chain(e, f, Value());
      case ExprKind::Test: {
        Value v = eval(*e.kids[0], f);
        Args a = eval_args(e, 1, f);
        line_ = e.line;
        const bool r = apply_test(e.name, v, a, *this);
        return Value(e.negated ? !r : r);
      }
      case ExprKind::Not: return Value(!eval(*e.kids[0], f).truthy());
      case ExprKind::Neg:
      case ExprKind::Pos: {
        Value v = eval(*e.kids[0], f);
        line_ = e.line;
        if (v.is_undefined()) fail("UndefinedError", undefined_message(v));
        if (!v.is_number()) fail("TypeError", "bad operand type for unary " + std::string(e.kind == ExprKind::Neg ? "-" : "+") + ": '" + v.type_name() + "'");
        if (e.kind == ExprKind::Pos) return v.is_bool() ? Value(v.as_int()) : v;
        return v.is_float() ? Value(-v.as_double()) : Value(-v.as_int());
      }
      case ExprKind::Binary: {
        if (e.name == "and" || e.name == "or") {
          Value a = eval(*e.kids[0], f);
          if (a.truthy() == (e.name == "or")) return a;
          return eval(*e.kids[1], f);
        }
        Value a = eval(*e.kids[0], f);
        Value b = eval(*e.kids[1], f);
        line_ = e.line;
        return binary_op(e.name, a, b, *this);
      }
      case ExprKind::Compare: {
        Value a = eval(*e.kids[0], f);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value b = eval(*e.kids[i + 1], f);
          line_ = e.line;
          if (!compare_op(e.ops[i], a, b, *this)) return Value(false);
          a = std::move(b);
        }
        return Value(true);
      }
      case ExprKind::Cond: {
        if (eval(*e.kids[0], f).truthy()) return eval(*e.kids[1], f);
        return e.kids[2] ? eval(*e.kids[2], f) : Value(Undefined{});
      }
      case ExprKind::ListLit:
      case ExprKind::TupleLit: {
        List l;
        for (const auto& k : e.kids) l.push_back(eval(*k, f));
        return e.kind == ExprKind::ListLit ? Value::list(std::move(l)) : Value::tuple(std::move(l));
      }
      case ExprKind::DictLit: {
        Value d = Value::dict();
        for (size_t i = 0; i + 1 < e.kids.size(); i += 2) {
          Value k = eval(*e.kids[i], f);
          d.dict_ref().set(k, eval(*e.kids[i + 1], f));
        }
        return d;
      }
    }
    return Value();
  }

  const std::string& name_;
  std::function<std::tm()> clock_;
  FramePtr globals_;
  int line_ = 1;
  int depth_ = 0;
  int64_t steps_ = 0;
};

}  // namespace

std::string Template::render(const Value& variables, const std::function<std::tm()>& clock) const {
  Renderer r(name_, clock ? clock : [] {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    return tm;
  });
  try {
    return r.run(root_->body, variables);
  } catch (const std::bad_alloc&) {
    throw TemplateError("MemoryError", name_ + ": the template ran out of memory");
  } catch (const std::length_error&) {
    throw TemplateError("MemoryError", name_ + ": the template built a string past the limit");
  }
}

}  // namespace yak::jinja
