// Data layer of `yak train pt` / `yak train sft`: readers, blending, SFT masks in every key and
// template mode, group_texts, packing, the resumable batch iterator, and every bad-input error.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <set>

#include "yak/base/error.h"
#include "yak/train/dataset.h"

namespace yak::train {
namespace {

namespace fs = std::filesystem;

fs::path data(const std::string& name) {
  return fs::path(YAK_GOLDEN_DIR) / "data" / name;
}

const tok::Tokenizer& qwen_tok() {
  static auto t = tok::load_tokenizer(fs::path(YAK_GOLDEN_DIR) / "models" / "qwen2_chat");
  return *t;
}

// Scratch files for generated inputs, in one folder removed at exit.
struct ScratchDir {
  fs::path dir = fs::temp_directory_path() / ("yak_data_test_" + std::to_string(::getpid()));
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

fs::path scratch(const std::string& name, const std::string& content) {
  static ScratchDir d;
  fs::create_directories(d.dir);
  fs::path p = d.dir / name;
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::vector<int32_t> enc(const std::string& s) {
  return qwen_tok().encode(s, false);
}

std::vector<int32_t> cat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Mask built from (length, flag) runs computed independently of the library.
std::vector<uint8_t> runs(std::initializer_list<std::pair<size_t, int>> r) {
  std::vector<uint8_t> m;
  for (auto [n, v] : r) m.insert(m.end(), n, static_cast<uint8_t>(v));
  return m;
}

Record rec(const std::string& json, const std::string& where = "mem.jsonl:1") {
  return {Json::parse(json), where};
}

// ---------------------------------------------------------------------------------------------
// Readers

TEST(TrainDataRead, JsonlRecordsWithLineNumbers) {
  auto r = read_dataset(data("sft_plain.jsonl").string(), {});
  ASSERT_EQ(r.size(), 3u);  // the blank line is not a record
  EXPECT_EQ(r[0].value["input"], "What is a yak?");
  EXPECT_EQ(r[0].where, data("sft_plain.jsonl").string() + ":1");
  EXPECT_EQ(r[2].where, data("sft_plain.jsonl").string() + ":4");
}

TEST(TrainDataRead, JsonArrayWithElementLines) {
  auto r = read_dataset(data("sft_array.json").string(), {});
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[1].value["answer"], "Seven.");
  EXPECT_EQ(r[0].where, data("sft_array.json").string() + ":2");
  EXPECT_EQ(r[1].where, data("sft_array.json").string() + ":3");
  EXPECT_EQ(r[2].where, data("sft_array.json").string() + ":7");
}

TEST(TrainDataRead, TextFileLinesBecomeTextRecords) {
  auto r = read_dataset(data("pretrain.txt").string(), {});
  ASSERT_EQ(r.size(), 4u);  // HF's text loader keeps empty lines as rows
  EXPECT_EQ(r[1].value["text"], "It lives in the Himalayas.");
  EXPECT_EQ(r[2].value["text"], "");
}

TEST(TrainDataRead, FolderSplits) {
  ReadOptions o;
  auto train = read_dataset("json@" + data("split_dir").string(), o);
  ASSERT_EQ(train.size(), 2u);
  EXPECT_EQ(train[0].value["input"], "train one");
  o.split = "test";
  auto test = read_dataset(data("split_dir").string(), o);
  ASSERT_EQ(test.size(), 1u);
  EXPECT_EQ(test[0].value["input"], "test one");
  o.split = "validation";
  EXPECT_NE(error_of([&] { read_dataset(data("split_dir").string(), o); }).find("no files for split 'validation'"),
            std::string::npos);
}

TEST(TrainDataRead, FolderPrefixAndShardNames) {
  auto train = read_dataset("json@" + data("prefix_dir").string(), {});
  ASSERT_EQ(train.size(), 2u);  // sub/train-00001-of-00002.json then train_part1.jsonl; the .csv is ignored
  EXPECT_EQ(train[0].value["input"], "p2");
  EXPECT_EQ(train[1].value["input"], "p1");
  ReadOptions o;
  o.split = "test";
  EXPECT_EQ(read_dataset("json@" + data("prefix_dir").string(), o).size(), 1u);
}

TEST(TrainDataRead, MaxSamples) {
  ReadOptions o;
  o.max_samples = 2;
  auto r = read_dataset(data("sft_plain.jsonl").string(), o);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[1].value["input"], "Say hi.");
  EXPECT_EQ(blend_datasets(data("sft_plain.jsonl").string() + "," + data("sft_array.json").string(), "", o).size(), 2u);
}

TEST(TrainDataRead, BrokenLineNamesFileAndLine) {
  std::string f = data("broken.jsonl").string();
  std::string e = error_of([&] { read_dataset(f, {}); });
  EXPECT_EQ(e.rfind(f + ":3: invalid JSON", 0), 0u) << e;
  ReadOptions o;
  o.skip_bad_lines = true;
  ReadStats st;
  auto r = read_dataset(f, o, &st);
  EXPECT_EQ(r.size(), 3u);
  EXPECT_EQ(st.bad_lines, 2u);  // line 3 (broken) and line 5 (an array, not an object)
  EXPECT_EQ(r[2].where, f + ":4");
}

TEST(TrainDataRead, NonObjectLineIsAnError) {
  auto p = scratch("arr_line.jsonl", "{\"a\": 1}\n[1, 2]\n");
  std::string e = error_of([&] { read_dataset(p.string(), {}); });
  EXPECT_NE(e.find(p.string() + ":2: expected a JSON object, got array"), std::string::npos) << e;
}

TEST(TrainDataRead, BrokenJsonArrayNamesLine) {
  auto p = scratch("broken_array.json", "[\n  {\"a\": 1},\n  {\"a\": }\n]\n");
  std::string e = error_of([&] { read_dataset(p.string(), {}); });
  EXPECT_EQ(e.rfind(p.string() + ":3: invalid JSON", 0), 0u) << e;
}

TEST(TrainDataRead, UnknownTypeAndMissingPaths) {
  std::string e = error_of([&] { read_dataset(data("prefix_dir/notes.csv").string(), {}); });
  EXPECT_NE(e.find("notes.csv: unknown dataset file type '.csv'"), std::string::npos) << e;
  e = error_of([&] { read_dataset(data("nope.jsonl").string(), {}); });
  EXPECT_NE(e.find("nope.jsonl: dataset file not found"), std::string::npos) << e;
  e = error_of([&] { read_dataset("Open-Orca/OpenOrca", {}); });
  EXPECT_NE(e.find("Open-Orca/OpenOrca: dataset not found"), std::string::npos) << e;
  e = error_of([&] { read_dataset("json@" + data("nodir").string(), {}); });
  EXPECT_NE(e.find("dataset folder not found"), std::string::npos) << e;
}

// ---------------------------------------------------------------------------------------------
// Blending

TEST(TrainDataBlend, ProportionsOverManyDraws) {
  std::vector<size_t> lengths = {100000, 100000};
  std::vector<double> p = {0.7, 0.3};
  auto idx = interleave_indices(lengths, p, 42, StoppingStrategy::FirstExhausted);
  // first_exhausted stops right after the 0.7 source's last record: ~100000/0.7 draws.
  size_t first = std::count_if(idx.begin(), idx.end(), [](size_t i) { return i < 100000; });
  EXPECT_EQ(first, 100000u);
  double frac = static_cast<double>(first) / idx.size();
  EXPECT_NEAR(frac, 0.7, 0.005);
  EXPECT_LT(idx.back(), 100000u);  // the draw that exhausted source 0 is the last one
  EXPECT_EQ(idx.back(), 99999u);
  // Sequential within each source.
  size_t next0 = 0, next1 = 100000;
  for (size_t i : idx) {
    if (i < 100000)
      EXPECT_EQ(i, next0++);
    else
      EXPECT_EQ(i, next1++);
  }
}

TEST(TrainDataBlend, AllExhaustedOversamplesAndCoversEverything) {
  std::vector<size_t> lengths = {50, 2000};
  std::vector<double> p = {0.5, 0.5};
  auto idx = interleave_indices(lengths, p, 7, StoppingStrategy::AllExhausted);
  std::vector<size_t> count(2050, 0);
  for (size_t i : idx) ++count[i];
  for (size_t i = 0; i < 2050; ++i) EXPECT_GE(count[i], 1u) << i;
  // The small source wraps around (~40 times); the run ends on the big source's last record.
  EXPECT_EQ(idx.back(), 2049u);
  size_t small = std::count_if(idx.begin(), idx.end(), [](size_t i) { return i < 50; });
  EXPECT_NEAR(static_cast<double>(small) / idx.size(), 0.5, 0.03);
}

TEST(TrainDataBlend, DeterministicPerSeed) {
  std::vector<size_t> lengths = {30, 30, 30};
  std::vector<double> p = {0.2, 0.3, 0.5};
  auto a = interleave_indices(lengths, p, 1, StoppingStrategy::AllExhausted);
  auto b = interleave_indices(lengths, p, 1, StoppingStrategy::AllExhausted);
  auto c = interleave_indices(lengths, p, 2, StoppingStrategy::AllExhausted);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(TrainDataBlend, FilesWithProbabilities) {
  std::string a, b;
  for (int i = 0; i < 700; ++i) a += "{\"input\": \"a" + std::to_string(i) + "\", \"output\": \"x\"}\n";
  for (int i = 0; i < 300; ++i) b += "{\"input\": \"b" + std::to_string(i) + "\", \"output\": \"y\"}\n";
  auto pa = scratch("blend_a.jsonl", a), pb = scratch("blend_b.jsonl", b);
  ReadOptions o;
  o.stopping = StoppingStrategy::FirstExhausted;
  ReadStats st;
  auto r = blend_datasets(pa.string() + ", " + pb.string(), "0.7,0.3", o, &st);
  ASSERT_EQ(st.records, (std::vector<size_t>{700, 300}));
  ASSERT_EQ(st.blended_counts.size(), 2u);
  EXPECT_EQ(st.blended_counts[0] + st.blended_counts[1], r.size());
  EXPECT_TRUE(st.blended_counts[0] == 700 || st.blended_counts[1] == 300);
  EXPECT_NEAR(static_cast<double>(st.blended_counts[0]) / r.size(), 0.7, 0.05);
  // Records keep their origin for error messages.
  EXPECT_NE(r[0].where.find("blend_"), std::string::npos);
  // No probabilities: concatenation.
  auto c = blend_datasets(pa.string() + "," + pb.string(), "", {});
  ASSERT_EQ(c.size(), 1000u);
  EXPECT_EQ(c[700].value["input"], "b0");
}

TEST(TrainDataBlend, BadProbabilities) {
  auto f = data("sft_plain.jsonl").string();
  EXPECT_NE(error_of([&] { blend_datasets(f + "," + f, "0.7", {}); }).find("1 probabilities for 2 datasets"),
            std::string::npos);
  EXPECT_NE(error_of([&] { blend_datasets(f + "," + f, "0.7,0.7", {}); }).find("sum to"), std::string::npos);
  EXPECT_NE(error_of([&] { blend_datasets(f + "," + f, "1,0", {}); }).find("> 0"), std::string::npos);
  EXPECT_NE(error_of([&] { blend_datasets(f + "," + f, "0.5,abc", {}); }).find("'abc' is not a number"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// SFT samples

TEST(TrainDataSft, PlainInputOutputWithTemplate) {
  SftOptions o;
  o.input_template = "User: {}\nAssistant: ";
  auto r = read_dataset(data("sft_plain.jsonl").string(), {});
  std::string why;
  auto s = make_sft_sample(r[0], qwen_tok(), nullptr, o, &why);
  ASSERT_TRUE(s) << why;
  auto p = enc("User: What is a yak?\nAssistant: ");
  auto a = enc("A long-haired bovine of the Himalayas.");
  int32_t eos = *qwen_tok().eos_id();
  EXPECT_EQ(s->ids, cat({p, a, {eos}}));
  EXPECT_EQ(s->loss_mask, runs({{p.size(), 0}, {a.size() + 1, 1}}));
  EXPECT_EQ(s->where, r[0].where);
  // Trailing newlines of the response are stripped before EOS (OpenRLHF's rstrip("\n")).
  auto s3 = make_sft_sample(r[2], qwen_tok(), nullptr, o, &why);
  ASSERT_TRUE(s3);
  EXPECT_EQ(s3->ids, cat({enc("User: Count to three.\nAssistant: "), enc("one, two, three"), {eos}}));
}

TEST(TrainDataSft, PromptAndResponseAreTokenizedApart) {
  // "Assistant: " + "Hello": tokenizing the joined text lets Qwen2's BPE merge across the boundary
  // (the space joins "Hello"), which puts OpenRLHF's count-based boundary one token off. The
  // sample keeps the prompt's own tokens, as generation will see them.
  fs::path dir = fs::path(YAK_SHARED_DATA) / "tokenizers" / "qwen2";
  if (!fs::exists(dir / "vocab.json") && !fs::exists(dir / "tokenizer.json"))
    GTEST_SKIP() << "needs the shared Qwen2 tokenizer at " << dir;
  auto tk = tok::load_tokenizer(dir);
  SftOptions o;
  o.input_template = "User: {}\nAssistant: ";
  std::string why;
  auto s = make_sft_sample(rec(R"({"input": "x", "output": "Hello there"})"), *tk, nullptr, o, &why);
  ASSERT_TRUE(s);
  auto p = tk->encode("User: x\nAssistant: ", false), a = tk->encode("Hello there", false);
  EXPECT_EQ(s->ids, cat({p, a, {*tk->eos_id()}}));
  EXPECT_EQ(s->loss_mask, runs({{p.size(), 0}, {a.size() + 1, 1}}));
  auto joined = tk->encode("User: x\nAssistant: Hello there", false);
  EXPECT_EQ(joined.size() + 1, s->ids.size() - 1);  // one token fewer: " Hello" merged
  EXPECT_NE(std::vector<int32_t>(joined.begin(), joined.begin() + p.size()), p);
}

TEST(TrainDataSft, CustomKeysNoTemplate) {
  SftOptions o;
  o.input_key = "question";
  o.output_key = "answer";
  auto r = read_dataset(data("sft_array.json").string(), {});
  auto d = build_sft_dataset(r, qwen_tok(), nullptr, o);
  ASSERT_EQ(d.samples.size(), 3u);
  auto p = enc("Name a number."), a = enc("Seven.");
  EXPECT_EQ(d.samples[1].ids, cat({p, a, {*qwen_tok().eos_id()}}));
  EXPECT_EQ(d.samples[1].loss_mask, runs({{p.size(), 0}, {a.size() + 1, 1}}));
}

TEST(TrainDataSft, TemplateBraces) {
  SftOptions o;
  o.input_template = "{{sys}} Q: {} A:";
  std::string why;
  auto s = make_sft_sample(rec(R"({"input": "x", "output": "y"})"), qwen_tok(), nullptr, o, &why);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ids, cat({enc("{sys} Q: x A:"), enc("y"), {*qwen_tok().eos_id()}}));
  o.input_template = "no placeholder";
  EXPECT_NE(error_of([&] {
              make_sft_sample(rec(R"({"input": "x", "output": "y"})"), qwen_tok(), nullptr, o, &why);
            }).find("no '{}' placeholder"),
            std::string::npos);
}

const std::string kSys = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";

TEST(TrainDataSft, ChatTemplateStringPair) {
  auto chat = tok::ChatTemplate::by_name("chatml");
  SftOptions o;
  o.apply_chat_template = true;
  o.input_template = "ignored {}";  // OpenRLHF ignores input_template with a chat template
  std::string why;
  auto s = make_sft_sample(rec(R"({"input": "Hi", "output": "Hello!"})"), qwen_tok(), &chat, o, &why);
  ASSERT_TRUE(s) << why;
  auto p = enc(kSys + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  auto a = enc("Hello!<|im_end|>");  // "\n" stripped; text ends with EOS (<|im_end|>): none appended
  EXPECT_EQ(s->ids, cat({p, a}));
  EXPECT_EQ(s->loss_mask, runs({{p.size(), 0}, {a.size(), 1}}));
  EXPECT_EQ(s->ids.back(), *qwen_tok().eos_id());
}

TEST(TrainDataSft, AlpacaRecordsAsChineseLlamaAlpaca2BuildsThem) {
  // Chinese-LLaMA-Alpaca-2's build_dataset.py: instruction + "\n" + input (when non-empty) into
  // "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{instruction} [/INST]" after BOS.
  SftOptions o;
  o.apply_chat_template = true;
  o.input_key = "instruction";
  o.output_key = "output";
  o.input_suffix_key = "input";
  std::string why;
  for (const char* name : {"alpaca2", "alpaca2-long"}) {
    auto chat = tok::ChatTemplate::by_name(name);
    const std::string sys = std::string(name) == "alpaca2"
                                ? "You are a helpful assistant. 你是一个乐于助人的助手。"
                                : "You are a helpful assistant. 你是一个乐于助人的助手。请你提供专业、有逻辑、内容真实、有价值的详细回复。";
    auto s = make_sft_sample(rec(R"({"instruction": "Translate", "input": "hello", "output": "你好"})"), qwen_tok(), &chat,
                             o, &why);
    ASSERT_TRUE(s) << why;
    const auto p = enc("<s>[INST] <<SYS>>\n" + sys + "\n<</SYS>>\n\nTranslate\nhello [/INST]");
    ASSERT_GE(s->ids.size(), p.size());
    EXPECT_EQ(std::vector<int32_t>(s->ids.begin(), s->ids.begin() + static_cast<long>(p.size())), p) << name;
    // Without an input the instruction stands alone.
    auto s2 = make_sft_sample(rec(R"({"instruction": "Translate", "input": "", "output": "x"})"), qwen_tok(), &chat, o, &why);
    ASSERT_TRUE(s2) << why;
    const auto p2 = enc("<s>[INST] <<SYS>>\n" + sys + "\n<</SYS>>\n\nTranslate [/INST]");
    EXPECT_EQ(std::vector<int32_t>(s2->ids.begin(), s2->ids.begin() + static_cast<long>(p2.size())), p2) << name;
  }
  // --system-prompt-file's text becomes the system turn.
  o.system_prompt = "Be brief.";
  auto chat = tok::ChatTemplate::by_name("alpaca2");
  auto s = make_sft_sample(rec(R"({"instruction": "Hi", "output": "Hello"})"), qwen_tok(), &chat, o, &why);
  ASSERT_TRUE(s) << why;
  const auto p = enc("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]");
  EXPECT_EQ(std::vector<int32_t>(s->ids.begin(), s->ids.begin() + static_cast<long>(p.size())), p);
}

TEST(TrainDataSft, ChatTemplateMessagesSingleTurnTrainsLastReplyOnly) {
  auto chat = tok::ChatTemplate::by_name("chatml");
  SftOptions o;
  o.apply_chat_template = true;
  o.input_key = "messages";
  auto r = read_dataset(data("chat.jsonl").string(), {});
  std::string why;
  auto s = make_sft_sample(r[0], qwen_tok(), &chat, o, &why);  // output key "output" absent: conversation mode
  ASSERT_TRUE(s) << why;
  std::string prompt = kSys +
                       "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
                       "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n";
  auto p = enc(prompt), a = enc("Fine, thanks.<|im_end|>");
  EXPECT_EQ(s->ids, cat({p, a}));
  EXPECT_EQ(s->loss_mask, runs({{p.size(), 0}, {a.size(), 1}}));
}

TEST(TrainDataSft, ChatTemplateMultiTurnMasksEveryAssistantTurn) {
  auto chat = tok::ChatTemplate::by_name("chatml");
  SftOptions o;
  o.apply_chat_template = true;
  o.multiturn = true;
  o.input_key = "messages";
  auto r = read_dataset(data("chat.jsonl").string(), {});
  std::string why;
  auto s = make_sft_sample(r[0], qwen_tok(), &chat, o, &why);
  ASSERT_TRUE(s) << why;
  // Pieces of the rendered conversation, written out by hand.
  auto u1 = enc(kSys + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  auto a1 = enc("Hello!<|im_end|>\n");  // a middle turn's target includes the "\n" after <|im_end|>
  auto u2 = enc("<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n");
  auto a2 = enc("Fine, thanks.<|im_end|>");
  EXPECT_EQ(s->ids, cat({u1, a1, u2, a2}));
  EXPECT_EQ(s->loss_mask, runs({{u1.size(), 0}, {a1.size(), 1}, {u2.size(), 0}, {a2.size(), 1}}));
  // Token ranges by position: the first reply starts right after the first generation prompt.
  EXPECT_EQ(s->loss_mask[u1.size() - 1], 0);
  EXPECT_EQ(s->loss_mask[u1.size()], 1);
  EXPECT_EQ(qwen_tok().decode(std::span(s->ids).subspan(u1.size(), a1.size()), false), "Hello!<|im_end|>\n");
  // ChatML boundaries sit on special tokens: tokenizing the whole text at once (OpenRLHF's way)
  // gives the same ids.
  std::string full = kSys +
                     "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
                     "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\nFine, thanks.<|im_end|>";
  EXPECT_EQ(s->ids, enc(full));

  // A system message replaces the default one.
  auto s2 = make_sft_sample(r[1], qwen_tok(), &chat, o, &why);
  ASSERT_TRUE(s2);
  auto p = enc("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n");
  auto a = enc("4<|im_end|>");
  EXPECT_EQ(s2->ids, cat({p, a}));
  EXPECT_EQ(s2->loss_mask, runs({{p.size(), 0}, {a.size(), 1}}));

  // No assistant message: a counted skip.
  EXPECT_FALSE(make_sft_sample(r[2], qwen_tok(), &chat, o, &why));
  EXPECT_EQ(why, "no assistant turn");
}

TEST(TrainDataSft, MultiTurnWithOutputKeyAppendsReply) {
  auto chat = tok::ChatTemplate::by_name("chatml");
  SftOptions o;
  o.apply_chat_template = true;
  o.multiturn = true;
  o.input_key = "messages";
  o.output_key = "reply";
  std::string why;
  auto s = make_sft_sample(
      rec(R"({"messages": [{"role": "user", "content": "Hi"}], "reply": {"role": "assistant", "content": "Yo"}})"),
      qwen_tok(), &chat, o, &why);
  ASSERT_TRUE(s) << why;
  auto p = enc(kSys + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), a = enc("Yo<|im_end|>");
  EXPECT_EQ(s->ids, cat({p, a}));
  EXPECT_EQ(s->loss_mask, runs({{p.size(), 0}, {a.size(), 1}}));
}

TEST(TrainDataSft, MaxLenFiltersLongPromptsAndTruncatesLongAnswers) {
  SftOptions o;
  auto r = rec(R"({"input": "one two three four five six", "output": "seven eight nine ten eleven twelve"})");
  auto p = enc("one two three four five six"), a = enc("seven eight nine ten eleven twelve");
  int32_t eos = *qwen_tok().eos_id();
  std::string why;
  // prompt_tokens >= max_len - 2 → skipped (OpenRLHF's filter).
  o.max_len = static_cast<int>(p.size()) + 2;
  EXPECT_FALSE(make_sft_sample(r, qwen_tok(), nullptr, o, &why));
  EXPECT_EQ(why, "prompt too long (>= max_len - 2 tokens)");
  // One more token of room: kept, truncated to max_len, last token forced to EOS and trained.
  o.max_len = static_cast<int>(p.size()) + 3;
  auto s = make_sft_sample(r, qwen_tok(), nullptr, o, &why);
  ASSERT_TRUE(s);
  ASSERT_EQ(s->ids.size(), static_cast<size_t>(o.max_len));
  EXPECT_EQ(s->ids, cat({p, {a[0], a[1], eos}}));
  EXPECT_EQ(s->loss_mask, runs({{p.size(), 0}, {3, 1}}));
  // Exactly fitting: untouched.
  o.max_len = static_cast<int>(p.size() + a.size() + 1);
  s = make_sft_sample(r, qwen_tok(), nullptr, o, &why);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ids, cat({p, a, {eos}}));
}

TEST(TrainDataSft, EmptySamplesAreCountedSkips) {
  SftOptions o;
  std::vector<Record> rs = {rec(R"({"input": "", "output": "y"})", "f.jsonl:1"),
                            rec(R"({"input": "x", "output": ""})", "f.jsonl:2"),
                            rec(R"({"input": "x", "output": "y"})", "f.jsonl:3")};
  auto d = build_sft_dataset(rs, qwen_tok(), nullptr, o);
  EXPECT_EQ(d.samples.size(), 1u);
  EXPECT_EQ(d.samples[0].where, "f.jsonl:3");
  EXPECT_EQ(d.skipped.reasons.at("empty prompt"), 1u);
  EXPECT_EQ(d.skipped.reasons.at("empty response"), 1u);
  EXPECT_EQ(d.skipped.summary(), "2 skipped: 1 empty prompt, 1 empty response");
}

TEST(TrainDataSft, MissingKeysAndWrongTypesNameFileLineAndKey) {
  auto r = read_dataset(data("sft_array.json").string(), {});
  SftOptions o;  // keys input/output, which sft_array.json does not have
  std::string e = error_of([&] { build_sft_dataset(r, qwen_tok(), nullptr, o); });
  EXPECT_EQ(e, data("sft_array.json").string() + ":2: missing key 'input'");
  o.input_key = "question";
  e = error_of([&] { build_sft_dataset(r, qwen_tok(), nullptr, o); });
  EXPECT_EQ(e, data("sft_array.json").string() + ":2: missing key 'output'");
  o.output_key = "answer";
  std::string why;
  e = error_of(
      [&] { make_sft_sample(rec(R"({"question": 3, "answer": "a"})", "g.jsonl:9"), qwen_tok(), nullptr, o, &why); });
  EXPECT_EQ(e, "g.jsonl:9: key 'question' must be a string (got number)");

  auto chat = tok::ChatTemplate::by_name("chatml");
  o = {};
  o.apply_chat_template = true;
  o.input_key = "messages";
  e = error_of([&] {
    make_sft_sample(rec(R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant"}]})", "c.jsonl:4"),
                    qwen_tok(), &chat, o, &why);
  });
  EXPECT_EQ(e, "c.jsonl:4: messages[1]: missing key 'content'");
  e = error_of(
      [&] { make_sft_sample(rec(R"({"messages": {"role": "user"}})", "c.jsonl:5"), qwen_tok(), &chat, o, &why); });
  EXPECT_NE(e.find("c.jsonl:5: key 'messages' must be a list of messages"), std::string::npos) << e;
}

// ---------------------------------------------------------------------------------------------
// Pretraining

TEST(TrainDataPretrain, GroupTextsConcatenatesWithEosAndDropsRemainder) {
  auto r = read_dataset(data("pretrain.jsonl").string(), {});
  const auto& tk = qwen_tok();
  int32_t eos = *tk.eos_id();
  std::vector<int32_t> stream;
  for (const char* t : {"The yak is a long-haired domesticated cattle.", "It lives in the Himalayas.",
                        "Yaks give milk, fibre and meat."}) {
    auto ids = tk.encode(t, true);
    stream.insert(stream.end(), ids.begin(), ids.end());
    stream.push_back(eos);
  }
  PretrainOptions o;
  o.max_len = 7;
  auto d = build_pretrain_dataset(r, tk, o);
  ASSERT_EQ(d.samples.size(), stream.size() / 7);
  ASSERT_GT(stream.size() % 7, 0u) << "pick a block size that leaves a remainder";
  for (size_t b = 0; b < d.samples.size(); ++b) {
    EXPECT_EQ(d.samples[b].ids, std::vector<int32_t>(stream.begin() + b * 7, stream.begin() + (b + 1) * 7));
    EXPECT_EQ(d.samples[b].loss_mask, std::vector<uint8_t>(7, 1));
  }
  EXPECT_EQ(d.samples[0].where, data("pretrain.jsonl").string() + ":1");
  EXPECT_EQ(d.skipped.reasons.at("empty text"), 1u);
  // The .txt reader gives the same documents.
  auto t = build_pretrain_dataset(read_dataset(data("pretrain.txt").string(), {}), tk, o);
  ASSERT_EQ(t.samples.size(), d.samples.size());
  for (size_t b = 0; b < t.samples.size(); ++b) EXPECT_EQ(t.samples[b].ids, d.samples[b].ids);
}

TEST(TrainDataPretrain, MissingTextKey) {
  PretrainOptions o;
  o.input_key = "content";
  std::string e =
      error_of([&] { build_pretrain_dataset(read_dataset(data("pretrain.jsonl").string(), {}), qwen_tok(), o); });
  EXPECT_EQ(e, data("pretrain.jsonl").string() + ":1: missing key 'content'");
}

// ---------------------------------------------------------------------------------------------
// Packing and batches

std::vector<Sample> synthetic(size_t n, int max_len, uint64_t seed) {
  DataRng rng(seed);
  std::vector<Sample> s(n);
  for (size_t i = 0; i < n; ++i) {
    size_t len = 1 + rng.below(max_len);
    for (size_t t = 0; t < len; ++t) {
      s[i].ids.push_back(static_cast<int32_t>(i * 1000 + t));
      s[i].loss_mask.push_back(t >= len / 2 ? 1 : 0);
    }
    s[i].where = "syn:" + std::to_string(i);
  }
  return s;
}

TEST(TrainDataPack, NeverSplitsAndRespectsMaxLen) {
  const int max_len = 64;
  auto s = synthetic(500, max_len, 3);
  std::vector<size_t> order(s.size());
  std::iota(order.begin(), order.end(), 0);
  auto rows = pack_rows(s, order, max_len);
  std::vector<size_t> seen;
  size_t total = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    size_t used = 0;
    for (size_t i : rows[r]) used += s[i].ids.size();
    EXPECT_LE(used, static_cast<size_t>(max_len));
    // Greedy: the next row's first sample would not have fit in this one.
    if (r + 1 < rows.size()) EXPECT_GT(used + s[rows[r + 1][0]].ids.size(), static_cast<size_t>(max_len));
    seen.insert(seen.end(), rows[r].begin(), rows[r].end());
    total += used;
  }
  EXPECT_EQ(seen, order);  // every sample exactly once, in order
  EXPECT_LT(rows.size(), s.size());
  EXPECT_GT(static_cast<double>(total) / (rows.size() * max_len), 0.6);  // it actually packs
  // A sample longer than a row is an error naming it.
  std::vector<Sample> big = {s[0]};
  big[0].ids.resize(max_len + 1);
  big[0].loss_mask.resize(max_len + 1);
  std::vector<size_t> one = {0};
  EXPECT_NE(error_of([&] { pack_rows(big, one, max_len); }).find("syn:0: sample of 65 tokens"), std::string::npos);
}

TEST(TrainDataPack, FlattenRestartsPositionsPerSegment) {
  auto s = synthetic(40, 16, 5);
  LoaderOptions o;
  o.packing = true;
  o.max_len = 32;
  o.micro_batch_size = 2;
  BatchIterator it(s, o);
  auto mb = it.next();
  ASSERT_TRUE(mb);
  auto f = flatten(*mb);
  size_t k = 0;
  int32_t slot = 0;
  for (const auto& row : mb->rows) {
    EXPECT_LE(row.tokens(), 32u);
    for (const auto& seg : row.segments) {
      const Sample& src = s[seg.sample];
      for (size_t t = 0; t < src.ids.size(); ++t, ++k) {
        EXPECT_EQ(f.tokens[k], src.ids[t]);
        EXPECT_EQ(f.positions[k], static_cast<int32_t>(t));
        EXPECT_EQ(f.slots[k], slot);
        int32_t want = t + 1 < src.ids.size() && src.loss_mask[t + 1] ? src.ids[t + 1] : -100;
        EXPECT_EQ(f.targets[k], want);
      }
      ++slot;
    }
  }
  EXPECT_EQ(k, f.tokens.size());
  EXPECT_EQ(f.num_slots, slot);
}

std::vector<std::vector<size_t>> collect(BatchIterator& it, size_t epochs) {
  std::vector<std::vector<size_t>> out;
  for (size_t e = 0; e < epochs; ++e)
    while (auto mb = it.next()) {
      std::vector<size_t> ids;
      for (const auto& r : mb->rows)
        for (const auto& sg : r.segments) ids.push_back(sg.sample);
      out.push_back(ids);
    }
  return out;
}

TEST(TrainDataBatches, ShuffleIsSeededPerEpochAndDropsLast) {
  auto s = synthetic(10, 8, 1);
  LoaderOptions o;
  o.micro_batch_size = 3;
  BatchIterator it(s, o);
  EXPECT_EQ(it.batches_per_epoch(), 3u);  // 10 rows, drop_last
  auto e0 = it.epoch_order(0), e1 = it.epoch_order(1);
  EXPECT_NE(e0, e1);
  auto sorted = e0;
  std::sort(sorted.begin(), sorted.end());
  std::vector<size_t> all(10);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(sorted, all);
  auto batches = collect(it, 2);
  ASSERT_EQ(batches.size(), 6u);
  EXPECT_EQ(batches[0], (std::vector<size_t>{e0[0], e0[1], e0[2]}));
  EXPECT_EQ(batches[3], (std::vector<size_t>{e1[0], e1[1], e1[2]}));
  EXPECT_EQ(it.position(), (LoaderPosition{2, 0}));
  BatchIterator again(s, o);
  EXPECT_EQ(collect(again, 2), batches);
  o.drop_last = false;
  BatchIterator keep(s, o);
  EXPECT_EQ(keep.batches_per_epoch(), 4u);
  o.shuffle = false;
  BatchIterator plain(s, o);
  EXPECT_EQ(plain.epoch_order(3), all);
}

TEST(TrainDataBatches, ResumesExactlyWhereItStopped) {
  auto s = synthetic(100, 24, 9);
  for (bool packing : {false, true}) {
    SCOPED_TRACE(packing ? "packed" : "unpacked");
    LoaderOptions o;
    o.packing = packing;
    o.max_len = 48;
    o.micro_batch_size = 4;
    o.seed = 1234;
    BatchIterator full(s, o);
    auto want = collect(full, 3);
    // Stop in the middle of epoch 1, remember the position, start a fresh iterator there.
    BatchIterator first(s, o);
    collect(first, 1);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(first.next());
    LoaderPosition saved = first.position();
    EXPECT_EQ(saved, (LoaderPosition{1, 5}));
    BatchIterator resumed(s, o, saved);
    auto rest = collect(resumed, 2);  // the rest of epoch 1, then epoch 2
    size_t done = BatchIterator(s, o).batches_per_epoch() + 5;
    ASSERT_EQ(rest.size(), want.size() - done);
    for (size_t i = 0; i < rest.size(); ++i) EXPECT_EQ(rest[i], want[done + i]) << i;
  }
}

}  // namespace
}  // namespace yak::train
