// A fixed pool of worker threads for data-parallel kernels (parallel_for over a range).
// One process-wide pool; its size is set once from -t N (default: all cores).
#pragma once
#include <cstdint>

#include "yak/base/function_ref.h"

namespace yak::ops::cpu {

// Sets the number of threads used by parallel_for (and OpenBLAS). n <= 0 means all cores.
void set_num_threads(int n);
int num_threads();

// Calls fn(begin, end) on disjoint chunks covering [0, n), on up to num_threads() threads.
// Chunks hold at least `grain` items. Blocks until all chunks finished; never allocates. Not
// reentrant: nested calls run serially on the calling thread.
void parallel_for(int64_t n, int64_t grain, FunctionRef<void(int64_t, int64_t)> fn);

}  // namespace yak::ops::cpu
