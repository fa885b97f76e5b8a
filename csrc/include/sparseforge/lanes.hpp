// Execution policies ("lanes") for the per-signal kernels.
//
// The kernel bodies in omp_signal.hpp are written once against this small interface:
//   lane.for_each(n, f)      f(i) for every i in [0, n), elementwise-independent work
//   lane.for_each_outer(n, f)  the same for bodies that run inner loops of their own (on
//                            the CPU a plain loop, so those inner loops vectorise instead)
//   lane.gram_schmidt_step(...)  the O(K s) loop of one pursuit step (register-tiled on the
//                            CPU; one element per lane on a warp)
//   lane.argmax_abs(a, n)    index and value of max |a[i]|, ties -> the lowest index
//   lane.all_finite(a, n)    false if any a[i] is NaN or +-inf
//   lane.dot(a, b, n)        sum of a[i] b[i] (vectorised on the CPU)
//   lane.sum(n, f)           sum of f(i), i = 0, 1, ... in order on the CPU; f may write
//                            element i of lane-owned arrays
//   lane.sync()              makes the writes of every lane visible to all (a no-op on the CPU)
// Everything else in a kernel body is uniform code (run once on the CPU, redundantly by all
// 32 lanes of a warp on the GPU, every lane computing and storing the same values).
// for_each, for_each_outer and the reductions end with a sync on the warp; lane l always owns
// the elements i = l, l + 32, ... so data a lane wrote in one loop it reads back in the next
// without one.
//
// SerialLane runs on the CPU and lets the compiler vectorise the loops. EmulatedWarpLane runs
// on the CPU too but reproduces, step for step, what the CUDA WarpLane does: the same lane
// striding (lane l handles i = l, l + 32, ...) and the same xor-butterfly reduction tree as
// __shfl_xor_sync. The CPU test suite runs the kernels through it, so the warp logic is
// tested on machines without a GPU.
#pragma once

#include <type_traits>

#include "sparseforge/config.hpp"
#include "sparseforge/simd_argmax.hpp"

