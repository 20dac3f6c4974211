// Physical bounds measured in the same run as a benchmark: vector FMA throughput (the peak of the
// instructions the f32 kernels use) and memory read bandwidth, on 1..N threads.
#pragma once
#include <chrono>
#include <vector>

#include "yak/ops/cpu/kernels.h"
#include "yak/ops/cpu/thread_pool.h"
#include "yak/ops/ops.h"
#include "yak/tensor/tensor.h"

namespace yak::bench {

inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// GFLOP/s of the active instruction set's FMA probe on `threads` threads (best of 5).
inline double fma_peak_gflops(int threads) {
  const auto& k = ops::cpu::kernels();
  const int64_t iters = 20'000'000;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<float> sink(static_cast<size_t>(threads));
    auto t0 = std::chrono::steady_clock::now();
    ops::cpu::parallel_for(threads, 1, [&](int64_t a, int64_t b) {
      for (int64_t i = a; i < b; ++i) sink[static_cast<size_t>(i)] = k.fma_probe(iters);
    });
    const double s = seconds_since(t0);
    best = std::max(best, static_cast<double>(threads) * static_cast<double>(iters) * 24.0 * k.lanes / s / 1e9);
  }
  return best;
}

// GFLOP/s of products on AMX tiles (the tile-product peak / `passes`: the tile products one
// product of the operands takes at the matmul precision, e.g. 3 for f32-accurate products with
// bf16 weights) on `threads` threads, best of 5; 0 without AMX.
inline double amx_peak_gflops(int threads, int passes) {
  const ops::cpu::AmxKernels* amx = ops::cpu::kernels().amx;
  if (!amx) return 0;
  const int64_t iters = 2'000'000;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<float> sink(static_cast<size_t>(threads));
    auto t0 = std::chrono::steady_clock::now();
    ops::cpu::parallel_for(threads, 1, [&](int64_t a, int64_t b) {
      for (int64_t i = a; i < b; ++i) sink[static_cast<size_t>(i)] = amx->probe(iters);
    });
    const double s = seconds_since(t0);
    best = std::max(best, static_cast<double>(threads) * static_cast<double>(iters) * 4 * 16 * 16 * 32 * 2 / s / 1e9);
  }
  return best / passes;
}

// GB/s of reading a 1 GiB buffer with vector loads, split over the pool's threads: the better of
// a plain sum (eight independent adds, prefetching) and ops::sum_squares, best of 5 each.
inline double read_bandwidth_gbs() {
  Tensor big = Tensor::empty({int64_t{1} << 28});
  ops::fill(big, 0.5f);
  const float* p = big.data<float>();
  const int64_t n = big.numel();
  const auto& k = ops::cpu::kernels();
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    volatile double s = ops::sum_squares(big);
    (void)s;
    best = std::max(best, static_cast<double>(big.nbytes()) / seconds_since(t0) / 1e9);
    std::vector<float> sink(64);
    t0 = std::chrono::steady_clock::now();
    ops::cpu::parallel_for(
        n, 1 << 20, [&](int64_t a, int64_t b) { sink[static_cast<size_t>(a * 63 / n)] += k.read_probe(p + a, b - a); });
    best = std::max(best, static_cast<double>(big.nbytes()) / seconds_since(t0) / 1e9);
  }
  return best;
}

}  // namespace yak::bench
