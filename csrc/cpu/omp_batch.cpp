// OpenMP driver for Batch-OMP on the CPU. Compiled once per instruction set (CMake defines
// SF_ISA_NS and the -m flags); each thread owns one workspace and codes a run of signals.
#include "omp_batch.hpp"

#include <algorithm>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "sparseforge/omp_signal.hpp"

namespace sparseforge {
namespace SF_ISA_NS {
namespace {

// Pad each thread's workspace to a cache line so threads never share one.
constexpr index_t kLine = 64;

template <class T>
index_t padded(index_t n) {
  const index_t per_line = kLine / static_cast<index_t>(sizeof(T));
  return (n + per_line - 1) / per_line * per_line;
}

template <class T, class Lane>
void run_batch(const OmpBatchArgs<T>& a, const Lane& lane) {
  const index_t K = a.n_atoms;
  const index_t M = a.max_atoms;
  const index_t N = a.n_signals;
  if (N <= 0) return;
  const int n_threads = static_cast<int>(std::max<index_t>(1, std::min<index_t>(a.n_threads, N)));
  const index_t scalars = padded<T>(OmpWorkspace<T>::scalars(K, M));
  const index_t ints = padded<int>(OmpWorkspace<T>::ints(M));
  // Allocated before the parallel region: a bad_alloc here becomes a Python MemoryError
  // instead of escaping an OpenMP region (which would terminate the process).
  std::vector<T> scalar_buf(static_cast<size_t>(scalars * n_threads));
  std::vector<int> int_buf(static_cast<size_t>(ints * n_threads));
  const OmpProblem<T> problem{a.gram, K, a.max_atoms, a.use_tol, a.tol};

#pragma omp parallel num_threads(n_threads)
  {
#ifdef _OPENMP
    const int t = omp_get_thread_num();
#else
    const int t = 0;
#endif
    const OmpWorkspace<T> ws =
        OmpWorkspace<T>::carve(scalar_buf.data() + t * scalars, int_buf.data() + t * ints, K, M);
    // Dynamic chunks of 64: the error-constrained mode gives signals very different costs.
#pragma omp for schedule(dynamic, 64)
    for (index_t n = 0; n < N; ++n) {
      int* idx = a.out_index + n * M;
      T* val = a.out_value + n * M;
      const T norm_sq = a.norms_sq ? a.norms_sq[n] : T(0);
      a.out_status[n] = omp_signal(lane, problem, a.cov + n * a.cov_stride_signal,
                                   a.cov_stride_atom, norm_sq, ws, idx, val, a.out_count + n);
      if (a.out_dense) {
        T* row = a.out_dense + n * a.dense_stride;
        std::fill(row, row + K, T(0));
        for (int j = 0; j < a.out_count[n]; ++j) row[idx[j]] = val[j];
      }
    }
  }
}

template <class T>
void dispatch_lane(const OmpBatchArgs<T>& a) {
  if (a.lane == LaneKind::kEmulatedWarp) {
    run_batch(a, EmulatedWarpLane{});
  } else {
    run_batch(a, SerialLane{});
  }
}

}  // namespace

void omp_batch(const OmpBatchArgs<float>& args) { dispatch_lane(args); }
void omp_batch(const OmpBatchArgs<double>& args) { dispatch_lane(args); }

}  // namespace SF_ISA_NS
}  // namespace sparseforge
