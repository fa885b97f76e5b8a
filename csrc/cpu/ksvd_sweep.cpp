// Sequential K-SVD atom sweep. Atoms are updated one after another (each update sees the
// residual left by the previous ones: that is K-SVD, not a parallel variant). Only the
// residual X - codes @ D is computed in parallel. Splitting each atom's gather / scatter over
// threads needs three barriers per atom; on 2 cores that was no faster when idle and ~60x
// slower when another process kept a core busy (each barrier waits for a descheduled
// thread), so an atom's update runs on one thread (~1,250 users of 64 values at 40,000
// signals, L = 8, K = 256: tens of microseconds).
// Re-measured for issue 18 (callgrind, AVX2 path, one thread, float32, 10,000 signals, n = 64,
// K = 256, L = 8, one approximate-K-SVD iteration = coding + sweep): 247M instructions, of
// which the coding 130M (already on every thread) and the sweep 35.5M; the sequential atom
// updates are 23.2M, 9.4% of the iteration. Splitting them over 2 cores could save at most
// ~4.7% of an iteration with free barriers, against the 3 barriers per atom (768 per sweep)
// that lost ~60x under load: the updates stay on one thread. (The wall-clock check on an idle
// machine is pending; the counts above do not depend on load.)
#include "ksvd_sweep.hpp"

#include <algorithm>
#include <vector>

#include "sparseforge/ksvd_atom.hpp"
#include "threads.hpp"

namespace sparseforge {
namespace SF_ISA_NS {
namespace {

template <class T>
void sweep(const KsvdSweepArgs<T>& a) {
  const index_t N = a.n_signals, K = a.n_atoms, M = a.max_atoms, n = a.n_features;
  // Users of every atom, in signal order (a counting sort of the compact codes).
  std::vector<index_t> start(static_cast<size_t>(K + 1), 0);
  for (index_t i = 0; i < N * M; ++i) {
    const int k = a.indices[i];
    if (k >= 0) ++start[k + 1];
  }
  for (index_t k = 0; k < K; ++k) start[k + 1] += start[k];
  // Signal indices are 64-bit (N may pass 2^31); slots are below M, which check_args
  // bounds by 2^31 - 1.
  std::vector<index_t> user_signal(static_cast<size_t>(start[K]));
  std::vector<int> user_slot(user_signal.size());
  std::vector<index_t> fill(start.begin(), start.end() - 1);
  for (index_t i = 0; i < N; ++i) {
    for (index_t j = 0; j < M; ++j) {
      const int k = a.indices[i * M + j];
      if (k < 0) continue;
      user_signal[fill[k]] = i;
      user_slot[fill[k]] = static_cast<int>(j);
      ++fill[k];
    }
  }
  // R = X - Gamma D, one row per signal.
  double coded_error = 0.0;
#pragma omp parallel num_threads(a.n_threads < 1 ? 1 : a.n_threads) reduction(+ : coded_error)
  {
    note_team();
#pragma omp for schedule(static)
    for (index_t i = 0; i < N; ++i) {
      T* r = a.residual + i * n;
      const T* x = a.x + i * n;
      for (index_t f = 0; f < n; ++f) r[f] = x[f];
      for (index_t j = 0; j < M; ++j) {
        const int k = a.indices[i * M + j];
        if (k < 0) continue;
        const T v = a.values[i * M + j];
        const T* atom = a.dictionary + k * n;
        for (index_t f = 0; f < n; ++f) r[f] -= v * atom[f];
      }
      double row_error = 0.0;
      SF_SIMD_SUM(row_error)
      for (index_t f = 0; f < n; ++f) row_error += static_cast<double>(r[f]) * r[f];
      coded_error += row_error;
    }
  }
  *a.coded_error = coded_error;
  index_t most = 0;
  for (index_t k = 0; k < K; ++k) {
    a.usage[k] = start[k + 1] - start[k];
    most = std::max<index_t>(most, a.usage[k]);
  }
  std::vector<T> g(static_cast<size_t>(most)), h(static_cast<size_t>(most));
  std::vector<T> rows(static_cast<size_t>(most * n));
  std::vector<T> d(static_cast<size_t>(n)), e(static_cast<size_t>(n));
  const KsvdAtomArgs<T, index_t> common{n, nullptr, nullptr, 0, nullptr, a.values, M, a.residual,
                               rows.data(), g.data(), h.data(), d.data(), e.data(), a.exact,
                               a.max_power_iter, a.power_tol};
  const KsvdSweepView<T, index_t> view{common, a.dictionary, start.data(), user_signal.data(),
                              user_slot.data()};
  if (a.lane == LaneKind::kEmulatedWarp) {
    ksvd_update_atoms(EmulatedWarpLane{}, view, 0, K);
  } else {
    ksvd_update_atoms(SerialLane{}, view, 0, K);
  }
}

}  // namespace

void ksvd_sweep(const KsvdSweepArgs<float>& args) { sweep(args); }
void ksvd_sweep(const KsvdSweepArgs<double>& args) { sweep(args); }

}  // namespace SF_ISA_NS
}  // namespace sparseforge
