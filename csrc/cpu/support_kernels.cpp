// OpenMP kernels on a given support (see support_kernels.hpp and sparseforge/support_args.hpp).
// Compiled once per instruction set (CMake defines SF_ISA_NS and the -m flags).
//
// Least squares: the systems are small (L x L, L ~ 17) and there are many (one per patch), so
// kLanes signals (one 64-byte vector of T: 16 in float32, 8 in float64) are solved side by
// side, one signal per SIMD lane: G is stored lane-innermost, g[(p * L + q) * kLanes + lane],
// and every step of the Cholesky factorisation and of the two triangular solves is one
// vector operation over the lanes. Padded slots (and every slot of the lanes past the last
// signal) are null rows and columns with a zero right-hand side, which the drop rule removes,
// so every lane runs the same code. The Gram entries of a signal are gathered from D D^T
// (unweighted) or computed as weighted dot products of its atoms.
//
// Synthesis: the forward adds each row's kernels with the output row in registers; the
// backward sorts a chunk of rows' (row, slot) entries by kernel and runs kernel by kernel, so
// that the kernel's weights and gradient accumulator stay in registers and each gradient row
// is read once for both outputs.
//
// Reductions (dot products, the sums over the slots, the per-thread accumulators) are
// written out in a fixed order, so a result never depends on how the compiler vectorised a
// loop or on the alignment of an array; the forwards and the coefficient gradients are per
// row and do not depend on the thread count either.
#include "support_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "sparseforge/scalar_math.hpp"
#include "threads.hpp"

