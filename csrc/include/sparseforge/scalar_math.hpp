// Scalar helpers for the kernel headers, usable on host and device: machine epsilon, and a
// square root that stays in single precision for float (plain sqrt(float) would promote to
// double in CUDA device code).
#pragma once

#include "sparseforge/config.hpp"

#if !defined(__CUDACC__)
#include <cmath>
#endif

namespace sparseforge {
inline namespace SF_KERNEL_NS {

template <class T>
struct Epsilon;
template <>
struct Epsilon<float> {
  static constexpr float value = 1.1920929e-07f;
  static constexpr float sqrt_value = 3.4526698e-04f;
};
template <>
struct Epsilon<double> {
  static constexpr double value = 2.220446049250313e-16;
  static constexpr double sqrt_value = 1.4901161193847656e-08;
};

SF_HD SF_INLINE float sf_sqrt(float x) { return sqrtf(x); }
SF_HD SF_INLINE double sf_sqrt(double x) { return sqrt(x); }
SF_HD SF_INLINE bool sf_isfinite(float x) { return x - x == 0.0f; }
SF_HD SF_INLINE bool sf_isfinite(double x) { return x - x == 0.0; }

// A product that is never fused into a following add. nvcc contracts `s += a * b` into one
// FMA by default (so would clang, where FMA is available); g++ in ISO mode does not. A sum
// built from these rounds the same on the GPU as on the CPU whatever the compiler (the patch
// aggregation is bit-identical on both, as gpu_check and the device tests check).
#if defined(__CUDA_ARCH__)
SF_HD SF_INLINE float mul_rn(float a, float b) { return __fmul_rn(a, b); }
SF_HD SF_INLINE double mul_rn(double a, double b) { return __dmul_rn(a, b); }
#else
SF_HD SF_INLINE float mul_rn(float a, float b) { return a * b; }
SF_HD SF_INLINE double mul_rn(double a, double b) { return a * b; }
#endif

}  // namespace SF_KERNEL_NS
}  // namespace sparseforge
