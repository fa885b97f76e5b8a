// OpenMP drivers for patch extraction (a gather by position) and gather-form aggregation.
#include "patches.hpp"

#include <algorithm>
#include <vector>

#include "sparseforge/patches.hpp"
#include "threads.hpp"

namespace sparseforge {
namespace {

int team(int n_threads) { return n_threads < 1 ? 1 : n_threads; }

template <class T>
void extract(const PatchExtractArgs<T>& args) {
  const index_t W = args.W, C = args.C, ph = args.ph, pw = args.pw;
  const index_t n_patches = args.n_patches;
  const T* image = args.image;
  const long long* positions = args.positions;
  T* out = args.out;
  if (args.per_element) {  // what each thread of the CUDA kernel does
    const index_t total = n_patches * ph * pw * C;
#pragma omp parallel num_threads(team(args.n_threads))
    {
      note_team();
#pragma omp for schedule(static)
      for (index_t e = 0; e < total; ++e) {
        out[e] = image[patch_element_source(e, positions, W, C, ph, pw)];
      }
    }
    return;
  }
  const index_t row = pw * C;
#pragma omp parallel num_threads(team(args.n_threads))
  {
    note_team();
#pragma omp for schedule(static)
    for (index_t p = 0; p < n_patches; ++p) {
      const index_t y = positions[2 * p], x = positions[2 * p + 1];
      T* dst = out + p * ph * row;
      for (index_t a = 0; a < ph; ++a) {
        const T* src = image + ((y + a) * W + x) * C;
        for (index_t b = 0; b < row; ++b) dst[a * row + b] = src[b];
      }
    }
  }
}

// Row by row: a thread owns output row y and adds, in a fixed order (patch row, then patch
// column), the row of every patch that covers it into a private accumulator: deterministic,
// no atomics, and contiguous, vectorisable adds (the per-pixel gather_pixel of
// sparseforge/patches.hpp is what one GPU thread per pixel does; the same sums, the same
// order per pixel).
template <class T>
void aggregate(const PatchAggregateArgs<T>& args) {
  const index_t H = args.H, W = args.W, C = args.C, ph = args.ph, pw = args.pw;
  const index_t step = args.step;
  const T* patches = args.patches;
  const T* weights = args.weights;
  const bool normalise = args.normalise;
  T* out = args.out;
  const int n_threads = team(args.n_threads);
  const index_t rows = grid_count(H, ph, step), cols = grid_count(W, pw, step);
  if (args.per_element) {  // what each thread of the CUDA kernel does: one output value
#pragma omp parallel num_threads(n_threads)
    {
      note_team();
#pragma omp for schedule(static)
      for (index_t e = 0; e < H * W * C; ++e) {
        out[e] = aggregate_pixel(patches, weights, H, W, C, ph, pw, step, rows, cols,
                                 normalise, e / (W * C), e / C % W, e % C);
      }
    }
    return;
  }
  const index_t prow = pw * C;
  // Without weights a pixel's coverage is (patch rows covering y) x (patch columns covering x).
  std::vector<index_t> col_cover(static_cast<size_t>(W), 0);
  for (index_t q = 0; q < cols; ++q) {
    const index_t px = grid_position(q, cols, W, pw, step);
    for (index_t b = 0; b < pw; ++b) ++col_cover[px + b];
  }
#pragma omp parallel num_threads(n_threads)
  {
    note_team();
    std::vector<T> acc(static_cast<size_t>(W * C)), wsum(static_cast<size_t>(W));
#pragma omp for schedule(static)
    for (index_t y = 0; y < H; ++y) {
      std::fill(acc.begin(), acc.end(), T(0));
      std::fill(wsum.begin(), wsum.end(), T(0));
      index_t covering_rows = 0;
      index_t r0, r1;
      grid_candidates(y, rows, ph, step, &r0, &r1);
      const index_t r_end = r1 + (rows - 1 > r1 ? 1 : 0);
      for (index_t ri = r0; ri <= r_end; ++ri) {
        const index_t r = ri <= r1 ? ri : rows - 1;
        const index_t py = grid_position(r, rows, H, ph, step);
        if (py > y || y >= py + ph) continue;
        const T* band = patches + (r * cols * ph + (y - py)) * prow;  // row y - py of patch (r, 0)
        if (weights == nullptr) {  // coverage is counted once per row below
          ++covering_rows;
          for (index_t q = 0; q < cols; ++q) {
            const T* src = band + q * ph * prow;
            T* dst = acc.data() + grid_position(q, cols, W, pw, step) * C;
            for (index_t b = 0; b < prow; ++b) dst[b] += src[b];
          }
          continue;
        }
        for (index_t q = 0; q < cols; ++q) {
          const T w = weights[r * cols + q];
          const index_t px = grid_position(q, cols, W, pw, step);
          const T* src = band + q * ph * prow;
          T* dst = acc.data() + px * C;
          for (index_t b = 0; b < prow; ++b) dst[b] += mul_rn(w, src[b]);  // never fused
          for (index_t b = 0; b < pw; ++b) wsum[px + b] += w;
        }
      }
      if (weights == nullptr) {
        for (index_t x = 0; x < W; ++x) wsum[x] = static_cast<T>(covering_rows * col_cover[x]);
      }
      T* row = out + y * W * C;
      for (index_t x = 0; x < W; ++x) {
        const T w = wsum[x];
        for (index_t c = 0; c < C; ++c) {
          const T v = acc[x * C + c];
          row[x * C + c] = normalise ? (w != T(0) ? v / w : T(0)) : v;
        }
      }
    }
  }
}

}  // namespace

void extract_patches(const PatchExtractArgs<float>& args) { extract(args); }
void extract_patches(const PatchExtractArgs<double>& args) { extract(args); }
void aggregate_patches(const PatchAggregateArgs<float>& args) { aggregate(args); }
void aggregate_patches(const PatchAggregateArgs<double>& args) { aggregate(args); }

}  // namespace sparseforge
