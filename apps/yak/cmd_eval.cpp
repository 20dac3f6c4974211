// yak eval ppl: sliding-window perplexity of a model on a text file (and, against a reference
// model, the KL divergence and top-1 agreement of their next-token distributions).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "common.h"
#include "yak/base/error.h"
#include "yak/base/json.h"
#include "yak/base/progress.h"
#include "yak/infer/perplexity.h"
#include "yak/io/safetensors.h"
#include "yak/ops/ops.h"

namespace yak::cli {

void register_eval(CLI::App& app) {
  struct Flags {
    std::string model, file, reference, tokenizer, json;
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
  pp->callback([f] {
    ops::set_num_threads(f->threads);
    auto model = model::DecoderModel::load(f->model);
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
}

}  // namespace yak::cli
