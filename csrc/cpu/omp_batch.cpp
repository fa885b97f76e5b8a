// OpenMP driver for Batch-OMP on the CPU. Compiled once per instruction set (CMake defines
// SF_ISA_NS and the -m flags); each thread owns one workspace and codes a run of signals.
#include "omp_batch.hpp"

#include <algorithm>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "block_gemm.hpp"
#include "sparseforge/omp_masked.hpp"
#include "sparseforge/omp_signal.hpp"
#include "threads.hpp"

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

// Signals per work item: the block's correlations (kBlock x K) stay in L2 between the
// product and the pursuit, and dynamic scheduling of blocks balances the tol mode.
constexpr index_t kBlock = 64;
// Signals whose pursuits one thread interleaves: one pursuit step is a long dependency chain
// (argmax, pivot, square root, division, update, argmax), and alternating the steps of two
// signals lets the out-of-order core overlap them (measured 15% faster in float32; four
// signals gained nothing more).
constexpr int kInterleave = 2;

template <class T>
T squared_norm(const T* x, index_t n) {
  T acc = T(0);
#pragma omp simd reduction(+ : acc)
  for (index_t f = 0; f < n; ++f) acc += x[f] * x[f];
  return acc;
}

template <class T, class Lane>
void run_batch(const OmpBatchArgs<T>& a, const Lane& lane) {
  const index_t K = a.n_atoms;
  const index_t M = a.max_atoms;
  const index_t N = a.n_signals;
  if (N <= 0) return;
  const bool fused = a.x != nullptr;
  const index_t n_blocks = (N + kBlock - 1) / kBlock;
  const int n_threads =
      static_cast<int>(std::max<index_t>(1, std::min<index_t>(a.n_threads, n_blocks)));
  const index_t ws_scalars = padded<T>(OmpWorkspace<T>::scalars(K, M));
  const index_t ws_ints = padded<int>(OmpWorkspace<T>::ints(M));
  const index_t scalars = kInterleave * ws_scalars + (fused ? padded<T>(kBlock * K) : 0);
  const index_t ints = kInterleave * ws_ints;
  // Allocated before the parallel region: a bad_alloc here becomes a Python MemoryError
  // instead of escaping an OpenMP region (which would terminate the process).
  std::vector<T> scalar_buf(static_cast<size_t>(scalars * n_threads));
  std::vector<int> int_buf(static_cast<size_t>(ints * n_threads));
  const OmpProblem<T> problem{a.gram, K, a.max_atoms, a.use_tol, a.tol};

#pragma omp parallel num_threads(n_threads)
  {
    note_team();
    const int t = thread_id();
    T* mine = scalar_buf.data() + t * scalars;
    T* cov_block = mine + kInterleave * ws_scalars;
    OmpWorkspace<T> ws[kInterleave];
    for (int g = 0; g < kInterleave; ++g) {
      ws[g] = OmpWorkspace<T>::carve(mine + g * ws_scalars, int_buf.data() + t * ints + g * ws_ints,
                                     K, M);
    }
#pragma omp for schedule(dynamic, 1)
    for (index_t blk = 0; blk < n_blocks; ++blk) {
      const index_t start = blk * kBlock;
      const index_t rows = std::min(kBlock, N - start);
      const T* cov = fused ? nullptr : a.cov + start * a.cov_stride_signal;
      index_t stride_signal = a.cov_stride_signal, stride_atom = a.cov_stride_atom;
      if (fused) {
        block_gemm(a.x + start * a.ldx, a.ldx, rows, a.dt, a.n_features, K, cov_block, K);
        cov = cov_block;
        stride_signal = K;
        stride_atom = 1;
      }
      // Signals are coded kInterleave at a time, their steps alternating (see OmpPursuit).
      for (index_t r0 = 0; r0 < rows; r0 += kInterleave) {
        const int group = static_cast<int>(std::min<index_t>(kInterleave, rows - r0));
        OmpPursuit<T> pursuit[kInterleave];
        for (int g = 0; g < group; ++g) {
          const index_t n = start + r0 + g;
          T norm_sq = T(0);
          if (a.use_tol) {
            norm_sq = fused ? squared_norm(a.x + n * a.ldx, a.n_features) : a.norms_sq[n];
          }
          const T* cov_row = cov + (r0 + g) * stride_signal;
          if (fused) ws[g].alpha = cov_block + (r0 + g) * K;  // in place: no copy
          pursuit[g].begin(lane, problem, cov_row, stride_atom, norm_sq, ws[g]);
        }
        for (bool more = true; more;) {
          more = false;
          for (int g = 0; g < group; ++g) more = pursuit[g].step(lane, problem, ws[g]) || more;
        }
        for (int g = 0; g < group; ++g) {
          const index_t n = start + r0 + g;
          int* idx = a.out_index + n * M;
          T* val = a.out_value + n * M;
          a.out_status[n] = pursuit[g].finish(problem, ws[g], idx, val, a.out_count + n);
          if (a.out_dense) {
            write_dense(lane, K, idx, val, a.out_count[n], a.out_dense + n * a.dense_stride);
          }
        }
      }
    }
  }
}

