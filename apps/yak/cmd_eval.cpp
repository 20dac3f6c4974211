// yak eval ppl: sliding-window perplexity of a model on a text file (and, against a reference
// model, the KL divergence and top-1 agreement of their next-token distributions).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

#include "common.h"
#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/base/progress.h"
#include "yak/infer/longbench.h"
#include "yak/infer/multiple_choice.h"
#include "yak/infer/perplexity.h"
#include "yak/io/safetensors.h"
#include "yak/ops/ops.h"

namespace yak::cli {

void register_eval(CLI::App& app) {
  struct Flags {
    std::string model, file, reference, tokenizer, json, alpha;
    int64_t ctx = 2048, stride = 512;
    int threads = 0;
    bool add_bos = false;
  };
  auto f = std::make_shared<Flags>();
  auto* ev = app.add_subcommand("eval", "Evaluate a model");
  ev->require_subcommand(1);
  auto* pp = ev->add_subcommand("ppl", "Sliding-window perplexity of a text (transformers' window scheme)");
  pp->add_option("-m,--model", f->model, "Model folder or .gguf file")->required();
  pp->add_option("-f,--file", f->file, "UTF-8 text file")->required();
  pp->add_option("--ctx", f->ctx, "Tokens per window")->capture_default_str();
  pp->add_option("--stride", f->stride,
                 "Tokens between window starts (each window scores the tokens no earlier one did)")
      ->capture_default_str();
  pp->add_option("--kl-divergence", f->reference,
                 "Reference model (folder or .gguf, same vocabulary): also report mean KL(reference || model) and "
                 "top-1 agreement over the scored tokens");
  pp->add_option("--tokenizer", f->tokenizer, "Tokenizer path (default: the model's)");
  pp->add_flag("--add-bos", f->add_bos, "Put the tokenizer's special prefix (BOS) before the text");
  pp->add_option("--json", f->json, "Write the result and the per-window values to this JSON file");
  pp->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  add_ntk_alpha_flag(*pp, f->alpha);
  pp->callback([f] {
    ops::set_num_threads(f->threads);
    auto model = model::DecoderModel::load(f->model);
    apply_ntk_alpha(*model, f->alpha);
    auto tok = load_model_tokenizer(f->model, f->tokenizer);
    if (!tok) throw Error(f->model + ": no tokenizer found; give --tokenizer");
    const auto ids = tok->encode(read_input(f->file), f->add_bos);
    std::unique_ptr<model::DecoderModel> ref;
    if (!f->reference.empty()) ref = model::DecoderModel::load(f->reference);
    infer::PerplexityOptions o;
    o.ctx = f->ctx;
    o.stride = f->stride;
    std::optional<ProgressBar> bar;
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = infer::perplexity(*model, ids, o, ref.get(), [&](int64_t done, int64_t total) {
      if (!bar) bar.emplace("scoring", total);
      if (done % 64 == 0 || done == total) bar->update(done);
    });
    if (bar) bar->finish();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("tokens %zu, scored %lld in %zu windows (ctx %lld, stride %lld)\n", ids.size(),
                static_cast<long long>(r.scored), r.windows.size(), static_cast<long long>(o.ctx),
                static_cast<long long>(o.stride));
    std::printf("perplexity %.6f (mean nll %.6f nats)\n", r.ppl, r.nll_sum / static_cast<double>(r.scored));
    if (r.has_reference)
      std::printf("reference perplexity %.6f; KL(reference || model) %.6f nats per token; top-1 agreement %.2f%%\n",
                  r.reference_ppl, r.kl_mean, 100.0 * r.top1_agreement);
    std::printf("%.1f tokens/s (%.1f s)\n", static_cast<double>(r.scored) / secs, secs);
    if (!f->json.empty()) {
      Json windows = Json::array();
      for (const auto& w : r.windows)
        windows.push_back({{"begin", w.begin},
                           {"end", w.end},
                           {"scored", w.scored},
                           {"nll", w.nll},
                           {"ppl", w.scored ? std::exp(w.nll / static_cast<double>(w.scored)) : 0.0}});
      Json j = {{"model", f->model}, {"file", f->file},      {"tokens", ids.size()},
                {"ctx", o.ctx},      {"stride", o.stride},   {"scored", r.scored},
                {"ppl", r.ppl},      {"nll_sum", r.nll_sum}, {"tokens_per_s", static_cast<double>(r.scored) / secs},
                {"windows", windows}};
      if (r.has_reference) {
        j["reference"] = f->reference;
        j["reference_ppl"] = r.reference_ppl;
        j["kl_mean"] = r.kl_mean;
        j["top1_agreement"] = r.top1_agreement;
      }
      io::write_file_atomic(f->json, j.dump(1) + "\n");
    }
  });

  struct McFlags {
    std::string model, tokenizer, task = "cmmlu", data, split, json;
    std::vector<std::string> subjects;
    int shots = 5, threads = 0, max_new_tokens = 16;
    int64_t max_length = 2048;
    bool generate = false, no_bos = false;
  };
  auto m = std::make_shared<McFlags>();
  auto* mc = ev->add_subcommand("mc", "Multiple-choice benchmarks: CMMLU, C-Eval, MMLU with their official prompts");
  mc->add_option("-m,--model", m->model, "Model folder or .gguf file")->required();
  mc->add_option("--task", m->task, "cmmlu (default), ceval or mmlu")->capture_default_str();
  mc->add_option("--data", m->data, "The benchmark's folder (dev/ and test/, or val/ for C-Eval)")->required();
  mc->add_option("--shots", m->shots, "Solved dev examples before each question (default 5)")->check(CLI::Range(0, 64));
  mc->add_option("--subjects", m->subjects, "Only these subjects (file stems; repeatable or comma-separated)")
      ->delimiter(',');
  mc->add_option("--split", m->split, "Split to score (default: test; C-Eval: val, the split with answers)");
  mc->add_option("--max_length", m->max_length, "Prompt tokens at most; shots are dropped to fit (default 2048)");
  mc->add_flag("--generate", m->generate,
               "Read the letter the model writes (greedy, CMMLU's extraction rules) instead of comparing the "
               "logits of A/B/C/D");
  mc->add_option("--max-new-tokens", m->max_new_tokens, "With --generate: tokens generated per answer (default 16)");
  mc->add_flag("--no-bos", m->no_bos, "Tokenize prompts without the tokenizer's special prefix");
  mc->add_option("--tokenizer", m->tokenizer, "Tokenizer path (default: the model's)");
  mc->add_option("--json", m->json, "Write per-subject, per-category and overall accuracy (and predictions) to JSON");
  mc->add_option("-t,--threads", m->threads, "Threads (default: all cores)");
  mc->callback([m] {
    ops::set_num_threads(m->threads);
    const auto task = infer::parse_mc_task(m->task);
    const auto subjects = infer::load_mc_subjects(task, m->data, m->split, m->subjects);
    auto model = model::DecoderModel::load(m->model);
    auto tok = load_model_tokenizer(m->model, m->tokenizer);
    if (!tok) throw Error(m->model + ": no tokenizer found; give --tokenizer");
    infer::McOptions o;
    o.shots = m->shots;
    o.max_tokens = m->max_length;
    o.generate = m->generate;
    o.max_new_tokens = m->max_new_tokens;
    o.add_bos = !m->no_bos;
    std::optional<ProgressBar> bar;
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = infer::run_mc(*model, *tok, task, subjects, o, [&](int64_t done, int64_t total) {
      if (!bar) bar.emplace("questions", total);
      bar->update(done);
    });
    if (bar) bar->finish();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-40s %9s %8s\n", "subject", "questions", "accuracy");
    for (const auto& s : r.subjects)
      std::printf("%-40s %9lld %7.2f%%\n", s.name.c_str(), static_cast<long long>(s.total), 100 * s.accuracy());
    std::printf("\n");
    for (const auto& [c, a] : r.categories) std::printf("%-40s %17.2f%%\n", c.c_str(), 100 * a);
    std::printf("%-40s %17.2f%%   (%s, %d-shot, %s; mean over %zu subjects, %lld questions, %.1f s)\n", "average",
                100 * r.average, infer::mc_task_name(task), m->shots, m->generate ? "generated letter" : "A-D logits",
                r.subjects.size(), static_cast<long long>(r.questions), secs);
    int64_t unanswered = 0;
    for (const auto& s : r.subjects) unanswered += s.unanswered;
    if (m->generate) std::printf("no letter could be read in %lld answers (counted wrong)\n", static_cast<long long>(unanswered));
    if (!m->json.empty()) {
      Json subj = Json::object(), cats = Json::object();
      for (const auto& s : r.subjects)
        subj[s.name] = {{"accuracy", s.accuracy()}, {"correct", s.correct}, {"total", s.total}, {"unanswered", s.unanswered}};
      for (const auto& [c, a] : r.categories) cats[c] = a;
      Json j = {{"model", m->model}, {"task", infer::mc_task_name(task)}, {"shots", m->shots},
                {"mode", m->generate ? "generate" : "logits"}, {"average", r.average}, {"categories", cats},
                {"subjects", subj}, {"predictions", r.predictions}};
      io::write_file_atomic(m->json, j.dump(1) + "\n");
    }
  });

  struct LbFlags {
    std::string model, tokenizer, chat_template = "none", prompt_config, maxlen_config, json, dataset, alpha, jieba;
    std::vector<std::string> data;
    int64_t max_len = 3500;
    int threads = 0;
    bool e = false;
  };
  auto l = std::make_shared<LbFlags>();
  auto* lb = ev->add_subcommand("longbench", "LongBench: long-context answers and LongBench's scorers");
  lb->add_option("--data", l->data, "LongBench JSONL file(s) (input, context, answers, all_classes, dataset, length)")
      ->required();
  lb->add_option("-m,--model", l->model, "Model to answer with (without it: score each record's 'pred' field)");
  lb->add_option("--dataset", l->dataset, "Dataset name for records without a 'dataset' field");
  lb->add_option("--prompt-config", l->prompt_config, "LongBench's config/dataset2prompt.json (default: {context}\\n\\n{input})");
  lb->add_option("--maxlen-config", l->maxlen_config, "LongBench's config/dataset2maxlen.json (default: 128 new tokens)");
  lb->add_option("--max_len", l->max_len, "Prompt tokens at most; longer prompts keep their first and last halves (default 3500)");
  lb->add_option("--chat-template", l->chat_template,
                 "none (default), auto or FILE.jinja: wrap prompts as a user turn (not on trec, triviaqa, samsum, lsht, lcc, "
                 "repobench-p, as LongBench)");
  lb->add_option("--tokenizer", l->tokenizer, "Tokenizer path (default: the model's)");
  lb->add_option("--json", l->json, "Write per-dataset scores and the predictions to JSON");
  lb->add_option("--jieba", l->jieba,
                 "jieba's package folder (dict.txt, finalseg/): Chinese answers scored over its words as LongBench "
                 "does (default: $YAK_JIEBA_DIR or Debian's python3-jieba; without one, characters)");
  lb->add_flag("--e", l->e,
               "LongBench-E: also score each dataset by length bucket (0-4k, 4-8k, 8k+ of the records' 'length')");
  lb->add_option("-t,--threads", l->threads, "Threads (default: all cores)");
  add_ntk_alpha_flag(*lb, l->alpha);
  lb->callback([l] {
    ops::set_num_threads(l->threads);
    std::vector<infer::LbRecord> recs;
    for (const auto& d : l->data) {
      auto part = infer::read_longbench(d, l->dataset);
      recs.insert(recs.end(), part.begin(), part.end());
    }
    const auto t0 = std::chrono::steady_clock::now();
    if (!l->model.empty()) {
      auto model = model::DecoderModel::load(l->model);
      apply_ntk_alpha(*model, l->alpha);
      auto tok = load_model_tokenizer(l->model, l->tokenizer);
      if (!tok) throw Error(l->model + ": no tokenizer found; give --tokenizer");
      infer::LbOptions o;
      o.max_len = l->max_len;
      Json prompts, maxlens;
      if (!l->prompt_config.empty()) prompts = read_json_file(l->prompt_config);
      else std::fprintf(stderr, "yak: no --prompt-config: prompts are {context}\\n\\n{input}, not LongBench's\n");
      if (!l->maxlen_config.empty()) maxlens = read_json_file(l->maxlen_config);
      o.prompt_format = [&](const std::string& d) {
        if (!prompts.is_object()) return std::string("{context}\n\n{input}");
        if (!prompts.contains(d) || !prompts[d].is_string())
          throw Error(l->prompt_config + ": no prompt for dataset '" + d + "'");
        return prompts[d].get<std::string>();
      };
      o.max_new_tokens = [&](const std::string& d) {
        if (!maxlens.is_object()) return 128;
        if (!maxlens.contains(d) || !maxlens[d].is_number_integer())
          throw Error(l->maxlen_config + ": no answer length for dataset '" + d + "'");
        return maxlens[d].get<int>();
      };
      std::optional<tok::ChatTemplate> tmpl;
      if (l->chat_template != "none") tmpl = pick_chat_template(l->chat_template, l->model, model->config());
      o.chat = tmpl ? &*tmpl : nullptr;
      std::optional<ProgressBar> bar;
      infer::longbench_generate(*model, *tok, recs, o, [&](int64_t done, int64_t total) {
        if (!bar) bar.emplace("answers", total);
        bar->update(done);
      });
      if (bar) bar->finish();
    }
    // jieba's dictionary (~0.4 s to load) only when some record is scored over Chinese words, or
    // when --jieba names one (so a wrong folder is always reported).
    const auto jieba_dir = l->jieba.empty() ? tok::Jieba::find_installed() : std::optional<std::filesystem::path>(l->jieba);
    const bool any_zh = std::any_of(recs.begin(), recs.end(), [](const infer::LbRecord& r) {
      const auto m = infer::longbench_metric(r.dataset);
      return m == infer::LbMetric::QaF1Zh || m == infer::LbMetric::RougeZh;
    });
    std::unique_ptr<tok::Jieba> zh;
    if (jieba_dir && (any_zh || !l->jieba.empty())) zh = tok::Jieba::load(*jieba_dir);
    if (any_zh && !zh)
      std::fprintf(stderr, "yak: jieba not found (apt-get install python3-jieba, or --jieba DIR): Chinese answers are "
                           "scored over characters, not LongBench's jieba words\n");
    std::map<std::string, std::pair<double, int64_t>> by;  // dataset -> (sum, count)
    std::map<std::string, std::map<std::string, std::pair<double, int64_t>>> by_e;  // dataset -> bucket -> (sum, count)
    Json preds = Json::array();
    for (const auto& r : recs) {
      const double s = infer::longbench_record_score(r.dataset, r.prediction, r.answers, r.all_classes, zh.get());
      by[r.dataset].first += s;
      by[r.dataset].second += 1;
      auto& b = by_e[r.dataset][infer::longbench_e_bucket(r.length)];
      b.first += s;
      b.second += 1;
      preds.push_back({{"dataset", r.dataset}, {"pred", r.prediction}, {"answers", r.answers}, {"score", s}});
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-24s %-16s %8s %8s\n", "dataset", "metric", "records", "score");
    // LongBench rounds each mean to 2 decimals of a percentage.
    auto percent = [](const std::pair<double, int64_t>& v) {
      return std::round(10000.0 * v.first / static_cast<double>(v.second)) / 100.0;
    };
    Json scores = Json::object();
    double sum = 0;
    for (const auto& [d, v] : by) {
      const double score = percent(v);
      std::printf("%-24s %-16s %8lld %8.2f\n", d.c_str(), infer::longbench_metric_name(infer::longbench_metric(d)),
                  static_cast<long long>(v.second), score);
      scores[d] = score;
      sum += score;
    }
    std::printf("%-24s %-16s %8zu %8.2f   (%.1f s)\n", "average", "", recs.size(), by.empty() ? 0.0 : sum / by.size(), secs);
    Json out = {{"scores", scores}, {"predictions", preds}, {"chinese_words", jieba_dir ? "jieba" : "characters"}};
    if (l->e) {
      // LongBench-E: a bucket without records has no score (eval.py's mean of nothing is NaN).
      std::printf("\n%-24s %10s %10s %10s\n", "LongBench-E", "0-4k", "4-8k", "8k+");
      Json se = Json::object();
      for (const auto& [d, buckets] : by_e) {
        std::printf("%-24s", d.c_str());
        for (const char* name : infer::kLongBenchEBuckets) {
          auto it = buckets.find(name);
          if (it == buckets.end()) {
            std::printf(" %10s", "-");
            se[d][name] = nullptr;
          } else {
            const double score = percent(it->second);
            std::printf(" %10.2f", score);
            se[d][name] = score;
          }
        }
        std::printf("\n");
      }
      out["scores_e"] = se;
    }
    if (!l->json.empty()) io::write_file_atomic(l->json, out.dump(1) + "\n");
  });
}

}  // namespace yak::cli
