// Tokenizer extension, the Chinese-LLaMA recipe: train a SentencePiece model, append its new
// pieces to a base model (ids kept), truncate; and on the real files, LLaMA's 32,000 pieces plus
// chinese_sp.model give the 49,953 pieces Chinese-LLaMA published.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <set>

#include "tokenizer_test_util.h"
#include "yak/base/error.h"
#include "yak/io/safetensors.h"
#include "yak/tokenizer/sentencepiece_tokenizer.h"
#include "yak/tokenizer/sp_merge.h"
#include "yak/tokenizer/sp_train.h"

using namespace yak;
using namespace yak::tok;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::path(::testing::TempDir()) / ("yak_sp_extend_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// 2,000 lines of a made-up language: words from a few syllables, Zipf-like word choice.
std::string make_corpus(const std::vector<std::string>& syllables, const std::string& space, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> words;
  for (int w = 0; w < 400; ++w) {
    std::string word;
    int n = 1 + static_cast<int>(rng() % 3);
    for (int s = 0; s < n; ++s) word += syllables[rng() % syllables.size()];
    words.push_back(word);
  }
  std::string text;
  for (int line = 0; line < 2000; ++line) {
    int n = 4 + static_cast<int>(rng() % 8);
    for (int i = 0; i < n; ++i) {
      double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
      size_t k = static_cast<size_t>(words.size() * u * u * u);  // frequent words first
      text += (i ? space : "") + words[k];
    }
    text += "\n";
  }
  return text;
}

const std::vector<std::string> kLatin = {"ka", "to", "ri", "ne", "su", "mo", "la", "pi", "ve", "do", "an", "er", "th"};
// Twenty common Han characters: a script the Latin model has never seen.
const std::vector<std::string> kHan = {"的", "一", "是", "不", "了", "人", "我", "在", "有", "他",
                                       "这", "中", "大", "来", "上", "国", "个", "到", "说", "们"};

struct Fixture {
  fs::path dir;
  std::string latin_text, han_text, latin_model, han_model;
};

// Trains the two small models once for all tests of this binary.
const Fixture& fixture() {
  static Fixture f = [] {
    Fixture x;
    x.dir = temp_dir("fixture");
    x.latin_text = make_corpus(kLatin, " ", 1);
    x.han_text = make_corpus(kHan, "", 2);
    io::write_file_atomic(x.dir / "latin.txt", x.latin_text);
    io::write_file_atomic(x.dir / "han.txt", x.han_text);
    SpTrainOptions o;
    o.inputs = {x.dir / "latin.txt"};
    o.vocab_size = 300;
    o.model_type = "bpe";
    o.user_defined_symbols = {"<sep>"};
    o.byte_fallback = true;  // as LLaMA's: unseen characters become <0xNN> pieces
    o.quiet = true;
    auto r = train_sentencepiece_files(o, x.dir / "latin");
    x.latin_model = read_text_file(r.model_path);
    o.inputs = {x.dir / "han.txt"};
    o.user_defined_symbols = {};
    o.byte_fallback = false;
    o.character_coverage = 1.0;
    x.han_model = train_sentencepiece(o);
    return x;
  }();
  return f;
}

size_t count_tokens(const Tokenizer& t, const std::string& text) {
  return t.encode(text, false).size();
}

}  // namespace

TEST(SpTrain, WritesModelAndVocab) {
  const auto& f = fixture();
  ASSERT_TRUE(fs::exists(f.dir / "latin.model"));
  ASSERT_TRUE(fs::exists(f.dir / "latin.vocab"));
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.LoadFromSerializedProto(f.latin_model).ok());
  EXPECT_EQ(sp.GetPieceSize(), 300);
  EXPECT_EQ(sp.PieceToId("<sep>"), 3);          // user-defined symbols come right after <unk> <s> </s>
  EXPECT_EQ(sp.PieceToId("<0xE4>"), 4 + 0xE4);  // then the 256 byte pieces
  EXPECT_EQ(sentencepiece_pieces(f.latin_model, "latin")[3].type, spproto::kUserDefined);
  std::string vocab = read_text_file(f.dir / "latin.vocab");
  EXPECT_EQ(std::count(vocab.begin(), vocab.end(), '\n'), 300);
  EXPECT_EQ(vocab.substr(0, 8), "<unk>\t0\n");
  // BPE learned whole words of the corpus: far fewer pieces than characters.
  std::string line = f.latin_text.substr(0, f.latin_text.find('\n'));
  std::vector<std::string> pieces;
  sp.Encode(line, &pieces);
  EXPECT_LT(pieces.size() * 2, line.size());
}

