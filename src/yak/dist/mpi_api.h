// The C table between yak's dist layer and the MPI plugin (src/plugins/mpi/yak_mpi.cpp): the
// plugin is the only code compiled against mpi.h; yak opens it with dlopen when an MPI launcher
// started the process. Every function returns an MPI error code (0 = success).
#pragma once
#include <cstddef>

extern "C" {

struct YakMpiApi {
  int abi_version;  // kYakMpiAbi
  int (*init)(int* rank, int* size);
  int (*finalize)();
  int (*all_reduce_sum_f32)(float* data, size_t n);
  int (*all_reduce_sum_f64)(double* data, size_t n);
  int (*all_reduce_max_f64)(double* data, size_t n);
  int (*reduce_scatter_sum_f32)(const float* send, float* recv, size_t n);
  int (*all_gather_f32)(const float* send, float* recv, size_t n);
  int (*broadcast)(void* data, size_t bytes, int root);
  int (*barrier)();
  void (*abort)(int code);
  // The MPI library's own version string (MPI_Get_library_version), for messages.
  const char* (*library_version)();
};

// The plugin's one exported symbol.
using YakMpiApiFn = const YakMpiApi* (*)();
inline constexpr int kYakMpiAbi = 1;
inline constexpr const char* kYakMpiApiSymbol = "yak_mpi_api";

}  // extern "C"