namespace sparseforge {
inline namespace SF_KERNEL_NS {

template <class T>
struct ArgMax {
  T value;        // max |a[i]|
  index_t index;  // lowest i attaining it; -1 when n == 0
};

// The reduction step shared by every lane policy: keep the larger |value|, and on a tie the
// lower index, so every policy returns exactly numpy.argmax(abs(a)).
template <class T>
SF_HD SF_INLINE ArgMax<T> argmax_combine(ArgMax<T> a, ArgMax<T> b) {
  if (b.value > a.value || (b.value == a.value && b.index >= 0 &&
                            (a.index < 0 || b.index < a.index))) {
    return b;
  }
  return a;
}

template <class T>
SF_HD SF_INLINE T abs_value(T x) { return x < T(0) ? -x : x; }

// Element i of the pursuit's Gram-Schmidt step (see SerialLane::gram_schmidt_step) as one
// warp lane computes it: column s of Q and the correlation update.
template <class T, class Layout>
SF_HD SF_INLINE void gram_schmidt_element(index_t i, const T* g, T* q, const Layout& layout,
                                          const T* l, int s, T scale, T u, T* alpha) {
  T acc = g[i];
  for (int j = 0; j < s; ++j) acc -= l[j] * q[layout.at(i, j)];
  acc *= scale;
  q[layout.at(i, s)] = acc;
  alpha[i] -= u * acc;
}

#if !defined(__CUDACC__)  // host-only policies; the CUDA WarpLane lives in csrc/cuda

struct SerialLane {
  static constexpr int kWidth = 1;

  template <class F>
  SF_INLINE void for_each(index_t n, F&& f) const {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) f(i);
  }

  template <class F>
  SF_INLINE void for_each_outer(index_t n, F&& f) const {
    for (index_t i = 0; i < n; ++i) f(i);
  }

  SF_INLINE void sync() const {}

  template <class T>
  SF_INLINE T dot(const T* a, const T* b, index_t n) const {
    T acc = T(0);
    SF_SIMD_SUM(acc)
    for (index_t i = 0; i < n; ++i) acc += a[i] * b[i];
    return acc;
  }

  template <class F>
  SF_INLINE auto sum(index_t n, F&& f) const -> decltype(f(index_t(0))) {
    decltype(f(index_t(0))) acc(0);
    for (index_t i = 0; i < n; ++i) acc += f(i);
    return acc;
  }

  // The pursuit's hot loop (one Gram-Schmidt step in correlation space, see omp_signal.hpp):
  //   Q[i, s] = (g[i] - sum_{j<s} l[j] * Q[i, j]) * scale;   alpha[i] -= u * Q[i, s]
  // One Q tile (Layout::kTile rows, 256 bytes) at a time in vectors of the ISA's own width
  // (4 zmm, 8 ymm, or 2 x 8 xmm), the accumulators kept in registers across the j loop. GCC
  // lowers a 64-byte generic vector on AVX2 through the stack, so the width must be native
  // (callgrind, AVX2 path, K = 256, L = 8, float32, 10,000 signals: this loop took 169M
  // instructions with 64-byte vectors, 44M with ymm). Every element is the same
  // multiply-add chain whatever the width: the width never changes a result.
#if defined(__AVX512F__)
  static constexpr int kVecBytes = 64;
#elif defined(__AVX2__)
  static constexpr int kVecBytes = 32;
#else
  static constexpr int kVecBytes = 16;
#endif
  template <class T, class Layout>
  SF_INLINE void gram_schmidt_step(index_t n, const T* g, T* q, const Layout& layout,
                                   const T* l, int s, T scale, T u, T* alpha) const {
    typedef T V __attribute__((vector_size(kVecBytes)));
    typedef T VU __attribute__((vector_size(kVecBytes), aligned(sizeof(T)), may_alias));
    constexpr int VL = kVecBytes / sizeof(T);
    constexpr index_t TW = Layout::kTile;
    constexpr int NV = static_cast<int>(TW / VL);  // vectors per tile
    constexpr int NH = NV < 8 ? NV : 8;            // vectors per pass (16 registers: 8 + temps)
    static_assert(TW * sizeof(T) == 256 && NV % NH == 0, "a Q tile is 256 bytes");
    // Unaligned loads and stores through an under-aligned alias (a memcpy into a 32-byte
    // vector goes through the stack with GCC 12 on AVX2).
    auto load = [](const T* p) -> V { return *reinterpret_cast<const VU*>(p); };
    auto store = [](T* p, V v) { *reinterpret_cast<VU*>(p) = v; };
    for (index_t i0 = 0; i0 < n; i0 += TW) {
      T* tile = q + layout.at(i0, 0);
      if (i0 + TW <= n) {
        for (int h = 0; h < NV; h += NH) {
          const index_t o = static_cast<index_t>(h) * VL;
          V a[NH];
          SF_UNROLL
          for (int v = 0; v < NH; ++v) a[v] = load(g + i0 + o + v * VL);
          for (int j = 0; j < s; ++j) {
            const T* qj = tile + j * TW + o;
            const T lj = l[j];
            SF_UNROLL
            for (int v = 0; v < NH; ++v) a[v] -= lj * load(qj + v * VL);
          }
          T* out = tile + s * TW + o;
          SF_UNROLL
          for (int v = 0; v < NH; ++v) {
            a[v] *= scale;
            store(out + v * VL, a[v]);
            T* al = alpha + i0 + o + v * VL;
            store(al, load(al) - u * a[v]);
          }
        }
      } else {  // the last, partial tile
        for (index_t b = 0; b < n - i0; ++b) {
          T acc = g[i0 + b];
          for (int j = 0; j < s; ++j) acc -= l[j] * tile[j * TW + b];
          acc *= scale;
          tile[s * TW + b] = acc;
          alpha[i0 + b] -= u * acc;
        }
      }
    }
  }

  template <class T>
  SF_INLINE ArgMax<T> argmax_abs(const T* a, index_t n) const {
    // Vector slots carry their indices as T (exact below 2^24 atoms for float, 2^53 for
    // double); larger dictionaries, the tail and non-SIMD builds take the scalar loop.
    constexpr int W = simd::slots<T>();
    constexpr index_t kExactIndices = sizeof(T) == 4 ? (index_t(1) << 24) : (index_t(1) << 53);
    ArgMax<T> best{T(-1), -1};
    index_t i0 = 0;
    if (n >= W && n <= kExactIndices) {
      T best_v[W];
      T best_i[W];
      const index_t n_full = n / W * W;
      const int used = simd::argmax_abs_slots(a, n_full, best_v, best_i);
      for (int b = 0; b < used; ++b) {
        if (best_i[b] >= T(0)) {
          best = argmax_combine(best, ArgMax<T>{best_v[b], static_cast<index_t>(best_i[b])});
        }
      }
      if (used) i0 = n_full;
    }
    for (; i0 < n; ++i0) best = argmax_combine(best, ArgMax<T>{abs_value(a[i0]), i0});
    if (best.index < 0) best.value = T(0);
    return best;
  }

  template <class T>
  SF_INLINE bool all_finite(const T* a, index_t n) const {
    // x - x is 0 for finite x and NaN for NaN or inf; one NaN poisons the sum.
    T acc = T(0);
#pragma omp simd reduction(+ : acc)
    for (index_t i = 0; i < n; ++i) acc += a[i] - a[i];
    return acc == T(0);
  }
};

// Host emulation of one CUDA warp (see csrc/cuda): 32 lanes, strided loops, xor butterflies.
struct EmulatedWarpLane {
  static constexpr int kWidth = 32;

