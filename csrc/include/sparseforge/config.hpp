// Compiler glue shared by the CPU (g++) and CUDA (nvcc) builds of the kernel headers.
#pragma once

#if defined(__CUDACC__)
#define SF_HD __host__ __device__
#define SF_INLINE __forceinline__
#else
#define SF_HD
#define SF_INLINE inline __attribute__((always_inline))
#endif

// Each CPU translation unit that compiles the kernels for one instruction set defines
// SF_ISA_NS (generic, avx2, avx512). The kernel headers open an inline namespace named after
// it (SF_KERNEL_NS), so the linker can never pick the AVX-512 instantiation of an inline
// template for the generic path (an ODR trap that would crash on CPUs without AVX-512).
#ifndef SF_ISA_NS
#define SF_ISA_NS generic
#endif
#define SF_CAT_(a, b) a##b
#define SF_CAT(a, b) SF_CAT_(a, b)
#define SF_KERNEL_NS SF_CAT(kernels_, SF_ISA_NS)

// Vectorise a sum reduction on the CPU (the IEEE order forbids it otherwise); nothing under
// nvcc or without OpenMP.
#define SF_PRAGMA(x) _Pragma(#x)
#if defined(_OPENMP) && !defined(__CUDACC__)
#define SF_SIMD_SUM(acc) SF_PRAGMA(omp simd reduction(+ : acc))
#else
#define SF_SIMD_SUM(acc)
#endif

// Fully unroll a short constant-trip loop (keeps an array of vector accumulators in registers).
#if defined(__CUDACC__)
#define SF_UNROLL SF_PRAGMA(unroll)
#elif defined(__clang__)
#define SF_UNROLL SF_PRAGMA(unroll)
#else
#define SF_UNROLL SF_PRAGMA(GCC unroll 16)
#endif

namespace sparseforge {
using index_t = long long;  // signal and atom counts; 64-bit so N*K never overflows
}  // namespace sparseforge
