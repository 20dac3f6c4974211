#include "yak/io/csv.h"

#include "yak/base/error.h"
#include "yak/base/mmap.h"

namespace yak::io {

std::vector<CsvRow> parse_csv(const std::string& text, const std::string& where) {
  std::vector<CsvRow> rows;
  size_t i = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  int line = 1;
  CsvRow row;
  std::string field;
  bool any = false;  // the row has started (a field or a separator was read)
  auto end_field = [&] {
    row.push_back(std::move(field));
    field.clear();
  };
  auto end_row = [&] {
    end_field();
    rows.push_back(std::move(row));
    row.clear();
    any = false;
  };
  while (i < text.size()) {
    const char c = text[i];
    if (c == '"' && field.empty()) {
      const int start = line;
      ++i;
      while (true) {
        if (i >= text.size()) throw Error(where + ":" + std::to_string(start) + ": a quoted field is not closed");
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        line += text[i] == '\n';
        field += text[i++];
      }
      any = true;
      if (i < text.size() && text[i] != ',' && text[i] != '\n' && text[i] != '\r')
        throw Error(where + ":" + std::to_string(line) + ": text after a closing quote");
      continue;
    }
    if (c == ',') {
      end_field();
      any = true;
      ++i;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      ++i;
      if (any || !field.empty()) end_row();
      ++line;
    } else {
      field += c;
      any = true;
      ++i;
    }
  }
  if (any || !field.empty()) end_row();
  return rows;
}

std::vector<CsvRow> read_csv_file(const std::string& path) { return parse_csv(read_text_file(path), path); }

}  // namespace yak::io
