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
