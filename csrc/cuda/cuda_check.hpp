// Host-side helpers of the CUDA launchers: errors become C++ exceptions (pybind11 turns them
// into Python RuntimeErrors), and a scoped device switch for pointers on another GPU.
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace sparseforge {
namespace cuda {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear a non-sticky error so the next call starts clean
    throw std::runtime_error(std::string("sparseforge CUDA: ") + what + " failed: " +
                             cudaGetErrorString(err));
  }
}

// Makes `device` current for the scope (the caller's arrays live there), then restores.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (device != previous_) check(cudaSetDevice(device), "cudaSetDevice");
    switched_ = device != previous_;
  }
  ~DeviceGuard() {
    if (switched_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool switched_ = false;
};

// Blocks of `threads` for a grid-stride loop over `n` items, capped (the loop covers the rest).
inline unsigned grid_blocks(long long n, int threads) {
  const long long blocks = (n + threads - 1) / threads;
  const long long cap = 1 << 20;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > cap ? cap : blocks));
}

}  // namespace cuda
}  // namespace sparseforge
