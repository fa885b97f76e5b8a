// The CPU K-SVD dictionary-update sweep: every atom in turn, codes and residual kept
// consistent.
#pragma once

#include <cstdint>

#include "sparseforge/batch_args.hpp"

namespace sparseforge {

template <class T>
struct KsvdSweepArgs {
  index_t n_signals = 0;     // N
  index_t n_features = 0;    // n
  index_t n_atoms = 0;       // K
  index_t max_atoms = 0;     // M: width of the compact codes
  T* dictionary = nullptr;   // K x n, updated
  const int* indices = nullptr;  // N x M compact code indices (-1 = empty slot)
  T* values = nullptr;       // N x M compact code values, updated
  const T* x = nullptr;      // N x n signals
  T* residual = nullptr;     // N x n output: X - codes @ D, kept up to date through the sweep
  std::int64_t* usage = nullptr;  // K: number of signals using each atom (output)
  double* coded_error = nullptr;  // output: |X - codes @ D|_F^2 before the sweep
  bool exact = false;
  int max_power_iter = 0;
  T power_tol = T(0);
  int n_threads = 1;
  LaneKind lane = LaneKind::kSerial;  // kEmulatedWarp: the CUDA kernel's lane logic
};

// Per-ISA builds (compiled with omp_batch.cpp, see cmake/cpu_isa.cmake) and the dispatcher.
#define SF_DECLARE_KSVD_SWEEP(ns)                       \
  namespace ns {                                        \
  void ksvd_sweep(const KsvdSweepArgs<float>& args);    \
  void ksvd_sweep(const KsvdSweepArgs<double>& args);   \
  }
SF_DECLARE_KSVD_SWEEP(generic)
SF_DECLARE_KSVD_SWEEP(avx2)
SF_DECLARE_KSVD_SWEEP(avx512)
#undef SF_DECLARE_KSVD_SWEEP

void ksvd_sweep(const KsvdSweepArgs<float>& args);
void ksvd_sweep(const KsvdSweepArgs<double>& args);

}  // namespace sparseforge
