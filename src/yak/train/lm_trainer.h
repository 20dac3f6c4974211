// The training loop of `yak train pt` and `yak train sft`: micro-batches from the BatchIterator,
// token-mean cross-entropy over each optimizer step's whole batch (gradient accumulation gives the
// same update as one big batch), clipping, AdamW with a schedule, evaluation, progress bar,
// metrics, resumable checkpoints and the final Hugging Face folder.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "yak/base/json.h"
#include "yak/dist/comm.h"
#include "yak/model/decoder.h"
#include "yak/train/dataset.h"
#include "yak/train/optimizer.h"

namespace yak::train {

struct LmTrainOptions {
  std::filesystem::path pretrain;   // --pretrain: the model folder (config, tokenizer copied from it)
  std::filesystem::path save_path;  // --save_path: final HF folder (empty: none)
  std::filesystem::path ckpt_path;  // --ckpt_path: training-state checkpoints
  int64_t save_steps = -1;          // --save_steps: checkpoint every N steps (-1: never)
  int max_ckpt_num = 3;             // --max_ckpt_num
  bool load_checkpoint = false;     // --load_checkpoint: resume from ckpt_path/latest
  int64_t logging_steps = 1;
  int64_t eval_steps = -1;       // -1: evaluate at the end only (when eval data exists)
  int64_t train_batch_size = 8;  // samples (rows) per optimizer step
  int64_t micro_train_batch_size = 1;
  int64_t max_epochs = 1;
  int64_t max_steps = -1;  // stop after this many steps of the schedule (-1: all)
  double learning_rate = 5e-6;
  std::string lr_scheduler = "cosine_with_min_lr";
  double lr_warmup_ratio = 0.03;
  double min_lr_ratio = 0.1;
  double adam_beta1 = 0.9, adam_beta2 = 0.95;
  double weight_decay = 0.0;  // --l2
  double max_norm = 1.0;      // --max_norm
  uint64_t seed = 42;
  bool packing_samples = false;
  bool gradient_checkpointing = false;  // --gradient_checkpointing
  int max_len = 2048;
  std::filesystem::path metrics_path;     // metrics.jsonl (empty: none)
  std::filesystem::path tensorboard_dir;  // --use_tensorboard
  std::filesystem::path plot_path;        // loss curve PNG (empty: none)
  std::string label = "train";            // progress-bar label
  // Knowledge distillation (`yak train kd`, OpenRLHF's KDTrainer): with a teacher of the same
  // vocabulary, loss = (1 - kd_coef) * cross-entropy + kd_coef * KD loss (teacher soft targets).
  model::DecoderModel* teacher = nullptr;
  double kd_coef = 0.4;
  bool quiet = false;  // no progress bar (tests)
  // Data parallelism (train/data_parallel.h): null trains on dist::world(), which is one process
  // unless an MPI launcher started this one. Only rank 0 shows progress, logs and saves.
  dist::Communicator* comm = nullptr;
  int zero_stage = 0;  // --zero_stage: 1 shards AdamW's moments over the ranks, 2 also the gradients
};

struct LmTrainResult {
  std::vector<double> step_losses;                       // mean token loss of every optimizer step run by this call
  int64_t first_step = 0, steps = 0;                     // steps are 0-based; first_step > 0 when resumed
  double eval_loss = 0;                                  // last evaluation (NaN when none)
  std::vector<std::pair<int64_t, double>> eval_history;  // (step, eval loss)
  double peak_memory_mb = 0;                             // most host memory in use during one step
};

// Makes the model trainable (its LoRA adapter, or every weight as f32 masters), with gradient
// checkpointing as the options say, and returns the AdamW over what trains.
AdamW prepare_training(model::DecoderModel& model, const LmTrainOptions& o);
// Writes o.save_path: the PEFT adapter when the model carries LoRA, else the whole HF folder.
void save_trained(const model::DecoderModel& model, const LmTrainOptions& o, const Json& config_extra = Json::object());

// A loss-curve PNG: each run's train losses (and eval points), runs placed one after another on
// the step axis (e.g. pretraining then SFT).
void plot_losses(const std::filesystem::path& path, const std::string& title,
                 const std::vector<std::pair<std::string, LmTrainResult>>& runs);

// Token-mean loss over samples (no gradient), in micro-batches.
double evaluate_loss(model::DecoderModel& model, std::span<const Sample> samples, int64_t micro_batch_size,
                     int max_len);

// Trains `model` (made trainable here) on `train`, evaluating on `eval` (may be empty).
LmTrainResult train_lm(model::DecoderModel& model, std::span<const Sample> train, std::span<const Sample> eval,
                       const LmTrainOptions& options);

}  // namespace yak::train