// The vector helpers below pass 64-byte vectors by value; they are internal to this file
// (anonymous namespace, inlined), so GCC's note that their ABI differs without AVX-512
// concerns no caller.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace sparseforge {
namespace SF_ISA_NS {
namespace {

int team(int n_threads) { return n_threads < 1 ? 1 : n_threads; }

// Inside a parallel region of `threads` threads: out[e] += the partial sums of threads 1..T-1
// (`extra`, one block of `count` per thread), added in thread order so that a given thread
// count always gives the same bits; the entries are shared out among the team.
template <class T>
void add_thread_partials(T* out, const T* extra, index_t count, int threads) {
#pragma omp for schedule(static)
  for (index_t e = 0; e < count; ++e) {
    T v = out[e];
    for (int k = 1; k < threads; ++k) v += extra[(k - 1) * count + e];
    out[e] = v;
  }
}

int thread_count() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// Part `t` of `parts` contiguous, near-equal runs of [0, count).
void split(index_t count, int parts, int t, index_t* begin, index_t* end) {
  *begin = count / parts * t + std::min<index_t>(t, count % parts);
  *end = *begin + count / parts + (t < count % parts ? 1 : 0);
}

// The sum of the `Lanes` elements of a vector, halves first (lo + hi, recursively): a fixed
// order, log2(Lanes) vector adds instead of a chain of scalar ones.
template <class T, int Lanes>
struct HalvingSum {
  typedef T V __attribute__((vector_size(Lanes * sizeof(T)), aligned(sizeof(T))));
  typedef T H __attribute__((vector_size(Lanes / 2 * sizeof(T)), aligned(sizeof(T))));
  static T run(const V& v) {
    H lo, hi;
    std::memcpy(&lo, &v, sizeof(H));
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(H), sizeof(H));
    return HalvingSum<T, Lanes / 2>::run(lo + hi);
  }
};
template <class T>
struct HalvingSum<T, 2> {
  typedef T V __attribute__((vector_size(2 * sizeof(T)), aligned(sizeof(T))));
  static T run(const V& v) { return v[0] + v[1]; }
};

// One 64-byte vector of T (GCC vector extension: one zmm with AVX-512, two ymm with AVX2,
// four xmm otherwise).
template <class T>
struct Vec {
  static constexpr int kWidth = 64 / static_cast<int>(sizeof(T));
  typedef typename HalvingSum<T, kWidth>::V V;
  static V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  static void store(T* p, const V& v) { std::memcpy(p, &v, sizeof(V)); }
  static T sum(const V& v) { return HalvingSum<T, kWidth>::run(v); }
};

// sum_f a[f] b[f] in a fixed order: four vector accumulators (independent chains), added
// pairwise, then the halving sum and the scalar tail.
template <class T>
inline T dot(const T* a, const T* b, index_t n) {
  using W = Vec<T>;
  constexpr index_t VL = W::kWidth;
  typename W::V acc0{}, acc1{}, acc2{}, acc3{};
  index_t f = 0;
  for (; f + 4 * VL <= n; f += 4 * VL) {
    acc0 += W::load(a + f) * W::load(b + f);
    acc1 += W::load(a + f + VL) * W::load(b + f + VL);
    acc2 += W::load(a + f + 2 * VL) * W::load(b + f + 2 * VL);
    acc3 += W::load(a + f + 3 * VL) * W::load(b + f + 3 * VL);
  }
  for (; f + VL <= n; f += VL) acc0 += W::load(a + f) * W::load(b + f);
  T s = W::sum((acc0 + acc1) + (acc2 + acc3));
  for (; f < n; ++f) s += a[f] * b[f];
  return s;
}

// out[k] = sum_f g[f] w[k][f] for k < G, each in its own vector accumulator (vector chunks in
// order, then the halving sum, then the scalar tail): the G dot products share the loads of
// g and run as G independent chains.
template <class T, int G>
inline void dots_fixed(const T* g, const T* const* w, index_t n, T* out) {
  using Vt = Vec<T>;
  using V = typename Vt::V;
  constexpr index_t VL = Vt::kWidth;
  V acc[G];
  for (int k = 0; k < G; ++k) acc[k] = V{};
  index_t f = 0;
  for (; f + VL <= n; f += VL) {
    const V gv = Vt::load(g + f);
    for (int k = 0; k < G; ++k) acc[k] += gv * Vt::load(w[k] + f);
  }
  for (int k = 0; k < G; ++k) {
    T s = Vt::sum(acc[k]);
    for (index_t e = f; e < n; ++e) s += g[e] * w[k][e];
    out[k] = s;
  }
}

constexpr index_t kMaxGroup = 8;

// out[k] = g . w[k] for k < count (dots_fixed in groups of up to kMaxGroup).
template <class T>
inline void dots(const T* g, const T* const* w, index_t count, index_t n, T* out) {
  index_t k = 0;
  static_assert(kMaxGroup == 8, "the cases below");
  for (; k + 8 <= count; k += 8) dots_fixed<T, 8>(g, w + k, n, out + k);
  switch (count - k) {
    case 7: dots_fixed<T, 7>(g, w + k, n, out + k); break;
    case 6: dots_fixed<T, 6>(g, w + k, n, out + k); break;
    case 5: dots_fixed<T, 5>(g, w + k, n, out + k); break;
    case 4: dots_fixed<T, 4>(g, w + k, n, out + k); break;
    case 3: dots_fixed<T, 3>(g, w + k, n, out + k); break;
    case 2: dots_fixed<T, 2>(g, w + k, n, out + k); break;
    case 1: dots_fixed<T, 1>(g, w + k, n, out + k); break;
    default: break;
  }
}

// Issues a prefetch for every cache line of [p, p + bytes).
inline void prefetch_bytes(const void* p, index_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (index_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b);
}

// ---- least squares on the support --------------------------------------------------------

template <class T>
constexpr index_t kLanes = 64 / static_cast<index_t>(sizeof(T));

// The problem both directions share. Padded slots are mapped to a sentinel atom K whose row
// and column of the extended Gram matrix are zero: a padded slot has a zero row and column in
// G, so its pivot is exactly 0 and the drop rule removes it like any other null slot.
template <class T>
struct Support {
  index_t N, n, K, L;
  const T* x;
  const T* dictionary;
  const T* weights;           // null: all ones
  const T* gram;              // (K + 1) x (K + 1), extended; set when weights is null
  const long long* indices;
  bool narrow;                // (K + 1)^2 fits int32: Gram offsets gathered as int32
};

// The Gram matrix extended by the zero row and column of the sentinel atom K: computed as
// D D^T (exactly symmetric: each pair once), or copied from the caller's K x K `given`. Rows
// split over the team; call from inside a parallel region (ends with the loop's barrier).
template <class T>
void extended_gram_in_team(const T* d, const T* given, index_t K, index_t n, T* out) {
  const index_t K1 = K + 1;
#pragma omp for schedule(static)
  for (index_t r = 0; r < K1; ++r) {
    if (r == K) {
      for (index_t c = 0; c < K1; ++c) out[r * K1 + c] = T(0);
      continue;
    }
    out[r * K1 + K] = T(0);
    if (given != nullptr) {
      for (index_t c = 0; c < K; ++c) out[r * K1 + c] = given[r * K + c];
      continue;
    }
    for (index_t c = 0; c <= r; ++c) {
      const T v = dot(d + r * n, d + c * n, n);
      out[r * K1 + c] = v;
      out[c * K1 + r] = v;
    }
  }
}

// One thread's kLanes systems. Slot p of lane v is entry p * kLanes + v of every L x kLanes
// array; G's entry (p, q) of lane v is g[(p * L + q) * kLanes + v] (lower triangle, q <= p).
template <class T>
struct LaneSystems {
  index_t L;                  // slots of a support
  index_t m = 0;              // slots in use in this batch: 1 + the last non-padded one
  std::vector<index_t> at;    // L x kLanes: the supports, padded = K (and past the last signal)
  std::vector<std::int32_t> at32;  // the same as int32 (narrow problems)
  std::vector<std::int32_t> row32;  // kLanes: at32 * (K + 1) of one slot
  std::vector<T> g;           // L x L x kLanes: G, then its Cholesky factor
  std::vector<T> inv;         // L x kLanes: 1 / the factor's diagonal; 0 = slot dropped
  std::vector<T> y;           // L x kLanes: right-hand sides, then solutions
  std::vector<T> tau;         // kLanes: the drop threshold of each lane's signal
  std::vector<T> wa;          // n: w * one atom (weighted systems)
  std::vector<const T*> rows_of;  // L + 1: the rows one weighted atom is dotted with
  std::vector<T> dots_out;    // L + 1: their dot products
  LaneSystems(index_t slots, index_t n)
      : L(slots),
        at(static_cast<size_t>(slots * kLanes<T>)),
        at32(static_cast<size_t>(slots * kLanes<T>)),
        row32(static_cast<size_t>(kLanes<T>)),
        g(static_cast<size_t>(slots * slots * kLanes<T>)),
        inv(static_cast<size_t>(slots * kLanes<T>)),
        y(static_cast<size_t>(slots * kLanes<T>)),
        tau(static_cast<size_t>(kLanes<T>)),
        wa(static_cast<size_t>(n)),
        rows_of(static_cast<size_t>(slots + 1)),
        dots_out(static_cast<size_t>(slots + 1)) {}
  // Slot p of lane v takes part in the solution (neither padded nor dropped).
  bool kept(index_t p, index_t lane, index_t K) const {
    return p < m && at[p * kLanes<T> + lane] != K && inv[p * kLanes<T> + lane] != T(0);
  }
};

// dst[v] = base[row[v] + col[v]] for the kLanes lanes (int32 offsets): one or two gather
// instructions where the instruction set has them (the same loads either way).
template <class T>
inline void gather_lanes(const T* base, const std::int32_t* row, const std::int32_t* col,
                         T* dst) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) {
    const __m512i o = _mm512_add_epi32(_mm512_loadu_si512(row), _mm512_loadu_si512(col));
    _mm512_storeu_ps(dst, _mm512_i32gather_ps(o, base, 4));
  } else {
    const __m256i o =
        _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row)),
                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col)));
    _mm512_storeu_pd(dst, _mm512_i32gather_pd(o, base, 8));
  }
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    for (int h = 0; h < 2; ++h) {
      const __m256i o =
          _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 8 * h)),
                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col + 8 * h)));
      _mm256_storeu_ps(dst + 8 * h, _mm256_i32gather_ps(base, o, 4));
    }
  } else {
    for (int h = 0; h < 2; ++h) {
      const __m128i o =
          _mm_add_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 4 * h)),
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(col + 4 * h)));
      _mm256_storeu_pd(dst + 4 * h, _mm256_i32gather_pd(base, o, 8));
    }
  }
