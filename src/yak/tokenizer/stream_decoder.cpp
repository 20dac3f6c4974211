// StreamDecoder: decode a window of recent ids and emit only the new suffix (the prefix/read
// offset technique), so byte pieces and SentencePiece's stripped leading space come out right.
#include "yak/base/utf8.h"
#include "yak/tokenizer/text_split.h"
#include "yak/tokenizer/tokenizer.h"

namespace yak::tok {

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special) : tok_(tok), skip_special_(skip_special) {}

namespace {
bool incomplete(const std::string& s) {
  return ends_with_replacement(s) || utf8::incomplete_tail(s) > 0;
}
}  // namespace

std::string StreamDecoder::push(int32_t id) {
  // A model's embedding often has more rows than the tokenizer has tokens (padding to a multiple
  // of 64 or 128); such ids have no text, as in Hugging Face's decode.
  if (id < 0 || id >= tok_.vocab_size()) return {};
  ids_.push_back(id);
  std::span<const int32_t> all(ids_);
  std::string prefix_text = tok_.decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  std::string new_text = tok_.decode(all.subspan(prefix_), skip_special_);
  // Hold back while the window ends inside a character; a later id completes it.
  if (new_text.size() <= prefix_text.size() || incomplete(new_text)) return {};
  std::string out =
      new_text.compare(0, prefix_text.size(), prefix_text) == 0 ? new_text.substr(prefix_text.size()) : new_text;
  prefix_ = read_;
  read_ = ids_.size();
  // Keep the window small: text before prefix_ is final and never decoded again.
  if (prefix_ > 0 && prefix_ > 64) {
    ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_));
    read_ -= prefix_;
    prefix_ = 0;
  }
  return out;
}

std::string StreamDecoder::flush() {
  std::span<const int32_t> all(ids_);
  std::string prefix_text = tok_.decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  std::string new_text = tok_.decode(all.subspan(prefix_), skip_special_);
  std::string out;
  if (new_text.size() > prefix_text.size())
    out = new_text.compare(0, prefix_text.size(), prefix_text) == 0 ? new_text.substr(prefix_text.size()) : new_text;
  reset();
  return out;
}

void StreamDecoder::reset() {
  ids_.clear();
  prefix_ = read_ = 0;
}

}  // namespace yak::tok
