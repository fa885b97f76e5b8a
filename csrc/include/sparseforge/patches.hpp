// Pixel <-> patch index maths for images split into ph x pw patches on a grid with a step,
// shared by the CPU drivers and the CUDA kernels (one GPU thread per patch element or per
// output pixel; the CPU runs the same per-element bodies in the tests).
//
// Grid positions along an axis of length L with patch size p and step s are
// 0, s, 2s, ... and always the last position L - p, so every pixel is covered (scikit-learn's
// layout when s = 1). Aggregation is in gather form: each output pixel sums the patches that
// cover it, in a fixed order, so the result is deterministic and needs no atomics.
#pragma once

#include "sparseforge/config.hpp"
#include "sparseforge/scalar_math.hpp"

namespace sparseforge {
inline namespace SF_KERNEL_NS {

// Number of grid positions along an axis of length `length` (>= patch).
SF_HD SF_INLINE index_t grid_count(index_t length, index_t patch, index_t step) {
  const index_t span = length - patch;
  return span / step + 1 + (span % step != 0 ? 1 : 0);
}

// Position of grid index k (0 <= k < count).
SF_HD SF_INLINE index_t grid_position(index_t k, index_t count, index_t length, index_t patch,
                                      index_t step) {
  return k == count - 1 ? length - patch : k * step;
}

// Range [first, last] of grid indices whose patch may cover pixel y; callers still check
// grid_position(k) <= y < grid_position(k) + patch (the last position is off the step grid).
SF_HD SF_INLINE void grid_candidates(index_t y, index_t count, index_t patch, index_t step,
                                     index_t* first, index_t* last) {
  index_t lo = y - patch + 1;
  lo = lo <= 0 ? 0 : (lo + step - 1) / step;
  index_t hi = y / step;
  *first = lo;
  *last = hi < count - 1 ? hi : count - 1;
}

// Sum of the patch values covering pixel (y, x, c) and of their weights (1 each without
// weights). patches: P x ph x pw x C, row-major, P = rows x cols grid patches in row-major
// order.
template <class T>
SF_HD SF_INLINE void gather_pixel(const T* patches, const T* weights, index_t H, index_t W,
                                  index_t C, index_t ph, index_t pw, index_t step,
                                  index_t rows, index_t cols, index_t y, index_t x, index_t c,
                                  T* value, T* weight) {
  index_t r0, r1, c0, c1;
  grid_candidates(y, rows, ph, step, &r0, &r1);
  grid_candidates(x, cols, pw, step, &c0, &c1);
  T sum = T(0), wsum = T(0);
  // Candidates r0..r1, then the last grid index when it lies past r1 (off the step grid).
  const index_t r_end = r1 + (rows - 1 > r1 ? 1 : 0), c_end = c1 + (cols - 1 > c1 ? 1 : 0);
  for (index_t ri = r0; ri <= r_end; ++ri) {
    const index_t r = ri <= r1 ? ri : rows - 1;
    const index_t py = grid_position(r, rows, H, ph, step);
    if (py > y || y >= py + ph) continue;
    for (index_t qi = c0; qi <= c_end; ++qi) {
      const index_t q = qi <= c1 ? qi : cols - 1;
      const index_t px = grid_position(q, cols, W, pw, step);
      if (px > x || x >= px + pw) continue;
      const index_t p = r * cols + q;
      const T w = weights ? weights[p] : T(1);
      sum += mul_rn(w, patches[((p * ph + (y - py)) * pw + (x - px)) * C + c]);
      wsum += w;
    }
  }
  *value = sum;
  *weight = wsum;
}

// Output pixel (y, x, c) of the aggregation: the weighted sum of the covering patches, divided
// by the sum of their weights when `normalise` (0 where that sum is 0).
template <class T>
SF_HD SF_INLINE T aggregate_pixel(const T* patches, const T* weights, index_t H, index_t W,
                                  index_t C, index_t ph, index_t pw, index_t step, index_t rows,
                                  index_t cols, bool normalise, index_t y, index_t x,
                                  index_t c) {
  T value, weight;
  gather_pixel(patches, weights, H, W, C, ph, pw, step, rows, cols, y, x, c, &value, &weight);
  return normalise ? (weight != T(0) ? value / weight : T(0)) : value;
}

// Offset in the (H, W, C) image of element e of the patch stack (n x ph x pw x C, row-major)
// whose patch p has its top-left corner at (positions[2p], positions[2p + 1]).
SF_HD SF_INLINE index_t patch_element_source(index_t e, const long long* positions, index_t W,
                                             index_t C, index_t ph, index_t pw) {
  const index_t per_patch = ph * pw * C;
  const index_t p = e / per_patch, within = e % per_patch;
  const index_t a = within / (pw * C), b = within % (pw * C);
  return ((positions[2 * p] + a) * W + positions[2 * p + 1]) * C + b;
}

}  // namespace SF_KERNEL_NS
}  // namespace sparseforge
