// Patch extraction (one thread per patch element) and gather-form aggregation (one thread per
// output value, summing its covering patches in a fixed order: deterministic, no atomics),
// both on the per-element bodies of sparseforge/patches.hpp.
#include "cuda_check.hpp"
#include "launch.hpp"
#include "sparseforge/patches.hpp"

namespace sparseforge {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void extract_kernel(const T* image, index_t W, index_t C, index_t ph, index_t pw,
                               const long long* positions, index_t total, T* out) {
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t e = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += stride) {
    out[e] = image[patch_element_source(e, positions, W, C, ph, pw)];
  }
}

template <class T>
__global__ void aggregate_kernel(const T* patches, const T* weights, index_t H, index_t W,
                                 index_t C, index_t ph, index_t pw, index_t step, index_t rows,
                                 index_t cols, bool normalise, T* out) {
  const index_t stride = static_cast<index_t>(gridDim.x) * blockDim.x;
  for (index_t e = static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       e < H * W * C; e += stride) {
    out[e] = aggregate_pixel(patches, weights, H, W, C, ph, pw, step, rows, cols, normalise,
                             e / (W * C), e / C % W, e % C);
  }
}

template <class T>
void extract(const T* image, index_t W, index_t C, index_t ph, index_t pw,
             const long long* positions, index_t n_patches, T* out, cudaStream_t stream) {
  const index_t total = n_patches * ph * pw * C;
  if (total <= 0) return;
  extract_kernel<T><<<grid_blocks(total, kThreads), kThreads, 0, stream>>>(
      image, W, C, ph, pw, positions, total, out);
  check(cudaGetLastError(), "launching the patch extraction kernel");
}

template <class T>
void aggregate(const T* patches, const T* weights, index_t H, index_t W, index_t C, index_t ph,
               index_t pw, index_t step, bool normalise, T* out, cudaStream_t stream) {
  if (H * W * C <= 0) return;
  const index_t rows = grid_count(H, ph, step), cols = grid_count(W, pw, step);
  aggregate_kernel<T><<<grid_blocks(H * W * C, kThreads), kThreads, 0, stream>>>(
      patches, weights, H, W, C, ph, pw, step, rows, cols, normalise, out);
  check(cudaGetLastError(), "launching the patch aggregation kernel");
}

}  // namespace

#define SF_PATCH_LAUNCHERS(T)                                                                \
  void extract_patches(const T* image, index_t W, index_t C, index_t ph, index_t pw,         \
                       const long long* positions, index_t n_patches, T* out,                \
                       cudaStream_t stream) {                                                 \
    extract(image, W, C, ph, pw, positions, n_patches, out, stream);                         \
  }                                                                                           \
  void aggregate_patches(const T* patches, const T* weights, index_t H, index_t W, index_t C, \
                         index_t ph, index_t pw, index_t step, bool normalise, T* out,        \
                         cudaStream_t stream) {                                               \
    aggregate(patches, weights, H, W, C, ph, pw, step, normalise, out, stream);              \
  }
SF_PATCH_LAUNCHERS(float)
SF_PATCH_LAUNCHERS(double)
#undef SF_PATCH_LAUNCHERS

}  // namespace cuda
}  // namespace sparseforge
