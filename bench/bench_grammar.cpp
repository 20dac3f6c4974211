// Constrained decoding's cost per step: the vocabulary-trie walk that masks the logits, against
// checking every token of the vocabulary one by one (the naive rule), at states inside and
// outside JSON strings. Usage: bench_grammar [TOKENIZER_DIR] (default: the shared Qwen2 one).
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "bench_common.h"
#include "yak/infer/grammar.h"
#include "yak/infer/json_schema.h"
#include "yak/tokenizer/tokenizer.h"

using namespace yak;

int main(int argc, char** argv) {
  const std::filesystem::path dir =
      argc > 1 ? std::filesystem::path(argv[1]) : std::filesystem::path(YAK_SOURCE_DIR) / "../shared/data/tokenizers/qwen2";
  if (!std::filesystem::exists(dir)) {
    std::printf("skip: no tokenizer at %s\n", dir.c_str());
    return 0;
  }
  auto tok = tok::load_tokenizer(dir);
  auto t0 = std::chrono::steady_clock::now();
  auto vocab = std::make_shared<infer::VocabTrie>(*tok);
  std::printf("%s: trie of %zu nodes built in %.1f ms\n", tok->describe().c_str(), vocab->nodes().size(),
              bench::seconds_since(t0) * 1e3);
  auto g = infer::Grammar::parse(infer::json_object_gbnf());
  std::printf("%-28s %10s %10s %12s %8s %9s\n", "state (json_object)", "walk ms", "cached ms", "naive ms", "ratio",
              "allowed");
  for (const char* text : {"", "{", "{\"na", "{\"name\": ", "{\"name\": \"Ali", "{\"n\": [1, 2.5", "{\"n\": 3}"}) {
    infer::GrammarMatcher m({g, vocab});
    if (!m.accept_bytes(text)) return 1;
    std::vector<float> logits(static_cast<size_t>(tok->vocab_size()));
    size_t allowed = 0;
    // The first mask of a state walks the trie; later ones of the same state come from the cache.
    const int reps = 10;
    double mask_ms = 0;
    for (int r = 0; r < reps; ++r) {
      infer::GrammarMatcher fresh = m;  // before any mask: nothing cached
      t0 = std::chrono::steady_clock::now();
      allowed = fresh.mask(logits, {});
      mask_ms += bench::seconds_since(t0) * 1e3 / reps;
    }
    const infer::GrammarMatcher base = m;  // no masks cached: cheap to copy
    m.mask(logits, {});
    t0 = std::chrono::steady_clock::now();
    m.mask(logits, {});
    const double cached_ms = bench::seconds_since(t0) * 1e3;
    t0 = std::chrono::steady_clock::now();
    size_t naive = 0;
    for (int32_t id = 0; id < tok->vocab_size(); ++id) {
      infer::GrammarMatcher probe = base;
      naive += probe.accept_token(id);
    }
    const double naive_ms = bench::seconds_since(t0) * 1e3;
    std::printf("%-28s %10.2f %10.2f %12.1f %7.1fx %9zu%s\n", (std::string("'") + text + "'").c_str(), mask_ms,
                cached_ms, naive_ms,
                naive_ms / mask_ms, allowed, naive == allowed ? "" : " (MISMATCH)");
  }
  return 0;
}