TEST(SpTrain, BadOptionsThrowBeforeWriting) {
  fs::path d = temp_dir("bad_train");
  io::write_file_atomic(d / "in.txt", "a b c\n");
  SpTrainOptions o;
  o.inputs = {d / "missing.txt"};
  o.model_type = "bpe";
  o.vocab_size = 50;
  EXPECT_THROW(train_sentencepiece_files(o, d / "out"), Error);
  o.inputs = {d / "in.txt"};
  o.vocab_size = 0;
  EXPECT_THROW(train_sentencepiece_files(o, d / "out"), Error);
  o.vocab_size = 50;
  o.model_type = "word2vec";
  EXPECT_THROW(train_sentencepiece_files(o, d / "out"), Error);
  o.model_type = "unigram";
  o.character_coverage = 1.5;
  EXPECT_THROW(train_sentencepiece_files(o, d / "out"), Error);
  o.character_coverage = 1.0;
  EXPECT_THROW(train_sentencepiece_files(o, d / "no_such_folder" / "out"), Error);
  EXPECT_FALSE(fs::exists(d / "out.model"));
  EXPECT_FALSE(fs::exists(d / "out.vocab"));
}

TEST(SpMerge, AppendsNewPiecesKeepingIds) {
  const auto& f = fixture();
  auto base = sentencepiece_pieces(f.latin_model, "latin");
  auto add = sentencepiece_pieces(f.han_model, "han");
  MergeStats st;
  std::string merged = merge_sentencepiece_models(f.latin_model, f.han_model, "latin", "han", &st);
  auto out = sentencepiece_pieces(merged, "merged");

  std::set<std::string> base_set;
  for (const auto& p : base) base_set.insert(p.piece);
  size_t fresh = 0;
  for (const auto& p : add) fresh += base_set.count(p.piece) == 0;
  EXPECT_EQ(st.base_pieces, 300);
  EXPECT_EQ(st.added, static_cast<int32_t>(fresh));
  EXPECT_EQ(st.skipped, static_cast<int32_t>(add.size() - fresh));
  EXPECT_GE(st.skipped, 3);  // <unk> <s> </s> at least
  ASSERT_EQ(out.size(), base.size() + fresh);
  for (size_t i = 0; i < base.size(); ++i) {
    EXPECT_EQ(out[i].piece, base[i].piece) << i;
    EXPECT_EQ(out[i].score, base[i].score) << i;
    EXPECT_EQ(out[i].type, base[i].type) << i;
  }
  for (size_t i = base.size(); i < out.size(); ++i) {
    EXPECT_EQ(out[i].score, 0.0f);  // as merge_tokenizers.py gives them
    EXPECT_EQ(out[i].type, spproto::kNormal);
  }

  SentencePieceTokenizer base_tok(f.latin_model, "latin", nullptr, nullptr);
  SentencePieceTokenizer merged_tok(merged, "merged", nullptr, nullptr);
  // Text of the base's language is split exactly as before; the new script takes far fewer tokens.
  // Whole lines (never half a character), newlines as spaces: the trained models normalize with
  // nmt_nfkc, which turns "\n" into " ".
  auto lines = [](const std::string& t, size_t n) {
    std::string s = t.substr(0, t.find('\n', n));
    std::replace(s.begin(), s.end(), '\n', ' ');
    return s;
  };
  std::string latin = lines(f.latin_text, 4000), han = lines(f.han_text, 6000);
  EXPECT_EQ(base_tok.encode(latin, true), merged_tok.encode(latin, true));
  size_t before = count_tokens(base_tok, han), after = count_tokens(merged_tok, han);
  std::printf("small models: %zu tokens with the base, %zu merged (ratio %.2f)\n", before, after,
              double(before) / double(after));
  EXPECT_LT(after * 2, before);
  EXPECT_EQ(merged_tok.decode(merged_tok.encode(han, false), false), han);
}

