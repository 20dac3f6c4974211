#include <cstdio>
#include <filesystem>

#include "common.h"
#include "yak/base/error.h"
#include "yak/base/log.h"
#include "yak/base/thread_pool.h"
#include "yak/train/data_source.h"
#include "yak/train/dataset.h"
#include "yak/train/dpo_trainer.h"
#include "yak/train/lm_trainer.h"
#include "yak/train/rm_trainer.h"

namespace yak::cli {
namespace fs = std::filesystem;

namespace {

// Flags keep OpenRLHF's names (train_sft.py / train_pt) so existing scripts carry over.
struct TrainFlags {
  std::string dataset, dataset_probs, eval_dataset, eval_split = "test", split = "train";
  size_t max_samples = 1000000;
  bool skip_bad_lines = false;
  train::SftOptions sft;
  bool pretrain_mode = false, reward_mode = false, dpo_mode = false;
  train::DpoOptions dpo;
  std::string ref_pretrain;
  train::PreferenceOptions pref;
  std::string rm_loss = "sigmoid";
  train::LmTrainOptions o;
  std::string pretrain, save_path, ckpt_path, use_tensorboard, metrics_path;
  std::vector<double> adam_betas = {0.9, 0.95};
  int64_t lora_rank = 0;
  double lora_alpha = 16, lora_dropout = 0;
  std::vector<std::string> target_modules = {"all-linear"}, modules_to_save;
  int threads = 0;
};

void add_common(CLI::App* sub, TrainFlags& f) {
  sub->add_option("--pretrain", f.pretrain, "Model folder to start from")->required();
  sub->add_option("--dataset", f.dataset, "Dataset(s): FILE.jsonl, FILE.json, FILE.txt, json@DIR; comma-separated")
      ->required();
  sub->add_option("--dataset_probs", f.dataset_probs, "Sampling probabilities of the datasets, e.g. 0.7,0.3");
  sub->add_option("--dataset_split", f.split, "Split of folder datasets to train on");
  sub->add_option("--eval_dataset", f.eval_dataset,
                  "Evaluation dataset (default: the --eval_split of a folder dataset)");
  sub->add_option("--eval_split", f.eval_split, "Split used for evaluation");
  sub->add_option("--max_samples", f.max_samples, "Use at most this many records");
  sub->add_flag("--skip_bad_lines", f.skip_bad_lines, "Skip (and count) JSONL lines that do not parse");
  sub->add_option("--input_key", f.sft.input_key, "Key of the prompt (sft) or text (pt)");
  sub->add_option("--max_len", f.sft.max_len, "Longest sample in tokens (pt: block size)");
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
  sub->add_option("--max_steps", f.o.max_steps, "Stop after N optimizer steps (-1: all)");
  sub->add_option("--learning_rate", f.o.learning_rate, "Peak learning rate");
  sub->add_option("--lr_scheduler", f.o.lr_scheduler,
                  "constant, constant_with_warmup, linear, cosine, cosine_with_min_lr");
  sub->add_option("--lr_warmup_ratio", f.o.lr_warmup_ratio, "Warm-up share of all steps");
  sub->add_option("--min_lr_ratio", f.o.min_lr_ratio, "cosine_with_min_lr: floor as a share of the peak");
  sub->add_option("--adam_betas", f.adam_betas, "AdamW betas")->expected(2);
  sub->add_option("--l2", f.o.weight_decay, "AdamW weight decay");
  sub->add_option("--max_norm", f.o.max_norm, "Gradient clipping norm");
  sub->add_option("--seed", f.o.seed, "Seed of shuffling and blending");
  sub->add_flag("--packing_samples", f.o.packing_samples, "Pack several samples into one row");
  sub->add_flag("--gradient_checkpointing", f.o.gradient_checkpointing,
                "Recompute each layer in the backward to save memory");
  sub->add_option("--use_tensorboard", f.use_tensorboard, "Write TensorBoard event files into this folder");
  sub->add_option("--metrics_path", f.metrics_path, "Metrics JSONL (default: SAVE_PATH/metrics.jsonl)");
  sub->add_option("--lora_rank", f.lora_rank, "Train a LoRA adapter of this rank (0: full training)");
  sub->add_option("--lora_alpha", f.lora_alpha, "LoRA alpha (scale = alpha / rank)");
  sub->add_option("--lora_dropout", f.lora_dropout, "Dropout on the LoRA input");
  sub->add_option("--target_modules", f.target_modules,
                  "LoRA modules: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj or all-linear")
      ->delimiter(',');
  sub->add_option("--modules_to_save", f.modules_to_save, "Also train full copies of: embed_tokens,lm_head")
      ->delimiter(',');
  sub->add_option("-t,--threads", f.threads, "Threads (default: all cores)");
}

void run_train(TrainFlags& f) {
  set_num_threads(f.threads);
  if (!f.save_path.empty() && fs::exists(f.save_path) && !fs::is_directory(f.save_path))
    throw Error("--save_path " + f.save_path + ": exists and is not a folder");
  auto tokenizer = load_model_tokenizer(f.pretrain, "");
  if (!tokenizer) throw Error(f.pretrain + ": no tokenizer in the model folder");
  auto model = model::DecoderModel::load(f.pretrain);
  if (f.lora_rank > 0) {
    model::LoraConfig lc;
    lc.r = f.lora_rank;
    lc.alpha = f.lora_alpha;
    lc.dropout = f.lora_dropout;
    lc.target_modules = f.target_modules;
    lc.modules_to_save = f.modules_to_save;
    lc.base_model = f.pretrain;
    model->add_lora(lc, f.o.seed);
  } else if (!f.modules_to_save.empty()) {
    throw Error("--modules_to_save needs --lora_rank (full training already trains every module)");
  }

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
  f.o.max_len = f.sft.max_len;

  std::optional<tok::ChatTemplate> tmpl;
  if (f.sft.apply_chat_template)
    tmpl = tok::ChatTemplate::from_config(load_tokenizer_config(f.pretrain), io::arch_name(model->config().arch));
  if (f.reward_mode || f.dpo_mode) {
    f.pref.max_len = f.sft.max_len;
    train::SkipStats skipped;
    auto pairs = train::build_preference_pairs(records, *tokenizer, tmpl ? &*tmpl : nullptr, f.pref, &skipped);
    auto eval_pairs = train::build_preference_pairs(eval_records, *tokenizer, tmpl ? &*tmpl : nullptr, f.pref);
    if (skipped.total()) std::fprintf(stderr, "train data: %s\n", skipped.summary().c_str());
    std::fprintf(stderr, "preference pairs: %zu train, %zu eval\n", pairs.size(), eval_pairs.size());
    if (f.dpo_mode) {
      f.o.label = "train dpo";
      auto ref = model::DecoderModel::load(f.ref_pretrain.empty() ? f.pretrain : f.ref_pretrain);
      auto r = train::train_dpo(*model, *ref, pairs, eval_pairs, f.o, f.dpo);
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
  auto eval = build(eval_records);
  if (data.skipped.total()) std::fprintf(stderr, "train data: %s\n", data.skipped.summary().c_str());
  std::fprintf(stderr, "train data: %zu samples from %zu records; eval: %zu samples\n", data.samples.size(),
               records.size(), eval.samples.size());

  f.o.label = f.pretrain_mode ? "train pt" : "train sft";
  auto r = train::train_lm(*model, data.samples, eval.samples, f.o);
  std::printf("trained %lld steps; last train loss %.4f", static_cast<long long>(r.steps - r.first_step),
              r.step_losses.empty() ? std::nan("") : r.step_losses.back());
  if (!std::isnan(r.eval_loss)) std::printf("; eval loss %.4f (perplexity %.2f)", r.eval_loss, std::exp(r.eval_loss));
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
  s->add_option("--output_key", sft->sft.output_key, "Key of the response");
  s->add_option("--input_template", sft->sft.input_template,
                "Prompt template with one {}, e.g. \"User: {}\\nAssistant: \"");
  s->add_flag("--apply_chat_template", sft->sft.apply_chat_template, "Render prompts with the model's chat template");
  s->add_flag("--multiturn", sft->sft.multiturn, "Loss on every assistant turn of a conversation");
  s->callback([sft] { run_train(*sft); });

  auto rm = std::make_shared<TrainFlags>();
  rm->reward_mode = true;
  auto* r = train->add_subcommand("rm", "Reward model on preference pairs (score head, pairwise loss)");
  add_common(r, *rm);
  r->add_option("--prompt_key", rm->pref.prompt_key, "Key of the prompt (empty: chosen/rejected are whole dialogues)");
  r->add_option("--chosen_key", rm->pref.chosen_key, "Key of the preferred response");
  r->add_option("--rejected_key", rm->pref.rejected_key, "Key of the rejected response");
  r->add_option("--margin_key", rm->pref.margin_key, "Optional key of a per-pair margin");
  r->add_option("--input_template", rm->pref.input_template, "Prompt template with one {}");
  r->add_flag("--apply_chat_template", rm->pref.apply_chat_template, "Render prompts with the chat template");
  r->add_option("--loss", rm->rm_loss, "sigmoid (-log sigma(r_c - r_r - margin)) or logexp");
  r->callback([rm] {
    rm->sft.apply_chat_template = rm->pref.apply_chat_template;
    run_train(*rm);
  });

  auto dpo = std::make_shared<TrainFlags>();
  dpo->dpo_mode = true;
  auto* dp = train->add_subcommand("dpo", "DPO / cDPO / IPO on preference pairs against a frozen reference");
  add_common(dp, *dpo);
  dp->add_option("--ref_pretrain", dpo->ref_pretrain, "Reference model folder (default: --pretrain)");
  dp->add_option("--prompt_key", dpo->pref.prompt_key, "Key of the prompt");
  dp->add_option("--chosen_key", dpo->pref.chosen_key, "Key of the preferred response");
  dp->add_option("--rejected_key", dpo->pref.rejected_key, "Key of the rejected response");
  dp->add_option("--input_template", dpo->pref.input_template, "Prompt template with one {}");
  dp->add_flag("--apply_chat_template", dpo->pref.apply_chat_template, "Render prompts with the chat template");
  dp->add_option("--beta", dpo->dpo.beta, "DPO beta");
  dp->add_option("--label_smoothing", dpo->dpo.label_smoothing, "cDPO label smoothing");
  dp->add_flag("--ipo", dpo->dpo.ipo, "IPO loss instead of DPO");
  dp->add_option("--nll_loss_coef", dpo->dpo.nll_loss_coef, "Weight of the chosen responses' NLL");
  dp->callback([dpo] {
    dpo->sft.apply_chat_template = dpo->pref.apply_chat_template;
    run_train(*dpo);
  });
}

}  // namespace yak::cli
