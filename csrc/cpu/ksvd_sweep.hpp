// The CPU K-SVD dictionary-update sweep: every atom in turn, codes and residual kept
// consistent.
#pragma once

#include "sparseforge/ksvd_args.hpp"

namespace sparseforge {

// KsvdSweepArgs: sparseforge/ksvd_args.hpp.

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
