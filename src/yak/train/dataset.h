// Token samples for `yak train sft` / `yak train pt` (OpenRLHF SFTDataset semantics, HF run_clm
// group_texts for pretraining), packing, and the seeded, resumable micro-batch iterator.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "yak/tokenizer/chat_template.h"
#include "yak/tokenizer/tokenizer.h"
#include "yak/train/data_source.h"

namespace yak::train {

// One training sequence. loss_mask is aligned with the tokens: loss_mask[i] == 1 means token i is
// a target, i.e. the loss term -log p(ids[i] | ids[<i]) counts (HF labels would hold ids[i]
// there and -100 elsewhere). OpenRLHF stores the same mask shifted by one (mask[i-1] for the
// logit that predicts token i); flatten() below produces that shifted form as `targets`.
struct Sample {
  std::vector<int32_t> ids;
  std::vector<uint8_t> loss_mask;
  std::string where;  // record it came from, "FILE:LINE" (pretraining blocks: first record)
};

// Why records were dropped, with counts ("empty response", "prompt too long (>= max_len - 2)"...).
struct SkipStats {
  std::map<std::string, size_t> reasons;
  size_t total() const;
  std::string summary() const;  // "3 skipped: 2 empty response, 1 prompt too long"
};

struct SftOptions {
  std::string input_key = "input";    // --input_key
  std::string output_key = "output";  // --output_key; empty = none
  // --input_template, e.g. "User: {}\nAssistant: " (Python str.format: one "{}", "{{" "}}"
  // escapes). Ignored with apply_chat_template, as in OpenRLHF.
  std::optional<std::string> input_template;
  bool apply_chat_template = false;  // --apply_chat_template (needs a ChatTemplate)
  bool multiturn = false;            // --multiturn: loss on every assistant turn
  int max_len = 2048;                // --max_len
  // Alpaca's optional `input` (--alpaca): when the record holds it non-empty, the prompt is
  // record[input_key] + "\n" + record[input_suffix_key], as Stanford Alpaca and
  // Chinese-LLaMA-Alpaca-2's build_dataset.py join them.
  std::string input_suffix_key;
  // --system-prompt-file: a system turn before each single-turn prompt (with --apply_chat_template).
  std::optional<std::string> system_prompt;
};

// Python str.format with one positional field ("{}" or "{0}"; "{{" and "}}" escape braces):
// --input_template applied to a value. Throws yak::Error when the template has no field.
std::string format_template(const std::string& tmpl, const std::string& value);

// Builds one SFT sample, or returns nullopt and names the reason in *skip_reason.
// Modes (OpenRLHF preprocess_data):
//  - plain: prompt = template(record[input_key]) or record[input_key]; response = record[output_key].
//  - chat, input and output strings: [user: input] + [assistant: output].
//  - chat, input a messages list [{role, content}]: prompt = render(messages[:-1], generation
//    prompt), response = render(messages) minus that prefix; with output_key present in the record
//    (string, message or list) it is appended as the response messages.
//  - chat + multiturn: every assistant message's rendered span is a target.
// Text: prompt + response with trailing '\n' removed; EOS appended unless the text already ends
// with the EOS token's text. Each span is tokenized on its own (no special tokens added) and the
// pieces concatenated, so mask boundaries are exact (see docs in dataset.cpp).
// Skips (counted): empty prompt, empty response, no assistant turn (multiturn), prompt tokens
// >= max_len - 2. Longer samples are truncated to max_len with the last token forced to EOS.
// Throws yak::Error naming record.where and the key for missing keys and wrong types.
// A record's whole dialogue (a list of messages under `key`) through the chat template, without
// a generation prompt (OpenRLHF's preference data without --prompt_key).
std::string render_dialogue(const Record& record, const std::string& key, const tok::ChatTemplate& tmpl);

std::optional<Sample> make_sft_sample(const Record& record, const tok::Tokenizer& tokenizer,
                                      const tok::ChatTemplate* chat_template, const SftOptions& options,
                                      std::string* skip_reason);

struct SftDataset {
  std::vector<Sample> samples;
  SkipStats skipped;
};
// make_sft_sample over records; skips are counted and logged once as a summary.
SftDataset build_sft_dataset(std::span<const Record> records, const tok::Tokenizer& tokenizer,
                             const tok::ChatTemplate* chat_template, const SftOptions& options);

struct PretrainOptions {
  std::string input_key = "text";  // --input_key; .txt files give "text"
  int max_len = 2048;              // block size
};

// run_clm group_texts: each document tokenized (with the tokenizer's own special tokens, e.g.
// LLaMA's BOS), EOS appended after every document, all concatenated, cut into blocks of exactly
// max_len; the remainder is dropped. Every token is a target. Empty documents are counted skips.
SftDataset build_pretrain_dataset(std::span<const Record> records, const tok::Tokenizer& tokenizer,
                                  const PretrainOptions& options);

// Packing (--packing_samples): consecutive samples (in the epoch's order) go into one row while
// the row's total stays <= max_len; a sample is never split.
std::vector<std::vector<size_t>> pack_rows(std::span<const Sample> samples, std::span<const size_t> order, int max_len);

// A row is a list of segments; each segment becomes its own sequence slot in the engine's ragged
// batch with positions from 0, so attention never crosses a sample boundary. Unpacked rows
// hold one segment.
struct Segment {
  std::span<const int32_t> ids;  // views into the dataset's samples (which must outlive the batch)
  std::span<const uint8_t> loss_mask;
  size_t sample = 0;  // index in the dataset
};
struct Row {
  std::vector<Segment> segments;
  size_t tokens() const;
};
struct MicroBatch {
  std::vector<Row> rows;
  size_t tokens() const;
  size_t target_tokens() const;  // tokens with loss_mask 1
};

// The engine's ragged layout of a micro-batch: one slot per segment (row-major), positions
// restarting at 0 per segment. targets[t] is the next token of the same segment when that token
// is a target, else -100 (the segment's last token always -100): cross-entropy of logits[t]
// against targets[t], ignoring -100, is OpenRLHF's SFT loss.
struct FlatBatch {
  std::vector<int32_t> tokens, positions, slots, targets;
  int32_t num_slots = 0;
};
FlatBatch flatten(const MicroBatch& batch);

struct LoaderOptions {
  size_t micro_batch_size = 1;  // rows per micro-batch (--micro_train_batch_size)
  bool shuffle = true;
  uint64_t seed = 42;
  bool packing = false;   // --packing_samples
  int max_len = 2048;     // packing capacity of a row
  bool drop_last = true;  // OpenRLHF's train dataloader drops the last incomplete micro-batch
};

// Where a run is: micro-batches already yielded in `epoch`. Saved in checkpoints; an iterator
// made with a saved position yields exactly what the stopped run would have yielded next.
struct LoaderPosition {
  uint64_t epoch = 0;
  uint64_t index = 0;
  bool operator==(const LoaderPosition&) const = default;
};

// Micro-batches over a dataset. Epoch e's order is a permutation drawn from (seed, e) — no state
// carries between epochs — then packed into rows when packing is on.
class BatchIterator {
 public:
  // samples must outlive the iterator and the batches it yields.
  BatchIterator(std::span<const Sample> samples, const LoaderOptions& options, LoaderPosition start = {});

  // The next micro-batch of the current epoch; nullopt at the epoch's end, after which the
  // position is (epoch + 1, 0) and the next call starts that epoch.
  std::optional<MicroBatch> next();
  LoaderPosition position() const { return pos_; }
  size_t batches_per_epoch() const;  // same for every epoch without packing; with packing, this epoch's
  // The sample order of an epoch (exposed for tests and logging).
  std::vector<size_t> epoch_order(uint64_t epoch) const;

 private:
  void plan_epoch() const;
  std::span<const Sample> samples_;
  LoaderOptions options_;
  LoaderPosition pos_;
  mutable uint64_t planned_epoch_ = UINT64_MAX;    // rows_ is a cache of the current epoch's plan
  mutable std::vector<std::vector<size_t>> rows_;  // this epoch's rows (sample indices)
};

}  // namespace yak::train
