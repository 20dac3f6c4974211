#include "yak/serve/scheduler.h"

#include <algorithm>
#include <cmath>
#include <future>

#include "yak/autograd/functions.h"
#include "yak/base/error.h"
#include "yak/base/log.h"
#include "yak/model/vision.h"

namespace yak::serve {

bool RequestHandle::next(Event& out, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return false;
  out = std::move(events_.front());
  events_.pop_front();
  return true;
}

void RequestHandle::push(Event e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

namespace {
int64_t pages_of_positions(int64_t n) {
  return (n + PagePool::kPage - 1) / PagePool::kPage;
}
int64_t pool_pages(const SchedulerOptions& o) {
  check(o.parallel >= 1, "--parallel must be at least 1");
  check(o.ctx >= 2, "--ctx-size must be at least 2");
  const int64_t tokens = o.kv_tokens > 0 ? o.kv_tokens : o.parallel * o.ctx;
  return std::max<int64_t>(pages_of_positions(tokens), pages_of_positions(o.ctx));
}
}  // namespace

Scheduler::Scheduler(model::DecoderModel& model, const tok::Tokenizer* tok, std::vector<int32_t> eos_ids,
                     SchedulerOptions options, model::DecoderModel* draft)
    : model_(model),
      tok_(tok),
      mrope_(!model.config().rope.mrope_section.empty()),
      eos_(std::move(eos_ids)),
      opt_(options),
      cache_(model.config(), options.parallel, options.ctx, pool_pages(options), options.cache_type, model.device()),
      pool_(cache_),
      slots_(static_cast<size_t>(options.parallel)) {
  check(opt_.prefill_chunk >= 1, "the prefill chunk must be at least 1 token");
  std::sort(eos_.begin(), eos_.end());
  eos_.erase(std::unique(eos_.begin(), eos_.end()), eos_.end());
  if (draft) {
    check(opt_.draft_max >= 1 && opt_.draft_max <= 64, "--draft-max must be between 1 and 64");
    check(opt_.draft_p_min >= 0.0f && opt_.draft_p_min <= 1.0f, "--draft-p-min must be between 0 and 1");
    draft_ = draft;
    draft_cache_.emplace(draft->config(), opt_.parallel, opt_.ctx, opt_.cache_type, draft->device());
  }
  row_copy_.resize(static_cast<size_t>(model_.config().vocab_size) * static_cast<size_t>(draft ? opt_.draft_max + 1 : 1));
  metrics_.pages = pool_.stats();
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  shutdown(std::chrono::milliseconds(0));
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int64_t Scheduler::max_sequence() const {
  return std::min<int64_t>(opt_.ctx, cache_.pages() * PagePool::kPage);
}

int64_t Scheduler::pages_for(const infer::GenerateRequest& r) const {
  return pages_of_positions(static_cast<int64_t>(r.prompt.size()) + std::max<int64_t>(r.max_new_tokens, 0));
}

std::shared_ptr<RequestHandle> Scheduler::submit(infer::GenerateRequest request, int top_logprobs, int64_t group) {
  const int64_t V = model_.config().vocab_size;
  check(!request.prompt.empty(), "the prompt has no tokens");
  for (auto id : request.prompt)
    if (id < 0 || id >= V)
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(V));
  const int64_t need = static_cast<int64_t>(request.prompt.size()) + std::max<int64_t>(request.max_new_tokens, 0);
  check(need <= max_sequence(), "the prompt's " + std::to_string(request.prompt.size()) + " tokens plus " +
                                    std::to_string(request.max_new_tokens) + " to generate exceed the context of " +
                                    std::to_string(max_sequence()) + " tokens");
  auto job = std::make_unique<Job>();
  if (const auto* v = request.visual.get()) {
    check(mrope_ && model_.vision(), "images given to a model without a vision tower");
    check(v->mrope_pos.size() == 3 * request.prompt.size(), "the images' positions do not fit the prompt");
    check(v->rows.size() == static_cast<size_t>(v->embeds.value().dim(0)), "the images' features do not fit the prompt");
    job->pool_tokens = request.prompt;
    // Each image's rows take ids from its picture's key and the row's place in it.
    size_t image = 0;
    for (size_t r = 0; r < v->rows.size(); ++r) {
      if (r > 0 && v->rows[r] != v->rows[r - 1] + 1) ++image;
      const uint64_t key = image < v->image_keys.size() ? v->image_keys[image] : 0;
      const uint64_t h = (key ^ (0x9e3779b97f4a7c15ull * (r + 1))) * 0xff51afd7ed558ccdull;
      job->pool_tokens[static_cast<size_t>(v->rows[r])] = -1 - static_cast<int32_t>((h >> 33) & 0x7fffffff);
    }
  }
  job->req = std::move(request);
  job->handle = std::make_shared<RequestHandle>();
  job->top_logprobs = top_logprobs;
  job->group = group;
  auto handle = job->handle;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) throw Unavailable("the server is shutting down");
    if (static_cast<int64_t>(waiting_.size()) >= opt_.queue)
      throw Unavailable("all " + std::to_string(opt_.parallel) + " slots are busy and " +
                        std::to_string(opt_.queue) + " requests are waiting; retry later");
    waiting_.push_back(std::move(job));
    metrics_.queue = static_cast<int64_t>(waiting_.size());
  }
  cv_.notify_all();
  return handle;
}

