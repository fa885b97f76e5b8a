// Batch-OMP for ONE signal (Rubinstein, Zibulevsky & Elad 2008), shared by the CPU driver
// (SerialLane), the CPU emulation of a warp (EmulatedWarpLane) and the CUDA kernel (WarpLane).
//
// Inputs are the Gram matrix G = D D^T (K x K, row-major, symmetric) and the correlations
// alpha0 = D x (K values); the residual r = x - D_I gamma is never formed.
//
// We use the progressive-Cholesky form in which the Cholesky factor L of G[I, I] (s x s) is
// grown one row per iteration, and keep Q = G[:, I] L^{-T} (K x s). Because L^{-T} is upper
// triangular, column j of Q depends only on the first j chosen atoms, so Q grows by one
// column per iteration and the new row of L is simply Q[k, :], with no triangular solve:
//
//   k        = argmax_i |alpha_i|                        (alpha = D r, the current correlations)
//   w        = Q[k, 0:s]              d = G[k, k] - |w|^2  (the new Cholesky row and pivot)
//   u_s      = alpha_k / sqrt(d)                          (forward solve L u = alpha0[I], grown)
//   Q[:, s]  = (G[:, k] - Q[:, 0:s] w) / sqrt(d)          (K * s multiply-adds: the cost)
//   alpha   -= u_s Q[:, s]                                (alpha0 - G[:, I] gamma, incrementally)
//   |r|^2   -= u_s^2                                      (error-constrained mode)
//
// and solve L^T gamma = u once at the end. This is algebraically the algorithm of the paper
// (alpha = alpha0 - G[:, I] gamma_I), with the same O(K s) per-iteration cost but no
// per-iteration back-substitution. Atoms need not have unit norm (G's diagonal is used), as in
// scikit-learn's orthogonal_mp_gram, which selects by the raw correlation |alpha_i| too.
#pragma once

#include "sparseforge/config.hpp"
#include "sparseforge/lanes.hpp"
#include "sparseforge/scalar_math.hpp"
#include "sparseforge/status.hpp"

