// Arguments of patch extraction and gather-form aggregation (sparseforge/patches.hpp), filled
// by both extension modules from their `args` dicts (the field names are the keys) and
// checked by sparseforge/args_check.hpp. Images are H x W x C, row-major.
#pragma once

#include "sparseforge/config.hpp"

namespace sparseforge {

template <class T>
struct PatchExtractArgs {
  index_t H = 0, W = 0, C = 0;
  index_t ph = 0, pw = 0;                // patch height and width
  const T* image = nullptr;              // H x W x C
  const long long* positions = nullptr;  // n_patches x 2: top-left (row, column) of each patch
  index_t n_patches = 0;
  T* out = nullptr;                      // n_patches x ph x pw x C
  int n_threads = 0;                     // CPU only, resolved by the binding
  bool per_element = false;              // CPU only: run the CUDA kernel's per-element body
};

template <class T>
struct PatchAggregateArgs {
  index_t H = 0, W = 0, C = 0;
  index_t ph = 0, pw = 0;
  index_t step = 0;                      // grid step (the last position is always H - ph)
  const T* patches = nullptr;            // (grid rows x grid columns) x ph x pw x C
  const T* weights = nullptr;            // optional, one per patch
  bool normalise = false;                // divide by the sum of the covering weights
  T* out = nullptr;                      // H x W x C
  int n_threads = 0;                     // CPU only
  bool per_element = false;              // CPU only: run the CUDA kernel's per-pixel body
};

}  // namespace sparseforge
