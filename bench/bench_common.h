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

// GFLOP/s of f32-accurate products on AMX tiles (tile-product peak / bf16 parts per product) on
// `threads` threads, best of 5; 0 without AMX.
inline double amx_peak_gflops(int threads) {
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
  return best / amx->parts;
}

// GB/s of reading a 1 GiB buffer with the same vector loads the kernels use (ops::sum_squares,
// split over the pool's threads), best of 5.
inline double read_bandwidth_gbs() {
  Tensor big = Tensor::empty({int64_t{1} << 28});
  ops::fill(big, 0.5f);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    volatile double s = ops::sum_squares(big);
    (void)s;
    best = std::max(best, static_cast<double>(big.nbytes()) / seconds_since(t0) / 1e9);
  }
  return best;
}

}  // namespace yak::bench
