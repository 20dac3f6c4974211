// Data parallelism for every trainer: each optimizer step's global batch is the same on every
// rank (the loaders draw it from the seed, whatever the world size); micro-batch i of the step
// runs on rank i % size; the gradients are summed over the ranks before clipping, so every rank
// applies the same update and the weights stay identical (and equal to one process's, up to the
// order of the float sums).
#pragma once
#include <cstdint>
#include <vector>

#include "yak/dist/comm.h"
#include "yak/model/decoder.h"
#include "yak/train/optimizer.h"

namespace yak::train {

// The communicator a trainer uses: `given`, or the process's world.
dist::Communicator& communicator_or_world(dist::Communicator* given);

// Does this rank run micro-batch `index` of a step?
inline bool runs_micro_batch(const dist::Communicator& comm, int64_t index) {
  return index % comm.size() == comm.rank();
}

// Every rank must run at least one micro-batch a step (so each reports the same statistics):
// throws yak::Error naming the flags when a step has fewer micro-batches than ranks.
void check_micro_batches_cover_ranks(const dist::Communicator& comm, int64_t micro_batches_per_step);

// Sums the gradients of `params` over the ranks, in place, in buckets of at most `bucket_floats`
// values. A parameter that has a gradient on any rank gets one on every rank (zeros where it had
// none); one that has none anywhere stays without, as in one process.
void all_reduce_gradients(dist::Communicator& comm, const std::vector<model::NamedParam>& params,
                          size_t bucket_floats = size_t{1} << 24);

// The gradients of opt's parameters summed over the ranks as its ZeRO stage says — all-reduced
// (stages 0 and 1), or reduce-scattered so each rank holds the sums of the elements it updates
// (stage 2) — then clipped to max_norm (<= 0: measured only). Returns the global norm before
// clipping.
double reduce_and_clip_gradients(dist::Communicator& comm, AdamW& opt, double max_norm);

}  // namespace yak::train
