// Patch extraction and gather-form aggregation on the CPU (see sparseforge/patches.hpp).
#pragma once

#include "sparseforge/config.hpp"

namespace sparseforge {

// out[p] = image[y_p : y_p + ph, x_p : x_p + pw, :] for positions (y_p, x_p) = positions[2p..].
// `per_element` runs the CUDA kernels' bodies (one element, or one output pixel, at a time;
// sparseforge/patches.hpp) instead of the row-wise CPU loops, for the tests.
void extract_patches(const float* image, index_t H, index_t W, index_t C, index_t ph,
                     index_t pw, const long long* positions, index_t n, float* out, int nt,
                     bool per_element = false);
void extract_patches(const double* image, index_t H, index_t W, index_t C, index_t ph,
                     index_t pw, const long long* positions, index_t n, double* out, int nt,
                     bool per_element = false);

// out (H x W x C) = per pixel, the (weighted) sum of the grid patches covering it, divided by
// the sum of their weights when `normalise` (0 where that sum is 0).
void aggregate_patches(const float* patches, const float* weights, index_t H, index_t W,
                       index_t C, index_t ph, index_t pw, index_t step, bool normalise,
                       float* out, int nt, bool per_element = false);
void aggregate_patches(const double* patches, const double* weights, index_t H, index_t W,
                       index_t C, index_t ph, index_t pw, index_t step, bool normalise,
                       double* out, int nt, bool per_element = false);

}  // namespace sparseforge
