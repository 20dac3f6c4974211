// The LLM parser: for questions the rules do not understand well enough. The prompt carries the
// semantic model's business names (never tables, columns or SQL), what the mapper recognised and
// the nearest few-shot examples (from the semantic model and from confirmed past questions); the
// model answers with the DSL as JSON. The corrector then fixes what models get wrong (unknown
// names to the nearest known one, values to stored values, dates to the mapper's, missing time
// dimension, aggregation rules), and an optional self-consistency vote takes the DSL most
// samples agree on. The chat model is yak's own engine (`local:DIR`) or any OpenAI-compatible
// server (`openai:URL`).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "yak/ask/dates.h"
#include "yak/ask/dsl.h"
#include "yak/ask/knowledge.h"
#include "yak/ask/mapper.h"
#include "yak/ask/semantic.h"
#include "yak/tokenizer/chat_template.h"

namespace yak::model {
class DecoderModel;
}
namespace yak::tok {
class Tokenizer;
}

namespace yak::ask {

struct ChatRequest {
  std::vector<tok::ChatMessage> messages;
  int n = 1;                 // completions wanted
  double temperature = 0;    // 0: greedy
  int64_t max_tokens = 512;  // per completion
  uint64_t seed = 0;
};

class ChatModel {
 public:
  virtual ~ChatModel() = default;
  virtual std::string name() const = 0;
  // Exactly req.n completions; throws yak::Error naming the model when it cannot answer.
  virtual std::vector<std::string> complete(const ChatRequest& req) = 0;
};

// POST {base_url}/chat/completions. An empty model name asks GET {base_url}/models for the first.
std::unique_ptr<ChatModel> make_openai_chat(const std::string& base_url, std::string model,
                                            double timeout_seconds = 120, int retries = 2);
// yak's engine on a local checkpoint, prompts rendered with the given chat template.
std::unique_ptr<ChatModel> make_local_chat(std::unique_ptr<model::DecoderModel> model,
                                           std::unique_ptr<tok::Tokenizer> tokenizer, tok::ChatTemplate tmpl,
                                           std::string name);

struct Example {
  std::string question;
  Dsl dsl;
  std::string source;  // "model" or the store's file
};

// Confirmed questions with their DSL, one JSON object a line ({"question", "dsl"}); `add` appends
// (the file is created on first use), so people can teach the parser by confirming answers.
class FewShotStore {
 public:
  FewShotStore() = default;
  explicit FewShotStore(std::filesystem::path path);  // a missing file is an empty store
  void add(const std::string& question, const Dsl& dsl);
  const std::vector<Example>& examples() const { return examples_; }

 private:
  std::filesystem::path path_;
  std::vector<Example> examples_;
};

// The k examples most like the question (character bigram overlap on normalised text).
std::vector<const Example*> nearest_examples(const std::string& question, const std::vector<const Example*>& pool,
                                             size_t k);

// The chat messages sent to the model (system: schema and DSL format; user: mapped elements,
// examples, question).
std::vector<tok::ChatMessage> build_prompt(const std::string& question, const Mapping& mapping,
                                           const SemanticModel& model, const KnowledgeBase& kb,
                                           const std::vector<const Example*>& examples, const Date& today);

// The first JSON object in a reply (plain, or inside ``` fences, with text around it).
Json extract_json_object(const std::string& reply);  // null when there is none

// Fixes a model's DSL against the semantic model; each change is described in `notes`. Throws
// yak::Error when a name cannot be matched or a sensitive dimension is used without permission.
Dsl correct_dsl(Dsl d, const Mapping& mapping, const SemanticModel& model, const KnowledgeBase& kb,
                bool allow_sensitive, std::vector<std::string>* notes);

struct LlmOptions {
  int samples = 1;           // > 1: self-consistency vote over this many completions
  double temperature = 0.7;  // used when samples > 1 (one sample is greedy)
  int64_t max_tokens = 512;
  size_t shots = 4;  // few-shot examples in the prompt
  uint64_t seed = 0;
};

struct LlmResult {
  bool understood = false;
  Dsl dsl;
  int votes = 0, samples = 0;  // the winner's votes of the usable samples
  std::vector<std::string> notes;
  std::string message;  // why not understood
  std::vector<tok::ChatMessage> prompt;
  std::vector<std::string> replies;
};

class LlmParser {
 public:
  LlmParser(ChatModel& chat, LlmOptions opt) : chat_(chat), opt_(opt) {}
  // Extra few-shot examples (e.g. a FewShotStore's) besides those the caller passes to parse.
  void add_examples(const std::vector<Example>& e) { extra_.insert(extra_.end(), e.begin(), e.end()); }
  LlmResult parse(const std::string& question, const Mapping& mapping, const SemanticModel& model,
                  const KnowledgeBase& kb, const std::vector<Example>& model_examples, const Date& today,
                  bool allow_sensitive) const;
  const LlmOptions& options() const { return opt_; }
  ChatModel& chat() const { return chat_; }

 private:
  ChatModel& chat_;
  LlmOptions opt_;
  std::vector<Example> extra_;
};

}  // namespace yak::ask
