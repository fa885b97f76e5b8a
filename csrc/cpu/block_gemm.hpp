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

// Micro-tile: kRows signals x kVecs native vectors of atoms, kRows * kVecs accumulators that
// must stay in registers. AVX-512 (32 zmm): 6 x 4 zmm = 24 accumulators. AVX2 (16 ymm): 6 x 2
// ymm = 12, BLIS's 6x16 sgemm shape. Plain x86-64 (16 xmm): 4 x 2 xmm. The vectors are the
// ISA's own width: GCC lowers a 64-byte generic vector on AVX2 through the stack (every
// accumulator spilled: callgrind, AVX2 path, K = 256, n = 64, float32, 10,000 signals: the
// product took 290M instructions with 6 x 4 64-byte vectors, 41M with 6 x 2 ymm). Every
// element is the same multiply-add chain over the features whatever the tile, so the shape
// never changes a result.
#if defined(__AVX512F__) || defined(__CUDACC__)
constexpr int kGemmRows = 6, kGemmVecs = 4, kGemmVecBytes = 64;
#elif defined(__AVX2__)
constexpr int kGemmRows = 6, kGemmVecs = 2, kGemmVecBytes = 32;
#else
constexpr int kGemmRows = 4, kGemmVecs = 2, kGemmVecBytes = 16;
#endif

template <class T, int kRows, int kVecs>
inline void gemm_tile(const T* x, index_t ldx, const T* dt, index_t ldd, index_t n_features,
                      T* c, index_t ldc) {
  typedef T V __attribute__((vector_size(kGemmVecBytes)));
  typedef T VU __attribute__((vector_size(kGemmVecBytes), aligned(sizeof(T)), may_alias));
  constexpr int VL = kGemmVecBytes / sizeof(T);
  // Unaligned loads and stores through an under-aligned alias (a memcpy into a 32-byte vector
  // goes through the stack with GCC 12 on AVX2).
  auto load = [](const T* p) -> V { return *reinterpret_cast<const VU*>(p); };
  auto store = [](T* p, V v) { *reinterpret_cast<VU*>(p) = v; };
  V acc[kRows][kVecs];
  for (int r = 0; r < kRows; ++r) {
    for (int v = 0; v < kVecs; ++v) acc[r][v] = V{};
  }
  for (index_t f = 0; f < n_features; ++f) {
    const T* d = dt + f * ldd;
    V dv[kVecs];
    SF_UNROLL
    for (int v = 0; v < kVecs; ++v) dv[v] = load(d + v * VL);
    SF_UNROLL
    for (int r = 0; r < kRows; ++r) {
      const T xr = x[r * ldx + f];
      SF_UNROLL
      for (int v = 0; v < kVecs; ++v) acc[r][v] += xr * dv[v];
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int v = 0; v < kVecs; ++v) store(c + r * ldc + v * VL, acc[r][v]);
  }
}

// Atom columns one block_gemm tile covers (64 floats at most: the callers' column blocks of 64
// atoms are multiples of it).
template <class T>
constexpr index_t gemm_tile_cols() {
  return kGemmVecs * kGemmVecBytes / static_cast<index_t>(sizeof(T));
}

// c[r, k] = sum_f x[r, f] * dt[f, k] for r < rows, k < K; x rows ldx apart, dt is
// n_features x K with rows ldd apart (K when ldd < 0), c rows ldc apart. Column tiles are the
// outer loop so that one tile of dt (n_features x kVecs vectors) stays in L1/L2 while every
// row strip of the block uses it.
template <class T>
inline void block_gemm(const T* x, index_t ldx, index_t rows, const T* dt, index_t n_features,
                       index_t K, T* c, index_t ldc, index_t ldd = -1) {
  if (ldd < 0) ldd = K;
  constexpr int kRows = kGemmRows;
  constexpr int kVecs = kGemmVecs;
  constexpr index_t kCols = gemm_tile_cols<T>();
  index_t k = 0;
  for (; k + kCols <= K; k += kCols) {
    index_t r = 0;
    for (; r + kRows <= rows; r += kRows) {
      gemm_tile<T, kRows, kVecs>(x + r * ldx, ldx, dt + k, ldd, n_features, c + r * ldc + k,
                                 ldc);
    }
    // The last rows % kRows rows in one tile of their own height: single-row tiles would
    // have too few accumulators to hide the multiply-add latency.
    const T* xr = x + r * ldx;
    T* cr = c + r * ldc + k;
    switch (rows - r) {
      case 5: if constexpr (kRows > 5) gemm_tile<T, 5, kVecs>(xr, ldx, dt + k, ldd, n_features, cr, ldc); break;
      case 4: if constexpr (kRows > 4) gemm_tile<T, 4, kVecs>(xr, ldx, dt + k, ldd, n_features, cr, ldc); break;
      case 3: if constexpr (kRows > 3) gemm_tile<T, 3, kVecs>(xr, ldx, dt + k, ldd, n_features, cr, ldc); break;
      case 2: gemm_tile<T, 2, kVecs>(xr, ldx, dt + k, ldd, n_features, cr, ldc); break;
      case 1: gemm_tile<T, 1, kVecs>(xr, ldx, dt + k, ldd, n_features, cr, ldc); break;
      default: break;
    }
  }
  for (index_t r = 0; r < rows; ++r) {  // tail atoms (K not a multiple of the tile width)
    for (index_t kk = k; kk < K; ++kk) {
      T acc = T(0);
      for (index_t f = 0; f < n_features; ++f) acc += x[r * ldx + f] * dt[f * ldd + kk];
      c[r * ldc + kk] = acc;
    }
  }
}

}  // namespace SF_KERNEL_NS
}  // namespace sparseforge
