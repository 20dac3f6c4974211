#include <cstdio>

#include "common.h"
#include "yak/base/error.h"
#include "yak/base/json.h"

namespace yak::cli {

namespace {

struct TokenizeFlags {
  std::string tokenizer, file, text;
  bool add_special = false, json = false, skip_special = false;
};

void run_tokenize(const TokenizeFlags& f) {
  auto tok = tok::load_tokenizer(f.tokenizer);
  std::string text = f.file.empty() ? f.text : read_input(f.file);
  auto ids = tok->encode(text, f.add_special);
  if (f.json) {
    Json out = Json::array();
    for (auto id : ids) {
      const int32_t one[1] = {id};
      out.push_back({{"id", id}, {"piece", tok->id_to_token(id)}, {"text", tok->decode(one, false)}});
    }
    std::printf("%s\n", out.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
    return;
  }
  std::string line;
  for (auto id : ids) line += (line.empty() ? "" : " ") + std::to_string(id);
  std::printf("%s\n", line.c_str());
}

void run_detokenize(const TokenizeFlags& f) {
  auto tok = tok::load_tokenizer(f.tokenizer);
  auto ids = parse_ids(f.file.empty() ? f.text : read_input(f.file));
  for (auto id : ids)
    if (id >= tok->vocab_size())
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " +
                  std::to_string(tok->vocab_size()));
  std::string s = tok->decode(ids, f.skip_special);
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::printf("\n");
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto f = std::make_shared<TokenizeFlags>();
  auto* sub = app.add_subcommand("tokenize", "Print the token ids of a text");
  sub->add_option("--tokenizer", f->tokenizer, "Model folder or tokenizer file/folder")->required();
  sub->add_option("--file", f->file, "Read the text from a file ('-' = stdin)");
  sub->add_option("text", f->text, "Text to tokenize");
  sub->add_flag("--add-special", f->add_special, "Add BOS/EOS as the tokenizer config says");
  sub->add_flag("--json", f->json, "Print [{id, piece, text}] as JSON");
  sub->callback([f] { run_tokenize(*f); });

  auto g = std::make_shared<TokenizeFlags>();
  auto* de = app.add_subcommand("detokenize", "Print the text of token ids");
  de->add_option("--tokenizer", g->tokenizer, "Model folder or tokenizer file/folder")->required();
  de->add_option("--file", g->file, "Read ids from a file ('-' = stdin)");
  de->add_option("ids", g->text, "Token ids, space or comma separated");
  de->add_flag("--skip-special", g->skip_special, "Drop special tokens");
  de->callback([g] { run_detokenize(*g); });
}

}  // namespace yak::cli
