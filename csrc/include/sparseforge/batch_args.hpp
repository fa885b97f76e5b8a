// Arguments of one Batch-OMP batch, shared by the CPU driver (csrc/cpu/omp_batch.cpp) and
// the CUDA launcher (csrc/cuda/omp_kernels.cu), and the lane policy a CPU driver runs. The
// field names are the keys of the `args` dict both extension modules take; both check a
// filled struct with check_args (sparseforge/args_check.hpp) before running it.
#pragma once

#include <cstdint>

#include "sparseforge/config.hpp"

namespace sparseforge {

// The CPU drivers' lane policy: SerialLane, or EmulatedWarpLane (the CUDA warp's logic run
// on the host, for the tests).
enum class LaneKind { kSerial, kEmulatedWarp };

// The CPU driver's storage of the pursuit's Q workspace for float64 signals: float64, float32
// (csrc/include/sparseforge/omp_signal_mixed.hpp: half the bytes, the same atoms and codes up
// to float64 round-off), or chosen by size (kAuto). float32 signals always use float32.
enum class QPrecision { kAuto, kNative, kFloat32 };

// One batch: N signals coded against one Gram matrix. Pointers are host memory for the CPU
// driver and device memory for the CUDA launcher; sizes in elements. Outputs: out_index /
// out_value are N x M row-major, out_count / out_status N.
template <class T>
struct OmpBatchArgs {
  const T* gram = nullptr;          // K x K, row-major
  index_t n_atoms = 0;              // K
  index_t n_signals = 0;            // N
  // The correlations come either precomputed, signal n with atom k at
  //   cov[n * cov_stride_signal + k * cov_stride_atom],
  const T* cov = nullptr;
  index_t cov_stride_signal = 0;
  index_t cov_stride_atom = 1;
  // or are computed block by block from the signals x (N x n_features, rows ldx apart,
  // features contiguous) and dt = D^T (n_features x K, row-major). Then squared norms for the
  // tol mode are computed from x too.
  const T* x = nullptr;
  index_t ldx = 0;
  const T* dt = nullptr;
  index_t n_features = 0;
  const T* norms_sq = nullptr;      // N squared signal norms (tol mode with precomputed cov)
  // Masked mode (with x and dt): mask (N x n_features, rows ldm apart, nonzero = observed);
  // each signal is coded from its observed entries.
  const unsigned char* mask = nullptr;
  index_t ldm = 0;
  int max_atoms = 0;                // M
  bool use_tol = false;
  T tol = T(0);
  int* out_index = nullptr;
  T* out_value = nullptr;
  int* out_count = nullptr;
  std::int8_t* out_status = nullptr;
  T* out_dense = nullptr;           // optional N x K codes, rows dense_stride apart
  index_t dense_stride = 0;
  // CPU only: the team size, already resolved by the binding (resolve_threads: 0 = the
  // OpenMP default, capped at the CPU count, 1 in a fork()ed child).
  int n_threads = 0;
  LaneKind lane = LaneKind::kSerial;
  // CPU only (unmasked signals, serial lane): see QPrecision. With float32 Q, the Gram
  // matrix in float32 (K x K, C-contiguous) when the caller keeps one (the Python backend
  // caches it with the dictionary's Gram matrix); else the driver converts `gram` per call.
  QPrecision q_precision = QPrecision::kAuto;
  const float* gram_f32 = nullptr;
  // CPU only, opt-in phase counters (unmasked signals): when set, n_threads x kOmpPhases
  // (omp_signal.hpp) time-stamp-counter ticks, row t for thread t, overwritten. The run is
  // then an instantiation with the clock compiled in; without it none is (no cost).
  std::int64_t* profile = nullptr;
};

}  // namespace sparseforge
