// The CUDA lane policy: one warp codes one signal (or updates one atom). Same interface and
// the same arithmetic order as EmulatedWarpLane in sparseforge/lanes.hpp, which the CPU test
// suite runs: lane l owns the elements i = l, l + 32, ...; reductions are per-lane partial
// results combined by the xor butterfly (offsets 16, 8, 4, 2, 1) with __shfl_xor_sync.
#pragma once

#include "sparseforge/lanes.hpp"

namespace sparseforge {
inline namespace SF_KERNEL_NS {

struct WarpLane {
  static constexpr int kWidth = 32;
  static constexpr unsigned kAll = 0xffffffffu;
  int lane;  // threadIdx.x % 32

  // The loops end with __syncwarp: uniform code after them reads elements other lanes wrote
  // (a Q row, alpha[k], a Gram row), and __syncwarp orders those writes before the reads.
  template <class F>
  __device__ SF_INLINE void for_each(index_t n, F&& f) const {
    for (index_t i = lane; i < n; i += kWidth) f(i);
    __syncwarp(kAll);
  }

  template <class F>
  __device__ SF_INLINE void for_each_outer(index_t n, F&& f) const {
    for_each(n, f);
  }

  __device__ SF_INLINE void sync() const { __syncwarp(kAll); }

  template <class T, class Layout>
  __device__ SF_INLINE void gram_schmidt_step(index_t n, const T* g, T* q, const Layout& layout,
                                              const T* l, int s, T scale, T u, T* alpha) const {
    for_each(n, [&](index_t i) { gram_schmidt_element(i, g, q, layout, l, s, scale, u, alpha); });
  }

  template <class T>
  __device__ SF_INLINE ArgMax<T> argmax_abs(const T* a, index_t n) const {
    ArgMax<T> best{T(-1), -1};
    for (index_t i = lane; i < n; i += kWidth) {
      best = argmax_combine(best, ArgMax<T>{abs_value(a[i]), i});
    }
    for (int offset = kWidth / 2; offset > 0; offset /= 2) {
      const ArgMax<T> other{__shfl_xor_sync(kAll, best.value, offset),
                            __shfl_xor_sync(kAll, best.index, offset)};
      best = argmax_combine(best, other);
    }
    // The combine is not symmetric for NaN, so lanes could disagree; every lane takes lane
    // 0's result (as the emulation returns part[0]) and the uniform code cannot diverge.
    best.value = __shfl_sync(kAll, best.value, 0);
    best.index = __shfl_sync(kAll, best.index, 0);
    if (best.index < 0) best.value = T(0);
    return best;
  }

  template <class F>
  __device__ SF_INLINE auto sum(index_t n, F&& f) const -> decltype(f(index_t(0))) {
    using V = decltype(f(index_t(0)));
    V acc(0);
    for (index_t i = lane; i < n; i += kWidth) acc += f(i);
    __syncwarp(kAll);  // f may write lane-owned elements (K-SVD power step)
    for (int offset = kWidth / 2; offset > 0; offset /= 2) {
      acc = acc + __shfl_xor_sync(kAll, acc, offset);
    }
    return __shfl_sync(kAll, acc, 0);
  }

  template <class T>
  __device__ SF_INLINE T dot(const T* a, const T* b, index_t n) const {
    return sum(n, [&](index_t i) { return a[i] * b[i]; });
  }

  template <class T>
  __device__ SF_INLINE bool all_finite(const T* a, index_t n) const {
    return sum(n, [&](index_t i) { return a[i] - a[i]; }) == T(0);
  }
};

}  // namespace SF_KERNEL_NS
}  // namespace sparseforge