#else
  for (index_t v = 0; v < kLanes<T>; ++v) dst[v] = base[row[v] + col[v]];
#endif
}

// The supports of signals i0 .. i0 + rows - 1, transposed into ls.at (padded = K), and the
// batch width m. Slots at or past m are padded in every lane: null rows and columns of G,
// decoupled from the others (the factorisation is left-looking) and solved to 0, so they are
// skipped without changing any result.
template <class T>
void load_supports(const Support<T>& s, index_t i0, index_t rows, LaneSystems<T>& ls) {
  constexpr index_t W = kLanes<T>;
  const index_t L = s.L, K = s.K;
  // The next batch's supports and signals, while this one is solved (they stream from
  // memory, and the hardware prefetcher loses track between the Gram and atom reads).
  if (i0 + 2 * W <= s.N) {
    prefetch_bytes(s.indices + (i0 + W) * L, W * L * index_t(sizeof(long long)));
    prefetch_bytes(s.x + (i0 + W) * s.n, W * s.n * index_t(sizeof(T)));
    if (s.weights != nullptr) {
      prefetch_bytes(s.weights + (i0 + W) * s.n, W * s.n * index_t(sizeof(T)));
    }
  }
  index_t m = 0;
  for (index_t lane = 0; lane < W; ++lane) {
    const long long* idx = lane < rows ? s.indices + (i0 + lane) * L : nullptr;
    for (index_t p = 0; p < L; ++p) {
      const long long a = idx == nullptr ? -1 : idx[p];
      ls.at[p * W + lane] = a >= 0 ? a : K;
      if (a >= 0 && p >= m) m = p + 1;
    }
  }
  ls.m = m;
  if (s.narrow) {
    for (index_t e = 0; e < m * W; ++e) ls.at32[e] = static_cast<std::int32_t>(ls.at[e]);
  }
}

