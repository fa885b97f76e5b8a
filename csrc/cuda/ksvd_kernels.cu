// K-SVD atom updates on the GPU: the shared ksvd_update_atoms (sparseforge/ksvd_atom.hpp)
// run by ONE warp, atom after atom. That is sequential K-SVD, the CPU sweep's algorithm and
// order (each update sees the residual the previous ones left), with the lanes sharing each
// atom's users and features. Updating atoms concurrently would be a different algorithm
// (a Jacobi-style variant whose updates ignore each other); it is deliberately not offered.
// One launch covers the whole sweep, so there is no per-atom launch cost.
#include "cuda_check.hpp"
#include "launch.hpp"
#include "warp_lane.cuh"

namespace sparseforge {
namespace cuda {
namespace {

template <class T>
__global__ void __launch_bounds__(32) ksvd_kernel(KsvdSweepView<T> view, index_t n_atoms) {
  const WarpLane lane{static_cast<int>(threadIdx.x)};
  ksvd_update_atoms(lane, view, 0, n_atoms);
}

template <class T>
void launch(const KsvdSweepView<T>& view, index_t n_atoms, cudaStream_t stream) {
  if (n_atoms <= 0) return;
  ksvd_kernel<T><<<1, WarpLane::kWidth, 0, stream>>>(view, n_atoms);
  check(cudaGetLastError(), "launching the K-SVD kernel");
}

}  // namespace

void ksvd_update_atoms(const KsvdSweepView<float>& view, index_t n_atoms, cudaStream_t stream) {
  launch(view, n_atoms, stream);
}
void ksvd_update_atoms(const KsvdSweepView<double>& view, index_t n_atoms,
                       cudaStream_t stream) {
  launch(view, n_atoms, stream);
}

}  // namespace cuda
}  // namespace sparseforge
