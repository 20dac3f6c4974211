#include "yak/train/quickstart.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>

#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/infer/chat.h"
#include "yak/infer/engine.h"
#include "yak/io/safetensors.h"
#include "yak/model/init.h"
#include "yak/tokenizer/sp_train.h"
#include "yak/train/dataset.h"
#include "yak/train/lm_trainer.h"
#include "yak/train/ppo_trainer.h"
#include "yak/train/reward.h"

namespace yak::train {
namespace fs = std::filesystem;

namespace {

struct Fact {
  int a, b;
  std::string question() const { return "What is " + std::to_string(a) + " plus " + std::to_string(b) + "?"; }
  std::string answer() const { return std::to_string(a + b); }
};

// A Llama-2 style chat template (the family yak renders as "llama2").
const char* kChatTemplate =
    "{% for m in messages %}{% if m['role'] == 'user' %}{{ bos_token + '[INST] ' + m['content'] + ' [/INST]' }}"
    "{% elif m['role'] == 'assistant' %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}{% endfor %}";

void say(bool quiet, const std::string& s) {
  if (!quiet) std::fprintf(stderr, "\n== %s\n", s.c_str());
}

// Share of facts whose greedy answer (up to the first space or EOS) is exactly a + b.
double accuracy(model::DecoderModel& model, const tok::Tokenizer& tok, const std::vector<Fact>& facts) {
  infer::Engine engine(model, &tok);
  auto tmpl = tok::ChatTemplate::by_name("llama2");
  std::vector<infer::GenerateRequest> reqs;
  for (auto& f : facts) {
    infer::GenerateRequest r;
    std::vector<tok::ChatMessage> msgs = {{"user", f.question()}};
    r.prompt = tok.encode(tmpl.render(msgs), tmpl.add_special_tokens());
    r.max_new_tokens = 4;
    reqs.push_back(std::move(r));
  }
  auto out = engine.generate(reqs);
  int right = 0;
  for (size_t i = 0; i < facts.size(); ++i) {
    std::string t = out[i].text;
    t.erase(0, t.find_first_not_of(' '));
    t = t.substr(0, t.find_first_of(" \n"));
    right += t == facts[i].answer();
  }
  return facts.empty() ? 0 : static_cast<double>(right) / static_cast<double>(facts.size());
}

std::vector<Sample> model_samples(const std::vector<Record>& recs, const tok::Tokenizer& tok,
                                  const tok::ChatTemplate* tmpl, const SftOptions& o) {
  return build_sft_dataset(recs, tok, tmpl, o).samples;
}

}  // namespace

QuickstartReport run_quickstart(const QuickstartOptions& o) {
  QuickstartReport rep;
  fs::create_directories(o.dir);
  std::mt19937_64 rng(o.seed);

  // 1. Data: every fact in three phrasings for pretraining; questions for SFT on most pairs.
  std::vector<Fact> facts;
  for (int a = 0; a <= o.max_operand; ++a)
    for (int b = 0; b <= o.max_operand; ++b) facts.push_back({a, b});
  std::shuffle(facts.begin(), facts.end(), rng);
  const size_t n_held = static_cast<size_t>(o.heldout_share * static_cast<double>(facts.size()));
  std::vector<Fact> heldout(facts.begin(), facts.begin() + static_cast<long>(n_held));
  std::vector<Fact> sft_facts(facts.begin() + static_cast<long>(n_held), facts.end());
  {
    std::ofstream corpus(o.dir / "corpus.txt");
    for (int rep_i = 0; rep_i < 4; ++rep_i) {
      std::shuffle(facts.begin(), facts.end(), rng);
      for (auto& f : facts) {
        const std::string a = std::to_string(f.a), b = std::to_string(f.b), c = f.answer();
        corpus << a << " plus " << b << " is " << c << ".\n";
        corpus << "the sum of " << a << " and " << b << " is " << c << ".\n";
        corpus << a << " and " << b << " make " << c << ".\n";
      }
    }
    std::ofstream sft(o.dir / "sft.jsonl");
    for (auto& f : sft_facts) sft << Json{{"input", f.question()}, {"output", f.answer()}}.dump() << "\n";
    std::ofstream held(o.dir / "heldout.jsonl");
    for (auto& f : heldout) held << Json{{"input", f.question()}, {"output", f.answer()}}.dump() << "\n";
  }
  say(o.quiet, "1/6 data: " + std::to_string(facts.size()) + " facts, " + std::to_string(sft_facts.size()) +
                   " SFT questions, " + std::to_string(heldout.size()) + " held-out questions (" +
                   (o.dir / "corpus.txt").string() + ")");

  // 2. Tokenizer from scratch (SentencePiece BPE), with the chat markers as whole pieces.
  const fs::path base = o.dir / "base";
  fs::create_directories(base);
  {
    tok::SpTrainOptions so;
    so.inputs = {o.dir / "corpus.txt"};
    so.vocab_size = 96;
    so.model_type = "bpe";
    so.character_coverage = 1.0;
    so.user_defined_symbols = {"[INST]", "[/INST]", "?", "What"};
    so.quiet = true;
    auto r = tok::train_sentencepiece_files(so, o.dir / "tokenizer");
    fs::copy_file(r.model_path, base / "tokenizer.model", fs::copy_options::overwrite_existing);
    say(o.quiet, "2/6 tokenizer: SentencePiece BPE, " + std::to_string(r.pieces) + " pieces");
  }
  Json tc = {{"bos_token", "<s>"},    {"eos_token", "</s>"},    {"unk_token", "<unk>"},
             {"add_bos_token", true}, {"add_eos_token", false}, {"chat_template", kChatTemplate}};
  io::write_file_atomic(base / "tokenizer_config.json", tc.dump(2));
  auto tokenizer = tok::load_tokenizer(base);

  // 3. A tiny LLaMA-style model with random weights, then pretraining on the corpus.
  Json cfg = {{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"vocab_size", tokenizer->vocab_size()},
              {"hidden_size", 128},
              {"intermediate_size", 352},
              {"num_hidden_layers", 4},
              {"num_attention_heads", 4},
              {"num_key_value_heads", 2},
              {"max_position_embeddings", 256},
              {"rms_norm_eps", 1e-5},
              {"rope_theta", 10000.0},
              {"tie_word_embeddings", true},
              {"bos_token_id", 1},
              {"eos_token_id", 2},
              {"initializer_range", 0.02},
              {"hidden_act", "silu"}};
  model::init_random_checkpoint(cfg, base, o.seed);
  io::write_file_atomic(base / "generation_config.json", Json{{"bos_token_id", 1}, {"eos_token_id", 2}}.dump(2));
  auto model = model::DecoderModel::load(base);
  say(o.quiet, "3/6 pretraining a " + std::to_string(model->parameter_count()) + "-parameter LLaMA-style model");
  ReadOptions ro;
  auto corpus = read_dataset((o.dir / "corpus.txt").string(), ro);
  auto pt_data = build_pretrain_dataset(corpus, *tokenizer, {"text", 64});
  LmTrainOptions pt;
  pt.pretrain = base;
  pt.save_path = o.dir / "pt";
  pt.train_batch_size = 16;
  pt.micro_train_batch_size = 16;
  pt.max_epochs = o.pt_epochs;
  pt.learning_rate = 3e-3;
  pt.lr_warmup_ratio = 0.05;
  pt.max_len = 64;
  pt.seed = o.seed;
  pt.metrics_path = o.dir / "pt-metrics.jsonl";
  pt.label = "train pt";
  pt.quiet = o.quiet;
  auto ptr = train_lm(*model, pt_data.samples, {}, pt);
  rep.pt_loss_first = ptr.step_losses.front();
  rep.pt_loss_last = ptr.step_losses.back();

  // 4. SFT on the chat template: questions about most facts.
  auto pt_model = model::DecoderModel::load(o.dir / "pt");
  rep.heldout_questions = static_cast<int>(heldout.size());
  rep.heldout_before = accuracy(*pt_model, *tokenizer, heldout);
  say(o.quiet, "4/6 SFT with the chat template (held-out accuracy before: " +
                   std::to_string(static_cast<int>(rep.heldout_before * 100 + 0.5)) + "%)");
  auto tmpl = tok::ChatTemplate::by_name("llama2");
  SftOptions so;
  so.apply_chat_template = true;
  so.max_len = 64;
  auto sft_recs = read_dataset((o.dir / "sft.jsonl").string(), ro);
  auto sft_data = model_samples(sft_recs, *tokenizer, &tmpl, so);
  auto held_recs = read_dataset((o.dir / "heldout.jsonl").string(), ro);
  auto held_data = model_samples(held_recs, *tokenizer, &tmpl, so);
  LmTrainOptions sft = pt;
  sft.pretrain = o.dir / "pt";
  sft.save_path = o.dir / "sft";
  sft.train_batch_size = 8;
  sft.micro_train_batch_size = 8;
  sft.max_epochs = o.sft_epochs;
  sft.learning_rate = 1e-3;
  sft.metrics_path = o.dir / "sft-metrics.jsonl";
  sft.label = "train sft";
  sft.eval_steps = std::max<int64_t>(1, static_cast<int64_t>(sft_data.size()) / 8);
  auto sftr = train_lm(*pt_model, sft_data, held_data, sft);
  rep.loss_plot = o.dir / "loss.png";
  plot_losses(rep.loss_plot, "yak quickstart", {{"pretrain", ptr}, {"sft", sftr}});

  auto sft_model = model::DecoderModel::load(o.dir / "sft");
  rep.heldout_after = accuracy(*sft_model, *tokenizer, heldout);
  rep.train_after = accuracy(*sft_model, *tokenizer, sft_facts);
  rep.model_dir = o.dir / "sft";

  // 5. GRPO on the SFT questions: 8 answers per question, reward 1 for the exact sum.
  if (o.grpo_episodes > 0) {
    say(o.quiet, "5/6 GRPO on the SFT questions, exact-match reward (held-out accuracy after SFT: " +
                     std::to_string(static_cast<int>(rep.heldout_after * 100 + 0.5)) + "%)");
    PromptOptions po;
    po.label_key = "output";
    po.apply_chat_template = true;
    auto prompts = build_prompts(sft_recs, *tokenizer, &tmpl, po);
    RewardSet reward;
    reward.add(make_rule_reward("exact_match"));
    PpoOptions g;
    g.advantage_estimator = "group_norm";
    g.n_samples_per_prompt = 8;
    g.rollout_batch_size = 32;
    g.micro_rollout_batch_size = 256;
    g.generate_max_len = 6;
    g.init_kl_coef = 0;
    g.num_episodes = o.grpo_episodes;
    g.eval_steps = 10;
    g.actor = sft;
    g.actor.pretrain = o.dir / "sft";
    g.actor.save_path = o.dir / "grpo";
    g.actor.train_batch_size = 64;
    g.actor.micro_train_batch_size = 64;
    g.actor.max_epochs = 1;
    g.actor.learning_rate = 3e-4;
    g.actor.metrics_path = o.dir / "grpo-metrics.jsonl";
    g.actor.label = "train grpo";
    g.actor.plot_path.clear();
    const auto t0 = std::chrono::steady_clock::now();
    auto res = train_ppo(*sft_model, nullptr, nullptr, *tokenizer, prompts, reward, g,
                         [&](model::DecoderModel& m) { return accuracy(m, *tokenizer, heldout); });
    rep.grpo_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rep.grpo_plot = o.dir / "grpo.png";
    plot_ppo(rep.grpo_plot, "yak quickstart: GRPO", res);
    auto grpo_model = model::DecoderModel::load(o.dir / "grpo");
    rep.heldout_after_grpo = accuracy(*grpo_model, *tokenizer, heldout);
    rep.train_after_grpo = accuracy(*grpo_model, *tokenizer, sft_facts);
    rep.model_dir = o.dir / "grpo";
  }

  // 6. A short chat with the result.
  auto final_model = model::DecoderModel::load(rep.model_dir);
  infer::Engine engine(*final_model, tokenizer.get());
  infer::Conversation conv(engine, tmpl, std::nullopt, 256);
  infer::SamplingParams greedy;
  for (size_t i = 0; i < std::min<size_t>(3, heldout.size()); ++i) {
    const std::string q = heldout[i].question();
    rep.chat.emplace_back(q, conv.reply(q, greedy, 6).text);
  }
  say(o.quiet, "6/6 done");
  return rep;
}

}  // namespace yak::train
