#include "yak/ask/database.h"

#include <cmath>
#include <cstdio>

namespace yak::ask {

std::string Value::to_string() const {
  switch (type) {
    case Type::Null:
      return "";
    case Type::Int:
      return std::to_string(i);
    case Type::Real: {
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.6f", d);
      std::string s = buf;
      while (!s.empty() && s.back() == '0') s.pop_back();
      if (!s.empty() && s.back() == '.') s.pop_back();
      return s;
    }
    case Type::Text:
      return s;
  }
  return "";
}

Json Value::to_json() const {
  switch (type) {
    case Type::Null:
      return nullptr;
    case Type::Int:
      return i;
    case Type::Real:
      return std::isfinite(d) ? Json(d) : Json(nullptr);
    case Type::Text:
      return s;
  }
  return nullptr;
}

}  // namespace yak::ask
