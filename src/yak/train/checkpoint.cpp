#include "yak/train/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "yak/base/error.h"
#include "yak/base/mmap.h"
#include "yak/io/safetensors.h"
#include "yak/io/staging_dir.h"
#include "yak/tensor/half.h"

namespace yak::train {
namespace fs = std::filesystem;

namespace {

const char* kCopied[] = {"config.json",       "generation_config.json",
                         "tokenizer.json",    "tokenizer_config.json",
                         "tokenizer.model",   "vocab.json",
                         "merges.txt",        "special_tokens_map.json",
                         "added_tokens.json", "chat_template.jinja"};

Tensor convert(const Tensor& f32, DType to) {
  if (to == DType::F32) return f32;
  Tensor out = Tensor::empty(f32.shape(), to);
  auto* d = out.data<uint16_t>();
  const float* s = f32.data<float>();
  for (int64_t i = 0; i < f32.numel(); ++i) d[i] = to == DType::BF16 ? f32_to_bf16(s[i]) : f32_to_f16(s[i]);
  return out;
}

DType checkpoint_dtype(const std::string& torch_dtype) {
  if (torch_dtype == "bfloat16") return DType::BF16;
  if (torch_dtype == "float16") return DType::F16;
  return DType::F32;
}

std::vector<std::pair<std::string, Tensor>> named_tensors(const std::vector<model::NamedParam>& params, DType dtype) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& p : params) {
    const Tensor& v = p.var.value();
    out.emplace_back(p.name, v.dtype() == DType::F32 ? convert(v, dtype) : v);
  }
  return out;
}

}  // namespace

void save_hf_folder(const model::DecoderModel& model, const fs::path& source_dir, const fs::path& out,
                    const Json& config_extra) {
  io::StagingDir stage(out, io::StagingDir::Existing::Replace);
  for (const char* f : kCopied)
    if (fs::exists(source_dir / f))
      fs::copy_file(source_dir / f, stage.path() / f, fs::copy_options::overwrite_existing);
  if (!model.has_score_head() && !config_extra.empty()) {
    Json cfg = read_json_file(source_dir / "config.json");
    for (auto& [k, v] : config_extra.items()) cfg[k] = v;
    io::write_file_atomic(stage.path() / "config.json", cfg.dump(2));
  }
  if (model.has_score_head()) {
    // A reward model: the class transformers' AutoModelForSequenceClassification expects.
    Json cfg = read_json_file(source_dir / "config.json");
    for (auto& [k, v] : config_extra.items()) cfg[k] = v;
    std::string arch = io::arch_name(model.config().arch);
    arch.replace(arch.find("ForCausalLM"), 11, "ForSequenceClassification");
    cfg["architectures"] = {arch};
    Json id2label = Json::object(), label2id = Json::object();
    for (int64_t i = 0; i < model.config().num_labels; ++i) {
      id2label[std::to_string(i)] = "LABEL_" + std::to_string(i);
      label2id["LABEL_" + std::to_string(i)] = i;
    }
    cfg["id2label"] = id2label;
    cfg["label2id"] = label2id;
    io::write_file_atomic(stage.path() / "config.json", cfg.dump(2));
  }
  io::write_safetensors(stage.path() / "model.safetensors",
                        named_tensors(model.parameters(), checkpoint_dtype(model.config().torch_dtype)),
                        {{"format", "pt"}});
  stage.commit();
}

void save_lora_folder(const model::DecoderModel& model, const fs::path& source_dir, const fs::path& out,
                      const Json& config_extra) {
  io::StagingDir stage(out, io::StagingDir::Existing::Replace);
  model.save_lora(stage.path());
  if (!config_extra.empty()) io::write_file_atomic(stage.path() / kConfigExtraFile, config_extra.dump(2));
  for (const char* f : kCopied)
    if (std::string(f) != "config.json" && fs::exists(source_dir / f))
      fs::copy_file(source_dir / f, stage.path() / f, fs::copy_options::overwrite_existing);
  stage.commit();
}