// G (lower triangle, the first m slots) of the batch and, when `with_b`, b = A W x in `y`;
// the drop thresholds tau. Padded slots (and every slot of the lanes past the last signal)
// get null rows and columns and b = 0.
template <class T>
void build_systems(const Support<T>& s, index_t i0, index_t rows, bool with_b,
                   LaneSystems<T>& ls) {
  constexpr index_t W = kLanes<T>;
  const index_t L = s.L, n = s.n, K = s.K, K1 = K + 1, m = ls.m;
  T* g = ls.g.data();
  T* y = ls.y.data();
  const index_t* at = ls.at.data();
  if (s.weights == nullptr) {
    const T* gram = s.gram;
    for (index_t p = 0; p < m; ++p) {
      if (s.narrow) {
        const std::int32_t* ap = ls.at32.data() + p * W;
        std::int32_t* row = ls.row32.data();
        for (index_t v = 0; v < W; ++v) row[v] = ap[v] * static_cast<std::int32_t>(K1);
        for (index_t q = 0; q <= p; ++q) {
          gather_lanes(gram, row, ls.at32.data() + q * W, g + (p * L + q) * W);
        }
      } else {
        const index_t* ap = at + p * W;
        for (index_t q = 0; q <= p; ++q) {
          const index_t* aq = at + q * W;
          T* dst = g + (p * L + q) * W;
          for (index_t v = 0; v < W; ++v) dst[v] = gram[ap[v] * K1 + aq[v]];
        }
      }
    }
    if (with_b) {
      const T* rows_of[kMaxGroup];
      T out[kMaxGroup];
      for (index_t lane = 0; lane < rows; ++lane) {
        const T* x = s.x + (i0 + lane) * n;
        // The dots of the lane's atoms with x, kMaxGroup slots at a time.
        for (index_t p0 = 0; p0 < m; p0 += kMaxGroup) {
          const index_t p1 = std::min(m, p0 + kMaxGroup);
          index_t used = 0;
          for (index_t p = p0; p < p1; ++p) {
            const index_t a = at[p * W + lane];
            if (a != K) rows_of[used++] = s.dictionary + a * n;
          }
          dots(x, rows_of, used, n, out);
          for (index_t p = p0, k = 0; p < p1; ++p) {
            y[p * W + lane] = at[p * W + lane] != K ? out[k++] : T(0);
          }
        }
      }
      for (index_t lane = rows; lane < W; ++lane) {
        for (index_t p = 0; p < m; ++p) y[p * W + lane] = T(0);
      }
    }
  } else {
    // Per signal and slot p: the weighted atom wa = w * A_p, then its dots with the earlier
    // slots' atoms, with A_p itself (the diagonal) and with x (b), sharing the loads of wa.
    T* wa = ls.wa.data();
    std::vector<const T*>& rows_of = ls.rows_of;
    std::vector<T>& out = ls.dots_out;
    for (index_t lane = 0; lane < W; ++lane) {
      const index_t i = i0 + lane;
      const T* x = lane < rows ? s.x + i * n : nullptr;
      const T* w = lane < rows ? s.weights + i * n : nullptr;
      for (index_t p = 0; p < m; ++p) {
        const index_t a = at[p * W + lane];
        if (a == K) {
          for (index_t q = 0; q <= p; ++q) g[(p * L + q) * W + lane] = T(0);
          if (with_b) y[p * W + lane] = T(0);
          continue;
        }
        const T* atom = s.dictionary + a * n;
        for (index_t f = 0; f < n; ++f) wa[f] = w[f] * atom[f];
        index_t used = 0;
        for (index_t q = 0; q < p; ++q) {
          const index_t b = at[q * W + lane];
          if (b != K) rows_of[used++] = s.dictionary + b * n;
        }
        rows_of[used++] = atom;
        if (with_b) rows_of[used++] = x;
        dots(wa, rows_of.data(), used, n, out.data());
        index_t k = 0;
        for (index_t q = 0; q < p; ++q) {
          g[(p * L + q) * W + lane] = at[q * W + lane] != K ? out[k++] : T(0);
        }
        g[(p * L + p) * W + lane] = out[k++];
        if (with_b) y[p * W + lane] = out[k];
      }
    }
  }
  // tau = kSupportDependence eps max_p G[p, p] (padded diagonals are 0); a NaN diagonal
  // makes tau NaN, and then nothing is dropped (the NaN reaches the coefficients).
  T maxdiag[W];
  for (index_t v = 0; v < W; ++v) maxdiag[v] = T(0);
  for (index_t p = 0; p < m; ++p) {
    const T* diag = g + (p * L + p) * W;
    for (index_t v = 0; v < W; ++v) {
      maxdiag[v] = !(diag[v] <= maxdiag[v]) ? diag[v] : maxdiag[v];
    }
  }
  for (index_t v = 0; v < W; ++v) {
    ls.tau[v] = T(kSupportDependence) * Epsilon<T>::value * maxdiag[v];
  }
}

// In-place Cholesky of every lane's G (the first m slots), left-looking, with the drop rule:
// a pivot d <= tau gets inv = 0, which zeroes its column below the diagonal (the later slots
// are factored without it) and its entries of every solve; a NaN pivot is kept (inv NaN).
// Four rows of a column at a time share the loads of the column's row.
template <class T>
void factor(LaneSystems<T>& ls) {
  using Vt = Vec<T>;
  using V = typename Vt::V;
  constexpr index_t W = kLanes<T>;
  static_assert(Vt::kWidth == W, "one vector per lane set");
  const index_t L = ls.L, m = ls.m;
  T* g = ls.g.data();
  T* inv = ls.inv.data();
  const T* tau = ls.tau.data();
  for (index_t j = 0; j < m; ++j) {
    T* gj = g + j * L * W;
    V d = Vt::load(gj + j * W);
    for (index_t k = 0; k < j; ++k) {
      const V l = Vt::load(gj + k * W);
      d -= l * l;
    }
    // inv = d <= tau ? 0 : 1 / sqrt(d), as whole-vector operations (a per-lane conditional
    // loop is not vectorised).
    const auto drop = d <= Vt::load(tau);
    const V safe = drop ? V{} + T(1) : d;
    T root[W];
    Vt::store(root, safe);
    for (index_t v = 0; v < W; ++v) root[v] = std::sqrt(root[v]);
    const V iv = drop ? V{} : T(1) / Vt::load(root);
    Vt::store(inv + j * W, iv);
    index_t i = j + 1;
    for (; i + 4 <= m; i += 4) {
      T* g0 = g + i * L * W;
      T* g1 = g0 + L * W;
      T* g2 = g1 + L * W;
      T* g3 = g2 + L * W;
      V a0 = Vt::load(g0 + j * W), a1 = Vt::load(g1 + j * W), a2 = Vt::load(g2 + j * W),
        a3 = Vt::load(g3 + j * W);
      for (index_t k = 0; k < j; ++k) {
        const V l = Vt::load(gj + k * W);
        a0 -= Vt::load(g0 + k * W) * l;
        a1 -= Vt::load(g1 + k * W) * l;
        a2 -= Vt::load(g2 + k * W) * l;
        a3 -= Vt::load(g3 + k * W) * l;
      }
      Vt::store(g0 + j * W, a0 * iv);
      Vt::store(g1 + j * W, a1 * iv);
      Vt::store(g2 + j * W, a2 * iv);
      Vt::store(g3 + j * W, a3 * iv);
    }
    for (; i < m; ++i) {
      T* gi = g + i * L * W;
      V a = Vt::load(gi + j * W);
      for (index_t k = 0; k < j; ++k) a -= Vt::load(gi + k * W) * Vt::load(gj + k * W);
      Vt::store(gi + j * W, a * iv);
    }
  }
}

