// Kernels on a given support (arguments and semantics: sparseforge/support_args.hpp): the
// least-squares coefficients of each signal on its chosen atoms and their backward, and the
// sparse synthesis sum_l coefs[i, l] * weight[indices[i, l]] and its backward. The autograd
// Functions LeastSquaresOnSupport (python/sparseforge/restore/codes.py) and SparseSynthesis
// (restore/synthesis.py) run on them.
//
// support_kernels.cpp is compiled once per instruction set (CMake adds it to the per-ISA
// object libraries of cmake/cpu_isa.cmake); support_dispatch.cpp picks the build the Batch-OMP
// dispatcher picked (active_isa(): the best this CPU runs, or SPARSEFORGE_SIMD).
#pragma once

#include "sparseforge/support_args.hpp"

namespace sparseforge {

#define SF_DECLARE_SUPPORT_KERNELS(ns)                                      \
  namespace ns {                                                            \
  void support_lstsq(const SupportLstsqArgs<float>& args);                  \
  void support_lstsq(const SupportLstsqArgs<double>& args);                 \
  void support_lstsq_backward(const SupportLstsqBackwardArgs<float>& args); \
  void support_lstsq_backward(const SupportLstsqBackwardArgs<double>& args); \
  void sparse_synthesis(const SparseSynthesisArgs<float>& args);            \
  void sparse_synthesis(const SparseSynthesisArgs<double>& args);           \
  void sparse_synthesis_backward(const SparseSynthesisBackwardArgs<float>& args); \
  void sparse_synthesis_backward(const SparseSynthesisBackwardArgs<double>& args); \
  }
SF_DECLARE_SUPPORT_KERNELS(generic)
SF_DECLARE_SUPPORT_KERNELS(avx2)
SF_DECLARE_SUPPORT_KERNELS(avx512)
#undef SF_DECLARE_SUPPORT_KERNELS

// The dispatched entry points. The arguments have passed check_args and
// check_support_indices (sparseforge/args_check.hpp); n_threads is resolved (>= 1). Within a
// thread count every result is deterministic (static partitions, per-thread accumulators
// added in thread order); the forwards do not depend on the thread count at all.
void support_lstsq(const SupportLstsqArgs<float>& args);
void support_lstsq(const SupportLstsqArgs<double>& args);
void support_lstsq_backward(const SupportLstsqBackwardArgs<float>& args);
void support_lstsq_backward(const SupportLstsqBackwardArgs<double>& args);
void sparse_synthesis(const SparseSynthesisArgs<float>& args);
void sparse_synthesis(const SparseSynthesisArgs<double>& args);
void sparse_synthesis_backward(const SparseSynthesisBackwardArgs<float>& args);
void sparse_synthesis_backward(const SparseSynthesisBackwardArgs<double>& args);

}  // namespace sparseforge
