// Host API of the CUDA kernels (csrc/cuda/*.cu). Every pointer is device memory on the
// current device (the bindings switch to the arrays' device first); every launcher enqueues
// on `stream` and returns without synchronising. Launch errors throw std::runtime_error.
#pragma once

#include <cuda_runtime_api.h>

#include "sparseforge/batch_args.hpp"
#include "sparseforge/ksvd_atom.hpp"
#include "sparseforge/omp_masked.hpp"
#include "sparseforge/omp_signal.hpp"
#include "sparseforge/patch_args.hpp"

namespace sparseforge {
namespace cuda {

// Per-warp scratch of the OMP kernel: warp w uses scalars[w * scalar_stride ...] and
// ints[w * int_stride ...]; the kernel runs n_warps warps over the signals (grid-stride).
template <class T>
struct OmpWorkspaceBuffers {
  T* scalars = nullptr;
  int* ints = nullptr;
  index_t scalar_stride = 0;
  index_t int_stride = 0;
  index_t n_warps = 0;
};

struct WorkspaceSize {
  index_t scalars;
  index_t ints;
};

// Elements per warp, rounded up to 32 so every warp's scratch starts 128-byte aligned: the
// OmpWorkspace, then (masked) the MaskedScratch.
SF_HD constexpr index_t round_up_32(index_t v) { return (v + 31) / 32 * 32; }

template <class T>
SF_HD WorkspaceSize omp_workspace_size(index_t K, index_t M, index_t n_features, bool masked) {
  return {round_up_32(OmpWorkspace<T>::scalars(K, M)) +
              (masked ? round_up_32(MaskedScratch<T>::scalars(K, n_features)) : 0),
          round_up_32(OmpWorkspace<T>::ints(M)) +
              (masked ? round_up_32(MaskedScratch<T>::ints(n_features)) : 0)};
}

// Warps the OMP kernel keeps resident on the current device (more would only queue).
index_t omp_resident_warps(bool double_precision);

// Batch-OMP: fixed sparsity or tol (args.use_tol), plain (args.cov, args.norms_sq in tol
// mode) or masked (args.mask with args.x and args.dt = D^T); one warp per signal. The CPU
// driver's other fields (n_threads, lane) are not used.
void omp_batch(const OmpBatchArgs<float>& args, const OmpWorkspaceBuffers<float>& ws,
               cudaStream_t stream);
void omp_batch(const OmpBatchArgs<double>& args, const OmpWorkspaceBuffers<double>& ws,
               cudaStream_t stream);

// Sequential K-SVD atom updates 0 .. n_atoms - 1 (the CPU sweep's algorithm and order),
// run by one warp; see csrc/cuda/ksvd_kernels.cu.
void ksvd_update_atoms(const KsvdSweepView<float>& view, index_t n_atoms, cudaStream_t stream);
void ksvd_update_atoms(const KsvdSweepView<double>& view, index_t n_atoms, cudaStream_t stream);

// One thread per patch element / output pixel (sparseforge/patches.hpp); deterministic. The
// CPU-only fields (n_threads, per_element) are not used.
void extract_patches(const PatchExtractArgs<float>& args, cudaStream_t stream);
void extract_patches(const PatchExtractArgs<double>& args, cudaStream_t stream);
void aggregate_patches(const PatchAggregateArgs<float>& args, cudaStream_t stream);
void aggregate_patches(const PatchAggregateArgs<double>& args, cudaStream_t stream);

// Runtime facts (runtime_info.cu).
int runtime_version();
int driver_version();
int device_count();
// The device a pointer belongs to, or -1 when it is not device (or managed) memory.
int pointer_device(const void* ptr);

}  // namespace cuda
}  // namespace sparseforge
