// The CPU Batch-OMP driver: arguments, per-ISA entry points and the runtime dispatcher.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparseforge/batch_args.hpp"

namespace sparseforge {

// Per-ISA builds of the same source (omp_batch.cpp compiled once per instruction set).
#define SF_DECLARE_OMP_BATCH(ns)                                            \
  namespace ns {                                                            \
  void omp_batch(const OmpBatchArgs<float>& args);                          \
  void omp_batch(const OmpBatchArgs<double>& args);                         \
  void gram_matrix(const float* d, index_t K, index_t n, float* out, int n_threads); \
  void gram_matrix(const double* d, index_t K, index_t n, double* out, int n_threads); \
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

// Float64 pursuits rank their candidates in float32 under q_precision 'auto'
// (omp_signal_mixed.hpp) when their Q workspace (K x L per signal) would take 32 KiB or more
// and K >= 512. Measured (idle machine, 2026-11-30, AVX-512, float32 ranking over float64,
// paired medians on 1 / 2 threads): 1.30x / 1.28x at (64, 512, 8), 1.22x / 1.22x at
// (144, 576, 12), 1.16x / 1.16x at (256, 1024, 8), 1.39x / 1.38x at (256, 1024, 16),
// 1.50x / 1.50x at (256, 1024, 32), 1.46x / 1.45x at (256, 1024, 64); with K = 256 nil or
// negative and unstable between runs: 0.90x / 0.89x at (64, 256, 8), 1.07x / 0.88-1.08x at
// (64, 256, 16), 0.99x / 0.96x at (64, 256, 32): the per-step bookkeeping (forward solve,
// candidate window, Gram gathers) weighs more against a short Q pass.
constexpr index_t kFloat32QBytes = 32 * 1024;
constexpr index_t kFloat32QMinAtoms = 512;
inline bool float32_q_by_size(index_t n_atoms, index_t max_atoms) {
  return n_atoms >= kFloat32QMinAtoms && n_atoms * max_atoms * 8 >= kFloat32QBytes;
}

// The phase counters (OmpBatchArgs::profile): columns per thread (the OmpPhase values of
// omp_signal.hpp: correlations, selection, update, solve, output, total) and their clock.
constexpr int kOmpProfilePhases = 6;
std::int64_t omp_clock_ticks();

// out = d d^T for a K x n row-major dictionary d (exactly symmetric; the upper triangle's tiles
// shared by an OpenMP team of n_threads, already resolved; the same bits for any count).
// Computed here rather than by numpy's BLAS, whose thread pool keeps spinning after the call
// and slows the pursuit that follows on a small machine (measured 1.5x end to end on 2 cores):
// the same OpenMP team then runs the pursuit.
void gram_matrix(const float* d, index_t K, index_t n, float* out, int n_threads);
void gram_matrix(const double* d, index_t K, index_t n, double* out, int n_threads);

}  // namespace sparseforge