// y <- G^-1 y for every lane (the factor from `factor`, the first m slots), 0 in dropped
// slots: column-oriented substitutions, so that each solved entry updates the later ones
// independently (a short dependency chain per slot).
template <class T>
void solve(LaneSystems<T>& ls) {
  using Vt = Vec<T>;
  using V = typename Vt::V;
  constexpr index_t W = kLanes<T>;
  const index_t L = ls.L, m = ls.m;
  const T* g = ls.g.data();
  const T* inv = ls.inv.data();
  T* y = ls.y.data();
  auto scale = [&](index_t j) {  // y_j *= inv_j, 0 where dropped
    const V iv = Vt::load(inv + j * W);
    Vt::store(y + j * W, iv != T(0) ? Vt::load(y + j * W) * iv : V{});
  };
  for (index_t j = 0; j < m; ++j) {  // L z = y
    scale(j);
    const V zj = Vt::load(y + j * W);
    for (index_t i = j + 1; i < m; ++i) {
      Vt::store(y + i * W, Vt::load(y + i * W) - Vt::load(g + (i * L + j) * W) * zj);
    }
  }
  for (index_t j = m - 1; j >= 0; --j) {  // L^T c = z
    scale(j);
    const V cj = Vt::load(y + j * W);
    const T* gj = g + j * L * W;
    for (index_t k = 0; k < j; ++k) {
      Vt::store(y + k * W, Vt::load(y + k * W) - Vt::load(gj + k * W) * cj);
    }
  }
}

// The Gram buffer of a call: (K + 1)^2 when the systems are unweighted, else empty.
template <class T, class A>
std::vector<T> gram_buffer(const A& a) {
  const bool need = a.weights == nullptr && a.n_signals > 0 && a.max_atoms > 0;
  return std::vector<T>(need ? static_cast<size_t>((a.n_atoms + 1) * (a.n_atoms + 1)) : 0);
}

template <class T, class A>
Support<T> support_of(const A& a, const std::vector<T>& gram) {
  const index_t K1 = a.n_atoms + 1;
  return Support<T>{a.n_signals, a.n_features, a.n_atoms, a.max_atoms, a.x, a.dictionary,
                    a.weights, gram.empty() ? nullptr : gram.data(), a.indices,
                    K1 <= 46340};  // 46340^2 < 2^31
}

template <class T>
void lstsq(const SupportLstsqArgs<T>& a) {
  const index_t N = a.n_signals, n = a.n_features, K = a.n_atoms, L = a.max_atoms;
  if (N == 0 || L == 0) return;
  constexpr index_t W = kLanes<T>;
  std::vector<T> gram = gram_buffer<T>(a);
  const Support<T> s = support_of(a, gram);
  const index_t batches = (N + W - 1) / W;
  T* out = a.out;
#pragma omp parallel num_threads(team(a.n_threads))
  {
    note_team();
    if (!gram.empty()) extended_gram_in_team(a.dictionary, a.gram, K, n, gram.data());
    LaneSystems<T> ls(L, n);
#pragma omp for schedule(static)
    for (index_t b = 0; b < batches; ++b) {
      const index_t i0 = b * W, rows = std::min(W, N - i0);
      load_supports(s, i0, rows, ls);
      build_systems(s, i0, rows, true, ls);
      factor(ls);
      solve(ls);
      for (index_t lane = 0; lane < rows; ++lane) {
        T* o = out + (i0 + lane) * L;
        for (index_t p = 0; p < L; ++p) {
          o[p] = ls.kept(p, lane, K) ? ls.y[p * W + lane] : T(0);
        }
      }
    }
  }
}

// One signal's share of the least-squares backward, from its kept slots (atom offsets
// off[k] = atom * n, u[k], c[k]): s = w * sum_k u_k A_k (-> dx when given) and, when acc is
// given, r = w * (x - sum_k c_k A_k) and acc[atom_k] += u_k r - c_k s. One vector of features
// at a time, s and the sum of c_k A_k in registers over the slots (summed in slot order).
template <class T>
void backward_row(const T* dictionary, const T* x, const T* w, index_t n, index_t used,
                  const index_t* off, const T* u, const T* c, T* dx, T* acc) {
  using Vt = Vec<T>;
  using V = typename Vt::V;
  constexpr index_t VL = Vt::kWidth;
  index_t f = 0;
  for (; f + VL <= n; f += VL) {
    V su{}, sc{};
    for (index_t k = 0; k < used; ++k) {
      const V atom = Vt::load(dictionary + off[k] + f);
      su += u[k] * atom;
      sc += c[k] * atom;
    }
    V r = Vt::load(x + f) - sc;
    if (w != nullptr) {
      const V wv = Vt::load(w + f);
      su *= wv;
      r *= wv;
    }
    if (dx != nullptr) Vt::store(dx + f, su);
    if (acc == nullptr) continue;
    for (index_t k = 0; k < used; ++k) {
      T* row = acc + off[k] + f;
      Vt::store(row, Vt::load(row) + (u[k] * r - c[k] * su));
    }
  }
  for (; f < n; ++f) {
    T su = T(0), sc = T(0);
    for (index_t k = 0; k < used; ++k) {
      su += u[k] * dictionary[off[k] + f];
      sc += c[k] * dictionary[off[k] + f];
    }
    T r = x[f] - sc;
    if (w != nullptr) {
      su *= w[f];
      r *= w[f];
    }
    if (dx != nullptr) dx[f] = su;
    if (acc == nullptr) continue;
    for (index_t k = 0; k < used; ++k) acc[off[k] + f] += u[k] * r - c[k] * su;
  }
}

