// Batch-OMP for ONE float64 signal whose candidate ranking runs in float32 (CPU only).
//
// Why: at large K * L the pursuit streams Q (K x s per step, K * L^2 / 2 elements per signal)
// from L2, and float64 moves twice the bytes of float32 for the same work: at (256, 1024, 32)
// the float64 kernel ran at 2.8x SPAMS against float32's 7.4x (docs/performance.md, "Cost
// model"). Here the K-wide work of a step — the Q pass and the correlation update — is the
// float32 kernel's own loop (SerialLane::gram_schmidt_step<float>) on a float32 shadow Q~,
// alpha~, while everything the codes are made of stays float64 and exact:
//
//   w   = L^{-1} G[I, k]    by a forward solve on the exact factor (s^2 / 2 multiply-adds,
//                           against the K * s of the Q pass), not read off Q~'s row k;
//   d   = G[k, k] - |w|^2,  u_s = (alpha0_k - w . u) / sqrt(d)  (alpha0: the exact D x);
//   |r|^2 -= u_s^2,         gamma = L^{-T} u at the end (OmpPursuit::finish).
//
// Only the ranking of the candidates sees float32, and the pursuit carries a bound
// tau >= max_i |alpha~_i - alpha_i| (first order in the float32 unit roundoff, with a 2x
// margin), built from e_j >= max_i |Q~[i, j] - Q[i, j]| and |Q[i, j]| <= sqrt(max G_ii):
//
//   e_s   = (sum_j |w_j| e_j + (2s + 7) 2^-24 (|G[:, k]| + sum_j |w_j| |Q~_j|)) / sqrt(d)
//   tau  += |u_s| e_s + 2^-24 (v + 3 |u_s| |y_s|)     (v: the largest |alpha~|)
//
// Selection is then exact: an atom with |alpha~_i| < v - 2 tau has |alpha_i| < v - tau, at
// most the exact |alpha| of the float32 argmax, so the true argmax lies among the atoms
// within 2 tau of v. When that window holds more than one atom (or straddles the negligible
// threshold) their exact correlations alpha0_i - G[i, I] gamma decide (the lowest index on a
// tie, as numpy.argmax). The atoms chosen, and so the codes, are those of the float64 pursuit
// up to float64 round-off; tests/native/test_float32_q.py checks that against the float64
// kernel, near-ties and dependent atoms included.
#pragma once

#include <cstdint>

#include "sparseforge/config.hpp"
#include "sparseforge/lanes.hpp"
#include "sparseforge/omp_signal.hpp"
#include "sparseforge/scalar_math.hpp"
#include "sparseforge/status.hpp"

#if !defined(__CUDACC__)