void Scheduler::run_exclusive(const std::function<void()>& fn) {
  auto task = std::make_shared<std::packaged_task<void()>>(fn);
  auto done = task->get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) throw Unavailable("the server is shutting down");
    exclusive_.push_back([task] { (*task)(); });
  }
  cv_.notify_all();
  done.get();  // rethrows what fn threw
}

void Scheduler::shutdown(std::chrono::milliseconds deadline) {
  std::deque<std::unique_ptr<Job>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    deadline_ = std::chrono::steady_clock::now() + deadline;
    dropped.swap(waiting_);
    metrics_.queue = 0;
  }
  for (auto& j : dropped) {
    Event e;
    e.done = true;
    e.error = "the server is shutting down";
    j->handle->push(std::move(e));
  }
  cv_.notify_all();
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return metrics_.running == 0 && exclusive_.empty(); });
}

SchedulerMetrics Scheduler::metrics() const {
  std::lock_guard<std::mutex> lock(mu_);
  return metrics_;
}

void Scheduler::finish(int32_t s, const std::string& error) {
  Slot& slot = slots_[static_cast<size_t>(s)];
  Event e;
  e.done = true;
  e.error = error;
  if (slot.cont) {
    e.text = slot.cont->take_text();
    e.finish = slot.cont->finish();
    e.completion_tokens = static_cast<int64_t>(slot.cont->generated().size());
  }
  e.prompt_tokens = static_cast<int64_t>(slot.job->req.prompt.size());
  e.cached_tokens = slot.hit;
  pool_.release(s);
  auto handle = std::move(slot.job->handle);
  slot = Slot{};
  {
    // Counted before the reader hears of the end, so what it reads next includes this request.
    std::lock_guard<std::mutex> lock(mu_);
    if (!error.empty())
      (handle->cancelled() ? metrics_.requests_cancelled : metrics_.requests_failed) += 1;
    else
      metrics_.requests_finished += 1;
    metrics_.generated_tokens += e.completion_tokens;
    metrics_.pages = pool_.stats();
    metrics_.running = std::count_if(slots_.begin(), slots_.end(), [](const Slot& x) { return x.busy; });
  }
  handle->push(std::move(e));
}

