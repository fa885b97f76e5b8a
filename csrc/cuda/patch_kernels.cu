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
void extract(const PatchExtractArgs<T>& a, cudaStream_t stream) {
  const index_t total = a.n_patches * a.ph * a.pw * a.C;
  if (total <= 0) return;
  extract_kernel<T><<<grid_blocks(total, kThreads), kThreads, 0, stream>>>(
      a.image, a.W, a.C, a.ph, a.pw, a.positions, total, a.out);
  check(cudaGetLastError(), "launching the patch extraction kernel");
}

template <class T>
void aggregate(const PatchAggregateArgs<T>& a, cudaStream_t stream) {
  const index_t total = a.H * a.W * a.C;
  if (total <= 0) return;
  const index_t rows = grid_count(a.H, a.ph, a.step), cols = grid_count(a.W, a.pw, a.step);
  aggregate_kernel<T><<<grid_blocks(total, kThreads), kThreads, 0, stream>>>(
      a.patches, a.weights, a.H, a.W, a.C, a.ph, a.pw, a.step, rows, cols, a.normalise, a.out);
  check(cudaGetLastError(), "launching the patch aggregation kernel");
}

}  // namespace

void extract_patches(const PatchExtractArgs<float>& args, cudaStream_t stream) {
  extract(args, stream);
}
void extract_patches(const PatchExtractArgs<double>& args, cudaStream_t stream) {
  extract(args, stream);
}
void aggregate_patches(const PatchAggregateArgs<float>& args, cudaStream_t stream) {
  aggregate(args, stream);
}
void aggregate_patches(const PatchAggregateArgs<double>& args, cudaStream_t stream) {
  aggregate(args, stream);
}

}  // namespace cuda
}  // namespace sparseforge
