// Arguments of the K-SVD dictionary update: the CPU sweep (`_core.ksvd_sweep`, which also
// builds the users of every atom and the residual) and the CUDA atom updates
// (`_cuda.ksvd_update_atoms`, whose caller passes those in). Field names are the keys of the
// bindings' `args` dicts; sparseforge/args_check.hpp checks a filled struct.
#pragma once

#include <cstdint>

#include "sparseforge/batch_args.hpp"

namespace sparseforge {

template <class T>
struct KsvdSweepArgs {
  index_t n_signals = 0;     // N
  index_t n_features = 0;    // n
  index_t n_atoms = 0;       // K
  index_t max_atoms = 0;     // M: width of the compact codes
  T* dictionary = nullptr;   // K x n, updated
  const int* indices = nullptr;  // N x M compact code indices (-1 = empty slot)
  T* values = nullptr;       // N x M compact code values, updated
  const T* x = nullptr;      // N x n signals
  T* residual = nullptr;     // N x n output: X - codes @ D, kept up to date through the sweep
  std::int64_t* usage = nullptr;  // K: number of signals using each atom (output)
  double* coded_error = nullptr;  // output: |X - codes @ D|_F^2 before the sweep
  bool exact = false;
  int max_power_iter = 0;
  T power_tol = T(0);
  int n_threads = 0;         // resolved by the binding, as in OmpBatchArgs
  LaneKind lane = LaneKind::kSerial;  // kEmulatedWarp: the CUDA kernel's lane logic
};

// The CUDA sweep: atoms 0 .. n_atoms - 1 updated in order by one warp. The users of atom k
// are entries user_start[k] .. user_start[k + 1] - 1 of user_signal / user_slot; rows, g, h
// are scratch for the atom with the most users (null when no atom has users), d and e
// scratch of n_features each. All device pointers.
template <class T>
struct KsvdUpdateArgs {
  index_t n_features = 0;
  index_t n_atoms = 0;
  index_t max_atoms = 0;              // row stride of `values`
  T* dictionary = nullptr;            // n_atoms x n_features, updated
  T* values = nullptr;                // N x max_atoms compact code values, updated
  T* residual = nullptr;              // N x n_features, updated
  const index_t* user_start = nullptr;  // n_atoms + 1
  const int* user_signal = nullptr;
  const int* user_slot = nullptr;
  T* rows = nullptr;
  T* g = nullptr;
  T* h = nullptr;
  T* d = nullptr;
  T* e = nullptr;
  bool exact = false;
  int max_power_iter = 0;
  T power_tol = T(0);
};

}  // namespace sparseforge