  template <class F>
  void for_each(index_t n, F&& f) const {
    for (int lane = 0; lane < kWidth; ++lane) {
      for (index_t i = lane; i < n; i += kWidth) f(i);
    }
  }

  template <class F>
  void for_each_outer(index_t n, F&& f) const { for_each(n, f); }

  void sync() const {}

  template <class T>
  T dot(const T* a, const T* b, index_t n) const {
    return sum(n, [&](index_t i) { return a[i] * b[i]; });
  }

  // Per-lane partial sums in the lane's own order, then the butterfly, as on the GPU.
  template <class F>
  auto sum(index_t n, F&& f) const -> decltype(f(index_t(0))) {
    using V = decltype(f(index_t(0)));
    V part[kWidth];
    for (int lane = 0; lane < kWidth; ++lane) {
      V acc(0);
      for (index_t i = lane; i < n; i += kWidth) acc += f(i);
      part[lane] = acc;
    }
    butterfly(part, [](V x, V y) { return x + y; });
    return part[0];
  }

  // The same step as on the GPU: each lane owns the elements i = lane, lane + 32, ...
  template <class T, class Layout>
  void gram_schmidt_step(index_t n, const T* g, T* q, const Layout& layout, const T* l, int s,
                         T scale, T u, T* alpha) const {
    for_each(n, [&](index_t i) { gram_schmidt_element(i, g, q, layout, l, s, scale, u, alpha); });
  }

  template <class T>
  ArgMax<T> argmax_abs(const T* a, index_t n) const {
    ArgMax<T> part[kWidth];
    for (int lane = 0; lane < kWidth; ++lane) {
      ArgMax<T> best{T(-1), -1};
      for (index_t i = lane; i < n; i += kWidth) {
        best = argmax_combine(best, ArgMax<T>{abs_value(a[i]), i});
      }
      part[lane] = best;
    }
    butterfly(part, [](ArgMax<T> x, ArgMax<T> y) { return argmax_combine(x, y); });
    if (part[0].index < 0) part[0].value = T(0);
    return part[0];
  }

  template <class T>
  bool all_finite(const T* a, index_t n) const {
    return sum(n, [&](index_t i) { return a[i] - a[i]; }) == T(0);
  }

 private:
  // Every lane ends with the reduction of all 32 values, in the order of
  // `v = op(v, __shfl_xor_sync(mask, v, offset))` for offset = 16, 8, 4, 2, 1.
  template <class V, class Op>
  static void butterfly(V* part, Op op) {
    for (int offset = kWidth / 2; offset > 0; offset /= 2) {
      V next[kWidth];
      for (int lane = 0; lane < kWidth; ++lane) next[lane] = op(part[lane], part[lane ^ offset]);
      for (int lane = 0; lane < kWidth; ++lane) part[lane] = next[lane];
    }
  }
};

#endif  // !__CUDACC__

}  // namespace SF_KERNEL_NS
}  // namespace sparseforge
