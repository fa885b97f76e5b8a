// Batch-OMP on the GPU: one warp per signal, running the shared per-signal bodies
// (sparseforge/omp_signal.hpp, omp_masked.hpp) with the WarpLane policy. Each warp owns one
// workspace and walks the signals grid-stride, so the scratch memory is set by the number of
// resident warps, not by the number of signals.
#include "cuda_check.hpp"
#include "launch.hpp"
#include "warp_lane.cuh"

namespace sparseforge {
namespace cuda {
namespace {

constexpr int kThreads = 128;  // 4 warps per block
constexpr int kWarpsPerBlock = kThreads / WarpLane::kWidth;
constexpr unsigned kMaxBlocks = 0x7fffffffu;  // gridDim.x limit

template <class T>
__global__ void __launch_bounds__(kThreads) omp_kernel(OmpBatchArgs<T> a,
                                                       OmpWorkspaceBuffers<T> w) {
  const index_t warp = (static_cast<index_t>(blockIdx.x) * kThreads + threadIdx.x) /
                       WarpLane::kWidth;
  if (warp >= w.n_warps) return;  // whole warps leave together
  const WarpLane lane{static_cast<int>(threadIdx.x % WarpLane::kWidth)};
  const index_t K = a.n_atoms, M = a.max_atoms;
  T* scalars = w.scalars + warp * w.scalar_stride;
  int* ints = w.ints + warp * w.int_stride;
  const OmpWorkspace<T> ws = OmpWorkspace<T>::carve(scalars, ints, K, M);
  const WorkspaceSize plain = omp_workspace_size<T>(K, M, 0, false);
  const MaskedScratch<T> scratch = MaskedScratch<T>::carve(scalars + plain.scalars,
                                                           ints + plain.ints, K, a.n_features);
  const OmpProblem<T> problem{a.gram, K, a.max_atoms, a.use_tol, a.tol};
  for (index_t i = warp; i < a.n_signals; i += w.n_warps) {
    int* index = a.out_index + i * M;
    T* value = a.out_value + i * M;
    int* count = a.out_count + i;
    T* dense = a.out_dense != nullptr ? a.out_dense + i * a.dense_stride : nullptr;
    OmpStatus status;
    if (a.mask != nullptr) {
      status = omp_masked_signal(lane, problem, a.dt, a.n_features, a.x + i * a.ldx,
                                 a.mask + i * a.ldm, scratch, ws, index, value, count, dense);
    } else {
      const T norm_sq = a.use_tol ? a.norms_sq[i] : T(0);
      status = omp_signal(lane, problem, a.cov + i * a.cov_stride_signal, a.cov_stride_atom,
                          norm_sq, ws, index, value, count);
      if (dense != nullptr) {
        lane.sync();  // finish() wrote the values from every lane
        write_dense(lane, K, index, value, *count, dense);
      }
    }
    if (lane.lane == 0) a.out_status[i] = static_cast<std::int8_t>(status);
    lane.sync();  // the next signal reuses the workspace
  }
}

template <class T>
void launch(const OmpBatchArgs<T>& args, const OmpWorkspaceBuffers<T>& ws,
            cudaStream_t stream) {
  if (args.n_signals <= 0 || ws.n_warps <= 0) return;
  // The kernel walks the signals grid-stride over n_warps warps, so fewer warps than asked
  // for are correct too: cap them at what a grid can hold (a larger count would truncate
  // the unsigned block count) and at one warp per signal.
  OmpWorkspaceBuffers<T> w = ws;
  const index_t max_warps = index_t(kMaxBlocks) * kWarpsPerBlock;
  if (w.n_warps > max_warps) w.n_warps = max_warps;
  if (w.n_warps > args.n_signals) w.n_warps = args.n_signals;
  const index_t blocks = (w.n_warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
  omp_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(args, w);
  check(cudaGetLastError(), "launching the OMP kernel");
}

template <class T>
index_t resident_warps() {
  int device = 0, sms = 0, blocks = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
        "cudaDeviceGetAttribute");
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, omp_kernel<T>, kThreads, 0),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  return static_cast<index_t>(sms) * (blocks < 1 ? 1 : blocks) * kWarpsPerBlock;
}

}  // namespace

index_t omp_resident_warps(bool double_precision) {
  return double_precision ? resident_warps<double>() : resident_warps<float>();
}

void omp_batch(const OmpBatchArgs<float>& args, const OmpWorkspaceBuffers<float>& ws,
               cudaStream_t stream) {
  launch(args, ws, stream);
}
void omp_batch(const OmpBatchArgs<double>& args, const OmpWorkspaceBuffers<double>& ws,
               cudaStream_t stream) {
  launch(args, ws, stream);
}

}  // namespace cuda
}  // namespace sparseforge