void Scheduler::admit() {
  // Pages still owed to running slots (their worst case) are not available to newcomers.
  int64_t owed = 0;
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].busy) owed += slots_[i].worst_pages - pool_.pages_of(static_cast<int32_t>(i));
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  while (!waiting_.empty()) {
    auto free_slot = std::find_if(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.busy; });
    if (free_slot == slots_.end()) break;
    Job& job = *waiting_.front();
    // n samples of one prompt: wait until a sibling has its prompt in the cache, then share it.
    const bool sibling_filling = job.group >= 0 && std::any_of(slots_.begin(), slots_.end(), [&](const Slot& s) {
                                   return s.busy && s.prefilling() && s.job->group == job.group;
                                 });
    if (sibling_filling) break;
    const auto& prompt = job.pool_tokens.empty() ? job.req.prompt : job.pool_tokens;
    const int64_t reuse_limit = static_cast<int64_t>(prompt.size()) - 1;  // its last token's logits start the answer
    const int64_t worst = pages_for(job.req);
    // Conservative: as if nothing were shared, so a running slot can always grow to its worst case.
    if (worst > pool_.available() - owed) break;  // wait for pages to come back
    const auto s = static_cast<int32_t>(free_slot - slots_.begin());
    Slot& slot = *free_slot;
    slot.busy = true;
    slot.job = std::move(waiting_.front());
    waiting_.pop_front();
    slot.cached = slot.hit = opt_.prefix_cache ? pool_.attach_prefix(s, prompt, reuse_limit) : 0;
    slot.worst_pages = worst;
    owed += worst - pool_.pages_of(s);
    metrics_.prompt_tokens += static_cast<int64_t>(prompt.size());
  }
  metrics_.queue = static_cast<int64_t>(waiting_.size());
  metrics_.running = std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.busy; });
  metrics_.pages = pool_.stats();
}

namespace {
// Log-probability of id under a raw logits row (the model's own distribution, before penalties
// and warpers), with the k most likely tokens.
TokenLogprob token_logprob(std::span<const float> row, int32_t id, int k) {
  const float mx = *std::max_element(row.begin(), row.end());
  double sum = 0;
  for (float x : row) sum += std::exp(static_cast<double>(x - mx));
  const float lse = mx + static_cast<float>(std::log(sum));
  TokenLogprob lp{id, row[static_cast<size_t>(id)] - lse, {}};
  if (k > 0) {
    std::vector<int32_t> idx(row.size());
    for (size_t j = 0; j < row.size(); ++j) idx[j] = static_cast<int32_t>(j);
    const auto kk = std::min<size_t>(static_cast<size_t>(k), idx.size());
    std::partial_sort(idx.begin(), idx.begin() + static_cast<long>(kk), idx.end(), [&](int32_t a, int32_t b) {
      const float x = row[static_cast<size_t>(a)], y = row[static_cast<size_t>(b)];
      return x > y || (x == y && a < b);
    });
    for (size_t j = 0; j < kk; ++j) lp.top.emplace_back(idx[j], row[static_cast<size_t>(idx[j])] - lse);
  }
  return lp;
}
}  // namespace

void Scheduler::push_tokens(int32_t s, size_t from, std::span<const float> raw_rows, size_t rows) {
  const auto V = static_cast<size_t>(model_.config().vocab_size);
  Slot& slot = slots_[static_cast<size_t>(s)];
  Event e;
  const int k = slot.job->top_logprobs;
  const auto& toks = slot.cont->tokens();
  if (k >= 0)
    for (size_t j = 0; j < rows && from + j < toks.size(); ++j) {
      const int32_t id = toks[from + j];
      const bool ending_eos = from + j + 1 == toks.size() && slot.cont->done() && slot.cont->eos_token() == id;
      if (!ending_eos) e.logprobs.push_back(token_logprob(raw_rows.subspan(j * V, V), id, k));
    }
  if (slot.cont->done()) {
    // finish() sends the rest of the text with the last event; the logprobs go first.
    if (!e.logprobs.empty()) slot.job->handle->push(std::move(e));
    finish(s, "");
    return;
  }
  e.text = slot.cont->take_text();
  if (!e.text.empty() || !e.logprobs.empty()) slot.job->handle->push(std::move(e));
}

void Scheduler::commit_pages(int32_t s) {
  Slot& slot = slots_[static_cast<size_t>(s)];
  Job& job = *slot.job;
  if (job.pool_tokens.empty()) {
    pool_.commit(s, slot.cont ? slot.cont->tokens() : job.req.prompt, slot.cached);
    return;
  }
  if (slot.cont) {  // the generated tokens follow the prompt's as they are
    const auto& toks = slot.cont->tokens();
    for (size_t i = job.pool_tokens.size(); i < toks.size(); ++i) job.pool_tokens.push_back(toks[i]);
  }
  pool_.commit(s, job.pool_tokens, slot.cached);
}