namespace sparseforge {
inline namespace SF_KERNEL_NS {

struct MixedOmpWorkspace {
  // base.alpha: the exact initial correlations alpha0 (float64, never updated: its own K
  // values, or the fused CPU path's block row, set per signal); base.chol,
  // base.u, base.support: the exact factor, u and the atoms, as OmpPursuit keeps them.
  OmpWorkspace<double> base;
  double* lt;        // M * M   L transposed (column j of L contiguous), for the forward solve
  double* inv_diag;  // M       1 / L[j, j]
  double* gamma;     // M       current coefficients (exact selection only)
  double* err;       // M       e_j
  double* max_diag;  // 1       max_i G[i, i] (once per workspace; < 0 until known)
  float* alpha;      // K       alpha~
  float* q;          // Q~      in QLayout<float>
  const float* gram_f;  // K x K  G in float32 (the driver's, shared by its threads)
  float* wf;         // M       w in float32

  static constexpr index_t floats(index_t K, index_t M) {
    return K + QLayout<float>::size(K, M) + M;
  }
  static constexpr index_t scalars(index_t K, index_t M) {
    return K + 2 * M * M + 4 * M + 1 + 8 + (floats(K, M) + 1) / 2;  // + 8: 64-byte alignment
  }
  static constexpr index_t ints(index_t M) { return M; }

  static MixedOmpWorkspace carve(double* buf, int* ints_buf, index_t K, index_t M) {
    MixedOmpWorkspace ws;
    ws.base.alpha = buf;
    ws.base.q = nullptr;
    ws.base.chol = buf + K;
    ws.base.u = ws.base.chol + M * M;
    ws.lt = ws.base.u + M;
    ws.inv_diag = ws.lt + M * M;
    ws.gamma = ws.inv_diag + M;
    ws.err = ws.gamma + M;
    ws.max_diag = ws.err + M;
    *ws.max_diag = -1.0;
    // The float32 region on a 64-byte boundary, so each 256-byte Q~ tile is 4 cache lines.
    const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(ws.max_diag + 1);
    ws.alpha = reinterpret_cast<float*>((at + 63) & ~static_cast<std::uintptr_t>(63));
    ws.q = ws.alpha + K;
    ws.gram_f = nullptr;
    ws.wf = ws.q + QLayout<float>::size(K, M);
    ws.base.support = ints_buf;
    return ws;
  }
};

// The pursuit of one signal (see OmpPursuit for begin / step / finish; `core` holds the
// state they share, and begin and finish are OmpPursuit's own on the exact fields).
struct MixedOmpPursuit {
  static constexpr double kUnit32 = 5.9604644775390625e-08;  // 2^-24, float32 rounding
  static constexpr double kMargin = 2.0;

  OmpPursuit<double> core;
  double tau;        // kMargin * tau_first: the bound on max_i |alpha~_i - alpha_i|
  double tau_first;  // the first-order bound
  double q_bound;    // sqrt(max_i G_ii) >= |Q[i, j]|
  double top;        // max_i |alpha~_i| at the last ranking
  bool exact_only;   // float32 cannot hold this signal's values (see begin): rank exactly

  // `cov` as OmpPursuit::begin; with the fused CPU path it is the block's float64 row itself,
  // which then serves as alpha0 (read only).
  template <class Lane>
  SF_INLINE void begin(const Lane& lane, const OmpProblem<double>& p, const double* cov,
                       index_t cov_stride, double norm_sq, const MixedOmpWorkspace& ws) {
    core.begin(lane, p, cov, cov_stride, norm_sq, ws.base);
    const index_t K = p.n_atoms;
    if (*ws.max_diag < 0.0) {
      double m = 0.0;
      for (index_t i = 0; i < K; ++i) m = p.gram[i * K + i] > m ? p.gram[i * K + i] : m;
      *ws.max_diag = m;
    }
    q_bound = sf_sqrt(*ws.max_diag);
    const double* alpha0 = ws.base.alpha;
    float* alpha = ws.alpha;
    lane.for_each(K, [&](index_t i) { alpha[i] = static_cast<float>(alpha0[i]); });
    // The first selection is core.begin's exact one; alpha~ starts rounded.
    top = core.best.value;
    tau_first = kUnit32 * top;
    tau = kMargin * tau_first;
    // The bound assumes every float32 rounding is relative (2^-24): values must stay far from
    // float32's overflow (3.4e38: inf and NaN in the Q pass) and subnormal (1.2e-38: absolute
    // rounding) ranges. With a Gram diagonal or a largest correlation outside [2^-60, 2^60]
    // (valid float64 data) every atom is ranked exactly instead: K * s multiply-adds a step,
    // correct and slower, never relying on how NaN falls through the float32 ranking.
    const double md = *ws.max_diag;
    constexpr double kLow = 0x1p-60, kHigh = 0x1p60;
    exact_only = !(md >= kLow && md <= kHigh) || top > kHigh || (top > 0.0 && top < kLow);
  }

  template <class Lane, class Clock>
  SF_INLINE bool step(const Lane& lane, const OmpProblem<double>& p, const MixedOmpWorkspace& ws,
                      const PrecomputedGramRows<double>& gram, Clock& clock) {
    if (!core.running) return false;
    const index_t K = p.n_atoms;
    const index_t M = p.max_atoms;
    const int s = core.s;
    const double* alpha0 = ws.base.alpha;
    double* chol = ws.base.chol;
    double* u = ws.base.u;
    int* support = ws.base.support;
    if (s > 0 && exact_only) {
      core.best = exact_best(p, ws, gram, -1.0);  // every atom
    } else if (core.best.index < 0) {
      return stop(kOmpResidualOrthogonal);
    } else if (s > 0) {  // core.best is float32's ranking: make it exact where it could be wrong
      const double v = core.best.value;
      if (v + tau <= core.negligible) return stop(kOmpResidualOrthogonal);
      const double lo = v - 2.0 * tau;
      if (v - tau <= core.negligible || several_at_least(ws.alpha, K, lo)) {
        core.best = exact_best(p, ws, gram, lo);
      }
    }
    if (core.best.index < 0 || core.best.value <= core.negligible) {
      return stop(kOmpResidualOrthogonal);
    }
    const index_t k = core.best.index;
    bool reselected = false;
    for (int j = 0; j < s; ++j) reselected = reselected || (support[j] == k);
    const double* gk = gram.row(k);
    const double gkk = gk[k];
    // The new row of L from the exact factor, L w = G[I, k], column by column (one
    // multiply-add of latency per atom on the critical path, not a dot product).
    double* lrow = chol + s * M;
    for (int j = 0; j < s; ++j) lrow[j] = gk[support[j]];
    for (int j = 0; j < s; ++j) {
      const double wj = lrow[j] * ws.inv_diag[j];
      lrow[j] = wj;
      const double* col = ws.lt + j * M;
#pragma omp simd
      for (int i = j + 1; i < s; ++i) lrow[i] -= col[i] * wj;
    }
    double pivot = gkk;
    for (int j = 0; j < s; ++j) pivot -= lrow[j] * lrow[j];
    if (reselected || !(pivot > OmpPursuit<double>::kDependence * Epsilon<double>::value * gkk)) {
      return stop(kOmpLinearDependence);
    }
    const double diag = sf_sqrt(pivot);
    const double inv_diag = 1.0 / diag;
    lrow[s] = diag;
    for (int j = 0; j < s; ++j) ws.lt[j * M + s] = lrow[j];
    ws.lt[s * M + s] = diag;
    ws.inv_diag[s] = inv_diag;
    double alpha_k = alpha0[k];  // its exact current correlation: alpha0_k - w . u
    for (int j = 0; j < s; ++j) alpha_k -= lrow[j] * u[j];
    const double us = alpha_k * inv_diag;
    u[s] = us;
    support[s] = static_cast<int>(k);
    if (s + 1 < M && !exact_only) {
      const float* gf = ws.gram_f + k * K;
      double propagated = 0.0;
      double magnitude = sf_sqrt(gkk) * q_bound;  // >= |G[i, k]|
      for (int j = 0; j < s; ++j) {
        ws.wf[j] = static_cast<float>(lrow[j]);
        propagated += abs_value(lrow[j]) * ws.err[j];
        magnitude += abs_value(lrow[j]) * (q_bound + ws.err[j]);
      }
      lane.gram_schmidt_step(K, gf, ws.q, QLayout<float>{M}, ws.wf, s,
                             static_cast<float>(inv_diag), static_cast<float>(us), ws.alpha);
      // y = fl32((G~[:, k] - Q~ w~) * fl32(1 / d)) against the exact column: the propagated
      // error of Q~, then the roundings of G~, w~, the s multiply-adds (two each if not
      // fused), the scale and the product, each relative to `magnitude` / d >= |y|.
      const double e_s = (propagated + (2 * s + 7) * kUnit32 * magnitude) * inv_diag;
      const double y_max = magnitude * inv_diag;
      ws.err[s] = e_s;
      // alpha~ -= fl32(u_s) y: the error of y, of fl32(u_s) and the rounding of the result.
      tau_first += abs_value(us) * e_s + kUnit32 * (top + 3.0 * abs_value(us) * y_max);
      tau = kMargin * tau_first;
      // The chosen atoms' exact correlations are 0 (Q[I, s] is L's column s, zero above).
      for (int j = 0; j <= s; ++j) ws.alpha[support[j]] = 0.0f;
    }
    clock.lap(kPhaseUpdate);
    core.s = s + 1;
    if (p.use_tol) {
      core.residual_sq -= us * us;
      if (core.residual_sq <= p.tol) return stop(kOmpOk);
    }
    if (core.s == M) return stop(p.use_tol ? kOmpMaxAtoms : kOmpOk);
    if (exact_only) return true;  // the next step ranks every atom exactly
    const ArgMax<float> best = lane.argmax_abs(ws.alpha, K);
    core.best = ArgMax<double>{static_cast<double>(best.value), best.index};
    top = core.best.value;
    // The next step reads G[k, I] for this candidate: s + 1 scattered float64 elements of a
    // Gram matrix that lives in L3 or memory. Fetched now, they arrive while the driver runs
    // the interleaved signal's step (perf: the gather was the step's costliest line without).
    if (best.index >= 0) {
      const double* next = gram.row(best.index);
      for (int j = 0; j <= s; ++j) __builtin_prefetch(next + support[j]);
      __builtin_prefetch(next + best.index);
    }
    clock.lap(kPhaseSelection);
    return true;
  }

  SF_INLINE OmpStatus finish(const OmpProblem<double>& p, const MixedOmpWorkspace& ws,
                             int* out_index, double* out_value, int* out_count) const {
    return core.finish(p, ws.base, out_index, out_value, out_count);
  }

 private:
  SF_INLINE bool stop(OmpStatus why) {
    core.status = why;
    core.running = false;
    return false;
  }

  // A float32 threshold at or below `lo` (its own rounding undone), for comparing alpha~.
  static SF_INLINE float float32_floor(double lo) {
    return static_cast<float>(lo) * (1.0f - 2.0f * static_cast<float>(kUnit32));
  }

  // Whether more than one |alpha~_i| reaches lo (int lanes: a 64-bit count vectorised at
  // half the width).
  static SF_INLINE bool several_at_least(const float* a, index_t n, double lo) {
    if (!(lo > 0.0)) return true;
    const float lo_f = float32_floor(lo);
    constexpr index_t kChunk = index_t(1) << 30;
    index_t total = 0;
    for (index_t i0 = 0; i0 < n; i0 += kChunk) {
      const index_t m = n - i0 < kChunk ? n - i0 : kChunk;
      int count = 0;
#pragma omp simd reduction(+ : count)
      for (index_t i = 0; i < m; ++i) count += abs_value(a[i0 + i]) >= lo_f ? 1 : 0;
      total += count;
      if (total > 1) return true;
    }
    return false;
  }

  // The exact argmax among the atoms whose |alpha~| is at least lo: alpha0_i - G[i, I] gamma
  // with gamma = L^{-T} u for the atoms chosen so far.
  SF_INLINE ArgMax<double> exact_best(const OmpProblem<double>& p, const MixedOmpWorkspace& ws,
                                      const PrecomputedGramRows<double>& gram, double lo) const {
    const int s = core.s;
    const index_t M = p.max_atoms;
    const double* chol = ws.base.chol;
    const int* support = ws.base.support;
    double* gamma = ws.gamma;
    for (int i = s - 1; i >= 0; --i) {
      double g = ws.base.u[i];
      for (int j = i + 1; j < s; ++j) g -= chol[j * M + i] * gamma[j];
      gamma[i] = g * ws.inv_diag[i];
    }
    const float lo_f = float32_floor(lo);
    ArgMax<double> best{-1.0, -1};
    for (index_t i = 0; i < p.n_atoms; ++i) {
      if (lo > 0.0 && !(abs_value(ws.alpha[i]) >= lo_f)) continue;
      const double* gi = gram.row(i);
      double a = ws.base.alpha[i];
      for (int j = 0; j < s; ++j) a -= gi[support[j]] * gamma[j];
      best = argmax_combine(best, ArgMax<double>{abs_value(a), i});
    }
    if (best.index < 0) best.value = 0.0;
    return best;
  }
};

}  // namespace SF_KERNEL_NS
}  // namespace sparseforge

#endif  // !__CUDACC__