template <class T>
void lstsq_backward(const SupportLstsqBackwardArgs<T>& a) {
  const index_t N = a.n_signals, n = a.n_features, K = a.n_atoms, L = a.max_atoms;
  T* dx = a.out_dx;
  T* dd = a.out_dd;
  if (dx == nullptr && dd == nullptr) return;
  constexpr index_t W = kLanes<T>;
  const int requested = team(a.n_threads);
  const index_t KN = K * n;
  // Accumulators of threads 1.. (thread 0 sums into out_dd), not initialised here: each
  // thread zeroes its own.
  std::unique_ptr<T[]> extra(dd != nullptr && requested > 1 && KN > 0
                                 ? new T[static_cast<size_t>((requested - 1) * KN)]
                                 : nullptr);
  std::vector<T> gram = gram_buffer<T>(a);
  const Support<T> s = support_of(a, gram);
  const index_t batches = (N + W - 1) / W;
#pragma omp parallel num_threads(requested)
  {
    note_team();
    const int threads = thread_count(), t = thread_id();
    if (!gram.empty()) extended_gram_in_team(a.dictionary, a.gram, K, n, gram.data());
    T* acc = dd == nullptr ? nullptr : (t == 0 ? dd : extra.get() + (t - 1) * KN);
    if (acc != nullptr) std::fill(acc, acc + KN, T(0));
    LaneSystems<T> ls(L, n);
    std::vector<index_t> slot_offset(static_cast<size_t>(L));
    std::vector<T> slot_u(static_cast<size_t>(L)), slot_c(static_cast<size_t>(L));
    index_t b0, b1;
    split(batches, threads, t, &b0, &b1);
    for (index_t b = b0; b < b1; ++b) {
      const index_t i0 = b * W, rows = std::min(W, N - i0);
      load_supports(s, i0, rows, ls);
      build_systems(s, i0, rows, false, ls);
      factor(ls);
      // u = G^-1 grad, grad zeroed in padded slots (and in the lanes past the last signal).
      const index_t m = ls.m;
      std::fill(ls.y.begin(), ls.y.begin() + m * W, T(0));
      for (index_t lane = 0; lane < rows; ++lane) {
        const T* gr = a.grad + (i0 + lane) * a.grad_stride_signal;
        for (index_t p = 0; p < m; ++p) {
          if (ls.at[p * W + lane] != K) ls.y[p * W + lane] = gr[p * a.grad_stride_slot];
        }
      }
      solve(ls);
      for (index_t lane = 0; lane < rows; ++lane) {
        const index_t i = i0 + lane;
        const long long* idx = a.indices + i * L;
        const T* c = a.coefs + i * L;
        // The kept slots: atom offset, u and c.
        index_t used = 0;
        for (index_t p = 0; p < m; ++p) {
          if (!ls.kept(p, lane, K)) continue;
          slot_offset[used] = idx[p] * n;
          slot_u[used] = ls.y[p * W + lane];
          slot_c[used] = c[p];
          ++used;
        }
        backward_row(a.dictionary, a.x + i * n,
                     a.weights == nullptr ? nullptr : a.weights + i * n, n, used,
                     slot_offset.data(), slot_u.data(), slot_c.data(),
                     dx == nullptr ? nullptr : dx + i * n, acc);
      }
    }
    if (dd != nullptr && threads > 1) {
#pragma omp barrier
      add_thread_partials(dd, extra.get(), KN, threads);
    }
  }
}

// ---- sparse synthesis --------------------------------------------------------------------

template <class T>
void synthesis(const SparseSynthesisArgs<T>& a) {
  const index_t N = a.n_signals, F = a.n_features, L = a.max_atoms;
  if (N == 0 || F == 0) return;
  using Vt = Vec<T>;
  constexpr index_t VL = Vt::kWidth;
  const long long* indices = a.indices;
  const T* coefs = a.coefs;
  const T* weight = a.weight;
  T* out = a.out;
#pragma omp parallel num_threads(team(a.n_threads))
  {
    note_team();
#pragma omp for schedule(static)
    for (index_t i = 0; i < N; ++i) {
      const long long* idx = indices + i * L;
      const T* c = coefs + i * L;
      T* o = out + i * F;
      // Four vectors of the output row in registers while the slots are added in order.
      index_t f = 0;
      for (; f + 4 * VL <= F; f += 4 * VL) {
        typename Vt::V o0{}, o1{}, o2{}, o3{};
        for (index_t l = 0; l < L; ++l) {
          if (idx[l] < 0) continue;
          const T cl = c[l];
          const T* w = weight + idx[l] * F + f;
          o0 += cl * Vt::load(w);
          o1 += cl * Vt::load(w + VL);
          o2 += cl * Vt::load(w + 2 * VL);
          o3 += cl * Vt::load(w + 3 * VL);
        }
        Vt::store(o + f, o0);
        Vt::store(o + f + VL, o1);
        Vt::store(o + f + 2 * VL, o2);
        Vt::store(o + f + 3 * VL, o3);
      }
      for (; f < F; ++f) {
        T v = T(0);
        for (index_t l = 0; l < L; ++l) {
          if (idx[l] >= 0) v += c[l] * weight[idx[l] * F + f];
        }
        o[f] = v;
      }
    }
  }
}