void Scheduler::push_mrope(model::Batch& batch, const Job& job, int64_t p) const {
  const auto* v = job.req.visual.get();
  const auto n = static_cast<int64_t>(job.req.prompt.size());
  if (v && p < n) {
    for (int a = 0; a < 3; ++a) batch.mrope_pos.push_back(v->mrope_pos[static_cast<size_t>(3 * p + a)]);
    return;
  }
  // Text, and everything after an image prompt: every axis counts on from the last position.
  const auto rp = static_cast<int32_t>(p + (v ? v->rope_delta : 0));
  for (int a = 0; a < 3; ++a) batch.mrope_pos.push_back(rp);
}

void Scheduler::sample_row(int32_t s, std::span<float> row) {
  Slot& slot = slots_[static_cast<size_t>(s)];
  if (!slot.cont) {
    slot.cont = std::make_unique<infer::Continuation>(slot.job->req, tok_, eos_);
  } else {
    slot.cached = static_cast<int64_t>(slot.cont->tokens().size());
    commit_pages(s);
  }
  const size_t from = slot.cont->tokens().size();
  const bool keep = slot.job->top_logprobs >= 0;
  if (keep) std::copy(row.begin(), row.end(), row_copy_.begin());
  slot.cont->step(row);
  push_tokens(s, from, keep ? std::span<const float>(row_copy_) : std::span<const float>(), 1);
}

void Scheduler::verify_rows(int32_t s, std::span<float> rows) {
  const auto V = static_cast<size_t>(model_.config().vocab_size);
  Slot& slot = slots_[static_cast<size_t>(s)];
  const size_t n = slot.cont->tokens().size();  // the last of them was fed with the drafts
  const size_t drafted = slot.drafts.size();
  const bool keep = slot.job->top_logprobs >= 0;
  if (keep) std::copy(rows.begin(), rows.end(), row_copy_.begin());
  const size_t kept = slot.drafts.verify(*slot.cont, rows, V);
  slot.drafts.clear();
  // The target's cache holds the last token and the kept drafts; the rejected positions are
  // rewritten before anything reads them (attention reads positions <= its own).
  slot.cached = static_cast<int64_t>(n + kept);
  commit_pages(s);
  slot.draft_cached = std::min(slot.draft_cached, slot.cached);
  {
    std::lock_guard<std::mutex> lock(mu_);
    metrics_.draft_tokens += static_cast<int64_t>(drafted);
    metrics_.draft_accepted += static_cast<int64_t>(kept);
  }
  push_tokens(s, n, keep ? std::span<const float>(row_copy_) : std::span<const float>(), kept + 1);
}

void Scheduler::draft() {
  const int64_t Vt = model_.config().vocab_size, Vd = draft_->config().vocab_size;
  // Proposals per slot this step: none for constrained sequences (their grammar state would have
  // to run ahead) or when only one token is left to generate.
  std::vector<int64_t> want(slots_.size(), 0);
  int64_t most = 0;
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    slot.drafts.clear();
    if (!slot.busy || slot.prefilling() || slot.cont->done() || slot.cont->constrained()) continue;
    want[i] = std::min<int64_t>(opt_.draft_max, slot.cont->remaining() - 1);
    most = std::max(most, want[i]);
  }
  for (int64_t j = 0; j < most; ++j) {
    model::Batch batch;
    std::vector<int32_t> owner;
    int64_t budget = opt_.prefill_chunk;  // catching up on a prompt costs at most one chunk a step
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& slot = slots_[i];
      if (want[i] <= j) continue;
      const auto& toks = slot.cont->tokens();
      const auto n = static_cast<int64_t>(toks.size());
      if (j == 0) {
        // Every accepted token the draft has not seen, the last one giving the first proposal.
        const int64_t take = std::min(n - slot.draft_cached, std::max<int64_t>(budget, 1));
        for (int64_t p = slot.draft_cached; p < slot.draft_cached + take; ++p) {
          batch.ids.push_back(toks[static_cast<size_t>(p)]);
          batch.pos.push_back(static_cast<int32_t>(p));
          batch.slot.push_back(static_cast<int32_t>(i));
        }
        budget -= take;
        slot.draft_cached += take;
        if (slot.draft_cached < n) {
          want[i] = 0;  // still catching up: this step decodes without drafts
          continue;
        }
      } else {
        batch.ids.push_back(slot.drafts.ids().back());
        batch.pos.push_back(static_cast<int32_t>(n - 1 + j));
        batch.slot.push_back(static_cast<int32_t>(i));
        slot.draft_cached = n + j;
      }
      batch.logits_for.push_back(static_cast<int32_t>(batch.ids.size() - 1));
      owner.push_back(static_cast<int32_t>(i));
    }
    if (batch.ids.empty()) break;
    if (batch.logits_for.empty()) batch.logits_for.push_back(0), owner.push_back(-1);
    Tensor logits = draft_->forward(batch, *draft_cache_).to(cpu_device());
    for (size_t r = 0; r < owner.size(); ++r) {
      if (owner[r] < 0) continue;
      Slot& slot = slots_[static_cast<size_t>(owner[r])];
      const int32_t id = slot.drafts.propose(
          *slot.cont, std::span<float>(logits.data<float>() + r * static_cast<size_t>(Vd), static_cast<size_t>(Vd)),
          opt_.draft_p_min);
      if (id < 0) {  // the draft is unsure: stop proposing for this sequence
        want[static_cast<size_t>(owner[r])] = j;
      } else if (id >= Vt) {  // a token the target does not have: nothing past it can be kept
        slot.drafts.drop_last();
        want[static_cast<size_t>(owner[r])] = j;
      } else if (!slot.job->req.ignore_eos && std::binary_search(eos_.begin(), eos_.end(), id)) {
        want[static_cast<size_t>(owner[r])] = j + 1;  // nothing follows an end of sequence
      }
    }
  }
}

