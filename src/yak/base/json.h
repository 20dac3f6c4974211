// JSON reading with errors that name the file and the field (nlohmann::json underneath).
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "yak/base/error.h"

namespace yak {

using Json = nlohmann::json;

// Parses a JSON file; a syntax error names the file, line and column.
Json read_json_file(const std::filesystem::path& path);
Json parse_json(const std::string& text, const std::string& where);

// Typed field access: `where` is the file name used in error messages.
template <typename T>
T json_get(const Json& j, const std::string& key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) throw Error(where + ": missing field '" + key + "'");
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(where + ": field '" + key + "' has the wrong type (" + it->type_name() + ")");
  }
}

template <typename T>
T json_get_or(const Json& j, const std::string& key, T fallback, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(where + ": field '" + key + "' has the wrong type (" + it->type_name() + ")");
  }
}

// Follows string literals while JSON text is scanned character by character: feed() returns true
// for characters inside a literal and for its closing quote (the opening quote counts as outside),
// so bracket counting can skip them.
struct JsonStringTracker {
  bool in_str = false, esc = false;
  bool feed(char c) {
    if (in_str) {
      if (esc)
        esc = false;
      else if (c == '\\')
        esc = true;
      else if (c == '"')
        in_str = false;
      return true;
    }
    if (c == '"') in_str = true;
    return false;
  }
};

}  // namespace yak
