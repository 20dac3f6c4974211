// Continuous batching for yak serve: one thread owns the model and runs one forward per step over
// every running slot's next token plus a bounded chunk of prompt tokens of slots still filling
// their prompt, so requests join and leave the batch at every step and a long prompt delays the
// others by at most one chunk. Slot states: Free -> Prefill (prompt in chunks, after the pages
// the prefix cache already holds) -> Decode (one token per step) -> Free (finished, cancelled or
// failed: its pages go back to the pool at once). Prompts with images (vision-language models)
// carry their features and M-RoPE positions; a step's prompt tokens hold one such prompt's at
// most, and the prefix cache knows their image tokens by the picture, not by the pad token.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "yak/infer/engine.h"
#include "yak/infer/speculative.h"
#include "yak/model/decoder.h"
#include "yak/serve/page_pool.h"

namespace yak::serve {

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // most likely tokens at that step, best first
};

// What a request's reader receives, one per step the request took part in.
struct Event {
  std::string text;                    // text that became final
  std::vector<TokenLogprob> logprobs;  // the tokens of this step, when logprobs were asked for
  bool done = false;
  infer::FinishReason finish = infer::FinishReason::None;
  std::string error;  // set when the server ended it (cancelled, shutting down, failure)
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;  // on the last event
};

// The reader's end of a submitted request (thread-safe).
class RequestHandle {
 public:
  // Waits up to `timeout` for the next event; false when none came.
  bool next(Event& out, std::chrono::milliseconds timeout);
  // Stops the request; its slot is freed at the next step.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  friend class Scheduler;
  void push(Event e);
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerOptions {
  int parallel = 4;             // slots: sequences decoded together
  int64_t ctx = 4096;           // positions per slot (prompt + completion)
  int64_t kv_tokens = 0;        // positions in the page pool; 0: parallel * ctx
  int64_t prefill_chunk = 256;  // prompt tokens per step, over all slots
  int64_t queue = 64;           // requests waiting for a slot before new ones are refused
  bool prefix_cache = true;
  DType cache_type = DType::F32;
  int draft_max = 4;  // with a draft model: tokens it proposes per step and sequence
  float draft_p_min = 0.75f;  // ... each only while the draft's probability of it is at least this
};

// Served so far; read by /metrics.
struct SchedulerMetrics {
  int64_t requests_finished = 0, requests_cancelled = 0, requests_failed = 0;
  int64_t prompt_tokens = 0, prefill_tokens = 0, generated_tokens = 0, steps = 0;
  int64_t queue = 0, running = 0, last_batch_tokens = 0, last_batch_sequences = 0;
  int64_t draft_tokens = 0, draft_accepted = 0;  // speculative decoding: proposed, kept
  PagePoolStats pages;
};

// Thrown by submit when the queue is full or the server is shutting down (answer 503).
struct Unavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Scheduler {
 public:
  // draft: a smaller model over the same vocabulary for speculative decoding (may be null); its
  // proposals never change what is generated, only how many tokens one step yields.
  Scheduler(model::DecoderModel& model, const tok::Tokenizer* tok, std::vector<int32_t> eos_ids,
            SchedulerOptions options, model::DecoderModel* draft = nullptr);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  const SchedulerOptions& options() const { return opt_; }
  const std::vector<int32_t>& eos_ids() const { return eos_; }
  // Largest prompt + max_new_tokens one request may ask for.
  int64_t max_sequence() const;

  // Queues a request (its prompt must be non-empty, in the vocabulary, and fit max_sequence()).
  // top_logprobs < 0: no logprobs; otherwise each token's logprob and that many alternatives.
  // Requests of one group (n samples of one prompt) wait for each other's prompt so that they
  // share its pages. Throws Unavailable (queue full, shutting down) or yak::Error (bad request).
  std::shared_ptr<RequestHandle> submit(infer::GenerateRequest request, int top_logprobs = -1, int64_t group = -1);
  // Runs fn on the model's thread between two steps and waits for it (embeddings).
  void run_exclusive(const std::function<void()>& fn);
  // Stops taking requests: queued ones end with an error, running ones may finish until the
  // deadline, then are cancelled. Returns when nothing runs.
  void shutdown(std::chrono::milliseconds deadline);
  SchedulerMetrics metrics() const;

 private:
  struct Job {
    infer::GenerateRequest req;
    std::shared_ptr<RequestHandle> handle;
    int top_logprobs = -1;
    int64_t group = -1;
    // With images: the tokens the page pool sees, the image tokens replaced by negative ids
    // drawn from their picture (equal pads of different pictures never share pages); then
    // the generated tokens as they come. Empty for text prompts (the pool sees the tokens).
    std::vector<int32_t> pool_tokens;
  };
  struct Slot {
    bool busy = false;
    std::unique_ptr<Job> job;
    std::unique_ptr<infer::Continuation> cont;
    int64_t cached = 0;       // positions whose keys and values are in the cache
    int64_t hit = 0;          // of them, attached from the prefix cache
    int64_t worst_pages = 0;  // pages the request can grow to
    int64_t draft_cached = 0;  // positions in the draft model's cache (speculative decoding)
    infer::Drafts drafts;      // this step's proposals
    bool prefilling() const { return cont == nullptr; }
  };
  // Logits rows [first, first + rows) of a step belong to a slot (-1: a placeholder row).
  struct RowOwner {
    int32_t slot;
    size_t first, rows;
  };
  void loop();
  void admit();
  bool step();
  void sample_row(int32_t slot, std::span<float> logits);  // the slot's next token, its events
  void draft();  // the draft model's proposals for the decoding slots that take them
  void verify_rows(int32_t slot, std::span<float> rows);  // the target's verdict on them, its events
  void push_tokens(int32_t slot, size_t from, std::span<const float> raw_rows, size_t rows);
  void finish(int32_t slot, const std::string& error);
  int64_t pages_for(const infer::GenerateRequest& r) const;
  // Registers the slot's full pages up to slot.cached (its prompt and what it generated).
  void commit_pages(int32_t slot);
  // The 3 rotary positions of a slot's token at cache position p (M-RoPE models).
  void push_mrope(model::Batch& batch, const Job& job, int64_t p) const;

  model::DecoderModel& model_;
  const tok::Tokenizer* tok_;
  bool mrope_ = false;  // the model takes 3 rotary positions per token (Qwen3-VL)
  std::vector<int32_t> eos_;
  SchedulerOptions opt_;
  model::KVCache cache_;
  PagePool pool_;
  std::vector<Slot> slots_;
  std::vector<float> row_copy_;  // raw logits rows kept for logprobs
  model::DecoderModel* draft_ = nullptr;
  std::optional<model::KVCache> draft_cache_;  // one contiguous run of ctx positions per slot

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> waiting_;
  std::deque<std::function<void()>> exclusive_;
  bool stopping_ = false, quit_ = false;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  SchedulerMetrics metrics_;
  std::thread thread_;
};

}  // namespace yak::serve