bool Scheduler::step() {
  const int64_t V = model_.config().vocab_size;
  // Cancelled requests leave first, so their pages serve this step's newcomers.
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].busy && slots_[i].job->handle->cancelled()) finish(static_cast<int32_t>(i), "cancelled");
  admit();

  if (draft_) draft();

  model::Batch batch;
  std::vector<RowOwner> owner;
  int64_t budget = opt_.prefill_chunk;
  // Every decoding slot's next token (and its drafts), then prompt tokens up to the chunk
  // budget, in slot order.
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    if (!slot.busy || slot.prefilling()) continue;
    const auto& toks = slot.cont->tokens();
    const size_t first = batch.logits_for.size();
    const auto drafts = slot.drafts.ids();
    for (size_t j = 0; j <= drafts.size(); ++j) {
      batch.ids.push_back(j == 0 ? toks.back() : drafts[j - 1]);
      batch.pos.push_back(static_cast<int32_t>(toks.size() - 1 + j));
      batch.slot.push_back(static_cast<int32_t>(i));
      if (mrope_) push_mrope(batch, *slot.job, static_cast<int64_t>(toks.size() - 1 + j));
      batch.logits_for.push_back(static_cast<int32_t>(batch.ids.size() - 1));
    }
    owner.push_back({static_cast<int32_t>(i), first, drafts.size() + 1});
  }
  std::vector<std::pair<int32_t, int64_t>> filled;  // (slot, prompt tokens written this step)
  // The image features of this step's prompt tokens: one prompt's (its features are one tensor).
  model::VisualInput vin;
  std::vector<int32_t> features;  // rows of that prompt's features, in batch order
  const model::VisualPrompt* seen = nullptr;
  for (size_t i = 0; i < slots_.size() && budget > 0; ++i) {
    Slot& slot = slots_[i];
    if (!slot.busy || !slot.prefilling()) continue;
    const auto& prompt = slot.job->req.prompt;
    const model::VisualPrompt* v = slot.job->req.visual.get();
    const int64_t left = static_cast<int64_t>(prompt.size()) - slot.cached;
    int64_t take = std::min(left, budget);
    if (v) {
      // Past the first image row: only when no other prompt's images are in this step.
      auto first = std::lower_bound(v->rows.begin(), v->rows.end(), static_cast<int32_t>(slot.cached));
      if (seen && first != v->rows.end()) take = std::min<int64_t>(take, *first - slot.cached);
      if (take <= 0) continue;
      if (first != v->rows.end() && *first < slot.cached + take) seen = v;
    }
    for (int64_t p = slot.cached; p < slot.cached + take; ++p) {
      if (v == seen && v) {
        auto it = std::lower_bound(v->rows.begin(), v->rows.end(), static_cast<int32_t>(p));
        if (it != v->rows.end() && *it == p) {
          vin.rows.push_back(static_cast<int32_t>(batch.ids.size()));
          features.push_back(static_cast<int32_t>(it - v->rows.begin()));
        }
      }
      batch.ids.push_back(prompt[static_cast<size_t>(p)]);
      batch.pos.push_back(static_cast<int32_t>(p));
      batch.slot.push_back(static_cast<int32_t>(i));
      if (mrope_) push_mrope(batch, *slot.job, p);
    }
    if (take == left) {
      owner.push_back({static_cast<int32_t>(i), batch.logits_for.size(), 1});
      batch.logits_for.push_back(static_cast<int32_t>(batch.ids.size() - 1));
    }
    filled.emplace_back(static_cast<int32_t>(i), take);
    budget -= take;
  }
  if (batch.ids.empty()) return false;
  if (!vin.rows.empty()) {
    vin.embeds = ag::gather_rows(seen->embeds, features);
    for (const auto& d : seen->deepstack) vin.deepstack.push_back(ag::gather_rows(d, features));
    batch.visual = &vin;
  }
  // Pages for every position this step writes (admission kept them available).
  for (size_t r = 0; r < batch.ids.size(); ++r)
    if (!pool_.reserve(batch.slot[r], batch.pos[r] + 1)) throw Error("serve: the KV page pool ran out (a scheduling bug)");
  if (batch.logits_for.empty()) batch.logits_for.push_back(0), owner.push_back({-1, 0, 1});

  Tensor logits = model_.forward(batch, cache_).to(cpu_device());
  for (auto [s, take] : filled) {
    Slot& slot = slots_[static_cast<size_t>(s)];
    slot.cached += take;
    commit_pages(s);
  }
  for (const RowOwner& o : owner) {
    if (o.slot < 0) continue;
    const std::span<float> rows(logits.data<float>() + o.first * static_cast<size_t>(V), o.rows * static_cast<size_t>(V));
    try {
      if (o.rows == 1)
        sample_row(o.slot, rows);
      else
        verify_rows(o.slot, rows);
    } catch (const std::exception& ex) {
      finish(o.slot, std::string("generation failed: ") + ex.what());  // that sequence only
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  metrics_.steps += 1;
  for (auto [s, take] : filled) metrics_.prefill_tokens += take;
  metrics_.last_batch_tokens = static_cast<int64_t>(batch.ids.size());
  metrics_.last_batch_sequences = static_cast<int64_t>(owner.size());
  metrics_.running = std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.busy; });
  metrics_.pages = pool_.stats();
  return true;
}