namespace sparseforge {
inline namespace SF_KERNEL_NS {


// Layout of Q (K x M): tiles of kTile consecutive rows, each tile storing its M columns one
// after another (q[(i / kTile) * M * kTile + j * kTile + i % kTile] = Q[i, j]). The hot loop
// walks down the columns of one tile, so it reads one contiguous block (prefetch-friendly);
// a plain column-major Q puts those reads K elements apart, which for K = 1024 lands every
// column in the same L1 sets (measured 4-5x slower at K = 1024, L = 32). On a GPU a tile row
// is 32 or 64 consecutive elements: coalesced.
template <class T>
struct QLayout {
  static constexpr index_t kTile = 256 / static_cast<index_t>(sizeof(T));  // 4 x 64 bytes
  index_t max_atoms;
  SF_HD SF_INLINE index_t at(index_t i, index_t j) const {
    return (i / kTile) * max_atoms * kTile + j * kTile + i % kTile;
  }
  SF_HD static constexpr index_t size(index_t K, index_t M) {
    return (K + kTile - 1) / kTile * kTile * M;
  }
};

// Scratch memory of one signal, carved from a caller-provided buffer (no allocation here).
template <class T>
struct OmpWorkspace {
  T* alpha;      // K      current correlations D r
  T* q;          // Q in QLayout
  T* chol;       // M * M  L, row-major lower triangle
  T* u;          // M      L^{-1} alpha0[I]
  int* support;  // M      chosen atoms in selection order

  // Number of T elements and ints one workspace needs.
  SF_HD static constexpr index_t scalars(index_t K, index_t M) {
    return K + QLayout<T>::size(K, M) + M * M + M;
  }
  SF_HD static constexpr index_t ints(index_t M) { return M; }

  SF_HD static OmpWorkspace carve(T* scalars_buf, int* ints_buf, index_t K, index_t M) {
    OmpWorkspace ws;
    ws.alpha = scalars_buf;
    ws.q = ws.alpha + K;
    ws.chol = ws.q + QLayout<T>::size(K, M);
    ws.u = ws.chol + M * M;
    ws.support = ints_buf;
    return ws;
  }
};

// Phase counters (opt-in, CPU; see csrc/cpu/omp_batch.cpp): the time of a pursuit split into
// the phases of the cost model. A clock's lap(phase) charges the time since its previous lap
// to `phase`. NoPhaseClock, the default everywhere, compiles to nothing.
enum OmpPhase : int {
  kPhaseCorrelations = 0,  // the block's X D^T product
  kPhaseSelection = 1,     // argmax |alpha| (and begin(): the copy and finiteness check)
  kPhaseUpdate = 2,        // Cholesky row, pivot and the fused Q column / alpha pass
  kPhaseSolve = 3,         // back-substitution L^T gamma = u into the output slots
  kPhaseOutput = 4,        // the dense row (zeros, then the values)
  kPhaseTotal = 5,         // the thread's whole run (the phases plus loop overhead)
  kOmpPhases = 6
};

struct NoPhaseClock {
  SF_HD SF_INLINE void lap(int) {}
};

// Row k of a precomputed Gram matrix (the usual case).
template <class T>
struct PrecomputedGramRows {
  const T* gram;
  index_t n_atoms;
  SF_HD SF_INLINE const T* row(index_t k) const { return gram + k * n_atoms; }
};

template <class T>
struct OmpProblem {
  const T* gram;       // K x K row-major
  index_t n_atoms;     // K
  int max_atoms;       // M: the sparsity (fixed mode) or the cap (tol mode)
  bool use_tol;        // error-constrained mode
  T tol;               // max squared residual norm (use_tol only)
};

// The pursuit of one signal as a resumable state: begin() loads the correlations, each
// step() adds one atom, finish() solves for the coefficients. omp_signal() runs it to the end;
// the CPU driver interleaves the steps of a few signals so that one signal's long dependency
// chain (argmax -> pivot -> sqrt -> update -> argmax) overlaps another's work in the
// out-of-order core, and a CUDA warp runs one signal's steps with every lane.
template <class T>
struct OmpPursuit {
  // A new atom whose Cholesky pivot (its squared distance to the span of the chosen atoms,
  // relative to its squared norm) is below 64 eps counts as linearly dependent: the pivot is
  // then at the level of the round-off in G itself (a few eps), and continuing would amplify
  // that noise by 1 / pivot in the coefficients. scikit-learn uses 1 eps (absolute).
  static constexpr T kDependence = T(64);

  ArgMax<T> best;     // next atom candidate
  T negligible;       // correlations at or below this are round-off
  T residual_sq;      // |r|^2 (tol mode)
  int s;              // atoms chosen so far
  OmpStatus status;
  bool running;

  // `cov` points at the signal's K correlations, `cov_stride` elements apart (or is ws.alpha
  // itself: then they are used and overwritten in place); `norm_sq` is |x|^2 (needed only in
  // the tol mode).
  template <class Lane>
  SF_HD SF_INLINE void begin(const Lane& lane, const OmpProblem<T>& p, const T* cov,
                             index_t cov_stride, T norm_sq, const OmpWorkspace<T>& ws) {
    const index_t K = p.n_atoms;
    T* alpha = ws.alpha;
    if (cov == alpha) {
      // The caller let the pursuit work in place on its correlations (CPU fused path).
    } else if (cov_stride == 1) {
      lane.for_each(K, [&](index_t i) { alpha[i] = cov[i]; });
    } else {
      lane.for_each(K, [&](index_t i) { alpha[i] = cov[i * cov_stride]; });
    }
    s = 0;
    status = kOmpOk;
    best = lane.argmax_abs(alpha, K);
    // Correlations below sqrt(eps) times the initial largest one are round-off: relative, so
    // the test does not depend on the scale of the data (and, unlike a test on squares, it
    // cannot overflow for large finite signals).
    negligible = Epsilon<T>::sqrt_value * best.value;
    residual_sq = norm_sq;
    running = true;
    if (!lane.all_finite(alpha, K) || (p.use_tol && !sf_isfinite(norm_sq))) {
      status = kOmpNonFinite;
      running = false;
    } else if (p.use_tol && residual_sq <= p.tol) {
      running = false;
    }
  }

  // Adds one atom; returns whether the pursuit goes on.
  template <class Lane>
  SF_HD SF_INLINE bool step(const Lane& lane, const OmpProblem<T>& p,
                            const OmpWorkspace<T>& ws) {
    NoPhaseClock clock;
    return step(lane, p, ws, PrecomputedGramRows<T>{p.gram, p.n_atoms}, clock);
  }

  // The same with the Gram rows supplied on demand (masked signals compute theirs).
  template <class Lane, class GramRows>
  SF_HD SF_INLINE bool step(const Lane& lane, const OmpProblem<T>& p,
                            const OmpWorkspace<T>& ws, const GramRows& gram) {
    NoPhaseClock clock;
    return step(lane, p, ws, gram, clock);
  }

  // The same, charging its update and its selection to `clock` (phase counters).
  template <class Lane, class GramRows, class Clock>
  SF_HD SF_INLINE bool step(const Lane& lane, const OmpProblem<T>& p,
                            const OmpWorkspace<T>& ws, const GramRows& gram, Clock& clock) {
    if (!running) return false;
    const index_t K = p.n_atoms;
    const index_t M = p.max_atoms;
    const QLayout<T> layout{M};
    const index_t k = best.index;
    if (k < 0 || best.value <= negligible) return stop(kOmpResidualOrthogonal);
    bool reselected = false;
    for (int j = 0; j < s; ++j) reselected = reselected || (ws.support[j] == k);
    T* lrow = ws.chol + s * M;
    const T* gk = gram.row(k);
    const T gkk = gk[k];
    T pivot = gkk;
    for (int j = 0; j < s; ++j) {
      const T w = ws.q[layout.at(k, j)];
      lrow[j] = w;
      pivot -= w * w;
    }
    if (reselected || !(pivot > kDependence * Epsilon<T>::value * gkk)) {
      return stop(kOmpLinearDependence);
    }
    const T diag = sf_sqrt(pivot);
    const T inv_diag = T(1) / diag;
    lrow[s] = diag;
    const T us = ws.alpha[k] * inv_diag;
    ws.u[s] = us;
    ws.support[s] = static_cast<int>(k);
    // After the last atom allowed, only u_s is needed: skip the costliest step of all.
    if (s + 1 < M) {
      // On a warp every lane has just read alpha[k] (uniform code above), and the step
      // writes alpha lane by lane: without this barrier that read and the owner's write race
      // under independent thread scheduling (a no-op on the CPU).
      lane.sync();
      lane.gram_schmidt_step(K, gk, ws.q, layout, lrow, s, inv_diag, us, ws.alpha);
    }
    clock.lap(kPhaseUpdate);
    ++s;
    if (p.use_tol) {
      residual_sq -= us * us;
      if (residual_sq <= p.tol) return stop(kOmpOk);
    }
    if (s == M) {
      return stop(p.use_tol ? kOmpMaxAtoms : kOmpOk);
    }
    best = lane.argmax_abs(ws.alpha, K);
    clock.lap(kPhaseSelection);
    return true;
  }

  // gamma = L^{-T} u, written straight into the output slots (selection order); the rest of
  // the M slots get -1 / 0.
  SF_HD SF_INLINE OmpStatus finish(const OmpProblem<T>& p, const OmpWorkspace<T>& ws,
                                   int* out_index, T* out_value, int* out_count) const {
    const index_t M = p.max_atoms;
    for (int i = s - 1; i >= 0; --i) {
      T g = ws.u[i];
      for (int j = i + 1; j < s; ++j) g -= ws.chol[j * M + i] * out_value[j];
      out_value[i] = g / ws.chol[i * M + i];
      out_index[i] = ws.support[i];
    }
    for (index_t i = s; i < M; ++i) {
      out_index[i] = -1;
      out_value[i] = T(0);
    }
    *out_count = s;
    return status;
  }

 private:
  SF_HD SF_INLINE bool stop(OmpStatus why) {
    status = why;
    running = false;
    return false;
  }
};

// The dense row of one signal's codes: zeros, then its `count` values at their atoms.
template <class T, class Lane>
SF_HD SF_INLINE void write_dense(const Lane& lane, index_t K, const int* index, const T* value,
                                 int count, T* row) {
  lane.for_each(K, [&](index_t i) { row[i] = T(0); });
  lane.for_each(count, [&](index_t j) { row[index[j]] = value[j]; });
}

// Codes one signal from start to end (see OmpPursuit).
template <class T, class Lane>
SF_HD SF_INLINE OmpStatus omp_signal(const Lane& lane, const OmpProblem<T>& p, const T* cov,
                                     index_t cov_stride, T norm_sq, const OmpWorkspace<T>& ws,
                                     int* out_index, T* out_value, int* out_count) {
  OmpPursuit<T> pursuit;
  pursuit.begin(lane, p, cov, cov_stride, norm_sq, ws);
  while (pursuit.step(lane, p, ws)) {
  }
  return pursuit.finish(p, ws, out_index, out_value, out_count);
}

}  // namespace SF_KERNEL_NS
}  // namespace sparseforge
