// A fixed pool of worker threads for data-parallel kernels (parallel_for over a range).
// One process-wide pool; its size is set once from -t N (default: all cores).
#pragma once
#include <cstddef>
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
// The same, handing each chunk the scratch (at least scratch_bytes, 64-byte aligned) of the
// thread that runs it. Every thread's scratch is sized before the work starts, so kernels need
// no allocation of their own, whichever thread takes which chunk.
void parallel_for_scratch(int64_t n, int64_t grain, size_t scratch_bytes,
                          FunctionRef<void(int64_t, int64_t, void*)> fn);

}  // namespace yak::ops::cpu