void Scheduler::loop() {
  for (;;) {
    std::deque<std::function<void()>> jobs;
    bool past_deadline = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        const bool can_admit = !waiting_.empty() && metrics_.running < opt_.parallel;
        return quit_ || !exclusive_.empty() || can_admit || metrics_.running > 0 || (stopping_ && deadline_);
      });
      jobs.swap(exclusive_);
      past_deadline = deadline_ && std::chrono::steady_clock::now() >= *deadline_;
      if (quit_ && metrics_.running == 0 && jobs.empty()) break;
    }
    for (auto& j : jobs) j();
    if (past_deadline)
      for (size_t i = 0; i < slots_.size(); ++i)
        if (slots_[i].busy) finish(static_cast<int32_t>(i), "the server is shutting down");
    bool worked = false;
    try {
      worked = step();
    } catch (const std::exception& ex) {
      log::warn(std::string("serve: a step failed: ") + ex.what());
      for (size_t i = 0; i < slots_.size(); ++i)
        if (slots_[i].busy) finish(static_cast<int32_t>(i), std::string("generation failed: ") + ex.what());
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      metrics_.running = std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.busy; });
    }
    cv_.notify_all();
    if (!worked) {
      // Nothing could run (waiting for pages or for a sibling's prompt): do not spin.
      std::unique_lock<std::mutex> lock(mu_);
      if (quit_ && metrics_.running == 0) break;
      cv_.wait_for(lock, std::chrono::milliseconds(stopping_ ? 5 : 50));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  metrics_.running = 0;
  cv_.notify_all();
}

}  // namespace yak::serve
