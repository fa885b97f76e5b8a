// The CPU Batch-OMP driver: arguments, per-ISA entry points and the runtime dispatcher.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparseforge/config.hpp"

namespace sparseforge {

enum class LaneKind { kSerial, kEmulatedWarp };

// One batch: N signals coded against one Gram matrix. All pointers are host memory; sizes in
// elements. Outputs: out_index / out_value are N x M row-major, out_count / out_status N.
template <class T>
struct OmpBatchArgs {
  const T* gram = nullptr;          // K x K, row-major
  index_t n_atoms = 0;              // K
  index_t n_signals = 0;            // N
  // The correlations come either precomputed, signal n with atom k at
  //   cov[n * cov_stride_signal + k * cov_stride_atom],
  const T* cov = nullptr;
  index_t cov_stride_signal = 0;
  index_t cov_stride_atom = 1;
  // or are computed block by block from the signals x (N x n_features, rows ldx apart,
  // features contiguous) and dt = D^T (n_features x K, row-major). Then squared norms for the
  // tol mode are computed from x too.
  const T* x = nullptr;
  index_t ldx = 0;
  const T* dt = nullptr;
  index_t n_features = 0;
  const T* norms_sq = nullptr;      // N squared signal norms (tol mode with precomputed cov)
  // Masked mode (with x): mask (N x n_features, rows ldm apart, nonzero = observed) and the
  // dictionary (K x n_features) itself; each signal is coded from its observed entries.
  const unsigned char* mask = nullptr;
  index_t ldm = 0;
  const T* dictionary = nullptr;
  int max_atoms = 0;                // M
  bool use_tol = false;
  T tol = T(0);
  int* out_index = nullptr;
  T* out_value = nullptr;
  int* out_count = nullptr;
  std::int8_t* out_status = nullptr;
  T* out_dense = nullptr;           // optional N x K codes, rows dense_stride apart
  index_t dense_stride = 0;
  int n_threads = 1;
  LaneKind lane = LaneKind::kSerial;
};

// Per-ISA builds of the same source (omp_batch.cpp compiled once per instruction set).
#define SF_DECLARE_OMP_BATCH(ns)                                            \
  namespace ns {                                                            \
  void omp_batch(const OmpBatchArgs<float>& args);                          \
  void omp_batch(const OmpBatchArgs<double>& args);                         \
  void gram_matrix(const float* d, index_t K, index_t n, float* out);       \
  void gram_matrix(const double* d, index_t K, index_t n, double* out);     \
  }
SF_DECLARE_OMP_BATCH(generic)
SF_DECLARE_OMP_BATCH(avx2)
SF_DECLARE_OMP_BATCH(avx512)
#undef SF_DECLARE_OMP_BATCH

// Instruction sets this build compiled, and the one the dispatcher uses on this CPU (the best
// supported, or SPARSEFORGE_SIMD=generic|avx2|avx512 from the environment when supported).
std::vector<std::string> compiled_isas();
std::string active_isa();

void omp_batch(const OmpBatchArgs<float>& args);
void omp_batch(const OmpBatchArgs<double>& args);

// out = d d^T for a K x n row-major dictionary d (single thread; exactly symmetric). Computed
// here rather than by numpy's BLAS, whose thread pool keeps spinning after the call and
// slows the pursuit that follows on a small machine (measured 1.5x end to end on 2 cores).
void gram_matrix(const float* d, index_t K, index_t n, float* out);
void gram_matrix(const double* d, index_t K, index_t n, double* out);

}  // namespace sparseforge
