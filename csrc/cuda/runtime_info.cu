// CUDA runtime facts for build_info(), cuda_available() and the argument checks of the
// bindings. None of these fails for lack of a GPU: they report 0 / -1 instead.
#include <cuda_runtime.h>

#include "launch.hpp"

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

int pointer_device(const void* ptr) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, ptr) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  const bool on_device =
      attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
  return on_device ? attributes.device : -1;
}

}  // namespace cuda
}  // namespace sparseforge
