#include "yak/base/json.h"

#include "yak/base/mmap.h"

namespace yak {

Json parse_json(const std::string& text, const std::string& where) {
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // Report a line/column rather than nlohmann's byte offset.
    size_t line = 1, col = 1;
    for (size_t i = 0; i < e.byte - 1 && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw Error(where + ": invalid JSON at line " + std::to_string(line) + ", column " + std::to_string(col));
  } catch (const nlohmann::json::exception& e) {
    // e.g. a number too large to represent
    throw Error(where + ": invalid JSON (" + std::string(e.what()) + ")");
  }
}

Json read_json_file(const std::filesystem::path& path) {
  return parse_json(read_text_file(path), path.string());
}

}  // namespace yak
