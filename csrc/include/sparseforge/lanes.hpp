// Execution policies ("lanes") for the per-signal kernels.
//
// The kernel bodies in omp_signal.hpp are written once against this small interface:
//   lane.for_each(n, f)      f(i) for every i in [0, n), elementwise-independent work
//   lane.argmax_abs(a, n)    index and value of max |a[i]|, ties -> the lowest index
//   lane.all_finite(a, n)    false if any a[i] is NaN or +-inf
// Everything else in a kernel body is uniform code (run once on the CPU, redundantly by all
// 32 lanes of a warp on the GPU).
//
// SerialLane runs on the CPU and lets the compiler vectorise the loops. EmulatedWarpLane runs
// on the CPU too but reproduces, step for step, what the CUDA WarpLane does: the same lane
// striding (lane l handles i = l, l + 32, ...) and the same xor-butterfly reduction tree as
// __shfl_xor_sync. The CPU test suite runs the kernels through it, so the warp logic is
// tested on machines without a GPU.
#pragma once

#include "sparseforge/config.hpp"

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

#if !defined(__CUDACC__)  // host-only policies; the CUDA WarpLane lives in csrc/cuda

struct SerialLane {
  static constexpr int kWidth = 1;

  template <class F>
  SF_INLINE void for_each(index_t n, F&& f) const {
#pragma omp simd
    for (index_t i = 0; i < n; ++i) f(i);
  }

  template <class T>
  SF_INLINE ArgMax<T> argmax_abs(const T* a, index_t n) const {
    // Two passes: a max reduction the compiler vectorises, then the first index that
    // attains it (a short scan on average). Faster than a scalar compare-and-track loop.
    T best = T(-1);
#pragma omp simd reduction(max : best)
    for (index_t i = 0; i < n; ++i) {
      const T v = abs_value(a[i]);
      best = v > best ? v : best;
    }
    for (index_t i = 0; i < n; ++i) {
      if (abs_value(a[i]) == best) return ArgMax<T>{best, i};
    }
    return ArgMax<T>{T(0), -1};
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
    T part[kWidth];
    for (int lane = 0; lane < kWidth; ++lane) {
      T acc = T(0);
      for (index_t i = lane; i < n; i += kWidth) acc += a[i] - a[i];
      part[lane] = acc;
    }
    butterfly(part, [](T x, T y) { return x + y; });
    return part[0] == T(0);
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
