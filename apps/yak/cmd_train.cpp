#include <cstdio>
#include <filesystem>

#include "common.h"
#include "yak/base/error.h"
#include "yak/base/log.h"
#include "yak/io/safetensors.h"
#include "yak/ops/ops.h"
#include "yak/dist/comm.h"
#include "yak/train/best_of_n.h"
#include "yak/train/data_source.h"
#include "yak/train/dataset.h"
#include "yak/train/dpo_trainer.h"
#include "yak/train/kto_trainer.h"
#include "yak/train/lm_trainer.h"
#include "yak/train/ppo_trainer.h"
#include "yak/train/prm_trainer.h"
#include "yak/train/reward.h"
#include "yak/train/rm_trainer.h"

namespace yak::cli {
namespace fs = std::filesystem;

namespace {

// Flags keep OpenRLHF's names (train_sft.py / train_pt) so existing scripts carry over.
struct TrainFlags {
  std::string matmul_precision;
  std::string dataset, dataset_probs, eval_dataset, eval_split = "test", split = "train";
  size_t max_samples = 1000000;
  bool skip_bad_lines = false;
  train::SftOptions sft;
  bool pretrain_mode = false, reward_mode = false, dpo_mode = false, kto_mode = false, prm_mode = false;
  bool load_in_4bit = false;
  train::PrmOptions prm;
  train::KtoOptions kto;
  std::string kto_label_key = "label";
  train::DpoOptions dpo;
  std::string ref_pretrain, teacher_model;
  train::PreferenceOptions pref;
  std::string rm_loss = "sigmoid";
  train::LmTrainOptions o;
  std::string tokenizer_chat_template;  // --tokenizer_chat_template: Jinja text or file (default: the checkpoint's)
  std::string pretrain, save_path, ckpt_path, use_tensorboard, metrics_path;
  std::vector<double> adam_betas = {0.9, 0.95};
  int64_t lora_rank = 0;
  double lora_alpha = 16, lora_dropout = 0;
  std::vector<std::string> target_modules = {"all-linear"}, modules_to_save;
  int threads = 0;
  // train ppo
  train::PpoOptions ppo;
  train::PromptOptions prompt;
  std::string critic_pretrain, remote_rm_url, reward_cmd;
  std::vector<std::string> reward_pretrain, reward_fn;
  bool normalize_reward = false;
  double reward_timeout = 30;
  std::vector<double> eps_clip_low_high, reward_clip_range, dynamic_range;
  std::optional<double> eps_clip, dual_clip, value_clip, kl_target;
  std::string kl_estimator = "k1";
  // rejection-sample, iterative-dpo
  train::SampleOptions sampling;
  int rounds = 2;
  std::string post_processor = "rs", reward_template = "{input} <rm_score>: {reward} ";
  bool normalize_csft = false, csft_mode = false;
  std::string csft_reward_key = "reward";
};

// Flags of every trainer; `data` adds the dataset flags of the offline trainers (pt, sft, rm, dpo).
void add_common(CLI::App* sub, TrainFlags& f, bool data = true) {
  sub->add_option("--pretrain", f.pretrain, "Model folder to start from")->required();
  sub->add_option("--tokenizer_chat_template", f.tokenizer_chat_template,
                  "With --apply_chat_template: this Jinja template (text or FILE.jinja) instead of the checkpoint's");
  if (data) {
    sub->add_option("--dataset", f.dataset, "Dataset(s): FILE.jsonl, FILE.json, FILE.txt, json@DIR; comma-separated")
        ->required();
    sub->add_option("--dataset_probs", f.dataset_probs, "Sampling probabilities of the datasets, e.g. 0.7,0.3");
    sub->add_option("--max_len", f.sft.max_len, "Longest sample in tokens (pt: block size)");
    sub->add_option("--input_key", f.sft.input_key, "Key of the prompt (sft) or text (pt)");
    sub->add_flag_callback(
        "--alpaca",
        [&f] {
          f.sft.input_key = "instruction";
          f.sft.output_key = "output";
          f.sft.input_suffix_key = "input";
        },
        "Alpaca records: the prompt is instruction + \"\\n\" + input (when non-empty), the response output");
    sub->add_option_function<std::string>(
        "--system-prompt-file", [&f](const std::string& p) { f.sft.system_prompt = read_text_file(p); },
        "With --apply_chat_template: this file's text as the system turn of every prompt (e.g. Chinese-LLaMA-"
        "Alpaca-2's alpaca-2-long.txt)");
    sub->add_option("--eval_split", f.eval_split, "Split used for evaluation");
    sub->add_option("--max_steps", f.o.max_steps, "Stop after N optimizer steps (-1: all)");
    sub->add_option("--learning_rate", f.o.learning_rate, "Peak learning rate");
  }
  sub->add_option("--dataset_split", f.split, "Split of folder datasets to train on");
  sub->add_option("--eval_dataset", f.eval_dataset,
                  "Evaluation dataset (default: the --eval_split of a folder dataset)");
  sub->add_option("--max_samples", f.max_samples, "Use at most this many records");
  sub->add_flag("--skip_bad_lines", f.skip_bad_lines, "Skip (and count) JSONL lines that do not parse");
  sub->add_option("--save_path", f.save_path, "Write the trained model here (Hugging Face folder)");
  sub->add_option("--ckpt_path", f.ckpt_path, "Folder of resumable training checkpoints");
  sub->add_option("--save_steps", f.o.save_steps, "Checkpoint every N steps (-1: never)");
  sub->add_option("--max_ckpt_num", f.o.max_ckpt_num, "Keep this many checkpoints");
  sub->add_flag("--load_checkpoint", f.o.load_checkpoint, "Resume from --ckpt_path when it holds a checkpoint");
  sub->add_option("--logging_steps", f.o.logging_steps, "Log metrics every N steps");
  sub->add_option("--eval_steps", f.o.eval_steps, "Evaluate every N steps (-1: at the end)");
  sub->add_option("--train_batch_size", f.o.train_batch_size, "Samples per optimizer step");
  sub->add_option("--micro_train_batch_size", f.o.micro_train_batch_size, "Samples per forward/backward");
  sub->add_option("--max_epochs", f.o.max_epochs, "Passes over the data");
  sub->add_option("--lr_scheduler", f.o.lr_scheduler,
                  "constant, constant_with_warmup, linear, cosine, cosine_with_min_lr");
  sub->add_option("--lr_warmup_ratio", f.o.lr_warmup_ratio, "Warm-up share of all steps");
  sub->add_option("--min_lr_ratio", f.o.min_lr_ratio, "cosine_with_min_lr: floor as a share of the peak");
  sub->add_option("--adam_betas", f.adam_betas, "AdamW betas")->expected(2);
  sub->add_option("--l2", f.o.weight_decay, "AdamW weight decay");
  sub->add_option("--max_norm", f.o.max_norm, "Gradient clipping norm");
  sub->add_option("--zero_stage", f.o.zero_stage,
                  "Under MPI: 1 shards the AdamW moments over the ranks, 2 also reduce-scatters the gradients (3: as 2)");
  sub->add_option("--seed", f.o.seed, "Seed of shuffling and blending");
  sub->add_flag("--packing_samples", f.o.packing_samples, "Pack several samples into one row");
  sub->add_flag("--gradient_checkpointing", f.o.gradient_checkpointing,
                "Recompute each layer in the backward to save memory");
  sub->add_option("--use_tensorboard", f.use_tensorboard, "Write TensorBoard event files into this folder");
  sub->add_option("--metrics_path", f.metrics_path, "Metrics JSONL (default: SAVE_PATH-metrics.jsonl)");
  sub->add_option("--lora_rank", f.lora_rank, "Train a LoRA adapter of this rank (0: full training)");
  sub->add_option("--lora_alpha", f.lora_alpha, "LoRA alpha (scale = alpha / rank)");
  sub->add_option("--lora_dropout", f.lora_dropout, "Dropout on the LoRA input");
  sub->add_option("--target_modules", f.target_modules,
                  "LoRA modules: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj or all-linear")
      ->delimiter(',');
  sub->add_option("--modules_to_save", f.modules_to_save, "Also train full copies of: embed_tokens,lm_head,score (rm: score always)")
      ->delimiter(',');
  sub->add_flag("--load_in_4bit", f.load_in_4bit,
                "QLoRA: keep the frozen base's projections in Q4_K (ggml's 4-bit K format, Q4_0 where rows are "
                "not whole 256-blocks) while the adapter trains in f32; needs --lora_rank");
  sub->add_option("-t,--threads", f.threads, "Threads (default: all cores)");
  add_matmul_precision_flag(*sub, f.matmul_precision);
}

// The model to train, with a fresh LoRA adapter when --lora_rank is given.
std::unique_ptr<model::DecoderModel> load_trainee(const TrainFlags& f) {
  auto model = model::DecoderModel::load(f.pretrain);
  if (f.load_in_4bit) {
    if (f.lora_rank <= 0) throw Error("--load_in_4bit (QLoRA) needs --lora_rank: a quantized base cannot be trained in full");
    const auto [before, after] = model->convert_projections(DType::Q4_K);
    std::printf("QLoRA: projection weights %.1f MB -> %.1f MB in Q4_K, frozen; the adapter trains in f32\n",
                static_cast<double>(before) / 1e6, static_cast<double>(after) / 1e6);
  }
  if (f.lora_rank > 0) {
    model::LoraConfig lc;
    lc.r = f.lora_rank;
    lc.alpha = f.lora_alpha;
    lc.dropout = f.lora_dropout;
    lc.target_modules = f.target_modules;
    lc.modules_to_save = f.modules_to_save;
    // A reward model's score head trains in full and is saved in the adapter (PEFT's SEQ_CLS).
    if (f.reward_mode && std::find(lc.modules_to_save.begin(), lc.modules_to_save.end(), "score") == lc.modules_to_save.end())
      lc.modules_to_save.push_back("score");
    lc.base_model = f.pretrain;
    model->add_lora(lc, f.o.seed);
  } else if (!f.modules_to_save.empty()) {
    throw Error("--modules_to_save needs --lora_rank (full training already trains every module)");
  }
  return model;
}

// Fills the optimizer/logging options shared by every trainer from the flags.
void resolve_common(TrainFlags& f) {
  f.o.pretrain = f.pretrain;
  f.o.save_path = f.save_path;
  f.o.ckpt_path = f.ckpt_path.empty() && !f.save_path.empty() ? fs::path(f.save_path).string() + "-ckpt" : f.ckpt_path;
  f.o.tensorboard_dir = f.use_tensorboard;
  f.o.metrics_path = !f.metrics_path.empty() ? fs::path(f.metrics_path)
                     : !f.save_path.empty()  ? fs::path(f.save_path + "-metrics.jsonl")
                                             : fs::path();
  if (!f.save_path.empty()) f.o.plot_path = f.save_path + "-loss.png";
  f.o.adam_beta1 = f.adam_betas[0];
  f.o.adam_beta2 = f.adam_betas[1];
}

void run_train(TrainFlags& f) {
  ops::set_num_threads(f.threads);
  apply_matmul_precision(f.matmul_precision);
  if (!f.save_path.empty() && fs::exists(f.save_path) && !fs::is_directory(f.save_path))
    throw Error("--save_path " + f.save_path + ": exists and is not a folder");
  auto tokenizer = load_model_tokenizer(f.pretrain, "");
  if (!tokenizer) throw Error(f.pretrain + ": no tokenizer in the model folder");
  auto model = load_trainee(f);

  train::ReadOptions ro;
  ro.split = f.split;
  ro.max_samples = f.max_samples;
  ro.skip_bad_lines = f.skip_bad_lines;
  ro.seed = f.o.seed;
  auto records = train::blend_datasets(f.dataset, f.dataset_probs, ro);
  std::vector<train::Record> eval_records;
  ro.split = f.eval_split;
  if (!f.eval_dataset.empty()) {
    eval_records = train::read_dataset(f.eval_dataset, ro);
  } else if (f.dataset.find(',') == std::string::npos &&
             fs::is_directory(f.dataset.rfind("json@", 0) == 0 ? f.dataset.substr(5) : f.dataset)) {
    try {
      eval_records = train::read_dataset(f.dataset, ro);
    } catch (const Error& e) {
      log::warn(std::string("no evaluation split: ") + e.what());
    }
  }

  resolve_common(f);
  f.o.max_len = f.sft.max_len;

  if (f.csft_mode) {  // reward-conditioned prompts, then plain SFT
    train::condition_on_reward(records, f.sft.input_key, f.csft_reward_key, f.reward_template, f.normalize_csft);
    if (!eval_records.empty())
      train::condition_on_reward(eval_records, f.sft.input_key, f.csft_reward_key, f.reward_template, f.normalize_csft);
  }
  std::optional<tok::ChatTemplate> tmpl;
  if (f.sft.apply_chat_template)
    tmpl = pick_chat_template(f.tokenizer_chat_template, f.pretrain, model->config());
  if (f.prm_mode) {
    f.prm.max_len = f.sft.max_len;
    f.prm.input_key = f.sft.input_key;
    const auto v = train::prm_vocab(*tokenizer, f.prm);
    train::SkipStats skipped;
    auto samples = train::build_prm_samples(records, *tokenizer, f.prm, &skipped);
    auto eval_samples = train::build_prm_samples(eval_records, *tokenizer, f.prm);
    if (skipped.total()) std::fprintf(stderr, "train data: %s\n", skipped.summary().c_str());
    std::fprintf(stderr, "PRM samples: %zu train, %zu eval\n", samples.size(), eval_samples.size());
    f.o.label = "train prm";
    auto r = train::train_prm(*model, samples, eval_samples, v, f.o);
    std::printf("trained %lld steps; last loss %.4f", static_cast<long long>(r.losses.steps),
                r.losses.step_losses.empty() ? std::nan("") : r.losses.step_losses.back());
    if (!std::isnan(r.eval_accuracy))
      std::printf("; eval step accuracy %.1f%% (before: %.1f%%)", 100 * r.eval_accuracy, 100 * r.accuracy_before);
    std::printf("\n");
    if (!f.save_path.empty()) std::printf("saved %s\n", f.save_path.c_str());
    return;
  }
  if (f.kto_mode) {
    train::SkipStats skipped;
    auto samples =
        train::build_kto_samples(records, *tokenizer, tmpl ? &*tmpl : nullptr, f.sft, f.kto_label_key, &skipped);
    auto eval_samples =
        train::build_kto_samples(eval_records, *tokenizer, tmpl ? &*tmpl : nullptr, f.sft, f.kto_label_key);
    if (skipped.total()) std::fprintf(stderr, "train data: %s\n", skipped.summary().c_str());
    size_t good = 0;
    for (auto& s : samples) good += s.desirable;
    std::fprintf(stderr, "KTO samples: %zu train (%zu desirable), %zu eval\n", samples.size(), good,
                 eval_samples.size());
    f.o.label = "train kto";
    auto ref = model::DecoderModel::load(f.ref_pretrain.empty() ? f.pretrain : f.ref_pretrain);
    auto r = train::train_kto(*model, *ref, samples, eval_samples, f.o, f.kto);
    std::printf("trained %lld steps; last loss %.4f", static_cast<long long>(r.losses.steps),
                r.losses.step_losses.empty() ? std::nan("") : r.losses.step_losses.back());
    if (!std::isnan(r.eval_margin)) std::printf("; eval reward margin (desirable - undesirable) %.4f", r.eval_margin);
    std::printf("\n");
    if (!f.save_path.empty()) std::printf("saved %s\n", f.save_path.c_str());
    return;
  }
  if (f.reward_mode || f.dpo_mode) {
    f.pref.max_len = f.sft.max_len;
    train::SkipStats skipped;
    auto pairs = train::build_preference_pairs(records, *tokenizer, tmpl ? &*tmpl : nullptr, f.pref, &skipped);
    auto eval_pairs = train::build_preference_pairs(eval_records, *tokenizer, tmpl ? &*tmpl : nullptr, f.pref);
    if (skipped.total()) std::fprintf(stderr, "train data: %s\n", skipped.summary().c_str());
    std::fprintf(stderr, "preference pairs: %zu train, %zu eval\n", pairs.size(), eval_pairs.size());
    if (f.dpo_mode) {
      f.o.label = "train dpo";
      // With LoRA (and no other reference) the base model under the adapter is the reference.
      const bool self_ref = f.ref_pretrain.empty() && model->has_lora() && f.modules_to_save.empty();
      auto ref = self_ref ? nullptr : model::DecoderModel::load(f.ref_pretrain.empty() ? f.pretrain : f.ref_pretrain);
      auto r = train::train_dpo(*model, self_ref ? *model : *ref, pairs, eval_pairs, f.o, f.dpo);
      std::printf("trained %lld steps; last loss %.4f", static_cast<long long>(r.losses.steps),
                  r.losses.step_losses.empty() ? std::nan("") : r.losses.step_losses.back());
      if (!std::isnan(r.eval_accuracy))
        std::printf("; eval reward accuracy %.1f%%; policy prefers chosen %.1f%% -> %.1f%%", 100 * r.eval_accuracy,
                    100 * r.policy_preference_before, 100 * r.policy_preference_after);
      std::printf("\n");
      if (!f.save_path.empty()) std::printf("saved %s\n", f.save_path.c_str());
      return;
    }
    f.o.label = "train rm";
    auto r = train::train_rm(*model, pairs, eval_pairs, f.o, f.rm_loss);
    std::printf("trained %lld steps; last loss %.4f", static_cast<long long>(r.losses.steps),
                r.losses.step_losses.empty() ? std::nan("") : r.losses.step_losses.back());
    if (!std::isnan(r.eval_accuracy))
      std::printf("; eval pairwise accuracy %.1f%% (before: %.1f%%)", 100 * r.eval_accuracy, 100 * r.accuracy_before);
    std::printf("; reward mean %.4f std %.4f\n", r.reward_mean, r.reward_std);
    if (!f.save_path.empty()) std::printf("saved %s\n", f.save_path.c_str());
    return;
  }
  auto build = [&](const std::vector<train::Record>& recs) {
    if (f.pretrain_mode) return train::build_pretrain_dataset(recs, *tokenizer, {f.sft.input_key, f.sft.max_len});
    return train::build_sft_dataset(recs, *tokenizer, tmpl ? &*tmpl : nullptr, f.sft);
  };
  auto data = build(records);
  // No eval split is not an empty one: nothing to build, nothing to warn about.
  auto eval = eval_records.empty() ? train::SftDataset{} : build(eval_records);
  if (data.skipped.total()) std::fprintf(stderr, "train data: %s\n", data.skipped.summary().c_str());
  std::fprintf(stderr, "train data: %zu samples from %zu records; eval: %zu samples\n", data.samples.size(),
               records.size(), eval.samples.size());

  f.o.label = f.pretrain_mode ? "train pt" : "train sft";
  std::unique_ptr<model::DecoderModel> teacher;
  if (!f.teacher_model.empty()) {
    teacher = model::DecoderModel::load(f.teacher_model);
    f.o.teacher = teacher.get();
    f.o.label = "train kd";
  }
  auto r = train::train_lm(*model, data.samples, eval.samples, f.o);
  std::printf("trained %lld steps; last train loss %.4f", static_cast<long long>(r.steps - r.first_step),
              r.step_losses.empty() ? std::nan("") : r.step_losses.back());
  if (!std::isnan(r.eval_loss)) std::printf("; eval loss %.4f (perplexity %.2f)", r.eval_loss, std::exp(r.eval_loss));
  std::printf("; peak memory of a step %.0f MB\n", r.peak_memory_mb);
  if (!f.save_path.empty()) std::printf("saved %s\n", f.save_path.c_str());
}

// The reward sources named by the flags, added up.
train::RewardSet make_rewards(const TrainFlags& f) {
  train::RewardSet reward;
  for (const auto& d : f.reward_pretrain) reward.add(train::make_model_reward(d, f.normalize_reward));
  for (const auto& r : f.reward_fn) reward.add(train::make_rule_reward(r));
  if (!f.remote_rm_url.empty()) {
    if (f.remote_rm_url.rfind("http://", 0) != 0 && f.remote_rm_url.rfind("https://", 0) != 0)
      throw Error("--remote_rm_url " + f.remote_rm_url +
                  ": expected an http(s):// URL; a Python reward function (OpenRLHF's reward_func.py) cannot run "
                  "in yak (no Python at run time): use --reward_fn or --reward_cmd");
    reward.add(train::make_remote_reward(f.remote_rm_url, f.reward_timeout));
  }
  if (!f.reward_cmd.empty()) reward.add(train::make_command_reward(f.reward_cmd, f.reward_timeout));
  if (reward.empty()) throw Error("no reward: give --reward_pretrain, --reward_fn, --remote_rm_url or --reward_cmd");
  return reward;
}

struct PromptSets {
  std::vector<train::PromptItem> train, eval;
};

// --prompt_data (and --eval_dataset) as prompts, rendered like the model's SFT data.
PromptSets load_prompts(const TrainFlags& f, const tok::Tokenizer& tok, const model::DecoderModel& m) {
  std::optional<tok::ChatTemplate> tmpl;
  if (f.prompt.apply_chat_template)
    tmpl = pick_chat_template(f.tokenizer_chat_template, f.pretrain, m.config());
  train::ReadOptions ro;
  ro.split = f.split;
  ro.max_samples = f.max_samples;
  ro.skip_bad_lines = f.skip_bad_lines;
  ro.seed = f.o.seed;
  auto records = train::blend_datasets(f.dataset, f.dataset_probs, ro);
  train::SkipStats skipped;
  PromptSets ps;
  ps.train = train::build_prompts(records, tok, tmpl ? &*tmpl : nullptr, f.prompt, &skipped);
  if (skipped.total()) std::fprintf(stderr, "prompts: %s\n", skipped.summary().c_str());
  if (!f.eval_dataset.empty())
    ps.eval = train::build_prompts(train::read_dataset(f.eval_dataset, ro), tok, tmpl ? &*tmpl : nullptr, f.prompt);
  return ps;
}

void add_prompt_flags(CLI::App* c, TrainFlags& P) {
  c->add_option("--prompt_data", P.dataset, "Prompt dataset(s), comma-separated")->required();
  c->add_option("--prompt_data_probs", P.dataset_probs, "Sampling probabilities of the prompt datasets");
  c->add_option("--input_key", P.prompt.input_key, "Key of the prompt (a string or a messages list)");
  c->add_option("--label_key", P.prompt.label_key, "Key of the reference answer passed to reward functions");
  c->add_option("--input_template", P.prompt.input_template, "Prompt template with one {}");
  c->add_flag("--apply_chat_template", P.prompt.apply_chat_template, "Render prompts with the chat template");
  c->add_option("--prompt_max_len", P.prompt.prompt_max_len, "Longer prompts are skipped");
}

void add_reward_flags(CLI::App* c, TrainFlags& P) {
  c->add_option("--reward_pretrain", P.reward_pretrain, "Reward model folder(s); their scores add up")->delimiter(',');
  c->add_flag("--normalize_reward", P.normalize_reward, "Normalize RM scores with the mean/std in their config");
  c->add_option("--reward_fn", P.reward_fn, "Built-in reward: exact_match, math, format:REGEX (repeatable)");
  c->add_option("--remote_rm_url", P.remote_rm_url, "Reward model over HTTP (POST {query, prompts, labels})");
  c->add_option("--reward_cmd", P.reward_cmd, "Command reading the same JSON on stdin, answering on stdout");
  c->add_option("--reward_timeout", P.reward_timeout, "Seconds a remote/command reward may take per batch");
}

void add_dpo_flags(CLI::App* c, TrainFlags& P) {
  c->add_option("--beta", P.dpo.beta, "DPO beta");
  c->add_option("--label_smoothing", P.dpo.label_smoothing, "cDPO label smoothing");
  c->add_flag("--ipo", P.dpo.ipo, "IPO loss instead of DPO");
  c->add_option("--nll_loss_coef", P.dpo.nll_loss_coef, "Weight of the chosen responses' NLL");
}

void add_sampling_flags(CLI::App* c, TrainFlags& P) {
  c->add_option("--n_samples_per_prompt", P.sampling.n_samples_per_prompt, "Answers per prompt");
  c->add_option("--generate_max_len", P.sampling.generate_max_len, "Tokens generated per answer at most");
  c->add_option("--temperature", P.sampling.temperature, "Sampling temperature");
  c->add_option("--top_p", P.sampling.top_p, "Sampling top-p");
  c->add_option("--micro_batch_size", P.sampling.micro_batch_size, "Sequences generated together");
}

// `yak rejection-sample`: best-of-n answers as SFT data (JSONL: input, output, reward).
void run_rejection_sample(TrainFlags& f) {
  ops::set_num_threads(f.threads);
  apply_matmul_precision(f.matmul_precision);
  auto tokenizer = load_model_tokenizer(f.pretrain, "");
  if (!tokenizer) throw Error(f.pretrain + ": no tokenizer in the model folder");
  if (f.save_path.empty()) throw Error("--output: where to write the JSONL");
  auto reward = make_rewards(f);
  auto policy = model::DecoderModel::load(f.pretrain);
  auto ps = load_prompts(f, *tokenizer, *policy);
  f.sampling.seed = f.o.seed;
  if (f.post_processor != "rs" && f.post_processor != "csft")
    throw Error("--post_processor '" + f.post_processor + "': expected rs (best of n) or csft (conditional SFT)");
  const bool rs = f.post_processor == "rs";
  auto recs =
      rs ? train::rejection_sample(*policy, *tokenizer, ps.train, reward, f.sampling)
         : train::conditional_sft_data(train::sample_and_score(*policy, *tokenizer, ps.train, reward, f.sampling),
                                       ps.train, f.reward_template, f.normalize_csft);
  std::string text;
  double sum = 0;
  for (auto& r : recs) text += r.dump() + "\n", sum += r["reward"].get<double>();
  if (dist::world().is_root()) io::write_file_atomic(f.save_path, text);  // under MPI every rank drew the same
  std::printf("wrote %zu %s records to %s (mean reward %.4f)\n", recs.size(),
              rs ? ("best-of-" + std::to_string(f.sampling.n_samples_per_prompt)).c_str() : "conditional-SFT",
              f.save_path.c_str(), recs.empty() ? std::nan("") : sum / static_cast<double>(recs.size()));
}

// `yak train iterative-dpo`: rounds of sample -> score -> best/worst pairs -> DPO.
void run_iterative_dpo(TrainFlags& f) {
  ops::set_num_threads(f.threads);
  apply_matmul_precision(f.matmul_precision);
  auto tokenizer = load_model_tokenizer(f.pretrain, "");
  if (!tokenizer) throw Error(f.pretrain + ": no tokenizer in the model folder");
  if (!f.save_path.empty() && fs::exists(f.save_path) && !fs::is_directory(f.save_path))
    throw Error("--save_path " + f.save_path + ": exists and is not a folder");
  resolve_common(f);
  auto reward = make_rewards(f);
  auto policy = load_trainee(f);
  auto ps = load_prompts(f, *tokenizer, *policy);
  train::IterativeDpoOptions o;
  o.rounds = f.rounds;
  o.sampling = f.sampling;
  o.sampling.seed = f.o.seed;
  o.dpo = f.dpo;
  o.train = f.o;
  double before = NAN, after = NAN;
  if (!ps.eval.empty())
    before = train::greedy_reward(*policy, *tokenizer, ps.eval, reward, f.sampling.generate_max_len);
  auto st = train::iterative_dpo(*policy, *tokenizer, ps.train, reward, o);
  if (!ps.eval.empty()) after = train::greedy_reward(*policy, *tokenizer, ps.eval, reward, f.sampling.generate_max_len);
  std::printf("%zu rounds; mean sampled reward %.4f -> %.4f", st.size(), st.front().mean_reward, st.back().mean_reward);
  if (!ps.eval.empty()) std::printf("; eval score %.4f -> %.4f", before, after);
  std::printf("\n");
  if (!f.save_path.empty()) std::printf("saved %s\n", f.save_path.c_str());
}

void run_ppo(TrainFlags& f) {
  ops::set_num_threads(f.threads);
  apply_matmul_precision(f.matmul_precision);
  if (!f.save_path.empty() && fs::exists(f.save_path) && !fs::is_directory(f.save_path))
    throw Error("--save_path " + f.save_path + ": exists and is not a folder");
  auto tokenizer = load_model_tokenizer(f.pretrain, "");
  if (!tokenizer) throw Error(f.pretrain + ": no tokenizer in the model folder");
  resolve_common(f);
  auto& p = f.ppo;
  p.actor = f.o;
  p.actor.label = "train ppo";
  p.eval_steps = f.o.eval_steps;  // counted in rollout steps
  if (f.eps_clip) p.policy.clip_eps_low = p.policy.clip_eps_high = *f.eps_clip;
  if (!f.eps_clip_low_high.empty()) {
    if (f.eps_clip_low_high.size() != 2) throw Error("--eps_clip_low_high takes two numbers: LOW HIGH");
    p.policy.clip_eps_low = f.eps_clip_low_high[0];
    p.policy.clip_eps_high = f.eps_clip_low_high[1];
  }
  if (f.dual_clip) {
    if (*f.dual_clip <= 1) throw Error("--dual_clip must be greater than 1");
    p.policy.dual_clip = f.dual_clip;
  }
  if (f.value_clip) p.value_clip = *f.value_clip < 0 ? std::nullopt : f.value_clip;
  p.kl_target = f.kl_target;
  p.kl_estimator = train::parse_kl_estimator(f.kl_estimator);
  if (!f.reward_clip_range.empty()) {
    if (f.reward_clip_range.size() != 2) throw Error("--reward_clip_range takes two numbers: LOW HIGH");
    p.reward_clip_range = std::pair{f.reward_clip_range[0], f.reward_clip_range[1]};
  }
  if (!f.dynamic_range.empty()) {
    if (f.dynamic_range.size() != 2) throw Error("--dynamic_filtering_reward_range takes two numbers: LOW HIGH");
    p.dynamic_filtering_range = {f.dynamic_range[0], f.dynamic_range[1]};
  }

  auto reward = make_rewards(f);
  auto actor = load_trainee(f);
  auto [prompts, eval_prompts] = load_prompts(f, *tokenizer, *actor);
  std::fprintf(stderr, "prompts: %zu train, %zu eval; reward: %s\n", prompts.size(), eval_prompts.size(),
               reward.describe().c_str());

  std::unique_ptr<model::DecoderModel> reference, critic;
  if (p.init_kl_coef > 0 || p.use_kl_loss) reference = model::DecoderModel::load(f.pretrain);
  if (p.advantage_estimator == "gae") {
    const std::string dir = !f.critic_pretrain.empty()   ? f.critic_pretrain
                            : !f.reward_pretrain.empty() ? f.reward_pretrain.front()
                                                         : f.pretrain;
    critic = model::DecoderModel::load(dir);
    p.critic_pretrain = dir;
  }
  train::PolicyEval eval;
  if (!eval_prompts.empty())
    eval = [&](model::DecoderModel& m) {
      return train::greedy_reward(m, *tokenizer, eval_prompts, reward, p.generate_max_len);
    };
  auto r = train::train_ppo(*actor, reference.get(), critic.get(), *tokenizer, prompts, reward, p, eval);
  double first = NAN, last = NAN;
  for (auto& s : r.steps)
    if (s.samples) {
      if (std::isnan(first)) first = s.reward;
      last = s.reward;
    }
  std::printf("trained %zu rollout steps; mean rollout reward %.4f -> %.4f", r.steps.size(), first, last);
  if (r.eval_history.size() >= 2)
    std::printf("; eval score %.4f -> %.4f", r.eval_history.front().second, r.eval_history.back().second);
  std::printf("\n");
  if (!f.save_path.empty()) std::printf("saved %s\n", f.save_path.c_str());
}

}  // namespace

void register_train(CLI::App& app) {
  auto* train = app.add_subcommand("train", "Train a model: pt (continued pretraining), sft (instruction tuning)");
  train->require_subcommand(1);

  auto pt = std::make_shared<TrainFlags>();
  pt->pretrain_mode = true;
  pt->sft.input_key = "text";
  auto* p = train->add_subcommand("pt", "Continued pretraining on raw text, grouped into --max_len blocks");
  add_common(p, *pt);
  p->callback([pt] { run_train(*pt); });

  auto sft = std::make_shared<TrainFlags>();
  auto* s = train->add_subcommand("sft", "Supervised fine-tuning on prompt/response data");
  add_common(s, *sft);
  s->add_flag("--pretrain_mode", sft->pretrain_mode,
              "Train on whole texts from --input_key, as `yak train pt` (OpenRLHF's continued pretraining)");
  s->add_option("--output_key", sft->sft.output_key, "Key of the response");
  s->add_option("--input_template", sft->sft.input_template,
                "Prompt template with one {}, e.g. \"User: {}\\nAssistant: \"");
  s->add_flag("--apply_chat_template", sft->sft.apply_chat_template, "Render prompts with the model's chat template");
  s->add_flag("--multiturn", sft->sft.multiturn, "Loss on every assistant turn of a conversation");
  s->callback([sft] { run_train(*sft); });

  auto csft = std::make_shared<TrainFlags>();
  csft->csft_mode = true;
  auto* cs = train->add_subcommand("csft", "Conditional SFT: the reward written into each prompt, then SFT");
  add_common(cs, *csft);
  cs->add_option("--output_key", csft->sft.output_key, "Key of the response");
  cs->add_option("--reward_key", csft->csft_reward_key, "Key of the reward");
  cs->add_option("--reward_template", csft->reward_template, "Prompt: {input} and {reward} are replaced");
  cs->add_flag("--normalize_reward", csft->normalize_csft, "z-score the rewards before printing them");
  cs->add_flag("--apply_chat_template", csft->sft.apply_chat_template, "Render prompts with the chat template");
  cs->callback([csft] { run_train(*csft); });

  auto kd = std::make_shared<TrainFlags>();
  auto* k = train->add_subcommand("kd", "Knowledge distillation: SFT plus the teacher's token distributions");
  add_common(k, *kd);
  k->add_option("--teacher_model", kd->teacher_model, "Teacher model folder (same vocabulary)")->required();
  k->add_option("--kd_coef", kd->o.kd_coef, "Weight of the distillation loss (1 - it weights cross-entropy)");
  k->add_option("--output_key", kd->sft.output_key, "Key of the response");
  k->add_option("--input_template", kd->sft.input_template, "Prompt template with one {}");
  k->add_flag("--apply_chat_template", kd->sft.apply_chat_template, "Render prompts with the model's chat template");
  k->callback([kd] { run_train(*kd); });

  auto rm = std::make_shared<TrainFlags>();
  rm->reward_mode = true;
  auto* r = train->add_subcommand("rm", "Reward model on preference pairs (score head, pairwise loss)");
  add_common(r, *rm);
  auto* rm_pk = r->add_option("--prompt_key", rm->pref.prompt_key,
                              "Key of the prompt (empty: chosen/rejected are whole dialogues; not given: those "
                              "records without 'prompt' are, as OpenRLHF's default)");
  r->add_option("--chosen_key", rm->pref.chosen_key, "Key of the preferred response");
  r->add_option("--rejected_key", rm->pref.rejected_key, "Key of the rejected response");
  r->add_option("--margin_key", rm->pref.margin_key, "Optional key of a per-pair margin");
  r->add_option("--input_template", rm->pref.input_template, "Prompt template with one {}");
  r->add_flag("--apply_chat_template", rm->pref.apply_chat_template, "Render prompts with the chat template");
  r->add_option("--loss", rm->rm_loss, "sigmoid (-log sigma(r_c - r_r - margin)) or logexp");
  r->callback([rm, rm_pk] {
    rm->sft.apply_chat_template = rm->pref.apply_chat_template;
    rm->pref.prompt_key_optional = rm_pk->count() == 0;
    run_train(*rm);
  });

  auto dpo = std::make_shared<TrainFlags>();
  dpo->dpo_mode = true;
  auto* dp = train->add_subcommand("dpo", "DPO / cDPO / IPO on preference pairs against a frozen reference");
  add_common(dp, *dpo);
  dp->add_option("--ref_pretrain", dpo->ref_pretrain, "Reference model folder (default: --pretrain)");
  auto* dpo_pk = dp->add_option("--prompt_key", dpo->pref.prompt_key,
                                "Key of the prompt (not given: records without 'prompt' hold whole dialogues)");
  dp->add_option("--chosen_key", dpo->pref.chosen_key, "Key of the preferred response");
  dp->add_option("--rejected_key", dpo->pref.rejected_key, "Key of the rejected response");
  dp->add_option("--input_template", dpo->pref.input_template, "Prompt template with one {}");
  dp->add_flag("--apply_chat_template", dpo->pref.apply_chat_template, "Render prompts with the chat template");
  add_dpo_flags(dp, *dpo);
  dp->callback([dpo, dpo_pk] {
    dpo->sft.apply_chat_template = dpo->pref.apply_chat_template;
    dpo->pref.prompt_key_optional = dpo_pk->count() == 0;
    run_train(*dpo);
  });

  auto ppo = std::make_shared<TrainFlags>();
  ppo->o.learning_rate = 1e-6;
  ppo->o.train_batch_size = 128;
  ppo->o.micro_train_batch_size = 4;
  auto* pp =
      train->add_subcommand("ppo", "Online RL: PPO, REINFORCE++, RLOO, GRPO (Dr. GRPO) on rollouts from the engine");
  add_common(pp, *ppo, false);
  auto& P = *ppo;
  add_prompt_flags(pp, P);
  add_reward_flags(pp, P);
  pp->add_option("--generate_max_len", P.ppo.generate_max_len, "Tokens generated per rollout at most");
  pp->add_option("--max_len", P.ppo.max_len, "Prompt + response in tokens at most (OpenRLHF's --max_len)");
  pp->add_option("--actor_learning_rate,--learning_rate", P.o.learning_rate, "Actor learning rate");
  pp->add_option("--critic_learning_rate", P.ppo.critic_learning_rate, "Critic learning rate");
  pp->add_flag("--save_value_network", P.ppo.save_value_network, "Also save the critic at SAVE_PATH_critic");
  pp->add_option("--critic_pretrain", P.critic_pretrain,
                 "Critic start (default: the first reward model, else --pretrain; a value head is added)");
  pp->add_option("--advantage_estimator", P.ppo.advantage_estimator,
                 "gae, reinforce, reinforce_baseline, rloo, group_norm (GRPO), dr_grpo");
  pp->add_option("--n_samples_per_prompt", P.ppo.n_samples_per_prompt, "Rollouts per prompt (a group)");
  pp->add_option("--rollout_batch_size", P.ppo.rollout_batch_size, "Prompts per rollout step");
  pp->add_option("--micro_rollout_batch_size", P.ppo.micro_rollout_batch_size,
                 "Sequences per generation / experience forward");
  pp->add_option("--num_episodes", P.ppo.num_episodes, "Passes over the prompt set");
  pp->add_option("--max_steps", P.ppo.max_steps, "Stop after N rollout steps (-1: all)");
  pp->add_option("--temperature", P.ppo.temperature, "Rollout temperature");
  pp->add_option("--top_p", P.ppo.top_p, "Rollout top-p");
  pp->add_option("--top_k", P.ppo.top_k, "Rollout top-k (0: off)");
  pp->add_option("--gamma", P.ppo.gamma, "Discount");
  pp->add_option("--lambd", P.ppo.lambd, "GAE lambda");
  pp->add_option("--init_kl_coef", P.ppo.init_kl_coef, "KL coefficient (reward penalty, or loss weight)");
  pp->add_option("--kl_target", P.kl_target, "Adaptive KL controller target");
  pp->add_option("--kl_horizon", P.ppo.kl_horizon, "Adaptive KL controller horizon");
  pp->add_flag("--use_kl_loss", P.ppo.use_kl_loss, "KL to the reference as a loss term instead of a reward penalty");
  pp->add_option("--kl_estimator", P.kl_estimator, "k1, k2 or k3");
  pp->add_option("--eps_clip", P.eps_clip, "Policy ratio clip");
  pp->add_option("--eps_clip_low_high", P.eps_clip_low_high, "Asymmetric clip: LOW HIGH")->expected(2);
  pp->add_option("--dual_clip", P.dual_clip, "Dual-clip constant (> 1) for negative advantages");
  pp->add_option("--value_clip", P.value_clip, "Value clip (negative: off)");
  pp->add_option("--entropy_loss_coef", P.ppo.entropy_coef, "Entropy bonus weight");
  pp->add_flag("--no_advantage_std_norm", P.ppo.no_advantage_std_norm, "Only center advantages");
  pp->add_option("--reward_clip_range", P.reward_clip_range, "Clip rewards to LOW HIGH")->expected(2);
  pp->add_flag("--dynamic_filtering", P.ppo.dynamic_filtering, "Drop groups whose mean reward is outside the range");
  pp->add_option("--dynamic_filtering_reward_range", P.dynamic_range, "LOW HIGH (exclusive)")->expected(2);
  pp->add_option("--overlong_buffer_len", P.ppo.overlong_buffer_len, "DAPO overlong penalty buffer (0: off)");
  pp->add_option("--overlong_penalty_factor", P.ppo.overlong_penalty_factor, "DAPO overlong penalty at most");
  pp->callback([ppo] { run_ppo(*ppo); });

  auto prm = std::make_shared<TrainFlags>();
  prm->prm_mode = true;
  auto* pr = train->add_subcommand("prm", "Process reward model: reward tokens predicted at each step placeholder");
  add_common(pr, *prm);
  pr->add_option("--label_key", prm->prm.label_key, "Key of the step labels (reward tokens or numbers in [0, 1])");
  pr->add_option("--placeholder_token", prm->prm.placeholder_token, "The token that ends every step");
  pr->add_option("--reward_tokens", prm->prm.reward_tokens, "Reward tokens, the good one first (default: + -)");
  pr->callback([prm] { run_train(*prm); });

  auto kto = std::make_shared<TrainFlags>();
  kto->kto_mode = true;
  auto* kt = train->add_subcommand("kto", "KTO on unpaired feedback (prompt, completion, desirable label)");
  add_common(kt, *kto);
  kt->add_option("--ref_pretrain", kto->ref_pretrain, "Reference model folder (default: --pretrain)");
  kt->add_option("--output_key", kto->sft.output_key, "Key of the completion");
  kt->add_option("--label_key", kto->kto_label_key, "Key of the label: true/1 desirable, false/0 undesirable");
  kt->add_option("--input_template", kto->sft.input_template, "Prompt template with one {}");
  kt->add_flag("--apply_chat_template", kto->sft.apply_chat_template, "Render prompts with the chat template");
  kt->add_option("--beta", kto->kto.beta, "KTO beta");
  kt->add_option("--desirable_loss_weight", kto->kto.desirable_weight, "Weight of desirable samples");
  kt->add_option("--undesirable_loss_weight", kto->kto.undesirable_weight, "Weight of undesirable samples");
  kt->callback([kto] { run_train(*kto); });

  auto idpo = std::make_shared<TrainFlags>();
  idpo->o.learning_rate = 5e-7;
  idpo->o.train_batch_size = 16;
  idpo->o.micro_train_batch_size = 4;
  auto* it = train->add_subcommand("iterative-dpo", "Rounds of: sample n answers, score, pair best vs worst, DPO");
  add_common(it, *idpo, false);
  add_prompt_flags(it, *idpo);
  add_reward_flags(it, *idpo);
  add_sampling_flags(it, *idpo);
  it->add_option("--rounds", idpo->rounds, "Sample-score-train rounds");
  it->add_option("--learning_rate", idpo->o.learning_rate, "DPO learning rate");
  add_dpo_flags(it, *idpo);
  it->callback([idpo] { run_iterative_dpo(*idpo); });
}

void register_rejection_sample(CLI::App& app) {
  auto rs = std::make_shared<TrainFlags>();
  auto* r = app.add_subcommand("rejection-sample", "Best-of-n answers by reward, written as SFT data (JSONL)");
  r->add_option("--pretrain,-m", rs->pretrain, "Policy model folder")->required();
  r->add_option("--output", rs->save_path, "JSONL to write: {input, output, reward} per prompt")->required();
  r->add_option("--max_samples", rs->max_samples, "Use at most this many prompts");
  r->add_option("--seed", rs->o.seed, "Sampling seed");
  r->add_option("-t,--threads", rs->threads, "Threads (default: all cores)");
  add_prompt_flags(r, *rs);
  add_reward_flags(r, *rs);
  add_sampling_flags(r, *rs);
  r->add_option("--post_processor", rs->post_processor,
                "rs: the best answer per prompt; csft: every answer with its reward in the prompt");
  r->add_option("--reward_template", rs->reward_template, "csft prompt: {input} and {reward} are replaced");
  r->add_flag("--normalize_csft_reward", rs->normalize_csft, "csft: z-score the rewards before printing them");
  r->callback([rs] { run_rejection_sample(*rs); });
}

}  // namespace yak::cli
