// C = X Dt for one cache-sized block of signals: the correlations Batch-OMP starts from,
// computed by the thread that will consume them while they are still in its L1/L2 cache.
//
// Why not BLAS here: for the whole batch numpy's BLAS is as fast, but it runs on its own
// thread pool, and handing each chunk between that pool and our OpenMP team costs more than
// the product itself on a 2-core machine (both pools spin-wait for work; measured 2-5x
// slower end to end, see benchmarks/). Calling a BLAS per block from inside our threads is
// not safe either (OpenBLAS would fan each call out to its shared pool). The product per
// block is small (rows x n x K), so a register-blocked kernel in the style of BLIS reaches a
// BLAS-like rate (benchmarks/bench_omp.py reports it next to numpy's X @ D.T).
#pragma once

#include "sparseforge/config.hpp"

namespace sparseforge {
inline namespace SF_KERNEL_NS {

// Micro-tile: kRows signals x 4 vectors of atoms, 4 * kRows accumulators in registers.
template <class T, int kRows>
inline void gemm_tile(const T* x, index_t ldx, const T* dt, index_t ldd, index_t n_features,
                      T* c, index_t ldc) {
  typedef T V __attribute__((vector_size(64), aligned(sizeof(T))));
  constexpr int VL = 64 / sizeof(T);
  auto load = [](const T* p) { V v; __builtin_memcpy(&v, p, sizeof(V)); return v; };
  auto store = [](T* p, V v) { __builtin_memcpy(p, &v, sizeof(V)); };
  V acc[kRows][4];
  for (int r = 0; r < kRows; ++r) {
    for (int v = 0; v < 4; ++v) acc[r][v] = V{};
  }
  for (index_t f = 0; f < n_features; ++f) {
    const T* d = dt + f * ldd;
    const V d0 = load(d), d1 = load(d + VL), d2 = load(d + 2 * VL), d3 = load(d + 3 * VL);
    for (int r = 0; r < kRows; ++r) {
      const T xr = x[r * ldx + f];
      acc[r][0] += xr * d0;
      acc[r][1] += xr * d1;
      acc[r][2] += xr * d2;
      acc[r][3] += xr * d3;
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int v = 0; v < 4; ++v) store(c + r * ldc + v * VL, acc[r][v]);
  }
}

// c[r, k] = sum_f x[r, f] * dt[f, k] for r < rows; x rows ldx apart, dt is n_features x K
// row-major, c rows ldc apart. Column tiles are the outer loop so that one tile of dt
// (n_features x 4 vectors) stays in L1/L2 while every row strip of the block uses it.
template <class T>
inline void block_gemm(const T* x, index_t ldx, index_t rows, const T* dt, index_t n_features,
                       index_t K, T* c, index_t ldc) {
  constexpr int kRows = 6;  // 6 x 4 = 24 accumulators of the 32 vector registers
  constexpr index_t kCols = 4 * 64 / sizeof(T);
  index_t k = 0;
  for (; k + kCols <= K; k += kCols) {
    index_t r = 0;
    for (; r + kRows <= rows; r += kRows) {
      gemm_tile<T, kRows>(x + r * ldx, ldx, dt + k, K, n_features, c + r * ldc + k, ldc);
    }
    // The last rows % 6 rows in one tile of their own height: single-row tiles would have
    // only 4 accumulators, too few to hide the multiply-add latency.
    const T* xr = x + r * ldx;
    T* cr = c + r * ldc + k;
    switch (rows - r) {
      case 5: gemm_tile<T, 5>(xr, ldx, dt + k, K, n_features, cr, ldc); break;
      case 4: gemm_tile<T, 4>(xr, ldx, dt + k, K, n_features, cr, ldc); break;
      case 3: gemm_tile<T, 3>(xr, ldx, dt + k, K, n_features, cr, ldc); break;
      case 2: gemm_tile<T, 2>(xr, ldx, dt + k, K, n_features, cr, ldc); break;
      case 1: gemm_tile<T, 1>(xr, ldx, dt + k, K, n_features, cr, ldc); break;
      default: break;
    }
  }
  for (index_t r = 0; r < rows; ++r) {  // tail atoms (K not a multiple of the tile width)
    for (index_t kk = k; kk < K; ++kk) {
      T acc = T(0);
      for (index_t f = 0; f < n_features; ++f) acc += x[r * ldx + f] * dt[f * K + kk];
      c[r * ldc + kk] = acc;
    }
  }
}

}  // namespace SF_KERNEL_NS
}  // namespace sparseforge
