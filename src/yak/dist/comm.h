// The communicator every distributed part of yak talks to (data-parallel training, sharded
// optimizer state, rollouts across ranks): rank, size and the collectives, over host memory.
// Nothing above this layer calls MPI.
//
// world() is the process's communicator: when the process was started by an MPI launcher
// (mpirun / mpiexec / srun set the rank variables), the MPI implementation in the plugin
// libyak_mpi.so (built when Open MPI's development files are present, loaded at run time);
// otherwise a single process of rank 0, with no MPI runtime needed at all. A launcher without the
// plugin is an error that says so, never a silent single-rank run.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace yak::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place: every rank ends with the elementwise sum over ranks (the same bits on every rank).
  virtual void all_reduce_sum(float* data, size_t n) = 0;
  virtual void all_reduce_sum(double* data, size_t n) = 0;
  virtual void all_reduce_max(double* data, size_t n) = 0;
  // send holds size() * n values; rank r receives the sum over ranks of send[r * n, (r + 1) * n).
  virtual void reduce_scatter_sum(const float* send, float* recv, size_t n) = 0;
  // recv (size() * n values) gets every rank's n values in rank order.
  virtual void all_gather(const float* send, float* recv, size_t n) = 0;
  // Bytes of rank `root` copied to every rank.
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // Ends the whole job now with this exit code (a failing rank takes the others down with it).
  [[noreturn]] virtual void abort(int code) = 0;
  // "mpi" or "single".
  virtual std::string name() const = 0;

  bool is_root() const { return rank() == 0; }
  // Every rank's bytes, in rank order, on every rank (sizes may differ): one broadcast of each
  // rank's size and bytes in turn.
  std::vector<std::string> all_gather_bytes(const std::string& mine);
};

// The single-process communicator: every collective is the identity.
std::unique_ptr<Communicator> make_single();

// True when an MPI launcher started this process (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK,
// or SLURM_PROCID under srun --mpi).
bool launched_by_mpi();

// The process's communicator, created on first use (MPI_Init then). Throws yak::Error when the
// process was launched by MPI but the plugin cannot be loaded.
Communicator& world();

// Finalizes MPI when world() started it (safe to call when it did not; called at exit too).
void shutdown();

// "rank R: " when the world has several ranks, else "" (for messages).
std::string rank_prefix();

// Sums of several doubles at once (losses, counts): a convenience over all_reduce_sum.
std::vector<double> sum_over_ranks(Communicator& comm, std::vector<double> values);

}  // namespace yak::dist
