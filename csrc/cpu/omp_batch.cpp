// OpenMP driver for Batch-OMP on the CPU. Compiled once per instruction set (CMake defines
// SF_ISA_NS and the -m flags); each thread owns one workspace and codes a run of signals.
#include "omp_batch.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#include "block_gemm.hpp"
#include "sparseforge/omp_masked.hpp"
#include "sparseforge/omp_signal.hpp"
#include "sparseforge/omp_signal_mixed.hpp"
#include "threads.hpp"

namespace sparseforge {
namespace SF_ISA_NS {
namespace {

// Pad each thread's workspace to a cache line so threads never share one.
constexpr index_t kLine = 64;

// The first cache-line boundary at or after p.
template <class T>
T* line_aligned(T* p) {
  const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(p);
  return reinterpret_cast<T*>((at + kLine - 1) & ~static_cast<std::uintptr_t>(kLine - 1));
}

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

// The work items of a batch of N signals on n_threads threads, as boundaries (0, ..., N):
// blocks of kBlock, except the last few when threads share the batch, which halve (down to
// 16 signals) once what is left is under two blocks per thread, so that the dynamic
// schedule's last item -- the other threads' idle time -- is short while most blocks keep
// the product's efficiency (the X Dt block product reads all of Dt per block: at (256, 1024)
// blocks of 32 throughout cost 0.89 of the large-batch throughput at N = 1,000 on 2
// threads). One thread takes blocks of kBlock throughout. The blocks never change a result
// (block_gemm's elements are the same chains whatever the tile).
std::vector<index_t> block_bounds(index_t N, int n_threads) {
  std::vector<index_t> bounds{0};
  for (index_t pos = 0; pos < N;) {
    const index_t left = N - pos;
    index_t block = kBlock;
    if (n_threads > 1) {
      while (block > 16 && left < 2 * n_threads * block) block /= 2;
    }
    pos += std::min(block, left);
    bounds.push_back(pos);
  }
  return bounds;
}

// The phase counters' clock: the time-stamp counter (constant-rate on every x86-64 CPU of
// the last decade; ~20-40 cycles a read), else steady_clock's nanoseconds.
inline std::int64_t clock_ticks() {
#if defined(__x86_64__) || defined(__i386__)
  return static_cast<std::int64_t>(__rdtsc());
#else
  return std::chrono::steady_clock::now().time_since_epoch().count();
#endif
}

static_assert(kOmpPhases == kOmpProfilePhases, "omp_batch.hpp's phase count");

struct TickClock {
  std::int64_t* acc;  // kOmpPhases counters of this thread
  std::int64_t last;
  SF_INLINE void lap(int phase) {
    const std::int64_t now = clock_ticks();
    acc[phase] += now - last;
    last = now;
  }
};

template <class T>
T squared_norm(const T* x, index_t n) {
  T acc = T(0);
#pragma omp simd reduction(+ : acc)
  for (index_t f = 0; f < n; ++f) acc += x[f] * x[f];
  return acc;
}

// The pursuit and its workspace: Q in the signal's dtype, or float32 for float64 signals
// (omp_signal_mixed.hpp).
template <class T>
struct NativeQ {
  using Workspace = OmpWorkspace<T>;
  using Pursuit = OmpPursuit<T>;
  static T*& alpha(Workspace& ws) { return ws.alpha; }
};
struct Float32Q {
  using Workspace = MixedOmpWorkspace;
  using Pursuit = MixedOmpPursuit;
  static double*& alpha(Workspace& ws) { return ws.base.alpha; }
};

// kProfile: with the phase counters (a.profile); NoPhaseClock otherwise, whose laps compile
// to nothing, so the production instantiation carries no counter code at all.
template <class T, class Lane, bool kProfile, class Q = NativeQ<T>>
void run_batch(const OmpBatchArgs<T>& a, const Lane& lane) {
  using Workspace = typename Q::Workspace;
  using Pursuit = typename Q::Pursuit;
  using Clock = std::conditional_t<kProfile, TickClock, NoPhaseClock>;
  const index_t K = a.n_atoms;
  const index_t M = a.max_atoms;
  const index_t N = a.n_signals;
  if (N <= 0) return;
  const bool fused = a.x != nullptr;
  const std::vector<index_t> bounds = block_bounds(N, a.n_threads);
  const index_t n_blocks = static_cast<index_t>(bounds.size()) - 1;
  const int n_threads =
      static_cast<int>(std::max<index_t>(1, std::min<index_t>(a.n_threads, n_blocks)));
  const index_t ws_scalars = padded<T>(Workspace::scalars(K, M));
  const index_t ws_ints = padded<int>(Workspace::ints(M));
  const index_t scalars = kInterleave * ws_scalars + (fused ? padded<T>(kBlock * K) : 0);
  const index_t ints = kInterleave * ws_ints;
  // Allocated before the parallel region: a bad_alloc here becomes a Python MemoryError
  // instead of escaping an OpenMP region (which would terminate the process).
  // Not value-initialised (every workspace element is written before it is read): zeroing
  // them cost a measurable share of a 1,000-signal call.
  // The scalars start on a cache line (over-allocated by one), so that the per-thread
  // regions, each a whole number of lines (padded), never share one.
  const std::unique_ptr<T[]> scalar_buf(
      new T[static_cast<size_t>(scalars * n_threads + kLine / static_cast<index_t>(sizeof(T)))]);
  T* const scalar_base = line_aligned(scalar_buf.get());
  const std::unique_ptr<int[]> int_buf(new int[static_cast<size_t>(ints * n_threads)]);
  constexpr bool kFloat32Gram = std::is_same_v<Q, Float32Q>;
  const bool convert_gram = kFloat32Gram && a.gram_f32 == nullptr;
  std::vector<float> gram_f(convert_gram ? static_cast<size_t>(K * K) : 0);
  const OmpProblem<T> problem{a.gram, K, a.max_atoms, a.use_tol, a.tol};
  if constexpr (kProfile) {
    std::fill(a.profile, a.profile + static_cast<index_t>(a.n_threads) * kOmpPhases, 0);
  }

#pragma omp parallel num_threads(n_threads)
  {
    note_team();
    const int t = thread_id();
    Clock clock{};
    std::int64_t started = 0;
    if constexpr (kProfile) {
      clock.acc = a.profile + t * kOmpPhases;
      clock.last = started = clock_ticks();
    }
    const PrecomputedGramRows<T> gram_rows{a.gram, K};
    T* mine = scalar_base + t * scalars;
    T* cov_block = mine + kInterleave * ws_scalars;
    Workspace ws[kInterleave];
    for (int g = 0; g < kInterleave; ++g) {
      ws[g] = Workspace::carve(mine + g * ws_scalars, int_buf.get() + t * ints + g * ws_ints,
                               K, M);
    }
    if constexpr (kFloat32Gram) {  // the float32 Q pass reads float32 Gram rows
      if (convert_gram) {
#pragma omp for schedule(static)
        for (index_t i = 0; i < K * K; ++i) gram_f[i] = static_cast<float>(a.gram[i]);
      }
      for (int g = 0; g < kInterleave; ++g) {
        ws[g].gram_f = convert_gram ? gram_f.data() : a.gram_f32;
      }
    }
    // nowait: nothing follows the loop but the end of the region (and its barrier), so each
    // thread's total ends when its own work does.
#pragma omp for schedule(dynamic, 1) nowait
    for (index_t blk = 0; blk < n_blocks; ++blk) {
      const index_t start = bounds[blk];
      const index_t rows = bounds[blk + 1] - start;
      const T* cov = fused ? nullptr : a.cov + start * a.cov_stride_signal;
      index_t stride_signal = a.cov_stride_signal, stride_atom = a.cov_stride_atom;
      if (fused) {
        block_gemm(a.x + start * a.ldx, a.ldx, rows, a.dt, a.n_features, K, cov_block, K);
        cov = cov_block;
        stride_signal = K;
        stride_atom = 1;
        clock.lap(kPhaseCorrelations);
      }
      // Signals are coded kInterleave at a time, their steps alternating (see OmpPursuit).
      for (index_t r0 = 0; r0 < rows; r0 += kInterleave) {
        const int group = static_cast<int>(std::min<index_t>(kInterleave, rows - r0));
        Pursuit pursuit[kInterleave];
        for (int g = 0; g < group; ++g) {
          const index_t n = start + r0 + g;
          T norm_sq = T(0);
          if (a.use_tol) {
            norm_sq = fused ? squared_norm(a.x + n * a.ldx, a.n_features) : a.norms_sq[n];
          }
          const T* cov_row = cov + (r0 + g) * stride_signal;
          if (fused) Q::alpha(ws[g]) = cov_block + (r0 + g) * K;  // in place: no copy
          pursuit[g].begin(lane, problem, cov_row, stride_atom, norm_sq, ws[g]);
        }
        clock.lap(kPhaseSelection);
        for (bool more = true; more;) {
          more = false;
          for (int g = 0; g < group; ++g) {
            more = pursuit[g].step(lane, problem, ws[g], gram_rows, clock) || more;
          }
        }
        for (int g = 0; g < group; ++g) {
          const index_t n = start + r0 + g;
          int* idx = a.out_index + n * M;
          T* val = a.out_value + n * M;
          a.out_status[n] = pursuit[g].finish(problem, ws[g], idx, val, a.out_count + n);
          clock.lap(kPhaseSolve);
          if (a.out_dense) {
            write_dense(lane, K, idx, val, a.out_count[n], a.out_dense + n * a.dense_stride);
            clock.lap(kPhaseOutput);
          }
        }
      }
    }
    if constexpr (kProfile) clock.acc[kPhaseTotal] = clock_ticks() - started;
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
bool float32_q(const OmpBatchArgs<T>& a) {
  if constexpr (!std::is_same_v<T, double>) {
    return false;
  } else {
    if (a.mask != nullptr || a.lane != LaneKind::kSerial) return false;
    if (a.q_precision == QPrecision::kAuto) {
      return float32_q_by_size(a.n_atoms, a.max_atoms);
    }
    return a.q_precision == QPrecision::kFloat32;
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
    run_batch<T, EmulatedWarpLane, false>(a, EmulatedWarpLane{});
  } else if (float32_q(a)) {
    if constexpr (std::is_same_v<T, double>) {
      if (a.profile != nullptr) {
        run_batch<T, SerialLane, true, Float32Q>(a, SerialLane{});
      } else {
        run_batch<T, SerialLane, false, Float32Q>(a, SerialLane{});
      }
    }
  } else if (a.profile != nullptr) {
    run_batch<T, SerialLane, true>(a, SerialLane{});
  } else {
    run_batch<T, SerialLane, false>(a, SerialLane{});
  }
}

// The upper triangle only (block row r from column r on: the tiles of the lower triangle are
// mirrors), the tiles shared dynamically by the team. Every element is the same FMA chain over
// the features as in the full product, so the result does not depend on the thread count.
// Callgrind (AVX2 path, K = 256, n = 64, float32): 10.6M instructions per call before (full
// product, one thread), 6.5M after; the team then splits them.
template <class T>
void gram_impl(const T* d, index_t K, index_t n, T* out, int n_threads) {
  std::vector<T> dt(static_cast<size_t>(n * K));
  for (index_t k = 0; k < K; ++k) {
    for (index_t f = 0; f < n; ++f) dt[f * K + k] = d[k * n + f];
  }
  const index_t n_row_blocks = (K + kBlock - 1) / kBlock;
  // Work items: (row block, column block) with column block >= row block; a column block is
  // kBlock atoms (a multiple of block_gemm's tile width), the last one takes the tail.
  const index_t n_items = n_row_blocks * (n_row_blocks + 1) / 2;
  n_threads = static_cast<int>(std::max<index_t>(1, std::min<index_t>(n_threads, n_items)));
#pragma omp parallel num_threads(n_threads)
  {
    note_team();
#pragma omp for schedule(dynamic, 1)
    for (index_t item = 0; item < n_items; ++item) {
      // item -> (rb, cb), rb <= cb, row-major over the upper triangle.
      index_t rb = 0, left = item;
      while (left >= n_row_blocks - rb) {
        left -= n_row_blocks - rb;
        ++rb;
      }
      const index_t cb = rb + left;
      const index_t r = rb * kBlock, c = cb * kBlock;
      const index_t cols = (cb + 1 == n_row_blocks) ? K - c : kBlock;
      block_gemm(d + r * n, n, std::min(kBlock, K - r), dt.data() + c, n, cols, out + r * K + c,
                 K, K);
    }
  }
  // Mirror the upper triangle so the result is exactly symmetric (the diagonal blocks were
  // computed whole; vector tiles and the scalar tail round differently).
  for (index_t i = 0; i < K; ++i) {
    for (index_t j = i + 1; j < K; ++j) out[j * K + i] = out[i * K + j];
  }
}

}  // namespace

void omp_batch(const OmpBatchArgs<float>& args) { dispatch_lane(args); }
void omp_batch(const OmpBatchArgs<double>& args) { dispatch_lane(args); }
void gram_matrix(const float* d, index_t K, index_t n, float* out, int n_threads) {
  gram_impl(d, K, n, out, n_threads);
}
void gram_matrix(const double* d, index_t K, index_t n, double* out, int n_threads) {
  gram_impl(d, K, n, out, n_threads);
}

}  // namespace SF_ISA_NS
}  // namespace sparseforge
