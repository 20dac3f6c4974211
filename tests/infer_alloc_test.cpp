// Decoding a token allocates nothing on the heap once the engine is warm: tensors come from the
// buffer pool, Vars from their free list, the step's batch and the token vectors are reused. The
// test replaces malloc and friends in this executable with counting versions and compares whole
// generate() calls that differ only in how many tokens they decode: every allocation that is
// not per token (the KV cache, samplers, results) is the same in both, so equal counts mean
// zero allocations per decoded token.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>

#include "golden_models.h"
#include "yak/infer/engine.h"
#include "yak/ops/ops.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace {
std::atomic<int64_t> g_allocations{0};
}

extern "C" {
void* malloc(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
void* aligned_alloc(size_t align, size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(align, n);
}
void* memalign(size_t align, size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(align, n);
}
int posix_memalign(void** out, size_t align, size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  *out = __libc_memalign(align, n);
  return *out ? 0 : ENOMEM;
}
}

using namespace yak;

namespace {

int64_t allocations_of(infer::Engine& engine, const std::vector<infer::GenerateRequest>& reqs) {
  const int64_t before = g_allocations.load();
  auto out = engine.generate(reqs);
  const int64_t n = g_allocations.load() - before;
  for (auto& r : out) EXPECT_EQ(r.tokens.size(), static_cast<size_t>(reqs[0].max_new_tokens));
  return n;
}

std::vector<infer::GenerateRequest> requests(int64_t new_tokens, bool sample) {
  std::vector<infer::GenerateRequest> reqs(2);
  reqs[0].prompt = {5, 17, 33, 2, 90, 41, 7};
  reqs[1].prompt = {8, 8, 120, 64};
  for (auto& r : reqs) {
    r.max_new_tokens = new_tokens;
    r.ignore_eos = true;
    if (sample) {
      r.sampling.do_sample = true;
      r.sampling.temperature = 0.8f;
      r.sampling.top_k = 40;
      r.sampling.top_p = 0.9f;
      r.sampling.repetition_penalty = 1.1f;
      r.sampling.seed = 3;
    }
  }
  return reqs;
}

void expect_no_allocation_per_token(const std::string& name, bool sample, int threads) {
  ops::set_num_threads(threads);
  auto model = model::DecoderModel::load(golden::golden_models_dir() / name);
  infer::Engine engine(*model, nullptr);
  const auto short_run = requests(8, sample), long_run = requests(40, sample);
  // Warm-up: the pool learns the shapes, scratch buffers reach their size.
  allocations_of(engine, long_run);
  allocations_of(engine, short_run);
  const int64_t a = allocations_of(engine, short_run);
  const int64_t b = allocations_of(engine, long_run);
  std::printf("[alloc] %s, %s, %d threads: %lld allocations for 2 x 8 tokens, %lld for 2 x 40 tokens\n", name.c_str(),
              sample ? "sampled" : "greedy", threads, static_cast<long long>(a), static_cast<long long>(b));
  EXPECT_EQ(b, a) << "each of the 64 extra decoded tokens should allocate nothing";
  EXPECT_GT(a, 0) << "the counter must see the per-call allocations (KV cache, samplers)";
}

TEST(DecodeAllocations, NoneAfterWarmUpGreedy) {
  expect_no_allocation_per_token("qwen2_chat", false, 1);
  expect_no_allocation_per_token("qwen3_qknorm", false, 2);
}

TEST(DecodeAllocations, NoneAfterWarmUpSampled) {
  expect_no_allocation_per_token("llama_gqa_tied_f32", true, 2);
  expect_no_allocation_per_token("llama_bf16", true, 1);
}

}  // namespace
