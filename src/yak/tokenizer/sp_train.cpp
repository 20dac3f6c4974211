#include "yak/tokenizer/sp_train.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fstream>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "yak/base/error.h"
#include "yak/io/safetensors.h"

namespace yak::tok {

namespace fs = std::filesystem;

namespace {

// Feeds the trainer our files line by line, so that a missing or unreadable file is reported by
// name before training starts, and file names may hold commas.
class FileLines : public sentencepiece::SentenceIterator {
 public:
  explicit FileLines(const std::vector<fs::path>& files) : files_(files) { advance(); }
  bool done() const override { return done_; }
  void Next() override { advance(); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return status_; }
  size_t lines() const { return lines_; }

 private:
  void advance() {
    while (true) {
      if (in_.is_open() && std::getline(in_, line_)) {
        if (!line_.empty() && line_.back() == '\r') line_.pop_back();
        ++lines_;
        return;
      }
      if (in_.is_open()) {
        if (in_.bad()) {
          status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal,
                                                files_[next_ - 1].string() + ": read failed");
          done_ = true;
          return;
        }
        in_.close();
      }
      if (next_ >= files_.size()) {
        done_ = true;
        return;
      }
      in_.clear();
      in_.open(files_[next_++], std::ios::binary);
      if (!in_) {
        status_ = sentencepiece::util::Status(sentencepiece::util::StatusCode::kNotFound,
                                              files_[next_ - 1].string() + ": cannot open");
        done_ = true;
        return;
      }
    }
  }

  const std::vector<fs::path>& files_;
  size_t next_ = 0, lines_ = 0;
  std::ifstream in_;
  std::string line_;
  bool done_ = false;
  sentencepiece::util::Status status_;
};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

}  // namespace

std::string train_sentencepiece(const SpTrainOptions& opt) {
  if (opt.inputs.empty()) throw Error("--input: expected at least one text file");
  for (const auto& f : opt.inputs) {
    std::error_code ec;
    if (!fs::is_regular_file(f, ec)) throw Error(f.string() + ": no such file (expected a text file for --input)");
  }
  if (opt.vocab_size < 1)
    throw Error("--vocab-size: expected a positive number, got " + std::to_string(opt.vocab_size));
  if (opt.model_type != "bpe" && opt.model_type != "unigram")
    throw Error("--model-type: expected bpe or unigram, got '" + opt.model_type + "'");
  if (!(opt.character_coverage > 0.0 && opt.character_coverage <= 1.0))
    throw Error("--character-coverage: expected a value in (0, 1], got " + std::to_string(opt.character_coverage));
  for (const auto& s : opt.user_defined_symbols)
    if (s.empty() || s.find(',') != std::string::npos)
      throw Error("--user-defined-symbols: expected non-empty symbols without commas");

  int threads =
      opt.num_threads > 0 ? opt.num_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::ostringstream cov;
  cov.precision(17);
  cov << opt.character_coverage;
  std::unordered_map<std::string, std::string> kw = {
      {"vocab_size", std::to_string(opt.vocab_size)},
      {"model_type", opt.model_type},
      {"character_coverage", cov.str()},
      {"byte_fallback", opt.byte_fallback ? "true" : "false"},
      {"num_threads", std::to_string(threads)},
      {"minloglevel", opt.quiet ? "2" : "0"},
  };
  if (!opt.user_defined_symbols.empty()) kw["user_defined_symbols"] = join(opt.user_defined_symbols);
  if (opt.max_sentence_length > 0) kw["max_sentence_length"] = std::to_string(opt.max_sentence_length);

  FileLines lines(opt.inputs);
  std::string model;
  auto st = sentencepiece::SentencePieceTrainer::Train(kw, &lines, &model);
  if (!lines.status().ok()) throw Error(lines.status().message());
  if (!st.ok()) throw Error("SentencePiece training failed: " + std::string(st.message()));
  if (model.empty()) throw Error("SentencePiece training produced no model");
  return model;
}

std::string sentencepiece_vocab_text(const std::string& model) {
  sentencepiece::SentencePieceProcessor sp;
  auto st = sp.LoadFromSerializedProto(model);
  if (!st.ok()) throw Error("not a SentencePiece model: " + st.ToString());
  std::ostringstream os;
  for (int i = 0; i < sp.GetPieceSize(); ++i) os << sp.IdToPiece(i) << '\t' << sp.GetScore(i) << '\n';
  return os.str();
}

SpTrainResult train_sentencepiece_files(const SpTrainOptions& opt, const fs::path& model_prefix) {
  if (model_prefix.empty() || !model_prefix.has_filename())
    throw Error("--model-prefix: expected a file name prefix, got '" + model_prefix.string() + "'");
  std::error_code ec;
  fs::path parent = model_prefix.parent_path().empty() ? fs::path(".") : model_prefix.parent_path();
  if (!fs::is_directory(parent, ec))
    throw Error(model_prefix.string() + ": folder " + parent.string() + " does not exist (--model-prefix)");
  SpTrainResult r;
  r.model_path = model_prefix;
  r.model_path += ".model";
  r.vocab_path = model_prefix;
  r.vocab_path += ".vocab";
  for (const auto& p : {r.model_path, r.vocab_path})
    if (fs::is_directory(p, ec)) throw Error(p.string() + ": is a folder (expected a file to write)");

  std::string model = train_sentencepiece(opt);
  std::string vocab = sentencepiece_vocab_text(model);
  sentencepiece::SentencePieceProcessor sp;
  sp.LoadFromSerializedProto(model);
  r.pieces = sp.GetPieceSize();
  io::write_file_atomic(r.vocab_path, vocab);
  io::write_file_atomic(r.model_path, model);
  return r;
}

}  // namespace yak::tok