// Masked signals: one at a time per thread (their Gram rows are computed per signal, which
// dominates; interleaving would not hide it).
template <class T, class Lane>
void run_masked(const OmpBatchArgs<T>& a, const Lane& lane) {
  const index_t K = a.n_atoms, M = a.max_atoms, N = a.n_signals, n = a.n_features;
  if (N <= 0) return;
  const int n_threads = static_cast<int>(std::max<index_t>(1, std::min<index_t>(a.n_threads, N)));
  const index_t ws_scalars = padded<T>(OmpWorkspace<T>::scalars(K, M));
  const index_t scalars = ws_scalars + 2 * padded<T>(K);
  const index_t ints = padded<int>(OmpWorkspace<T>::ints(M));
  const index_t observed = padded<index_t>(n);  // 64-bit feature indices, own buffer
  std::vector<T> scalar_buf(static_cast<size_t>(scalars * n_threads));
  std::vector<int> int_buf(static_cast<size_t>(ints * n_threads));
  std::vector<index_t> observed_buf(static_cast<size_t>(observed * n_threads));
  const OmpProblem<T> problem{nullptr, K, a.max_atoms, a.use_tol, a.tol};

#pragma omp parallel num_threads(n_threads)
  {
    note_team();
    const int t = thread_id();
    T* mine = scalar_buf.data() + t * scalars;
    const OmpWorkspace<T> ws = OmpWorkspace<T>::carve(mine, int_buf.data() + t * ints, K, M);
    MaskedScratch<T> scratch{mine + ws_scalars, mine + ws_scalars + padded<T>(K),
                             observed_buf.data() + t * observed};
#pragma omp for schedule(dynamic, 16)
    for (index_t i = 0; i < N; ++i) {
      T* dense = a.out_dense ? a.out_dense + i * a.dense_stride : nullptr;
      a.out_status[i] = omp_masked_signal(lane, problem, a.dt, n, a.x + i * a.ldx,
                                          a.mask + i * a.ldm, scratch, ws, a.out_index + i * M,
                                          a.out_value + i * M, a.out_count + i, dense);
    }
  }
}

template <class T>
void dispatch_lane(const OmpBatchArgs<T>& a) {
  if (a.mask != nullptr) {
    if (a.lane == LaneKind::kEmulatedWarp) {
      run_masked(a, EmulatedWarpLane{});
    } else {
      run_masked(a, SerialLane{});
    }
    return;
  }
  if (a.lane == LaneKind::kEmulatedWarp) {
    run_batch(a, EmulatedWarpLane{});
  } else {
    run_batch(a, SerialLane{});
  }
}

template <class T>
void gram_impl(const T* d, index_t K, index_t n, T* out) {
  std::vector<T> dt(static_cast<size_t>(n * K));
  for (index_t k = 0; k < K; ++k) {
    for (index_t f = 0; f < n; ++f) dt[f * K + k] = d[k * n + f];
  }
  for (index_t r = 0; r < K; r += kBlock) {
    block_gemm(d + r * n, n, std::min(kBlock, K - r), dt.data(), n, K, out + r * K, K);
  }
  // Vector tiles and the scalar tail round differently: mirror the upper triangle so the
  // result is exactly symmetric.
  for (index_t i = 0; i < K; ++i) {
    for (index_t j = i + 1; j < K; ++j) out[j * K + i] = out[i * K + j];
  }
}

}  // namespace

void omp_batch(const OmpBatchArgs<float>& args) { dispatch_lane(args); }
void omp_batch(const OmpBatchArgs<double>& args) { dispatch_lane(args); }
void gram_matrix(const float* d, index_t K, index_t n, float* out) { gram_impl(d, K, n, out); }
void gram_matrix(const double* d, index_t K, index_t n, double* out) { gram_impl(d, K, n, out); }

}  // namespace SF_ISA_NS
}  // namespace sparseforge
