#include "yak/infer/engine.h"

#include <algorithm>
#include <chrono>

#include "yak/base/error.h"
#include "yak/base/log.h"

namespace yak::infer {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop:
      return "stop";
    case FinishReason::Length:
      return "length";
    case FinishReason::None:
      break;
  }
  return "";
}

struct Engine::Seq {
  size_t index = 0;  // request index, for callbacks
  int32_t slot = 0;
  std::vector<int32_t> tokens;  // prompt + generated
  size_t prompt_len = 0;
  size_t cached = 0;  // tokens already in the KV cache
  const GenerateRequest* req = nullptr;
  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<tok::StreamDecoder> decoder;
  std::string text;    // final text so far
  size_t emitted = 0;  // bytes of text passed to the callback
  bool done = false;
  FinishReason finish = FinishReason::None;
  std::vector<int32_t> generated;
  int32_t eos_token = -1;
};

Engine::Engine(model::DecoderModel& model, const tok::Tokenizer* tok) : model_(model), tok_(tok) {
  for (auto id : model_.config().eos_token_ids) eos_.push_back(static_cast<int32_t>(id));
  if (tok_ && tok_->eos_id()) eos_.push_back(*tok_->eos_id());
  set_eos_ids(eos_);
}

void Engine::set_eos_ids(std::vector<int32_t> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  eos_ = std::move(ids);
}

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Length of the longest suffix of text that is a proper prefix of some stop string: that much must
// be held back from streaming because the next token might complete a stop string.
size_t stop_holdback(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (auto& s : stops)
    for (size_t n = std::min(s.size() - 1, text.size()); n > hold; --n)
      if (text.compare(text.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
  return hold;
}
}  // namespace

std::vector<GenerateResult> Engine::run(std::vector<Seq>& seqs, model::KVCache& cache, const TextCallback& on_text) {
  const int64_t V = model_.config().vocab_size;
  stats_ = {};
  for (auto& s : seqs) {
    check(!s.tokens.empty(), "generate: the prompt is empty (no tokens)");
    check(static_cast<int64_t>(s.tokens.size()) + s.req->max_new_tokens <= cache.capacity(),
          "prompt of " + std::to_string(s.tokens.size()) + " tokens plus max_new_tokens " +
              std::to_string(s.req->max_new_tokens) + " exceeds the context of " + std::to_string(cache.capacity()));
    s.sampler = std::make_unique<Sampler>(s.req->sampling);
    if (tok_) s.decoder = std::make_unique<tok::StreamDecoder>(*tok_);
    s.prompt_len = s.tokens.size();
    // Room for every token up front: a decode step never grows a vector.
    s.tokens.reserve(s.tokens.size() + static_cast<size_t>(std::max<int64_t>(s.req->max_new_tokens, 0)) + 1);
    s.generated.reserve(static_cast<size_t>(std::max<int64_t>(s.req->max_new_tokens, 0)) + 1);
    s.sampler->reserve(s.tokens.capacity());
    if (s.req->max_new_tokens <= 0) {
      s.done = true;
      s.finish = FinishReason::Length;
    }
  }

  auto emit = [&](Seq& s, bool final) {
    if (!on_text) return;
    size_t upto = s.text.size();
    if (!final) upto -= std::min(upto - s.emitted, stop_holdback(s.text.substr(s.emitted), s.req->stop));
    if (upto > s.emitted) {
      on_text(s.index, s.text.substr(s.emitted, upto - s.emitted));
      s.emitted = upto;
    }
  };

  auto accept = [&](Seq& s, int32_t id) {
    bool is_eos = !s.req->ignore_eos && std::binary_search(eos_.begin(), eos_.end(), id);
    s.tokens.push_back(id);
    if (is_eos) {
      s.done = true;
      s.finish = FinishReason::Stop;
      s.eos_token = id;
    } else {
      s.generated.push_back(id);
      if (s.decoder) {
        s.text += s.decoder->push(id);
        for (auto& stop : s.req->stop) {
          size_t from = s.text.size() > stop.size() + 64 ? s.text.size() - stop.size() - 64 : 0;
          size_t at = s.text.find(stop, std::min(from, s.emitted));
          if (!stop.empty() && at != std::string::npos) {
            s.text.resize(at);
            s.done = true;
            s.finish = FinishReason::Stop;
            break;
          }
        }
      }
      if (!s.done && static_cast<int64_t>(s.generated.size()) >= s.req->max_new_tokens) {
        s.done = true;
        s.finish = FinishReason::Length;
      }
    }
    if (s.done && s.decoder && s.finish == FinishReason::Length) s.text += s.decoder->flush();
    emit(s, s.done);
  };

  // Prefill: all prompts' uncached tokens, in chunks, logits only for each prompt's last token.
  auto t0 = Clock::now();
  {
    std::vector<std::pair<size_t, size_t>> work;  // (seq, token index)
    for (size_t i = 0; i < seqs.size(); ++i)
      if (!seqs[i].done)
        for (size_t p = seqs[i].cached; p < seqs[i].tokens.size(); ++p) work.emplace_back(i, p);
    for (size_t b = 0; b < work.size(); b += static_cast<size_t>(prefill_chunk)) {
      size_t e = std::min(work.size(), b + static_cast<size_t>(prefill_chunk));
      model::Batch batch;
      std::vector<size_t> owner;
      for (size_t w = b; w < e; ++w) {
        auto [i, p] = work[w];
        batch.ids.push_back(seqs[i].tokens[p]);
        batch.pos.push_back(static_cast<int32_t>(p));
        batch.slot.push_back(seqs[i].slot);
        if (p + 1 == seqs[i].tokens.size()) {
          batch.logits_for.push_back(static_cast<int32_t>(w - b));
          owner.push_back(i);
        }
      }
      if (batch.logits_for.empty()) batch.logits_for.push_back(0), owner.push_back(SIZE_MAX);
      Tensor logits = model_.forward(batch, cache).to(cpu_device());
      stats_.prefill_tokens += static_cast<int64_t>(e - b);
      for (size_t r = 0; r < owner.size(); ++r) {
        if (owner[r] == SIZE_MAX) continue;
        Seq& s = seqs[owner[r]];
        s.cached = s.tokens.size();
        std::span<float> row(logits.data<float>() + r * V, static_cast<size_t>(V));
        accept(s, s.sampler->sample(row, s.tokens, 0));
      }
    }
  }
  stats_.prefill_seconds = seconds_since(t0);

  // Decode: one token per live sequence per step. The step's batch is reused, so after the
  // first step nothing here allocates (the model's tensors come from the buffer pool).
  auto t1 = Clock::now();
  model::Batch batch;
  std::vector<size_t> owner;
  batch.ids.reserve(seqs.size());
  batch.pos.reserve(seqs.size());
  batch.slot.reserve(seqs.size());
  batch.logits_for.reserve(seqs.size());
  owner.reserve(seqs.size());
  for (;;) {
    batch.ids.clear();
    batch.pos.clear();
    batch.slot.clear();
    batch.logits_for.clear();
    owner.clear();
    for (size_t i = 0; i < seqs.size(); ++i) {
      Seq& s = seqs[i];
      if (s.done) continue;
      batch.ids.push_back(s.tokens.back());
      batch.pos.push_back(static_cast<int32_t>(s.tokens.size() - 1));
      batch.slot.push_back(s.slot);
      batch.logits_for.push_back(static_cast<int32_t>(owner.size()));
      owner.push_back(i);
    }
    if (owner.empty()) break;
    Tensor logits = model_.forward(batch, cache).to(cpu_device());
    stats_.decode_tokens += static_cast<int64_t>(owner.size());
    for (size_t r = 0; r < owner.size(); ++r) {
      Seq& s = seqs[owner[r]];
      s.cached = s.tokens.size();
      std::span<float> row(logits.data<float>() + r * V, static_cast<size_t>(V));
      accept(s, s.sampler->sample(row, s.tokens, s.generated.size()));
    }
  }
  stats_.decode_seconds = seconds_since(t1);

  std::vector<GenerateResult> out;
  for (auto& s : seqs) out.push_back({s.generated, s.text, s.finish, s.eos_token});
  return out;
}

std::vector<GenerateResult> Engine::generate(const std::vector<GenerateRequest>& requests,
                                             const TextCallback& on_text) {
  if (requests.empty()) return {};
  const int64_t V = model_.config().vocab_size;
  for (size_t i = 0; i < requests.size(); ++i)
    for (auto id : requests[i].prompt)
      check(id >= 0 && id < V, "prompt " + std::to_string(i + 1) + ": token id " + std::to_string(id) +
                                   " is outside the vocabulary of " + std::to_string(V));
  int64_t capacity = 0;
  for (auto& r : requests)
    capacity =
        std::max<int64_t>(capacity, static_cast<int64_t>(r.prompt.size()) + std::max<int64_t>(r.max_new_tokens, 0));
  if (capacity > model_.config().max_position_embeddings && model_.config().rope.type != io::RopeType::Dynamic)
    log::warn("generating " + std::to_string(capacity) + " positions, past the model's max_position_embeddings (" +
              std::to_string(model_.config().max_position_embeddings) + ")");
  model::KVCache cache = make_cache(static_cast<int64_t>(requests.size()), capacity);
  std::vector<Seq> seqs(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    seqs[i].index = i;
    seqs[i].slot = static_cast<int32_t>(i);
    seqs[i].tokens = requests[i].prompt;
    seqs[i].req = &requests[i];
  }
  return run(seqs, cache, on_text);
}

model::KVCache Engine::make_cache(int64_t slots, int64_t capacity) const {
  return model::KVCache(model_.config(), slots, capacity, cache_type, model_.device());
}

Session::Session(Engine& engine, int64_t capacity) : engine_(engine), cache_(engine.make_cache(1, capacity)) {}

GenerateResult Session::generate(const GenerateRequest& request, const TextCallback& on_text) {
  std::vector<Engine::Seq> seqs(1);
  auto& s = seqs[0];
  s.tokens = request.prompt;
  s.req = &request;
  size_t common = 0;
  while (common < cached_.size() && common < s.tokens.size() && cached_[common] == s.tokens[common]) ++common;
  // Keep at least the last prompt token uncached: its logits start the answer.
  s.cached = std::min(common, s.tokens.empty() ? 0 : s.tokens.size() - 1);
  auto out = engine_.run(seqs, cache_, on_text);
  cached_.assign(s.tokens.begin(), s.tokens.begin() + static_cast<long>(s.cached));
  return out[0];
}

std::vector<GenerateResult> Engine::generate_in_chunks(const std::vector<GenerateRequest>& requests, int64_t chunk) {
  check(chunk >= 1, "generate_in_chunks: the chunk size must be positive");
  std::vector<GenerateResult> out;
  out.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); i += static_cast<size_t>(chunk)) {
    const size_t e = std::min(requests.size(), i + static_cast<size_t>(chunk));
    std::vector<GenerateRequest> part(requests.begin() + static_cast<long>(i), requests.begin() + static_cast<long>(e));
    for (auto& r : generate(part)) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace yak::infer
