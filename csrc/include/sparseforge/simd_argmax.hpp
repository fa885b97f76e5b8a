// argmax |a[i]| for the CPU lane, with intrinsics where the translation unit is compiled for
// AVX-512 or AVX2 (GCC does not vectorise an index-tracking max reduction by itself). Each
// vector slot keeps its own best (value, index) with a strict '>', i.e. its lowest index;
// the slots are then combined by value, ties to the lowest index: numpy.argmax(abs(a)).
#pragma once

#if !defined(__CUDACC__)

#include <immintrin.h>

#include "sparseforge/config.hpp"

namespace sparseforge {
inline namespace SF_KERNEL_NS {
namespace simd {

// Scans a[0:n_full) in whole vectors (n_full is a positive multiple of the vector width),
// writing candidate maxima and their indices to best_v / best_i and returning how many
// (AVX-512 reduces to one; AVX2 leaves one per slot). Returns 0 when no SIMD version exists
// for this build, and the caller scans scalarly.
#if defined(__AVX512F__)
// Two independent (value, index) accumulators halve the compare -> masked-move dependency
// chain, which otherwise bounds the scan; the final reduction stays in vector registers.
#define SF_AVX512_ARGMAX(T, VEC, SUF, MASK, LANES, IOTA)                                       \
  inline int argmax_abs_slots(const T* a, index_t n_full, T* best_v, T* best_i) {             \
    VEC bv0 = _mm512_set1_##SUF(-1), bi0 = _mm512_set1_##SUF(-1);                             \
    VEC bv1 = bv0, bi1 = bi0;                                                                \
    VEC idx0 = IOTA;                                                                         \
    VEC idx1 = _mm512_add_##SUF(idx0, _mm512_set1_##SUF(LANES));                             \
    const VEC step = _mm512_set1_##SUF(2 * LANES);                                           \
    index_t i = 0;                                                                           \
    for (; i + 2 * LANES <= n_full; i += 2 * LANES) {                                        \
      const VEC v0 = _mm512_abs_##SUF(_mm512_loadu_##SUF(a + i));                            \
      const VEC v1 = _mm512_abs_##SUF(_mm512_loadu_##SUF(a + i + LANES));                    \
      const MASK g0 = _mm512_cmp_##SUF##_mask(v0, bv0, _CMP_GT_OQ);                          \
      const MASK g1 = _mm512_cmp_##SUF##_mask(v1, bv1, _CMP_GT_OQ);                          \
      bv0 = _mm512_mask_mov_##SUF(bv0, g0, v0);                                              \
      bi0 = _mm512_mask_mov_##SUF(bi0, g0, idx0);                                            \
      bv1 = _mm512_mask_mov_##SUF(bv1, g1, v1);                                              \
      bi1 = _mm512_mask_mov_##SUF(bi1, g1, idx1);                                            \
      idx0 = _mm512_add_##SUF(idx0, step);                                                   \
      idx1 = _mm512_add_##SUF(idx1, step);                                                   \
    }                                                                                        \
    if (i < n_full) { /* one last whole vector */                                            \
      const VEC v0 = _mm512_abs_##SUF(_mm512_loadu_##SUF(a + i));                            \
      const MASK g0 = _mm512_cmp_##SUF##_mask(v0, bv0, _CMP_GT_OQ);                          \
      bv0 = _mm512_mask_mov_##SUF(bv0, g0, v0);                                              \
      bi0 = _mm512_mask_mov_##SUF(bi0, g0, idx0);                                            \
    }                                                                                        \
    /* merge: take slot 1 when larger, or equal with a lower (valid) index */                \
    const MASK take = _mm512_cmp_##SUF##_mask(bv1, bv0, _CMP_GT_OQ) |                        \
                      (_mm512_cmp_##SUF##_mask(bv1, bv0, _CMP_EQ_OQ) &                       \
                       _mm512_cmp_##SUF##_mask(bi1, bi0, _CMP_LT_OQ) &                       \
                       _mm512_cmp_##SUF##_mask(bi1, _mm512_setzero_##SUF(), _CMP_GE_OQ));    \
    bv0 = _mm512_mask_mov_##SUF(bv0, take, bv1);                                             \
    bi0 = _mm512_mask_mov_##SUF(bi0, take, bi1);                                             \
    const T top = _mm512_reduce_max_##SUF(bv0);                                              \
    const MASK at_top = _mm512_cmp_##SUF##_mask(bv0, _mm512_set1_##SUF(top), _CMP_EQ_OQ);   \
    best_v[0] = top;                                                                         \
    best_i[0] = _mm512_mask_reduce_min_##SUF(at_top, bi0);                                   \
    return 1;                                                                                \
  }
SF_AVX512_ARGMAX(double, __m512d, pd, __mmask8, 8, _mm512_setr_pd(0, 1, 2, 3, 4, 5, 6, 7))
SF_AVX512_ARGMAX(float, __m512, ps, __mmask16, 16,
                 _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#undef SF_AVX512_ARGMAX
constexpr int kSlotsDouble = 8, kSlotsFloat = 16;
#elif defined(__AVX2__)
// One accumulator; the per-slot candidates are combined by the caller.
#define SF_AVX2_ARGMAX(T, VEC, SUF, LANES, IOTA)                                           \
  inline int argmax_abs_slots(const T* a, index_t n_full, T* best_v, T* best_i) {         \
    const VEC sign = _mm256_set1_##SUF(-0.0);                                            \
    VEC bv = _mm256_set1_##SUF(-1.0), bi = _mm256_set1_##SUF(-1.0);                      \
    VEC idx = IOTA;                                                                      \
    const VEC step = _mm256_set1_##SUF(LANES);                                           \
    for (index_t i = 0; i < n_full; i += LANES) {                                        \
      const VEC v = _mm256_andnot_##SUF(sign, _mm256_loadu_##SUF(a + i));                \
      const VEC gt = _mm256_cmp_##SUF(v, bv, _CMP_GT_OQ);                                 \
      bv = _mm256_blendv_##SUF(bv, v, gt);                                               \
      bi = _mm256_blendv_##SUF(bi, idx, gt);                                             \
      idx = _mm256_add_##SUF(idx, step);                                                 \
    }                                                                                    \
    _mm256_storeu_##SUF(best_v, bv);                                                     \
    _mm256_storeu_##SUF(best_i, bi);                                                     \
    return LANES;                                                                        \
  }
SF_AVX2_ARGMAX(double, __m256d, pd, 4, _mm256_setr_pd(0, 1, 2, 3))
SF_AVX2_ARGMAX(float, __m256, ps, 8, _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7))
#undef SF_AVX2_ARGMAX
constexpr int kSlotsDouble = 4, kSlotsFloat = 8;
#else
template <class T>
inline int argmax_abs_slots(const T*, index_t, T*, T*) { return 0; }
constexpr int kSlotsDouble = 1, kSlotsFloat = 1;
#endif

template <class T>
constexpr int slots() { return sizeof(T) == 4 ? kSlotsFloat : kSlotsDouble; }

}  // namespace simd
}  // namespace SF_KERNEL_NS
}  // namespace sparseforge

#endif  // !__CUDACC__
