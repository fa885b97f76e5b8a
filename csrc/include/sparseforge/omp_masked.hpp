// Masked signals (missing pixels): OMP on the observed entries only. Each signal is coded over
// the atoms restricted to its observed rows, normalised (so atoms are selected by normalised
// correlation, as SPAMS' ompMask does); its Gram rows cannot be precomputed, so they are
// computed on demand from the restricted dictionary, and the coefficients are rescaled to the
// original atoms at the end.
#pragma once

#include "sparseforge/config.hpp"
#include "sparseforge/lanes.hpp"
#include "sparseforge/omp_signal.hpp"
#include "sparseforge/scalar_math.hpp"

namespace sparseforge {
inline namespace SF_KERNEL_NS {

// Per-signal scratch for the masked setup: the restricted dictionary, the atom scales, the
// observed indices and one Gram row.
template <class T>
struct MaskedScratch {
  T* restricted;   // K x n (only the first n_observed columns of each row are used)
  T* scale;        // K: 1 / |d_k restricted|, 0 for atoms with no observed energy
  T* row;          // K: the Gram row returned by MaskedGramRows
  int* observed;   // n

  // Number of T elements and ints one scratch needs, and the arrays carved from buffers of
  // that size (the CUDA kernel's per-warp layout; the CPU driver pads each array instead).
  SF_HD static constexpr index_t scalars(index_t K, index_t n) { return K * n + 2 * K; }
  SF_HD static constexpr index_t ints(index_t n) { return n; }
  SF_HD static MaskedScratch carve(T* scalars_buf, int* ints_buf, index_t K, index_t n) {
    return MaskedScratch{scalars_buf, scalars_buf + K * n, scalars_buf + K * n + K, ints_buf};
  }
};

// Gram row k of the normalised restricted atoms: row[i] = s_i s_k <d_i|m, d_k|m>, one atom
// per lane.
template <class T, class Lane>
struct MaskedGramRows {
  const Lane* lane;
  const MaskedScratch<T>* scratch;
  index_t n_atoms;
  index_t n_observed;
  SF_HD SF_INLINE const T* row(index_t k) const {
    const MaskedScratch<T>& m = *scratch;
    const T* dk = m.restricted + k * n_observed;
    lane->for_each_outer(n_atoms, [&](index_t i) {
      const T* di = m.restricted + i * n_observed;
      T acc = T(0);
      SF_SIMD_SUM(acc)
      for (index_t o = 0; o < n_observed; ++o) acc += di[o] * dk[o];
      m.row[i] = acc * m.scale[i] * m.scale[k];
    });
    return m.row;
  }
};

// Prepares one masked signal: gathers the observed entries, the restricted atoms and their
// scales, writes the normalised correlations s_i <d_i|m, x|m> to `alpha` and returns
// |x|m|^2. Returns the number of observed entries through `n_observed`. The gathering of
// the observed indices is uniform (every lane of a warp writes the same list); the atoms are
// spread over the lanes.
template <class T, class Lane>
SF_HD SF_INLINE T masked_setup(const Lane& lane, const T* dictionary, index_t K, index_t n,
                               const T* x, const unsigned char* mask,
                               const MaskedScratch<T>& m, T* alpha, index_t* n_observed) {
  index_t n_obs = 0;
  T norm_sq = T(0);
  for (index_t f = 0; f < n; ++f) {
    if (mask[f]) {
      m.observed[n_obs++] = static_cast<int>(f);
      norm_sq += x[f] * x[f];
    }
  }
  lane.for_each_outer(K, [&](index_t k) {
    const T* d = dictionary + k * n;
    T* r = m.restricted + k * n_obs;
    T energy = T(0), corr = T(0);
    for (index_t o = 0; o < n_obs; ++o) {
      const T v = d[m.observed[o]];
      r[o] = v;
      energy += v * v;
      corr += v * x[m.observed[o]];
    }
    const T scale = energy > T(0) ? T(1) / sf_sqrt(energy) : T(0);
    m.scale[k] = scale;
    alpha[k] = corr * scale;
  });
  *n_observed = n_obs;
  return norm_sq;
}

// Codes one masked signal from start to end: setup, pursuit over the on-demand Gram rows,
// coefficients rescaled to the original atoms (and the dense row when `out_dense`).
template <class T, class Lane>
SF_HD SF_INLINE OmpStatus omp_masked_signal(const Lane& lane, const OmpProblem<T>& p,
                                            const T* dictionary, index_t n, const T* x,
                                            const unsigned char* mask,
                                            const MaskedScratch<T>& m,
                                            const OmpWorkspace<T>& ws, int* out_index,
                                            T* out_value, int* out_count, T* out_dense) {
  index_t n_obs = 0;
  const T norm_sq = masked_setup(lane, dictionary, p.n_atoms, n, x, mask, m, ws.alpha, &n_obs);
  const MaskedGramRows<T, Lane> rows{&lane, &m, p.n_atoms, n_obs};
  OmpPursuit<T> pursuit;
  pursuit.begin(lane, p, ws.alpha, 1, norm_sq, ws);
  while (pursuit.step(lane, p, ws, rows)) {
  }
  const OmpStatus status = pursuit.finish(p, ws, out_index, out_value, out_count);
  // finish() is uniform code: on a warp every lane has written every value, so wait for all
  // of them before each value is scaled once, by its own lane.
  lane.sync();
  const int count = *out_count;
  lane.for_each(count, [&](index_t j) { out_value[j] *= m.scale[out_index[j]]; });
  if (out_dense != nullptr) write_dense(lane, p.n_atoms, out_index, out_value, count, out_dense);
  return status;
}

}  // namespace SF_KERNEL_NS
}  // namespace sparseforge
