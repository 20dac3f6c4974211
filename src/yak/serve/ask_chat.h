// The served model as `ask`'s chat model: yak serve --semantic answers the questions its rules
// do not understand with the model it serves, through the same scheduler as every other request
// (ask sees only the ChatModel interface, never the model).
#pragma once
#include "yak/ask/llm.h"
#include "yak/serve/openai.h"
#include "yak/serve/scheduler.h"

namespace yak::serve {

class SchedulerChat : public ask::ChatModel {
 public:
  SchedulerChat(Scheduler& scheduler, const ModelContext& model) : sched_(scheduler), m_(model) {}
  std::string name() const override { return m_.id; }
  // Renders the messages with the served chat template and submits n samples (seeds seed..).
  std::vector<std::string> complete(const ask::ChatRequest& req) override;

 private:
  Scheduler& sched_;
  const ModelContext& m_;
};

}  // namespace yak::serve
