#include "yak/train/dataset.h"

#include <algorithm>
#include <numeric>

#include "yak/base/error.h"
#include "yak/base/log.h"

// Why each SFT span is tokenized on its own: OpenRLHF tokenizes prompt+response as one string and
// takes the boundary from the prompt's own token count. Where a template ends in a special token
// (ChatML, Llama-2 [/INST]) the two agree token for token (tests check this); where the prompt ends
// in plain text ("Assistant: " + "Hello"), BPE merges across the boundary and OpenRLHF's mask is
// off by one token. Separate pieces keep the mask exact and give the model the same prompt
// tokens it will see at generation time, where the prompt is tokenized alone.

namespace yak::train {
namespace {

struct Span {
  std::string text;
  bool target;
};

std::string type_name(const Json& j) {
  return j.type_name();
}

const Json& require(const Record& r, const std::string& key) {
  auto it = r.value.find(key);
  if (it == r.value.end() || it->is_null()) throw Error(r.where + ": missing key '" + key + "'");
  return *it;
}

const std::string& require_string(const Record& r, const std::string& key) {
  const Json& j = require(r, key);
  if (!j.is_string()) throw Error(r.where + ": key '" + key + "' must be a string (got " + type_name(j) + ")");
  return j.get_ref<const std::string&>();
}

tok::ChatMessage parse_message(const Record& r, const std::string& key, size_t index, const Json& m) {
  std::string at = r.where + ": " + key + "[" + std::to_string(index) + "]";
  if (!m.is_object()) throw Error(at + ": expected a message object {role, content} (got " + type_name(m) + ")");
  tok::ChatMessage msg;
  for (const char* f : {"role", "content"}) {
    auto it = m.find(f);
    if (it == m.end() || it->is_null()) throw Error(at + ": missing key '" + std::string(f) + "'");
    if (!it->is_string())
      throw Error(at + ": key '" + std::string(f) + "' must be a string (got " + type_name(*it) + ")");
    (std::string(f) == "role" ? msg.role : msg.content) = it->get<std::string>();
  }
  return msg;
}

std::vector<tok::ChatMessage> parse_messages(const Record& r, const std::string& key, const Json& j) {
  if (!j.is_array())
    throw Error(r.where + ": key '" + key + "' must be a list of messages or a string (got " + type_name(j) + ")");
  std::vector<tok::ChatMessage> out;
  for (size_t i = 0; i < j.size(); ++i) out.push_back(parse_message(r, key, i, j[i]));
  return out;
}

std::string render(const tok::ChatTemplate& t, const Record& r, std::span<const tok::ChatMessage> msgs, bool gen) {
  tok::ChatOptions o;
  o.add_generation_prompt = gen;
  try {
    return t.render(msgs, o);
  } catch (const Error& e) {
    throw Error(r.where + ": chat template '" + t.name() + "': " + e.what());
  }
}

// The rendered target text of msgs[0..k) appended after msgs[0..k-1), per OpenRLHF:
// render(msgs[:k]) with the generation prompt must be a prefix of render(msgs[:k+1]).
void check_prefix(const Record& r, const tok::ChatTemplate& t, const std::string& whole, const std::string& prefix,
                  size_t at_message) {
  if (whole.compare(0, prefix.size(), prefix) != 0)
    throw Error(r.where + ": chat template '" + t.name() + "' does not render message " + std::to_string(at_message) +
                " as a continuation of the conversation before it; the loss mask cannot be placed");
}

}  // namespace

std::string render_dialogue(const Record& r, const std::string& key, const tok::ChatTemplate& t) {
  auto it = r.value.find(key);
  if (it == r.value.end()) throw Error(r.where + ": missing key '" + key + "'");
  const auto msgs = parse_messages(r, key, *it);
  return render(t, r, msgs, false);
}

// Python str.format with one positional field: "{}" or "{0}", "{{" and "}}" escapes.
std::string format_template(const std::string& tmpl, const std::string& value) {
  std::string out;
  bool placed = false;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    char c = tmpl[i];
    if (c == '{' && i + 1 < tmpl.size() && tmpl[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (c == '}' && i + 1 < tmpl.size() && tmpl[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (c == '{') {
      size_t e = tmpl.find('}', i);
      std::string field = e == std::string::npos ? "" : tmpl.substr(i + 1, e - i - 1);
      if (e == std::string::npos || !(field.empty() || field == "0"))
        throw Error("--input_template: only '{}' may appear in braces (write '{{' for a literal brace): " + tmpl);
      out += value;
      placed = true;
      i = e;
    } else if (c == '}') {
      throw Error("--input_template: single '}' (write '}}' for a literal brace): " + tmpl);
    } else {
      out += c;
    }
  }
  if (!placed) throw Error("--input_template: no '{}' placeholder for the input: " + tmpl);
  return out;
}

size_t SkipStats::total() const {
  size_t n = 0;
  for (const auto& [k, v] : reasons) n += v;
  return n;
}

std::string SkipStats::summary() const {
  std::string s = std::to_string(total()) + " skipped";
  bool first = true;
  for (const auto& [k, v] : reasons) {
    s += (first ? ": " : ", ") + std::to_string(v) + " " + k;
    first = false;
  }
  return s;
}

namespace {
std::string with_suffix(const Record& r, const SftOptions& o, std::string input) {
  if (o.input_suffix_key.empty()) return input;
  auto it = r.value.find(o.input_suffix_key);
  if (it == r.value.end() || it->is_null()) return input;
  if (!it->is_string()) throw Error(r.where + ": key '" + o.input_suffix_key + "' must be a string");
  const std::string extra = it->get<std::string>();
  return extra.empty() ? input : input + "\n" + extra;
}
}  // namespace

std::optional<Sample> make_sft_sample(const Record& r, const tok::Tokenizer& tokenizer, const tok::ChatTemplate* chat,
                                      const SftOptions& o, std::string* skip_reason) {
  auto skip = [&](const std::string& why) -> std::optional<Sample> {
    if (skip_reason) *skip_reason = why;
    return std::nullopt;
  };
  check(o.max_len >= 3, "--max_len must be at least 3 (got " + std::to_string(o.max_len) + ")");
  const auto eos = tokenizer.eos_id();
  check(eos.has_value(), "the tokenizer has no EOS token; SFT appends one after each response");
  const bool has_output = !o.output_key.empty() && r.value.contains(o.output_key) && !r.value[o.output_key].is_null();

  std::vector<Span> spans;
  std::string prompt_text, response_text;  // OpenRLHF's prompt/response for the emptiness checks
  if (!o.apply_chat_template) {
    check(!o.multiturn, "--multiturn needs --apply_chat_template");
    std::string input = with_suffix(r, o, require_string(r, o.input_key));
    prompt_text = o.input_template && !o.input_template->empty() ? format_template(*o.input_template, input) : input;
    if (!o.output_key.empty()) response_text = require_string(r, o.output_key);
    spans = {{prompt_text, false}, {response_text, true}};
  } else {
    check(chat != nullptr, "--apply_chat_template: no chat template for this tokenizer");
    const Json& in = require(r, o.input_key);
    std::vector<tok::ChatMessage> msgs;
    size_t n_prompt;  // messages before the (single-turn) response
    if (in.is_string()) {
      if (o.output_key.empty())
        throw Error(r.where + ": key '" + o.input_key +
                    "' is a string; --apply_chat_template "
                    "needs --output_key for the reply, or a messages list");
      const Json& out = require(r, o.output_key);
      if (!out.is_string())
        throw Error(r.where + ": key '" + o.output_key + "' must be a string when '" + o.input_key + "' is (got " +
                    type_name(out) + ")");
      msgs = {{"user", with_suffix(r, o, in.get<std::string>())}, {"assistant", out.get<std::string>()}};
      n_prompt = 1;
      if (o.system_prompt) {
        msgs.insert(msgs.begin(), tok::ChatMessage{"system", *o.system_prompt});
        n_prompt = 2;
      }
    } else {
      msgs = parse_messages(r, o.input_key, in);
      if (has_output) {
        const Json& out = r.value[o.output_key];
        n_prompt = msgs.size();
        if (out.is_string())
          msgs.push_back({"assistant", out.get<std::string>()});
        else if (out.is_object())
          msgs.push_back(parse_message(r, o.output_key, 0, out));
        else
          for (auto& m : parse_messages(r, o.output_key, out)) msgs.push_back(std::move(m));
      } else {
        if (msgs.empty()) return skip("empty conversation");
        n_prompt = msgs.size() - 1;
      }
    }
    const std::string full = render(*chat, r, msgs, false);
    if (!o.multiturn) {
      prompt_text = render(*chat, r, std::span(msgs).first(n_prompt), true);
      check_prefix(r, *chat, full, prompt_text, n_prompt);
      response_text = full.substr(prompt_text.size());
      spans = {{prompt_text, false}, {response_text, true}};
    } else {
      // Every assistant message's rendered span is a target (OpenRLHF's response_ranges).
      size_t cursor = 0;
      for (size_t i = 0; i < msgs.size(); ++i) {
        if (msgs[i].role != "assistant") continue;
        std::string p = render(*chat, r, std::span(msgs).first(i), true);
        std::string w = render(*chat, r, std::span(msgs).first(i + 1), false);
        check_prefix(r, *chat, w, p, i);
        check_prefix(r, *chat, full, w, i);
        if (p.size() < cursor) check_prefix(r, *chat, p, full.substr(0, cursor), i);
        spans.push_back({full.substr(cursor, p.size() - cursor), false});
        spans.push_back({w.substr(p.size()), true});
        cursor = w.size();
        prompt_text = p;
        response_text = full.substr(p.size());
      }
      if (spans.empty()) return skip("no assistant turn");
      if (cursor < full.size()) spans.push_back({full.substr(cursor), false});
    }
  }
  if (prompt_text.empty()) return skip("empty prompt");
  if (response_text.empty()) return skip("empty response");

  // (prompt + response).rstrip("\n"), then EOS unless the text already ends with it.
  while (!spans.empty()) {
    auto& t = spans.back().text;
    while (!t.empty() && t.back() == '\n') t.pop_back();
    if (!t.empty()) break;
    spans.pop_back();
  }
  const std::string eos_text = tokenizer.id_to_token(*eos);
  const bool ends_with_eos =
      !spans.empty() && spans.back().text.size() >= eos_text.size() &&
      spans.back().text.compare(spans.back().text.size() - eos_text.size(), eos_text.size(), eos_text) == 0;

  Sample s;
  s.where = r.where;
  size_t prompt_tokens = 0;
  for (const auto& sp : spans) {
    if (sp.target) prompt_tokens = s.ids.size();  // tokens before the last target span
    auto ids = tokenizer.encode(sp.text, false);
    s.ids.insert(s.ids.end(), ids.begin(), ids.end());
    s.loss_mask.insert(s.loss_mask.end(), ids.size(), sp.target ? 1 : 0);
  }
  if (!ends_with_eos) {
    s.ids.push_back(*eos);
    s.loss_mask.push_back(spans.empty() || spans.back().target ? 1 : 0);
  }
  // OpenRLHF drops samples whose prompt leaves fewer than 2 tokens for the answer ...
  if (prompt_tokens >= static_cast<size_t>(o.max_len - 2)) return skip("prompt too long (>= max_len - 2 tokens)");
  // ... and truncates the rest to max_len, the last token forced to EOS.
  if (s.ids.size() > static_cast<size_t>(o.max_len)) {
    s.ids.resize(o.max_len);
    s.loss_mask.resize(o.max_len);
    s.ids.back() = *eos;
  }
  return s;
}

SftDataset build_sft_dataset(std::span<const Record> records, const tok::Tokenizer& tokenizer,
                             const tok::ChatTemplate* chat, const SftOptions& o) {
  SftDataset d;
  d.samples.reserve(records.size());
  for (const auto& r : records) {
    std::string why;
    if (auto s = make_sft_sample(r, tokenizer, chat, o, &why))
      d.samples.push_back(std::move(*s));
    else
      ++d.skipped.reasons[why];
  }
  if (d.skipped.total() > 0)
    log::info("sft dataset: " + std::to_string(d.samples.size()) + " samples, " + d.skipped.summary());
  return d;
}

SftDataset build_pretrain_dataset(std::span<const Record> records, const tok::Tokenizer& tokenizer,
                                  const PretrainOptions& o) {
  check(o.max_len >= 1, "--max_len must be at least 1 (got " + std::to_string(o.max_len) + ")");
  const auto eos = tokenizer.eos_id();
  check(eos.has_value(), "the tokenizer has no EOS token; pretraining puts one after each document");
  SftDataset d;
  std::vector<int32_t> stream;
  std::vector<size_t> doc_start;  // stream offset where each contributing record starts
  std::vector<const Record*> doc;
  for (const auto& r : records) {
    const std::string& text = require_string(r, o.input_key);
    if (text.empty()) {
      ++d.skipped.reasons["empty text"];
      continue;
    }
    doc_start.push_back(stream.size());
    doc.push_back(&r);
    auto ids = tokenizer.encode(text, true);
    stream.insert(stream.end(), ids.begin(), ids.end());
    stream.push_back(*eos);
  }
  const size_t L = o.max_len, blocks = stream.size() / L;
  d.samples.reserve(blocks);
  size_t di = 0;
  for (size_t b = 0; b < blocks; ++b) {
    while (di + 1 < doc_start.size() && doc_start[di + 1] <= b * L) ++di;
    Sample s;
    s.ids.assign(stream.begin() + b * L, stream.begin() + (b + 1) * L);
    s.loss_mask.assign(L, 1);
    s.where = doc[di]->where;
    d.samples.push_back(std::move(s));
  }
  if (blocks == 0)
    log::warn("pretraining data: " + std::to_string(stream.size()) + " tokens make no block of max_len " +
              std::to_string(L));
  if (d.skipped.total() > 0) log::info("pretraining data: " + d.skipped.summary());
  return d;
}

std::vector<std::vector<size_t>> pack_rows(std::span<const Sample> samples, std::span<const size_t> order,
                                           int max_len) {
  check(max_len >= 1, "--max_len must be at least 1 for packing");
  std::vector<std::vector<size_t>> rows;
  size_t used = 0;
  for (size_t i : order) {
    const size_t n = samples[i].ids.size();
    check(n <= static_cast<size_t>(max_len), samples[i].where + ": sample of " + std::to_string(n) +
                                                 " tokens does not fit in a packed row of max_len " +
                                                 std::to_string(max_len));
    if (rows.empty() || used + n > static_cast<size_t>(max_len)) {
      rows.emplace_back();
      used = 0;
    }
    rows.back().push_back(i);
    used += n;
  }
  return rows;
}

size_t Row::tokens() const {
  size_t n = 0;
  for (const auto& s : segments) n += s.ids.size();
  return n;
}

size_t MicroBatch::tokens() const {
  size_t n = 0;
  for (const auto& r : rows) n += r.tokens();
  return n;
}

size_t MicroBatch::target_tokens() const {
  size_t n = 0;
  for (const auto& r : rows)
    for (const auto& s : r.segments) n += std::count(s.loss_mask.begin(), s.loss_mask.end(), uint8_t{1});
  return n;
}

FlatBatch flatten(const MicroBatch& b) {
  FlatBatch f;
  const size_t n = b.tokens();
  f.tokens.reserve(n);
  f.positions.reserve(n);
  f.slots.reserve(n);
  f.targets.reserve(n);
  for (const auto& row : b.rows) {
    for (const auto& seg : row.segments) {
      const size_t len = seg.ids.size();
      for (size_t t = 0; t < len; ++t) {
        f.tokens.push_back(seg.ids[t]);
        f.positions.push_back(static_cast<int32_t>(t));
        f.slots.push_back(f.num_slots);
        f.targets.push_back(t + 1 < len && seg.loss_mask[t + 1] ? seg.ids[t + 1] : -100);
      }
      ++f.num_slots;
    }
  }
  return f;
}

BatchIterator::BatchIterator(std::span<const Sample> samples, const LoaderOptions& options, LoaderPosition start)
    : samples_(samples), options_(options), pos_(start) {
  check(options_.micro_batch_size >= 1, "--micro_train_batch_size must be at least 1");
  if (options_.packing) check(options_.max_len >= 1, "--max_len must be at least 1 for packing");
}

std::vector<size_t> BatchIterator::epoch_order(uint64_t epoch) const {
  std::vector<size_t> order(samples_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  if (options_.shuffle && order.size() > 1) {
    // torch's DistributedSampler seeds each epoch with seed + epoch; so do we (own RNG).
    DataRng rng(options_.seed + epoch);
    for (size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
  }
  return order;
}

void BatchIterator::plan_epoch() const {
  if (planned_epoch_ == pos_.epoch) return;
  auto order = epoch_order(pos_.epoch);
  if (options_.packing) {
    rows_ = pack_rows(samples_, order, options_.max_len);
  } else {
    rows_.clear();
    rows_.reserve(order.size());
    for (size_t i : order) rows_.push_back({i});
  }
  planned_epoch_ = pos_.epoch;
}

size_t BatchIterator::batches_per_epoch() const {
  plan_epoch();
  const size_t m = options_.micro_batch_size;
  return options_.drop_last ? rows_.size() / m : (rows_.size() + m - 1) / m;
}

std::optional<MicroBatch> BatchIterator::next() {
  plan_epoch();
  if (pos_.index >= batches_per_epoch()) {
    pos_ = {pos_.epoch + 1, 0};
    return std::nullopt;
  }
  MicroBatch mb;
  const size_t begin = pos_.index * options_.micro_batch_size;
  const size_t end = std::min(rows_.size(), begin + options_.micro_batch_size);
  for (size_t r = begin; r < end; ++r) {
    Row row;
    for (size_t i : rows_[r]) row.segments.push_back({samples_[i].ids, samples_[i].loss_mask, i});
    mb.rows.push_back(std::move(row));
  }
  ++pos_.index;
  return mb;
}

}  // namespace yak::train
