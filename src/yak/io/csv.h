// CSV as RFC 4180 writes it (the format of C-Eval, CMMLU and MMLU's files): fields separated by
// commas, quoted with "..." when they hold commas, quotes ("" inside) or newlines; LF or CRLF
// rows; a UTF-8 BOM at the start is skipped. Bad input (an unclosed quote, text after a closing
// quote) throws yak::Error naming the file and line.
#pragma once
#include <string>
#include <vector>

namespace yak::io {

using CsvRow = std::vector<std::string>;
std::vector<CsvRow> parse_csv(const std::string& text, const std::string& where);
std::vector<CsvRow> read_csv_file(const std::string& path);

}  // namespace yak::io
