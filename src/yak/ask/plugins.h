// Plug-ins beside the semantic layer, configured in one YAML file (`yak ask --plugins FILE`):
//  - document retrieval: local Markdown/text files cut into passages at headings and paragraphs,
//    ranked by BM25 (words for Latin script, character unigrams and bigrams for CJK), fused with
//    embedding similarity when an embedding model is given; answers "what does X mean / what is
//    the policy on Y" with the passages and where they are (file:lines);
//  - function plug-ins: a name, a description and example questions, answered by a subprocess or
//    an HTTP endpoint that gets {"plugin", "question", "today", "elements"} as JSON and returns
//    {"text"} and optionally {"columns", "rows"}; chosen by how well the question matches the
//    description and examples, or by the chat model.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "yak/ask/database.h"
#include "yak/ask/dates.h"
#include "yak/ask/mapper.h"
#include "yak/base/json.h"

namespace yak::model {
class DecoderModel;
}
namespace yak::tok {
class Tokenizer;
}

namespace yak::ask {

class ChatModel;

// Search terms of a text: lower-case Latin words and numbers, and for CJK runs every character
// and every pair of neighbouring characters; stop words (question words) are left out.
std::vector<std::string> search_terms(const std::string& text);

struct Passage {
  std::string file;  // as given in the configuration (relative to it)
  int first_line = 0, last_line = 0;
  std::string heading;  // "Title > Section"
  std::string text;
  std::string cite() const { return file + ":" + std::to_string(first_line) + "-" + std::to_string(last_line); }
};

// Turns text into a unit vector; similar texts give close vectors.
class Embedder {
 public:
  virtual ~Embedder() = default;
  virtual std::vector<float> embed(const std::string& text) = 0;
};
// Mean of the final hidden states of yak's engine on the text, L2-normalised.
std::unique_ptr<Embedder> make_model_embedder(std::unique_ptr<model::DecoderModel> model,
                                              std::unique_ptr<tok::Tokenizer> tokenizer);

class DocIndex {
 public:
  struct Hit {
    const Passage* passage;
    double score;  // BM25; with embeddings the fused reciprocal-rank score
    double bm25 = 0;
  };
  // Files (.md, .markdown, .txt) and folders (searched recursively, in name order); paths
  // relative to `base`. Errors name the file.
  static DocIndex build(const std::vector<std::string>& paths, const std::filesystem::path& base);
  // Cuts one text into passages (Markdown headings start sections; blank lines split paragraphs,
  // which are packed up to about `max_chars`).
  static std::vector<Passage> split(const std::string& text, const std::string& file, size_t max_chars = 600);
  void add(Passage p);
  // Embeds every passage now; search() then fuses BM25 and cosine ranks.
  void set_embedder(Embedder* e);
  // The k best passages. BM25 alone keeps those scoring at least a quarter of the best; with an
  // embedder the ranking is the reciprocal-rank fusion (k = 60) of BM25 and cosine.
  std::vector<Hit> search(const std::string& query, size_t k) const;
  size_t size() const { return passages_.size(); }
  const Passage& passage(size_t i) const { return passages_[i]; }

 private:
  std::vector<Passage> passages_;
  std::vector<std::vector<std::string>> terms_;
  std::unordered_map<std::string, std::vector<std::pair<uint32_t, uint32_t>>> postings_;  // term -> (doc, tf)
  double avg_len_ = 0;
  Embedder* embedder_ = nullptr;
  std::vector<std::vector<float>> vectors_;
};

struct FunctionPlugin {
  std::string name, description;
  std::vector<std::string> examples;
  std::string command;  // run with /bin/sh -c in the plug-in file's folder, JSON on stdin and stdout
  std::string dir;      // that folder
  std::string url;      // or POST the JSON here
  double timeout_seconds = 10;
  double min_score = 0.5;  // share of the question's terms its description or an example must hold
};

struct PluginReply {
  std::string text;
  QueryResult table;  // when the plug-in returned columns and rows
};

struct PluginConfig {
  std::vector<std::string> documents;  // files and folders
  std::vector<FunctionPlugin> functions;
  std::string source;  // the YAML file, for messages
  std::filesystem::path base;

  static PluginConfig load(const std::filesystem::path& path);
  static PluginConfig parse(const std::string& yaml, const std::string& where, const std::filesystem::path& base);
};

// The loaded plug-in file: its function plug-ins and the index of its documents.
struct Plugins {
  PluginConfig config;
  DocIndex docs;
  static Plugins load(const std::filesystem::path& path);
};

// How well a question fits a plug-in: the largest share of the question's search terms found in
// its description or in one of its examples (0..1).
double plugin_score(const FunctionPlugin& p, const std::string& question);

// Calls the plug-in; throws yak::Error naming it when it fails, times out or answers badly.
PluginReply call_plugin(const FunctionPlugin& p, const std::string& question, const Date& today,
                        const Mapping& mapping);

// Whether a question asks what something means or what a rule/policy says (口径, 是什么意思,
// what does ... mean, definition, policy ...).
bool asks_for_definition(const std::string& question);

// The chat model picks a route: "data", "docs" or a function plug-in's name.
std::string route_with_model(ChatModel& chat, const std::string& question, const std::vector<FunctionPlugin>& fns,
                             bool have_docs);

}  // namespace yak::ask
