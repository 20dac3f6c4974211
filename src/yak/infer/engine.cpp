#include "yak/infer/engine.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "yak/base/error.h"
#include "yak/autograd/functions.h"
#include "yak/base/log.h"

namespace yak::infer {

struct Engine::Seq {
  size_t index = 0;  // request index, for callbacks
  int32_t slot = 0;
  std::vector<int32_t> prompt;
  size_t cached = 0;  // tokens already in the KV cache
  const GenerateRequest* req = nullptr;
  std::unique_ptr<Continuation> cont;
  bool done() const { return cont->done(); }
  const std::vector<int32_t>& tokens() const { return cont->tokens(); }
};

Engine::Engine(model::DecoderModel& model, const tok::Tokenizer* tok)
    : model_(model), tok_(tok), mrope_(!model.config().rope.mrope_section.empty()) {
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

Continuation::Continuation(const GenerateRequest& req, const tok::Tokenizer* tok, std::span<const int32_t> eos)
    : req_(&req), eos_(eos), sampler_(req.sampling), tokens_(req.prompt), prompt_len_(req.prompt.size()) {
  if (tok) decoder_ = std::make_unique<tok::StreamDecoder>(*tok);
  if (req.constraint) matcher_ = std::make_unique<GrammarMatcher>(*req.constraint);
  // Room for every token up front: a decode step never grows a vector.
  const auto room = static_cast<size_t>(std::max<int64_t>(req.max_new_tokens, 0)) + 1;
  tokens_.reserve(tokens_.size() + room);
  generated_.reserve(room);
  sampler_.reserve(tokens_.capacity());
  if (req.max_new_tokens <= 0) finish_ = FinishReason::Length;
}

int32_t Continuation::step(std::span<float> logits) {
  if (matcher_ && matcher_->mask(logits, req_->ignore_eos ? std::span<const int32_t>() : eos_) == 0)
    throw Error("constrained output: no token of the vocabulary can continue the text");
  const int32_t id = sampler_.sample(logits, tokens_, generated_.size());
  accept(id);
  return id;
}

std::span<const SamplerCandidate> Continuation::distribution(std::span<float> logits,
                                                             std::span<const int32_t> drafted) {
  if (matcher_) throw Error("Continuation::distribution: constrained sequences are not drafted");
  if (drafted.empty()) return sampler_.distribution(logits, tokens_, generated_.size());
  if (history_.capacity() < tokens_.size() + drafted.size()) history_.reserve(tokens_.capacity() + drafted.size() + 16);
  history_.assign(tokens_.begin(), tokens_.end());
  history_.insert(history_.end(), drafted.begin(), drafted.end());
  return sampler_.distribution(logits, history_, generated_.size() + drafted.size());
}

void Continuation::accept(int32_t id) {
  if (done()) throw Error("Continuation::accept: the sequence has ended");  // no string built per token
  const bool is_eos = !req_->ignore_eos && std::binary_search(eos_.begin(), eos_.end(), id);
  if (!is_eos && matcher_ && !matcher_->accept_token(id))
    throw Error("constrained output: token " + std::to_string(id) + " does not follow the grammar");
  tokens_.push_back(id);
  if (is_eos) {
    finish_ = FinishReason::Stop;
    eos_token_ = id;
    return;
  }
  generated_.push_back(id);
  if (decoder_) {
    text_ += decoder_->push(id);
    for (auto& stop : req_->stop) {
      const size_t from = text_.size() > stop.size() + 64 ? text_.size() - stop.size() - 64 : 0;
      const size_t at = text_.find(stop, std::min(from, emitted_));
      if (!stop.empty() && at != std::string::npos) {
        text_.resize(at);
        finish_ = FinishReason::Stop;
        return;
      }
    }
  }
  if (matcher_ && matcher_->finished()) {  // nothing may follow: end here, as an EOS would
    finish_ = FinishReason::Stop;
  } else if (static_cast<int64_t>(generated_.size()) >= req_->max_new_tokens) {
    finish_ = FinishReason::Length;
  }
  if (done() && decoder_) text_ += decoder_->flush();
}

std::string Continuation::take_text() {
  size_t upto = text_.size();
  if (!done()) upto -= std::min(upto - emitted_, stop_holdback(text_.substr(emitted_), req_->stop));
  if (upto <= emitted_) return {};
  std::string out = text_.substr(emitted_, upto - emitted_);
  emitted_ = upto;
  return out;
}

std::vector<GenerateResult> Engine::run(std::vector<Seq>& seqs, model::KVCache& cache, const TextCallback& on_text) {
  const int64_t V = model_.config().vocab_size;
  stats_ = {};
  for (auto& s : seqs) {
    check(!s.prompt.empty(), "generate: the prompt is empty (no tokens)");
    if (const auto* v = s.req->visual.get()) {
      check(mrope_ && model_.vision(), "generate: images given to a model without a vision tower");
      check(v->mrope_pos.size() == 3 * s.prompt.size(), "generate: the images' positions do not fit the prompt");
    }
    check(static_cast<int64_t>(s.prompt.size()) + s.req->max_new_tokens <= cache.capacity(),
          "prompt of " + std::to_string(s.prompt.size()) + " tokens plus max_new_tokens " +
              std::to_string(s.req->max_new_tokens) + " exceeds the context of " + std::to_string(cache.capacity()));
    s.cont = std::make_unique<Continuation>(*s.req, tok_, eos_);
  }

  auto accept = [&](Seq& s, std::span<float> row) {
    s.cont->step(row);
    if (!on_text) return;
    if (std::string t = s.cont->take_text(); !t.empty()) on_text(s.index, t);
  };

  // Prefill: all prompts' uncached tokens, in chunks, logits only for each prompt's last token.
  auto t0 = Clock::now();
  {
    std::vector<std::pair<size_t, size_t>> work;  // (seq, token index)
    for (size_t i = 0; i < seqs.size(); ++i)
      if (!seqs[i].done())
        for (size_t p = seqs[i].cached; p < seqs[i].prompt.size(); ++p) work.emplace_back(i, p);
    auto visual_of = [&](size_t i) { return seqs[i].req->visual.get(); };
    for (size_t b = 0, e = 0; b < work.size(); b = e) {
      e = std::min(work.size(), b + static_cast<size_t>(prefill_chunk));
      // A chunk with an image prompt's tokens holds that prompt's alone (its features are one tensor).
      for (size_t w = b + 1; w < e; ++w)
        if (work[w].first != work[w - 1].first && (visual_of(work[w].first) || visual_of(work[w - 1].first))) {
          e = w;
          break;
        }
      model::Batch batch;
      model::VisualInput vin;
      std::vector<int32_t> features;  // rows of the prompt's image features in this chunk
      std::vector<size_t> owner;
      for (size_t w = b; w < e; ++w) {
        auto [i, p] = work[w];
        batch.ids.push_back(seqs[i].prompt[p]);
        batch.pos.push_back(static_cast<int32_t>(p));
        batch.slot.push_back(seqs[i].slot);
        if (mrope_) {
          const model::VisualPrompt* v = visual_of(i);
          for (int a = 0; a < 3; ++a) batch.mrope_pos.push_back(v ? v->mrope_pos[3 * p + a] : static_cast<int32_t>(p));
          if (v) {
            auto it = std::lower_bound(v->rows.begin(), v->rows.end(), static_cast<int32_t>(p));
            if (it != v->rows.end() && *it == static_cast<int32_t>(p)) {
              vin.rows.push_back(static_cast<int32_t>(w - b));
              features.push_back(static_cast<int32_t>(it - v->rows.begin()));
            }
          }
        }
        if (p + 1 == seqs[i].prompt.size()) {
          batch.logits_for.push_back(static_cast<int32_t>(w - b));
          owner.push_back(i);
        }
      }
      if (!vin.rows.empty()) {
        const model::VisualPrompt* v = visual_of(work[b].first);
        vin.embeds = ag::gather_rows(v->embeds, features);
        for (const auto& d : v->deepstack) vin.deepstack.push_back(ag::gather_rows(d, features));
        batch.visual = &vin;
      }
      if (batch.logits_for.empty()) batch.logits_for.push_back(0), owner.push_back(SIZE_MAX);
      Tensor logits = model_.forward(batch, cache).to(cpu_device());
      stats_.prefill_tokens += static_cast<int64_t>(e - b);
      for (size_t r = 0; r < owner.size(); ++r) {
        if (owner[r] == SIZE_MAX) continue;
        Seq& s = seqs[owner[r]];
        s.cached = s.prompt.size();
        accept(s, std::span<float>(logits.data<float>() + r * V, static_cast<size_t>(V)));
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
  if (mrope_) batch.mrope_pos.reserve(3 * seqs.size());
  owner.reserve(seqs.size());
  for (;;) {
    batch.ids.clear();
    batch.pos.clear();
    batch.slot.clear();
    batch.logits_for.clear();
    batch.mrope_pos.clear();
    owner.clear();
    for (size_t i = 0; i < seqs.size(); ++i) {
      Seq& s = seqs[i];
      if (s.done()) continue;
      batch.ids.push_back(s.tokens().back());
      batch.pos.push_back(static_cast<int32_t>(s.tokens().size() - 1));
      if (mrope_) {  // after the prompt every axis counts on from the prompt's last position
        const auto* v = s.req->visual.get();
        const auto rp = static_cast<int32_t>(static_cast<int64_t>(s.tokens().size()) - 1 + (v ? v->rope_delta : 0));
        for (int a = 0; a < 3; ++a) batch.mrope_pos.push_back(rp);
      }
      batch.slot.push_back(s.slot);
      batch.logits_for.push_back(static_cast<int32_t>(owner.size()));
      owner.push_back(i);
    }
    if (owner.empty()) break;
    Tensor logits = model_.forward(batch, cache).to(cpu_device());
    stats_.decode_tokens += static_cast<int64_t>(owner.size());
    for (size_t r = 0; r < owner.size(); ++r) {
      Seq& s = seqs[owner[r]];
      s.cached = s.tokens().size();
      accept(s, std::span<float>(logits.data<float>() + r * V, static_cast<size_t>(V)));
    }
  }
  stats_.decode_seconds = seconds_since(t1);

  std::vector<GenerateResult> out;
  for (auto& s : seqs) out.push_back(s.cont->result());
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
  std::vector<Seq> seqs(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    seqs[i].index = i;
    seqs[i].slot = static_cast<int32_t>(i);
    seqs[i].prompt = requests[i].prompt;
    seqs[i].req = &requests[i];
  }
  model::KVCache cache =
      share_prompts ? prompt_sharing_cache(seqs, capacity) : make_cache(static_cast<int64_t>(seqs.size()), capacity);
  return run(seqs, cache, on_text);
}

model::KVCache Engine::make_cache(int64_t slots, int64_t capacity) const {
  return model::KVCache(model_.config(), slots, capacity, cache_type, model_.device());
}

model::KVCache Engine::prompt_sharing_cache(std::vector<Seq>& seqs, int64_t capacity) const {
  const int64_t page = model::KVCache::kPageSize, per_slot = (capacity + page - 1) / page;
  const auto n = static_cast<int64_t>(seqs.size());
  // The first request with a prompt computes it; later ones share its full pages, all but the
  // last prompt token (whose logits start each answer). Requests that generate nothing never
  // prefill, so they neither lead nor share.
  struct Less {
    bool operator()(std::span<const int32_t> a, std::span<const int32_t> b) const {
      return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
    }
  };
  std::map<std::span<const int32_t>, size_t, Less> leader_of;
  std::vector<size_t> leader(seqs.size());
  std::vector<int64_t> shared(seqs.size(), 0);
  int64_t pages = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    leader[i] = i;
    if (seqs[i].req->max_new_tokens > 0 && !seqs[i].req->visual) {  // equal pad tokens, different images
      auto [it, first] = leader_of.emplace(std::span<const int32_t>(seqs[i].prompt), i);
      if (!first) {
        leader[i] = it->second;
        shared[i] = (static_cast<int64_t>(seqs[i].prompt.size()) - 1) / page;
      }
    }
    pages += per_slot - shared[i];
  }
  if (pages == n * per_slot) return make_cache(n, capacity);
  model::KVCache cache(model_.config(), n, capacity, pages, cache_type, model_.device());
  std::vector<std::vector<int32_t>> table(seqs.size());
  int32_t next = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    for (int64_t l = 0; l < per_slot; ++l) {
      const int32_t phys = l < shared[i] ? table[leader[i]][static_cast<size_t>(l)] : next++;
      table[i].push_back(phys);
      cache.set_page(seqs[i].slot, l, phys);
    }
    // The leader comes first in the prefill, so its pages are written before anyone reads them.
    seqs[i].cached = static_cast<size_t>(shared[i] * page);
  }
  return cache;
}

Session::Session(Engine& engine, int64_t capacity) : engine_(engine), cache_(engine.make_cache(1, capacity)) {}

GenerateResult Session::generate(const GenerateRequest& request, const TextCallback& on_text) {
  std::vector<Engine::Seq> seqs(1);
  auto& s = seqs[0];
  s.prompt = request.prompt;
  s.req = &request;
  size_t common = 0;
  while (common < cached_.size() && common < s.prompt.size() && cached_[common] == s.prompt[common]) ++common;
  // Image tokens are equal whatever the picture: the cached prefix holds only as far as the
  // pictures behind it are the request's first ones.
  const auto& keys = request.visual ? request.visual->image_keys : std::vector<uint64_t>{};
  const bool same_images = cached_images_.size() <= keys.size() &&
                           std::equal(cached_images_.begin(), cached_images_.end(), keys.begin());
  if (!same_images && engine_.model_.vision()) {
    const int32_t pad = static_cast<int32_t>(engine_.model_.config().vision->image_token_id);
    common = std::min<size_t>(common, std::find(cached_.begin(), cached_.end(), pad) - cached_.begin());
  }
  // Keep at least the last prompt token uncached: its logits start the answer.
  s.cached = std::min(common, s.prompt.empty() ? 0 : s.prompt.size() - 1);
  auto out = engine_.run(seqs, cache_, on_text);
  const auto& toks = s.cont->tokens();
  cached_.assign(toks.begin(), toks.begin() + static_cast<long>(s.cached));
  cached_images_ = keys;
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