TEST(SpMerge, TruncateUndoesMerge) {
  const auto& f = fixture();
  std::string merged = merge_sentencepiece_models(f.latin_model, f.han_model, "latin", "han");
  // Pieces first, other fields after, as protobuf writes them: cutting the added pieces gives the
  // base byte for byte.
  EXPECT_EQ(truncate_pieces(merged, 300, "merged"), f.latin_model);
  EXPECT_THROW(truncate_pieces(merged, 0, "merged"), Error);
  EXPECT_THROW(truncate_pieces(merged, 100000, "merged"), Error);
  // Merging a model with itself adds nothing.
  MergeStats st;
  EXPECT_EQ(merge_sentencepiece_models(f.latin_model, f.latin_model, "a", "b", &st), f.latin_model);
  EXPECT_EQ(st.added, 0);
}

TEST(SpMerge, RejectsWhatIsNotAModel) {
  const auto& f = fixture();
  for (std::string bad : {std::string(), std::string("{\"model\": {}}"), std::string("\x0a\xff\xff", 3),
                          f.latin_model.substr(0, f.latin_model.size() / 2)}) {
    EXPECT_THROW(merge_sentencepiece_models(bad, f.han_model, "bad", "han"), Error);
    EXPECT_THROW(merge_sentencepiece_models(f.latin_model, bad, "latin", "bad"), Error);
  }
  try {
    merge_sentencepiece_models("hello world", f.han_model, "x.model", "han");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.model: not a SentencePiece model"), std::string::npos) << e.what();
  }
}