// Vectors of a row one pass of the synthesis backward handles: the kernel's weights, its
// gradient accumulator and an entry's gradient, 3 x kPassVectors registers (8 spilled, and
// was 25% slower on Zen 4; 2 reloads the entries' dot products too often).
constexpr int kPassVectors = 4;

// One kernel, features [f0, f0 + NV vectors) of every entry that uses it (entry e: row
// row[e] of grad, coefficient c[e]): acc[f] += c[e] grad[row[e], f] in entry order, and the
// entry's running dot product with the kernel, one vector per entry in `partial` (zero when
// `first`), each adding its vectors in order.
template <class T, int NV>
void kernel_pass(const T* grad, index_t ld, index_t f0, const T* weight_row, T* acc_row,
                 const index_t* row, const T* c, index_t count, T* partial, bool first) {
  using Vt = Vec<T>;
  using V = typename Vt::V;
  constexpr index_t VL = Vt::kWidth;
  V w[NV], s[NV];
  if (partial != nullptr) {
    for (int v = 0; v < NV; ++v) w[v] = Vt::load(weight_row + f0 + v * VL);
  }
  if (acc_row != nullptr) {
    for (int v = 0; v < NV; ++v) s[v] = Vt::load(acc_row + f0 + v * VL);
  }
  for (index_t e = 0; e < count; ++e) {
    const T* g = grad + row[e] * ld + f0;
    V gv[NV];
    for (int v = 0; v < NV; ++v) gv[v] = Vt::load(g + v * VL);
    if (acc_row != nullptr) {
      const T ce = c[e];
      for (int v = 0; v < NV; ++v) s[v] += ce * gv[v];
    }
    if (partial != nullptr) {
      V d = first ? V{} : Vt::load(partial + e * VL);
      for (int v = 0; v < NV; ++v) d += gv[v] * w[v];
      Vt::store(partial + e * VL, d);
    }
  }
  if (acc_row != nullptr) {
    for (int v = 0; v < NV; ++v) Vt::store(acc_row + f0 + v * VL, s[v]);
  }
}

// Both outputs of the synthesis backward for one kernel and its entries: dcoefs of each
// entry (its flat slot position pos[e]) and the kernel's gradient row (added to acc_row).
// Entry e's gradient row is grad + row[e] * ld (F contiguous features).
template <class T>
void kernel_entries(const T* grad, index_t ld, index_t F, const T* weight_row, T* acc_row,
                    const index_t* row, const T* c, const index_t* pos, index_t count,
                    T* partial, T* dc) {
  using Vt = Vec<T>;
  constexpr index_t VL = Vt::kWidth;
  if (dc == nullptr) partial = nullptr;
  index_t f0 = 0;
  for (bool first = true; f0 + VL <= F; first = false) {
    const index_t nv = std::min<index_t>(kPassVectors, (F - f0) / VL);
    static_assert(kPassVectors == 4, "the cases below");
    switch (nv) {
      case 4: kernel_pass<T, 4>(grad, ld, f0, weight_row, acc_row, row, c, count, partial,
                                first); break;
      case 3: kernel_pass<T, 3>(grad, ld, f0, weight_row, acc_row, row, c, count, partial,
                                first); break;
      case 2: kernel_pass<T, 2>(grad, ld, f0, weight_row, acc_row, row, c, count, partial,
                                first); break;
      default: kernel_pass<T, 1>(grad, ld, f0, weight_row, acc_row, row, c, count, partial,
                                 first); break;
    }
    f0 += nv * VL;
  }
  // The scalar tail, then each entry's dot product: its vector summed (halving), plus the
  // tail.
  for (index_t e = 0; e < count; ++e) {
    const T* g = grad + row[e] * ld;
    if (acc_row != nullptr) {
      for (index_t f = f0; f < F; ++f) acc_row[f] += c[e] * g[f];
    }
    if (dc == nullptr) continue;
    T v = f0 > 0 ? Vt::sum(Vt::load(partial + e * VL)) : T(0);
    for (index_t f = f0; f < F; ++f) v += g[f] * weight_row[f];
    dc[pos[e]] = v;
  }
}

