// One atom's K-SVD update (Aharon, Elad & Bruckstein 2006; approximate variant: Rubinstein,
// Zibulevsky & Elad 2008), shared by the CPU sweep (SerialLane), its CPU emulation of a warp
// (EmulatedWarpLane) and the CUDA kernel (WarpLane): see lanes.hpp.
//
// For atom k with users w (the signals whose codes use it, coefficients g), the restricted
// error is E = R_w + d_k g^T, where R = X - D Gamma is the current residual of every signal.
// E is never formed:
//   approximate:  d = E g / |E g|,             g' = E^T d
//   exact:        d = top left singular vector of E (power iterations on E E^T started from
//                 the approximate d, until the direction moves less than `tol`), g' = E^T d
// then R_w <- E - d g'^T, d_k <- d, Gamma[k, w] <- g'. Both leave |E - d g'^T|_F no larger
// than before (the exact one minimises it), which the tests check.
#pragma once

#include "sparseforge/config.hpp"
#include "sparseforge/lanes.hpp"
#include "sparseforge/scalar_math.hpp"

namespace sparseforge {
inline namespace SF_KERNEL_NS {

// Users whose residual rows the CPU gather prefetches ahead of the one it copies.
constexpr index_t kKsvdPrefetch = 8;

// `Signal` is the type of the users' signal indices: index_t on the CPU (a sweep may code
// more than 2^31 signals), int on the GPU (the caller's int32 arrays).
template <class T, class Signal = int>
struct KsvdAtomArgs {
  index_t n_features;        // n
  const Signal* user_signal; // signal index of each user
  const int* user_slot;      // slot of atom k in that signal's compact code
  index_t n_users;
  T* atom;                   // d_k (n), updated in place
  T* values;                 // compact code values, row stride `values_ld`
  index_t values_ld;
  T* residual;               // R, N x n row-major, updated in place
  T* rows;                   // scratch: n_users x n, the users' residual rows (gathered)
  T* g;                      // scratch: n_users
  T* h;                      // scratch: n_users
  T* d;                      // scratch: n
  T* e;                      // scratch: n
  bool exact;
  int max_power_iter;
  T power_tol;
};

template <class T>
SF_HD SF_INLINE T ksvd_dot(const T* a, const T* b, index_t n) {
  T acc = T(0);
  SF_SIMD_SUM(acc)
  for (index_t f = 0; f < n; ++f) acc += a[f] * b[f];
  return acc;
}

// out = E^T d, i.e. out[u] = r_u . d + g[u] (d_k . d); one user per lane.
template <class T, class S, class Lane>
SF_HD SF_INLINE void ksvd_error_t_times(const Lane& lane, const KsvdAtomArgs<T, S>& a,
                                        const T* dir, T* out) {
  const index_t n = a.n_features;
  const T atom_dot = lane.dot(a.atom, dir, n);
  lane.for_each_outer(a.n_users, [&](index_t u) {
    out[u] = ksvd_dot(a.rows + u * n, dir, n) + a.g[u] * atom_dot;
  });
}

// out = E v / |E v|, i.e. sum_u v[u] r_u + d_k (g . v), normalised; returns |E v|. Users in
// order (the CPU streams the gathered rows), the features of each over the lanes.
template <class T, class S, class Lane>
SF_HD SF_INLINE T ksvd_error_times(const Lane& lane, const KsvdAtomArgs<T, S>& a,
                                   const T* v, T* out) {
  const index_t n = a.n_features;
  const T gv = lane.dot(a.g, v, a.n_users);
  lane.for_each(n, [&](index_t f) { out[f] = a.atom[f] * gv; });
  for (index_t u = 0; u < a.n_users; ++u) {
    const T* r = a.rows + u * n;
    const T vu = v[u];
    lane.for_each(n, [&](index_t f) { out[f] += vu * r[f]; });
  }
  const T norm = sf_sqrt(lane.dot(out, out, n));
  if (norm > T(0)) {
    const T inv = T(1) / norm;
    lane.for_each(n, [&](index_t f) { out[f] *= inv; });
  }
  return norm;
}

// The update in three phases, so a driver can spread the two memory-bound ones over threads
// and run the middle one once:
//   1. ksvd_gather(a, u0, u1): users [u0, u1) copy their coefficient and residual row into
//      contiguous scratch (the rows are scattered over the N x n residual);
//   2. ksvd_solve(a): the new atom d in a.d and coefficients g' in a.h, from the gathered
//      rows only; returns false when E g vanishes (then phase 3 is skipped, nothing changes);
//   3. ksvd_scatter(a, u0, u1): users write back their residual rows and coefficients; the
//      driver then copies a.d into the atom (ksvd_commit).
// Within a phase the lanes share the features of one user (coalesced rows on a GPU).
template <class T, class S, class Lane>
SF_HD SF_INLINE void ksvd_gather(const Lane& lane, const KsvdAtomArgs<T, S>& a, index_t u0,
                                 index_t u1) {
  const index_t n = a.n_features;
  for (index_t u = u0; u < u1; ++u) {
#if !defined(__CUDA_ARCH__)
    // Fetch a few users ahead: these reads are latency-bound otherwise.
    if (u + kKsvdPrefetch < u1) {
      const char* ahead =
          reinterpret_cast<const char*>(a.residual + a.user_signal[u + kKsvdPrefetch] * n);
      for (index_t byte = 0; byte < n * static_cast<index_t>(sizeof(T)); byte += 64) {
        __builtin_prefetch(ahead + byte);
      }
      __builtin_prefetch(a.values + a.user_signal[u + kKsvdPrefetch] * a.values_ld);
    }
#endif
    a.g[u] = a.values[a.user_signal[u] * a.values_ld + a.user_slot[u]];
    const T* src = a.residual + a.user_signal[u] * n;
    T* dst = a.rows + u * n;
    lane.for_each(n, [&](index_t f) { dst[f] = src[f]; });
  }
}

template <class T, class S, class Lane>
SF_HD SF_INLINE bool ksvd_solve(const Lane& lane, const KsvdAtomArgs<T, S>& a) {
  const index_t n = a.n_features;
  if (a.n_users == 0 || !(ksvd_error_times(lane, a, a.g, a.d) > T(0))) return false;
  if (a.exact) {
    // Power iterations on E E^T: d <- E (E^T d), normalised.
    for (int it = 0; it < a.max_power_iter; ++it) {
      ksvd_error_t_times(lane, a, a.d, a.h);
      if (!(ksvd_error_times(lane, a, a.h, a.e) > T(0))) break;
      const T moved = lane.sum(n, [&](index_t f) {
        const T diff = a.e[f] - a.d[f];
        a.d[f] = a.e[f];
        return diff * diff;
      });
      if (moved <= a.power_tol * a.power_tol) break;
    }
  }
  ksvd_error_t_times(lane, a, a.d, a.h);  // g' = E^T d
  return true;
}

template <class T, class S, class Lane>
SF_HD SF_INLINE void ksvd_scatter(const Lane& lane, const KsvdAtomArgs<T, S>& a, index_t u0,
                                  index_t u1) {
  const index_t n = a.n_features;
  for (index_t u = u0; u < u1; ++u) {
    T* r = a.residual + a.user_signal[u] * n;
    const T* src = a.rows + u * n;
    const T old_g = a.g[u], new_g = a.h[u];
    lane.for_each(n, [&](index_t f) { r[f] = src[f] + a.atom[f] * old_g - a.d[f] * new_g; });
    a.values[a.user_signal[u] * a.values_ld + a.user_slot[u]] = new_g;
  }
}

template <class T, class S, class Lane>
SF_HD SF_INLINE void ksvd_commit(const Lane& lane, const KsvdAtomArgs<T, S>& a) {
  lane.for_each(a.n_features, [&](index_t f) { a.atom[f] = a.d[f]; });
}

// Everything one sequential sweep over atoms [k0, k1) needs: `common` holds the arguments
// every atom shares (features, codes, residual, scratch sized for the atom with the most
// users, method); the users of atom k are entries user_start[k] .. user_start[k + 1] - 1 of
// user_signal / user_slot (signal order).
template <class T, class Signal = int>
struct KsvdSweepView {
  KsvdAtomArgs<T, Signal> common;  // user_signal, user_slot, n_users, atom: set per atom
  T* dictionary;               // K x n
  const index_t* user_start;   // K + 1
  const Signal* user_signal;
  const int* user_slot;
};

// Atoms k0, k0 + 1, ..., k1 - 1, one after another: each update sees the residual the
// previous ones left (sequential K-SVD, on every lane policy).
template <class T, class S, class Lane>
SF_HD SF_INLINE void ksvd_update_atoms(const Lane& lane, const KsvdSweepView<T, S>& v,
                                       index_t k0, index_t k1) {
  for (index_t k = k0; k < k1; ++k) {
    KsvdAtomArgs<T, S> args = v.common;
    const index_t first = v.user_start[k];
    args.user_signal = v.user_signal + first;
    args.user_slot = v.user_slot + first;
    args.n_users = v.user_start[k + 1] - first;
    args.atom = v.dictionary + k * args.n_features;
    ksvd_gather(lane, args, 0, args.n_users);
    if (!ksvd_solve(lane, args)) continue;
    ksvd_scatter(lane, args, 0, args.n_users);
    ksvd_commit(lane, args);
  }
}

}  // namespace SF_KERNEL_NS
}  // namespace sparseforge