TEST(SpMerge, FolderOutputIsAllOrNothing) {
  const auto& f = fixture();
  fs::path d = temp_dir("merge_dir");
  fs::create_directories(d / "base");
  io::write_file_atomic(d / "base" / "tokenizer.model", f.latin_model);
  io::write_file_atomic(d / "base" / "tokenizer_config.json", R"({"add_bos_token": true, "add_eos_token": false})");
  io::write_file_atomic(d / "han.model", f.han_model);

  auto st = merge_tokenizer_files(d / "base", d / "han.model", d / "out");
  EXPECT_TRUE(fs::exists(d / "out" / "tokenizer_config.json"));
  auto tok = load_tokenizer(d / "out");
  EXPECT_EQ(tok->vocab_size(), st.total());
  EXPECT_EQ(tok->encode("ka", true).front(), 1);  // BOS from the copied config

  // Existing outputs are never touched: a file, a non-empty folder.
  io::write_file_atomic(d / "file", "keep");
  EXPECT_THROW(merge_tokenizer_files(d / "base", d / "han.model", d / "file"), Error);
  EXPECT_EQ(read_text_file(d / "file"), "keep");
  EXPECT_THROW(merge_tokenizer_files(d / "base", d / "han.model", d / "out"), Error);
  EXPECT_THROW(merge_tokenizer_files(d / "base", d / "latin.txt", d / "out2"), Error);
  EXPECT_THROW(merge_tokenizer_files(d / "nothing", d / "han.model", d / "out2"), Error);
  EXPECT_FALSE(fs::exists(d / "out2"));
  // An empty folder is fine; no temporary folder is left beside it.
  fs::create_directories(d / "empty");
  merge_tokenizer_files(d / "base", d / "han.model", d / "empty");
  EXPECT_TRUE(fs::exists(d / "empty" / "tokenizer.model"));
  for (auto& e : fs::directory_iterator(d))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

// The real recipe: LLaMA's tokenizer (the first 32,000 pieces of Chinese-LLaMA-2's) + chinese_sp.model.
// Chinese-LLaMA's merge gave 49,953 pieces (ymcui/Chinese-LLaMA-Alpaca, resize_token_embeddings(49953)).
TEST(SpMerge, ChineseLlamaRecipeGives49953) {
  YAK_SKIP_UNLESS_SHARED("tokenizers/chinese-llama-2/tokenizer.model");
  YAK_SKIP_UNLESS_SHARED("tokenizers/chinese-sp/chinese_sp.model");
  YAK_SKIP_UNLESS_SHARED("sft/alpaca_zh_demo.json");
  using yak::tok::testing::shared;
  std::string cl2 = read_text_file(shared("tokenizers/chinese-llama-2/tokenizer.model"));
  std::string llama = truncate_pieces(cl2, 32000, "chinese-llama-2");
  std::string zh = read_text_file(shared("tokenizers/chinese-sp/chinese_sp.model"));
  MergeStats st;
  std::string merged = merge_sentencepiece_models(llama, zh, "llama", "chinese_sp", &st);
  EXPECT_EQ(st.total(), 49953);
  EXPECT_EQ(st.added, 17953);

  sentencepiece::SentencePieceProcessor sp_cl2, sp_merged;
  ASSERT_TRUE(sp_cl2.LoadFromSerializedProto(cl2).ok());
  ASSERT_TRUE(sp_merged.LoadFromSerializedProto(merged).ok());
  ASSERT_EQ(sp_merged.GetPieceSize(), 49953);
  for (int i = 0; i < 32000; ++i) ASSERT_EQ(sp_merged.IdToPiece(i), sp_cl2.IdToPiece(i)) << i;

  // Through the folder path and yak's loader, with Chinese-LLaMA-2's tokenizer_config.json.
  fs::path d = temp_dir("chinese_llama");
  auto st2 = merge_tokenizer_files(shared("tokenizers/chinese-llama-2"),
                                   shared("tokenizers/chinese-sp/chinese_sp.model"), d / "merged", 32000);
  EXPECT_EQ(st2.total(), 49953);
  EXPECT_EQ(read_text_file(d / "merged" / "tokenizer.model"), merged);
  auto merged_tok = load_tokenizer(d / "merged");
  ASSERT_EQ(merged_tok->vocab_size(), 49953);
  SentencePieceTokenizer llama_tok(llama, "llama", nullptr, nullptr);
  SentencePieceTokenizer cl2_tok(cl2, "chinese-llama-2", nullptr, nullptr);

  Json zh_demo = read_json_file(shared("sft/alpaca_zh_demo.json"));
  std::string text;
  for (size_t i = 0; i < 200 && i < zh_demo.size(); ++i)
    text += zh_demo[i].value("instruction", "") + "\n" + zh_demo[i].value("output", "") + "\n";
  size_t n_llama = count_tokens(llama_tok, text), n_merged = count_tokens(*merged_tok, text),
         n_cl2 = count_tokens(cl2_tok, text);
  double ratio = double(n_llama) / double(n_merged);
  std::printf(
      "alpaca_zh_demo.json, first 200 samples (%zu bytes): LLaMA 32k %zu tokens, merged 49,953 %zu tokens, "
      "Chinese-LLaMA-2 55,296 %zu tokens; tokens_llama / tokens_merged = %.3f\n",
      text.size(), n_llama, n_merged, n_cl2, ratio);
  RecordProperty("tokens_llama", static_cast<int>(n_llama));
  RecordProperty("tokens_merged", static_cast<int>(n_merged));
  RecordProperty("ratio_llama_over_merged", std::to_string(ratio));
  EXPECT_GT(ratio, 1.5);
  // Round trip: the merged tokenizer loses nothing.
  EXPECT_EQ(merged_tok->decode(merged_tok->encode(text, false), false), text);
}