template <class T>
void synthesis_backward(const SparseSynthesisBackwardArgs<T>& a) {
  const index_t N = a.n_signals, F = a.n_features, A = a.n_atoms, L = a.max_atoms;
  T* dc = a.out_dcoefs;
  T* dw = a.out_dweight;
  if (dc == nullptr && dw == nullptr) return;
  constexpr index_t VL = Vec<T>::kWidth;
  const int requested = team(a.n_threads);
  const index_t AF = A * F;
  std::unique_ptr<T[]> extra(dw != nullptr && requested > 1 && AF > 0
                                 ? new T[static_cast<size_t>((requested - 1) * AF)]
                                 : nullptr);
  // Rows per chunk: their gradient (~128 KiB) stays in L2 while it is read kernel by kernel.
  const index_t chunk = std::max<index_t>(
      16, (index_t(128) << 10) / std::max<index_t>(1, F * index_t(sizeof(T))));
#pragma omp parallel num_threads(requested)
  {
    note_team();
    const int threads = thread_count(), t = thread_id();
    T* acc = dw == nullptr ? nullptr : (t == 0 ? dw : extra.get() + (t - 1) * AF);
    if (acc != nullptr) std::fill(acc, acc + AF, T(0));
    std::vector<index_t> start(static_cast<size_t>(A + 1));
    std::vector<index_t> entry_row(static_cast<size_t>(chunk * L)),
        entry_pos(static_cast<size_t>(chunk * L));
    std::vector<T> entry_c(static_cast<size_t>(chunk * L));
    std::vector<T> partial(dc != nullptr ? static_cast<size_t>(chunk * L * VL) : 0);
    // Rows of the gradient whose features are not contiguous are copied here, a chunk at a
    // time (a transposed gradient: the copy reads it along its contiguous dimension).
    const index_t ss = a.grad_stride_signal, sf = a.grad_stride_feature;
    const bool strided = sf != 1;
    std::vector<T> rows_buf(strided ? static_cast<size_t>(chunk * F) : 0);
    index_t r0, r1;
    split(N, threads, t, &r0, &r1);
    for (index_t c0 = r0; c0 < r1; c0 += chunk) {
      const index_t c1 = std::min(r1, c0 + chunk);
      // The chunk's gradient rows: row r (relative to c0) at base + r * ld.
      const T* base = a.grad + c0 * ss;
      index_t ld = ss;
      if (strided) {
        T* buf = rows_buf.data();
        if ((ss < 0 ? -ss : ss) <= (sf < 0 ? -sf : sf)) {
          for (index_t f = 0; f < F; ++f) {
            for (index_t i = c0; i < c1; ++i) buf[(i - c0) * F + f] = a.grad[i * ss + f * sf];
          }
        } else {
          for (index_t i = c0; i < c1; ++i) {
            for (index_t f = 0; f < F; ++f) buf[(i - c0) * F + f] = a.grad[i * ss + f * sf];
          }
        }
        base = buf;
        ld = F;
      }
      // Kernel by kernel, over the chunk's entries that use it (a stable counting sort of
      // the (row, slot) entries): each kernel's weights and gradient row stay in registers
      // while its entries stream by, each entry's gradient row is read once for both
      // outputs, and every element of dweight still adds the rows in order. The next chunk
      // of a row-major gradient is fetched meanwhile, a few lines per kernel.
      const bool fetch = !strided && ss == F && c1 < r1;
      const char* next = reinterpret_cast<const char*>(a.grad + c1 * F);
      const index_t next_lines =
          fetch ? ((std::min(r1, c1 + chunk) - c1) * F * index_t(sizeof(T)) + 63) / 64 : 0;
      const index_t lines_per_kernel = (next_lines + A - 1) / std::max<index_t>(1, A);
      std::fill(start.begin(), start.end(), index_t(0));
      for (index_t e = c0 * L; e < c1 * L; ++e) {
        const long long k = a.indices[e];
        if (k >= 0) {
          ++start[k + 1];
        } else if (dc != nullptr) {
          dc[e] = T(0);
        }
      }
      for (index_t k = 0; k < A; ++k) start[k + 1] += start[k];
      for (index_t e = c0 * L; e < c1 * L; ++e) {
        const long long k = a.indices[e];
        if (k < 0) continue;
        const index_t at = start[k]++;
        entry_row[at] = e / L - c0;
        entry_pos[at] = e;
        entry_c[at] = a.coefs[e];
      }
      // start[k] is now the end of kernel k's entries, start[k - 1] their beginning.
      for (index_t k = 0; k < A; ++k) {
        const index_t l0 = k * lines_per_kernel;
        const index_t l1 = std::min(next_lines, l0 + lines_per_kernel);
        for (index_t l = l0; l < l1; ++l) __builtin_prefetch(next + 64 * l);
        const index_t e0 = k == 0 ? 0 : start[k - 1], e1 = start[k];
        if (e0 == e1) continue;
        kernel_entries(base, ld, F, a.weight + k * F, acc == nullptr ? nullptr : acc + k * F,
                       entry_row.data() + e0, entry_c.data() + e0, entry_pos.data() + e0,
                       e1 - e0, partial.data(), dc);
      }
    }
    if (dw != nullptr && threads > 1) {
#pragma omp barrier
      add_thread_partials(dw, extra.get(), AF, threads);
    }
  }
}

}  // namespace

void support_lstsq(const SupportLstsqArgs<float>& args) { lstsq(args); }
void support_lstsq(const SupportLstsqArgs<double>& args) { lstsq(args); }
void support_lstsq_backward(const SupportLstsqBackwardArgs<float>& args) {
  lstsq_backward(args);
}
void support_lstsq_backward(const SupportLstsqBackwardArgs<double>& args) {
  lstsq_backward(args);
}
void sparse_synthesis(const SparseSynthesisArgs<float>& args) { synthesis(args); }
void sparse_synthesis(const SparseSynthesisArgs<double>& args) { synthesis(args); }
void sparse_synthesis_backward(const SparseSynthesisBackwardArgs<float>& args) {
  synthesis_backward(args);
}
void sparse_synthesis_backward(const SparseSynthesisBackwardArgs<double>& args) {
  synthesis_backward(args);
}

}  // namespace SF_ISA_NS
}  // namespace sparseforge