void save_train_state(const fs::path& ckpt_dir, const model::DecoderModel& model, const AdamW& opt,
                      const TrainState& state, int max_keep) {
  // Sharded moments come together first (every rank takes part); rank 0 writes.
  const auto [m, v] = opt.full_moments();
  if (!opt.writes_checkpoints()) return;
  const std::string name = "global_step_" + std::to_string(state.step);
  io::StagingDir stage(ckpt_dir / name, io::StagingDir::Existing::Replace);
  const fs::path tmp = stage.path();
  // The trained tensors only: all weights in full training, the adapter (and saved modules) with LoRA.
  io::write_safetensors(tmp / "model.safetensors", named_tensors(opt.params(), DType::F32));
  std::vector<std::pair<std::string, Tensor>> moments;
  for (size_t k = 0; k < opt.params().size(); ++k) {
    moments.emplace_back("m." + opt.params()[k].name, m[k]);
    moments.emplace_back("v." + opt.params()[k].name, v[k]);
  }
  io::write_safetensors(tmp / "optimizer.safetensors", moments);
  Json j = {{"step", state.step}, {"epoch", state.data.epoch}, {"index", state.data.index},
            {"seed", state.seed}, {"adam_steps", opt.steps()}, {"extra", state.extra}};
  io::write_file_atomic(tmp / "state.json", j.dump(2));
  stage.commit();
  io::write_file_atomic(ckpt_dir / "latest", name + "\n");
  // Keep the newest max_keep checkpoints.
  std::vector<std::pair<int64_t, fs::path>> all;
  for (auto& e : fs::directory_iterator(ckpt_dir)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("global_step_", 0) == 0) {
      try {
        all.emplace_back(std::stoll(n.substr(12)), e.path());
      } catch (const std::exception&) {
      }
    }
  }
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + static_cast<size_t>(std::max(1, max_keep)) < all.size(); ++i) fs::remove_all(all[i].second);
}

std::optional<TrainState> load_train_state(const fs::path& ckpt_dir, model::DecoderModel& model, AdamW& opt) {
  if (!fs::exists(ckpt_dir / "latest")) return std::nullopt;
  std::string name = read_text_file(ckpt_dir / "latest");
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  const fs::path dir = ckpt_dir / name;
  if (name.find('/') != std::string::npos || !fs::is_directory(dir))
    throw Error((ckpt_dir / "latest").string() + ": names '" + name + "', which is not a checkpoint folder there");
  auto weights = io::SafetensorsFile::open(dir / "model.safetensors");
  auto moments = io::SafetensorsFile::open(dir / "optimizer.safetensors");
  Json j = read_json_file(dir / "state.json");
  // Full moments are read on every rank; a sharded optimizer keeps its share, so a checkpoint
  // resumes with any world size and ZeRO stage.
  for (size_t k = 0; k < opt.params().size(); ++k) {
    const auto& p = opt.params()[k];
    Tensor m = Tensor::empty(p.var.value().shape()), v = Tensor::empty(p.var.value().shape());
    for (auto [file, key, dst] : {std::tuple{weights.get(), p.name, &p.var.value()},
                                  std::tuple{moments.get(), "m." + p.name, &m}, std::tuple{moments.get(), "v." + p.name, &v}}) {
      if (!file->has(key))
        throw Error(file->path().string() + ": no tensor '" + key + "' (checkpoint of another model?)");
      Tensor t = file->get(key);
      if (t.shape() != dst->shape() || t.dtype() != DType::F32)
        throw Error(file->path().string() + ": tensor '" + key + "' has shape " + shape_str(t.shape()) +
                    " but the model needs f32 " + shape_str(dst->shape()));
      std::memcpy(dst->raw(), t.raw(), t.nbytes());
    }
    opt.set_moments(k, m, v);
  }
  const std::string where = (dir / "state.json").string();
  TrainState s;
  s.step = json_get<int64_t>(j, "step", where);
  s.data.epoch = json_get<uint64_t>(j, "epoch", where);
  s.data.index = json_get<uint64_t>(j, "index", where);
  s.seed = json_get<uint64_t>(j, "seed", where);
  s.extra = j.value("extra", Json::object());
  opt.set_steps(json_get<int64_t>(j, "adam_steps", where));
  return s;
}

}  // namespace yak::train
