// Patch extraction and gather-form aggregation on the CPU (see sparseforge/patches.hpp).
#pragma once

#include "sparseforge/patch_args.hpp"

namespace sparseforge {

// out[p] = image[y_p : y_p + ph, x_p : x_p + pw, :] for positions (y_p, x_p) = positions[2p..].
// `per_element` runs the CUDA kernels' bodies (one element, or one output pixel, at a time;
// sparseforge/patches.hpp) instead of the row-wise CPU loops, for the tests. The arguments
// have passed check_args and check_patch_positions (sparseforge/args_check.hpp).
void extract_patches(const PatchExtractArgs<float>& args);
void extract_patches(const PatchExtractArgs<double>& args);

// out (H x W x C) = per pixel, the (weighted) sum of the grid patches covering it, divided by
// the sum of their weights when `normalise` (0 where that sum is 0).
void aggregate_patches(const PatchAggregateArgs<float>& args);
void aggregate_patches(const PatchAggregateArgs<double>& args);

}  // namespace sparseforge
