// libyak_mpi.so: yak's collectives on MPI (the table in src/yak/dist/mpi_api.h). The only file
// compiled against mpi.h, so yak itself needs no MPI runtime unless a launcher starts it. Counts
// above MPI's int range go in chunks.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "yak/dist/mpi_api.h"

namespace {

constexpr size_t kChunk = size_t{1} << 30;
bool g_started_here = false;

int init(int* rank, int* size) {
  int ready = 0;
  MPI_Initialized(&ready);
  if (!ready) {
    int provided = 0;
    if (int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided)) return rc;
    g_started_here = true;
  }
  // Errors come back as codes, and yak turns them into messages naming the rank.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  return MPI_Comm_size(MPI_COMM_WORLD, size);
}

int finalize() {
  int done = 0;
  MPI_Finalized(&done);
  if (g_started_here && !done) return MPI_Finalize();
  return 0;
}

template <typename T>
int all_reduce(T* data, size_t n, MPI_Datatype type, MPI_Op op) {
  for (size_t off = 0; off < n; off += kChunk) {
    const int count = static_cast<int>(std::min(kChunk, n - off));
    if (int rc = MPI_Allreduce(MPI_IN_PLACE, data + off, count, type, op, MPI_COMM_WORLD)) return rc;
  }
  return 0;
}

int all_reduce_sum_f32(float* data, size_t n) {
  return all_reduce(data, n, MPI_FLOAT, MPI_SUM);
}
int all_reduce_sum_f64(double* data, size_t n) {
  return all_reduce(data, n, MPI_DOUBLE, MPI_SUM);
}
int all_reduce_max_f64(double* data, size_t n) {
  return all_reduce(data, n, MPI_DOUBLE, MPI_MAX);
}

int reduce_scatter_sum_f32(const float* send, float* recv, size_t n) {
  if (n > static_cast<size_t>(INT_MAX)) return MPI_ERR_COUNT;
  return MPI_Reduce_scatter_block(send, recv, static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

int all_gather_f32(const float* send, float* recv, size_t n) {
  if (n > static_cast<size_t>(INT_MAX)) return MPI_ERR_COUNT;
  return MPI_Allgather(send, static_cast<int>(n), MPI_FLOAT, recv, static_cast<int>(n), MPI_FLOAT, MPI_COMM_WORLD);
}

int broadcast(void* data, size_t bytes, int root) {
  auto* p = static_cast<char*>(data);
  for (size_t off = 0; off < bytes; off += kChunk) {
    const int count = static_cast<int>(std::min(kChunk, bytes - off));
    if (int rc = MPI_Bcast(p + off, count, MPI_BYTE, root, MPI_COMM_WORLD)) return rc;
  }
  return 0;
}

int barrier() {
  return MPI_Barrier(MPI_COMM_WORLD);
}

void abort_job(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
}

const char* library_version() {
  static char text[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
  int len = 0;
  MPI_Get_library_version(text, &len);
  return text;
}

const YakMpiApi kApi = {kYakMpiAbi,
                        init,
                        finalize,
                        all_reduce_sum_f32,
                        all_reduce_sum_f64,
                        all_reduce_max_f64,
                        reduce_scatter_sum_f32,
                        all_gather_f32,
                        broadcast,
                        barrier,
                        abort_job,
                        library_version};

}  // namespace

extern "C" __attribute__((visibility("default"))) const YakMpiApi* yak_mpi_api() {
  return &kApi;
}
