// CUDA runtime facts for build_info() and cuda_available(). The Batch-OMP, K-SVD and patch
// kernels (one warp per signal, on the shared headers) land with the CUDA issue; compiling the
// shared kernel header here keeps it nvcc-clean in every build until then.
#include <cuda_runtime.h>

#include "sparseforge/omp_signal.hpp"

namespace sparseforge {
namespace cuda {

int runtime_version() {
  int version = 0;
  if (cudaRuntimeGetVersion(&version) != cudaSuccess) return -1;
  return version;
}

int driver_version() {
  int version = 0;
  if (cudaDriverGetVersion(&version) != cudaSuccess) return -1;
  return version;
}

// Number of usable devices; 0 when there is no driver or no GPU (never an error).
int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

}  // namespace cuda
}  // namespace sparseforge
