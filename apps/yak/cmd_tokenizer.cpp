#include <cstdio>

#include "common.h"
#include "yak/base/error.h"
#include "yak/tokenizer/sp_merge.h"
#include "yak/tokenizer/sp_train.h"

namespace yak::cli {

namespace {

struct TrainFlags {
  std::vector<std::string> inputs, symbols;
  std::string prefix, model_type;
  int32_t vocab_size = 0;
  double coverage = 0.9995;
  bool byte_fallback = false, verbose = false;
  int64_t max_sentence_length = 0;
};

void run_train(const TrainFlags& f) {
  tok::SpTrainOptions o;
  for (const auto& s : f.inputs) o.inputs.emplace_back(s);
  o.vocab_size = f.vocab_size;
  o.model_type = f.model_type;
  o.character_coverage = f.coverage;
  o.user_defined_symbols = f.symbols;
  o.byte_fallback = f.byte_fallback;
  o.max_sentence_length = f.max_sentence_length;
  o.quiet = !f.verbose;
  auto r = tok::train_sentencepiece_files(o, f.prefix);
  std::printf("wrote %s and %s (%d pieces)\n", r.model_path.c_str(), r.vocab_path.c_str(), r.pieces);
}

struct MergeFlags {
  std::string base, add, out;
  int32_t base_pieces = 0;
};

void run_merge(const MergeFlags& f) {
  auto st = tok::merge_tokenizer_files(f.base, f.add, f.out, f.base_pieces);
  std::printf("%s/tokenizer.model: %d pieces (%d from the base, %d added, %d already present)\n", f.out.c_str(),
              st.total(), st.base_pieces, st.added, st.skipped);
}

}  // namespace

void register_tokenizer(CLI::App& app) {
  auto* tk = app.add_subcommand("tokenizer", "Train and extend SentencePiece tokenizers");
  tk->require_subcommand(1);

  auto t = std::make_shared<TrainFlags>();
  auto* tr = tk->add_subcommand("train", "Train a SentencePiece model: PREFIX.model and PREFIX.vocab");
  tr->add_option("--input", t->inputs, "Text files, one sentence per line (comma separated)")
      ->required()
      ->delimiter(',');
  tr->add_option("--model-prefix", t->prefix, "Output prefix: writes PREFIX.model and PREFIX.vocab")->required();
  tr->add_option("--vocab-size", t->vocab_size, "Number of pieces")->required();
  tr->add_option("--model-type", t->model_type, "bpe or unigram")->required();
  tr->add_option("--character-coverage", t->coverage, "Share of characters covered by the vocabulary")
      ->default_val(0.9995);
  tr->add_option("--user-defined-symbols", t->symbols, "Pieces that are never split (comma separated)")->delimiter(',');
  tr->add_flag("--byte-fallback", t->byte_fallback, "Unknown characters become <0xNN> byte pieces");
  tr->add_option("--max-sentence-length", t->max_sentence_length, "Longest line used, in bytes (default 4192)");
  tr->add_flag("-v,--verbose", t->verbose, "Show SentencePiece's training log");
  tr->callback([t] { run_train(*t); });

  auto m = std::make_shared<MergeFlags>();
  auto* mg = tk->add_subcommand("merge", "Append the pieces of another SentencePiece model that the base lacks");
  mg->add_option("--base", m->base, "Base tokenizer.model, or the folder holding it (e.g. LLaMA's)")->required();
  mg->add_option("--add", m->add, "SentencePiece .model whose new pieces are appended")->required();
  mg->add_option("--out", m->out, "Output folder (new or empty)")->required();
  mg->add_option("--base-pieces", m->base_pieces,
                 "Keep only the base's first N pieces (e.g. 32000: LLaMA's vocabulary out of Chinese-LLaMA-2's)");
  mg->callback([m] { run_merge(*m); });
}

}  // namespace yak::cli
