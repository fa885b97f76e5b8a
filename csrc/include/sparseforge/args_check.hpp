// The kernel-argument vocabulary of both extension modules, and the one consistency check per
// argument struct that both bindings run on a filled struct before any kernel sees it.
//
// Host-only code (included by csrc/bindings/core_module.cpp and cuda_module.cpp, never by a
// kernel): it throws std::invalid_argument, which pybind11 turns into ValueError, with the
// offending field in backquotes. What it checks is what a raw struct can show: sizes, modes,
// strides against row extents, required pointers present, pointers aligned to their element
// type, and sizes whose products would overflow index_t. It cannot see how large the memory
// behind a pointer is: `_core` checks every numpy array against these fields as well, and
// `_cuda` checks that every pointer is device memory on the right GPU.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "sparseforge/batch_args.hpp"
#include "sparseforge/ksvd_args.hpp"
#include "sparseforge/patch_args.hpp"
#include "sparseforge/support_args.hpp"

namespace sparseforge {

// The dict keys each entry point accepts: the struct fields shared by both modules, then the
// fields only one of them has. A key outside these lists is an error (a misspelt optional
// field would otherwise be silently ignored).
namespace fields {
inline constexpr const char* kOmpBatch[] = {
    "n_atoms", "n_signals", "n_features", "max_atoms", "tol", "gram", "cov",
    "cov_stride_signal", "cov_stride_atom", "norms_sq", "x", "ldx", "mask", "ldm", "dt",
    "out_index", "out_value", "out_count", "out_status", "out_dense", "dense_stride"};
inline constexpr const char* kOmpBatchCpu[] = {"n_threads", "lane", "profile", "q_precision",
                                               "gram_f32"};
inline constexpr const char* kOmpBatchCuda[] = {"ws_scalars", "ws_ints", "ws_scalar_stride",
                                                "ws_int_stride", "n_warps"};
inline constexpr const char* kKsvdSweep[] = {
    "n_signals", "n_features", "n_atoms", "max_atoms", "x", "dictionary", "indices", "values",
    "residual", "exact", "max_power_iter", "power_tol", "n_threads", "lane"};
inline constexpr const char* kKsvdUpdate[] = {
    "n_features", "n_atoms", "max_atoms", "dictionary", "values", "residual", "user_start",
    "user_signal", "user_slot", "rows", "g", "h", "d", "e", "exact", "max_power_iter",
    "power_tol"};
inline constexpr const char* kPatchExtract[] = {"H", "W", "C", "ph", "pw", "image",
                                                "positions", "n_patches", "out"};
inline constexpr const char* kPatchAggregate[] = {"H", "W", "C", "ph", "pw", "step",
                                                  "patches", "weights", "normalise", "out"};
inline constexpr const char* kPatchCpu[] = {"n_threads", "per_element"};
// The kernels on a given support (CPU only, so n_threads is one of their fields).
inline constexpr const char* kSupportLstsq[] = {
    "n_signals", "n_features", "n_atoms", "max_atoms", "x", "dictionary", "weights", "gram",
    "indices", "out", "n_threads"};
inline constexpr const char* kSupportLstsqBackward[] = {
    "n_signals", "n_features", "n_atoms", "max_atoms", "x", "dictionary", "weights", "gram",
    "indices", "coefs", "grad", "grad_stride_signal", "grad_stride_slot", "out_dx", "out_dd",
    "n_threads"};
inline constexpr const char* kSparseSynthesis[] = {
    "n_signals", "n_features", "n_atoms", "max_atoms", "indices", "coefs", "weight", "out",
    "n_threads"};
inline constexpr const char* kSparseSynthesisBackward[] = {
    "n_signals", "n_features", "n_atoms", "max_atoms", "indices", "coefs", "weight", "grad",
    "grad_stride_signal", "grad_stride_feature", "out_dcoefs", "out_dweight", "n_threads"};
}  // namespace fields

// Which module filled the struct: the CUDA OMP kernel has no fused x -> correlation path.
enum class Backend { kCpu, kCuda };

namespace check_detail {

[[noreturn]] inline void fail(const std::string& msg) { throw std::invalid_argument(msg); }

inline std::string quoted(const char* field) { return std::string("`") + field + "`"; }

inline void require(bool ok, const std::string& msg) {
  if (!ok) fail(msg);
}

inline void at_least(index_t value, index_t lo, const char* field) {
  if (value < lo) {
    fail(quoted(field) + " must be >= " + std::to_string(lo) + ", got " + std::to_string(value));
  }
}

// A pointer the kernel dereferences as P: present when `needed`, and aligned to P (a
// misaligned float or double is undefined behaviour on the CPU and a fault on the GPU).
template <class P>
void pointer(const P* p, bool needed, const char* field) {
  if (p == nullptr) {
    if (needed) fail(quoted(field) + " is required (got none / a null pointer)");
    return;
  }
  if (reinterpret_cast<std::uintptr_t>(p) % alignof(P) != 0) {
    fail(quoted(field) + " is not aligned to its " + std::to_string(alignof(P)) +
         "-byte element type (address " + std::to_string(reinterpret_cast<std::uintptr_t>(p)) +
         "); pass an aligned copy");
  }
}

// a * b, failing (naming `what`) when it does not fit index_t: every element offset a kernel
// forms is at most such a product, so none of them can wrap.
inline index_t product(index_t a, index_t b, const char* what) {
  index_t out = 0;
  if (__builtin_mul_overflow(a, b, &out)) fail(std::string(what) + " overflows 64-bit indices");
  return out;
}

// Row stride of a `rows` x `extent` array written or read row by row: rows must not overlap
// (a row stride below the row extent would make two signals share elements). One row has no
// stride to speak of.
inline void row_stride(index_t stride, index_t extent, index_t rows, const char* field,
                       const char* extent_name) {
  if (rows <= 1) return;
  if (stride < extent) {
    fail(quoted(field) + " (" + std::to_string(stride) + ") must be >= " + extent_name + " (" +
         std::to_string(extent) + ")");
  }
  product(rows, stride, field);
}

inline void threads(int n_threads) {
  if (n_threads < 0) fail("`n_threads` must be >= 0 (0 = the OpenMP default)");
}

constexpr index_t kInt32Max = std::numeric_limits<std::int32_t>::max();

}  // namespace check_detail

// ---- Batch-OMP --------------------------------------------------------------------------

template <class T>
void check_args(const OmpBatchArgs<T>& a, Backend backend) {
  using namespace check_detail;
  at_least(a.n_signals, 0, "n_signals");
  at_least(a.n_features, 0, "n_features");
  // Atom indices are written as int32 (out_index), and the pursuit counts atoms in int.
  if (a.n_atoms < 1 || a.n_atoms > kInt32Max) {
    fail("`n_atoms` must be in [1, 2**31 - 1] (atom indices are int32), got " +
         std::to_string(a.n_atoms));
  }
  if (a.max_atoms < 1 || a.max_atoms > a.n_atoms) {
    fail("`max_atoms` must be in [1, n_atoms=" + std::to_string(a.n_atoms) + "], got " +
         std::to_string(a.max_atoms));
  }
  require((a.cov == nullptr) != (a.x == nullptr), "pass exactly one of `cov` and `x`");
  const bool masked = a.mask != nullptr;
  if (masked) require(a.x != nullptr, "`mask` needs `x` (and `dt`)");
  if (a.x != nullptr) {
    require(a.dt != nullptr, "`dt` (the transposed dictionary) is required with `x`");
    at_least(a.n_features, 1, "n_features");
    row_stride(a.ldx, a.n_features, a.n_signals, "ldx", "n_features");
    product(a.n_features, a.n_atoms, "n_features * n_atoms (`dt`)");
    if (backend == Backend::kCuda && !masked) {
      fail("`x` without `mask` is not supported by the CUDA kernel: pass `cov`");
    }
  }
  if (masked) row_stride(a.ldm, a.n_features, a.n_signals, "ldm", "n_features");
  // Only masked signals compute their own Gram rows.
  if (!masked) require(a.gram != nullptr, "`gram` is required unless `mask` is given");
  product(a.n_atoms, a.n_atoms, "n_atoms * n_atoms (`gram`)");
  // cov is only read, so any strides (negative, zero, overlapping) address valid elements
  // of the caller's view; the products below bound every offset.
  if (a.cov != nullptr) {
    product(a.n_signals, a.cov_stride_signal < 0 ? -a.cov_stride_signal : a.cov_stride_signal,
            "n_signals * cov_stride_signal");
    product(a.n_atoms, a.cov_stride_atom < 0 ? -a.cov_stride_atom : a.cov_stride_atom,
            "n_atoms * cov_stride_atom");
  }
  if (a.use_tol) {
    if (!(a.tol >= T(0))) fail("`tol` must be a non-negative number");
    require(a.norms_sq != nullptr || a.x != nullptr,
            "`norms_sq` is required when `tol` is given with `cov`");
  }
  product(a.n_signals, a.max_atoms, "n_signals * max_atoms (`out_index`)");
  if (a.out_dense != nullptr) {
    row_stride(a.dense_stride, a.n_atoms, a.n_signals, "dense_stride", "n_atoms");
  }
  if (backend == Backend::kCpu) threads(a.n_threads);
  pointer(a.gram, false, "gram");
  pointer(a.cov, false, "cov");
  pointer(a.norms_sq, false, "norms_sq");
  pointer(a.x, false, "x");
  pointer(a.mask, false, "mask");
  pointer(a.dt, false, "dt");
  pointer(a.out_index, true, "out_index");
  pointer(a.out_value, true, "out_value");
  pointer(a.out_count, true, "out_count");
  pointer(a.out_status, true, "out_status");
  pointer(a.out_dense, false, "out_dense");
}

// ---- K-SVD ------------------------------------------------------------------------------

template <class T>
void check_args(const KsvdSweepArgs<T>& a) {
  using namespace check_detail;
  at_least(a.n_signals, 0, "n_signals");
  at_least(a.n_features, 0, "n_features");
  if (a.n_atoms < 1 || a.n_atoms > kInt32Max) {
    fail("`n_atoms` must be in [1, 2**31 - 1] (atom indices are int32), got " +
         std::to_string(a.n_atoms));
  }
  // Code slots are counted in int (user_slot).
  if (a.max_atoms < 0 || a.max_atoms > kInt32Max) {
    fail("`max_atoms` must be in [0, 2**31 - 1], got " + std::to_string(a.max_atoms));
  }
  at_least(a.max_power_iter, 0, "max_power_iter");
  if (!(a.power_tol >= T(0))) fail("`power_tol` must be a non-negative number");
  product(a.n_signals, a.max_atoms, "n_signals * max_atoms (`indices`)");
  product(a.n_signals, a.n_features, "n_signals * n_features (`x`)");
  product(a.n_atoms, a.n_features, "n_atoms * n_features (`dictionary`)");
  threads(a.n_threads);
  pointer(a.dictionary, true, "dictionary");
  pointer(a.indices, true, "indices");
  pointer(a.values, true, "values");
  pointer(a.x, true, "x");
  pointer(a.residual, true, "residual");
  pointer(a.usage, true, "usage");
  pointer(a.coded_error, true, "coded_error");
}

template <class T>
void check_args(const KsvdUpdateArgs<T>& a) {
  using namespace check_detail;
  at_least(a.n_features, 1, "n_features");
  at_least(a.n_atoms, 1, "n_atoms");
  at_least(a.max_atoms, 1, "max_atoms");
  at_least(a.max_power_iter, 0, "max_power_iter");
  if (!(a.power_tol >= T(0))) fail("`power_tol` must be a non-negative number");
  product(a.n_atoms, a.n_features, "n_atoms * n_features (`dictionary`)");
  pointer(a.dictionary, true, "dictionary");
  pointer(a.values, true, "values");
  pointer(a.residual, true, "residual");
  pointer(a.user_start, true, "user_start");
  // Null when no atom has users (then no atom reads them).
  pointer(a.user_signal, false, "user_signal");
  pointer(a.user_slot, false, "user_slot");
  pointer(a.rows, false, "rows");
  pointer(a.g, false, "g");
  pointer(a.h, false, "h");
  pointer(a.d, true, "d");
  pointer(a.e, true, "e");
}

// ---- patches ----------------------------------------------------------------------------

namespace check_detail {
inline void patch_geometry(index_t H, index_t W, index_t C, index_t ph, index_t pw) {
  at_least(H, 1, "H");
  at_least(W, 1, "W");
  at_least(C, 1, "C");
  if (ph < 1 || ph > H) fail("`ph` must be in [1, H=" + std::to_string(H) + "], got " +
                             std::to_string(ph));
  if (pw < 1 || pw > W) fail("`pw` must be in [1, W=" + std::to_string(W) + "], got " +
                             std::to_string(pw));
  product(product(H, W, "H * W * C"), C, "H * W * C");
}
}  // namespace check_detail

template <class T>
void check_args(const PatchExtractArgs<T>& a, Backend backend) {
  using namespace check_detail;
  patch_geometry(a.H, a.W, a.C, a.ph, a.pw);
  at_least(a.n_patches, 0, "n_patches");
  product(product(product(a.n_patches, a.ph, "n_patches * ph * pw * C"), a.pw,
                  "n_patches * ph * pw * C"),
          a.C, "n_patches * ph * pw * C");
  if (backend == Backend::kCpu) threads(a.n_threads);
  pointer(a.image, true, "image");
  pointer(a.positions, true, "positions");
  pointer(a.out, true, "out");
}

template <class T>
void check_args(const PatchAggregateArgs<T>& a, Backend backend) {
  using namespace check_detail;
  patch_geometry(a.H, a.W, a.C, a.ph, a.pw);
  at_least(a.step, 1, "step");
  if (backend == Backend::kCpu) threads(a.n_threads);
  pointer(a.patches, true, "patches");
  pointer(a.weights, false, "weights");
  pointer(a.out, true, "out");
}

// Every patch of `positions` (n x 2, host memory) inside the H x W image. Written as
// `y > H - ph` rather than `y + ph > H`: positions come from the caller and y + ph overflows
// (undefined behaviour, in practice a wrap to a negative number that passes) near INT64_MAX.
inline void check_patch_positions(const long long* positions, index_t n, index_t H, index_t W,
                                  index_t ph, index_t pw) {
  for (index_t p = 0; p < n; ++p) {
    const long long y = positions[2 * p], x = positions[2 * p + 1];
    if (y < 0 || y > H - ph || x < 0 || x > W - pw) {
      check_detail::fail("`positions` row " + std::to_string(p) + " = (" + std::to_string(y) +
                         ", " + std::to_string(x) + ") puts a " + std::to_string(ph) + " x " +
                         std::to_string(pw) + " patch outside the " + std::to_string(H) +
                         " x " + std::to_string(W) + " image");
    }
  }
}

// ---- kernels on a given support -----------------------------------------------------

namespace check_detail {
// The sizes every support kernel shares: signals x slots of atoms, atoms x features.
inline void support_sizes(index_t n_signals, index_t n_features, index_t n_atoms,
                          index_t max_atoms) {
  at_least(n_signals, 0, "n_signals");
  at_least(n_features, 0, "n_features");
  at_least(n_atoms, 0, "n_atoms");
  at_least(max_atoms, 0, "max_atoms");
  product(n_signals, max_atoms, "n_signals * max_atoms (`indices`)");
  product(n_signals, n_features, "n_signals * n_features");
  product(n_atoms, n_features, "n_atoms * n_features");
  // The per-thread scratch of the least-squares kernels holds max_atoms^2 values per lane.
  product(product(max_atoms, max_atoms, "max_atoms * max_atoms"), 64,
          "max_atoms * max_atoms");
}

// A read-only `rows` x `cols` array addressed with any element strides: the offsets it forms
// stay within index_t.
inline void read_strides(index_t rows, index_t row_stride, index_t cols, index_t col_stride,
                         const char* row_field, const char* col_field) {
  product(rows, row_stride < 0 ? -row_stride : row_stride, row_field);
  product(cols, col_stride < 0 ? -col_stride : col_stride, col_field);
}

template <class A>
void support_lstsq_common(const A& a) {
  support_sizes(a.n_signals, a.n_features, a.n_atoms, a.max_atoms);
  if (a.gram != nullptr) {
    require(a.weights == nullptr,
            "`gram` is only used without `weights` (weighted systems are built from the "
            "atoms): pass one of them");
    product(a.n_atoms, a.n_atoms, "n_atoms * n_atoms (`gram`)");
  }
  threads(a.n_threads);
  pointer(a.x, true, "x");
  pointer(a.dictionary, true, "dictionary");
  pointer(a.weights, false, "weights");
  pointer(a.gram, false, "gram");
  pointer(a.indices, true, "indices");
}
}  // namespace check_detail

template <class T>
void check_args(const SupportLstsqArgs<T>& a) {
  using namespace check_detail;
  support_lstsq_common(a);
  pointer(a.out, true, "out");
}

template <class T>
void check_args(const SupportLstsqBackwardArgs<T>& a) {
  using namespace check_detail;
  support_lstsq_common(a);
  read_strides(a.n_signals, a.grad_stride_signal, a.max_atoms, a.grad_stride_slot,
               "n_signals * grad_stride_signal", "max_atoms * grad_stride_slot");
  pointer(a.coefs, true, "coefs");
  pointer(a.grad, true, "grad");
  pointer(a.out_dx, false, "out_dx");
  pointer(a.out_dd, false, "out_dd");
}

template <class T>
void check_args(const SparseSynthesisArgs<T>& a) {
  using namespace check_detail;
  support_sizes(a.n_signals, a.n_features, a.n_atoms, a.max_atoms);
  threads(a.n_threads);
  pointer(a.indices, true, "indices");
  pointer(a.coefs, true, "coefs");
  pointer(a.weight, true, "weight");
  pointer(a.out, true, "out");
}

template <class T>
void check_args(const SparseSynthesisBackwardArgs<T>& a) {
  using namespace check_detail;
  support_sizes(a.n_signals, a.n_features, a.n_atoms, a.max_atoms);
  read_strides(a.n_signals, a.grad_stride_signal, a.n_features, a.grad_stride_feature,
               "n_signals * grad_stride_signal", "n_features * grad_stride_feature");
  threads(a.n_threads);
  pointer(a.indices, true, "indices");
  pointer(a.coefs, true, "coefs");
  pointer(a.weight, true, "weight");
  pointer(a.grad, true, "grad");
  pointer(a.out_dcoefs, false, "out_dcoefs");
  pointer(a.out_dweight, false, "out_dweight");
}

// Every entry of a support (`count` int64 values, host memory) is -1 (padded) or an atom in
// [0, n_atoms). A min / max pass first (vectorised), the offender is looked for only when
// one exists.
inline void check_support_indices(const long long* indices, index_t count, index_t n_atoms,
                                  index_t max_atoms) {
  long long lo = -1, hi = -1;
  for (index_t e = 0; e < count; ++e) {
    lo = indices[e] < lo ? indices[e] : lo;
    hi = indices[e] > hi ? indices[e] : hi;
  }
  if (lo >= -1 && hi < n_atoms) return;
  for (index_t e = 0; e < count; ++e) {
    const long long v = indices[e];
    if (v < -1 || v >= n_atoms) {
      check_detail::fail("`indices` holds " + std::to_string(v) + " at (" +
                         std::to_string(e / max_atoms) + ", " + std::to_string(e % max_atoms) +
                         "), outside [-1, n_atoms=" + std::to_string(n_atoms) +
                         ") (-1 marks an empty slot)");
    }
  }
}

}  // namespace sparseforge
