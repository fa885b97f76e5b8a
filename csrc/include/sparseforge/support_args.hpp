// Arguments of the kernels on a given support (csrc/cpu/support_kernels.hpp): the least-squares
// coefficients of each signal on its chosen atoms and their gradient, and the sparse synthesis
// out[i] = sum_l coefs[i, l] * weight[indices[i, l]] and its gradient. `_core` fills them from
// its `args` dicts (the field names are the keys) and checks them with
// sparseforge/args_check.hpp. Every array is C-contiguous (row-major, no stride fields); sizes
// in elements. Supports are int64 `indices` (n_signals x max_atoms), -1 for an empty (padded)
// slot; every other entry is an atom (a row of the dictionary / weight), checked to be in
// [0, n_atoms) before a kernel runs. CPU only (the hybrid restorer trains on the CPU).
#pragma once

#include "sparseforge/config.hpp"

namespace sparseforge {

// Per signal i, with A_i the atoms of its support (rows dictionary[indices[i, l]]) and
// W_i = diag(weights[i]) (all ones without `weights`):
//   out[i] = c_i = G_i^-1 b_i,  G_i = A_i W_i A_i^T (L x L),  b_i = A_i W_i x_i,
// solved by Cholesky (without pivoting, slots in order). Padded slots get coefficient 0. The
// drop rule: a slot whose Cholesky pivot (the squared weighted distance of its atom to the
// span of the earlier kept slots' atoms, as computed) is
//   <= kSupportDependence * eps * max_l G_i[l, l]   (eps of T; max over the non-padded slots)
// is dropped: it gets coefficient 0 and is treated as padded from then on (the later slots are
// fitted without it), here and in the backward. That covers atoms repeated in a support, atoms
// with no weight on the observed entries, and masks with fewer observed entries than atoms
// (G singular): the result is the fit on the kept slots, finite. (Which slots drop is decided
// by round-off when the kept atoms are themselves ill-conditioned; the result stays finite.)
// The decision is the same in the forward and the backward (same code, same inputs). A NaN
// pivot is not dropped: non-finite inputs reach the coefficients rather than vanishing.
template <class T>
struct SupportLstsqArgs {
  index_t n_signals = 0;                 // N
  index_t n_features = 0;                // n
  index_t n_atoms = 0;                   // K
  index_t max_atoms = 0;                 // L, slots per signal
  const T* x = nullptr;                  // N x n
  const T* dictionary = nullptr;         // K x n, atoms as rows (any norms)
  const T* weights = nullptr;            // optional N x n (None = all ones)
  // Optional K x K = dictionary dictionary^T, only without `weights` (computed by the kernel
  // when absent); entry [indices[i, p], indices[i, q]] is read for slots p >= q.
  const T* gram = nullptr;
  const long long* indices = nullptr;    // N x L, -1 = padded
  T* out = nullptr;                      // N x L coefficients (overwritten)
  int n_threads = 0;                     // resolved by the binding (0 = the OpenMP default)
};

// The backward of SupportLstsqArgs for an upstream gradient `grad` of the coefficients:
//   u   = G^-1 grad          (0 in padded and dropped slots; grad is ignored there)
//   s   = W (sum_l u_l A_l)  (n)          out_dx[i] = s
//   r   = W (x - sum_l c_l A_l)
//   out_dd[indices[i, l]] += u_l r - c_l s, summed over every signal i and kept slot l.
// `coefs` are the forward's result (read only in kept slots). Both outputs are optional and
// overwritten. out_dd is summed in per-thread accumulators, added in thread order: the result
// is deterministic for a given thread count (and equal, to round-off, for any other).
template <class T>
struct SupportLstsqBackwardArgs {
  index_t n_signals = 0;
  index_t n_features = 0;
  index_t n_atoms = 0;
  index_t max_atoms = 0;
  const T* x = nullptr;                  // N x n
  const T* dictionary = nullptr;         // K x n
  const T* weights = nullptr;            // optional N x n
  const T* gram = nullptr;               // optional K x K, only without `weights`
  const long long* indices = nullptr;    // N x L
  const T* coefs = nullptr;              // N x L, the forward's out
  // dLoss / dcoefs, N x L, slot l of signal i at grad[i * grad_stride_signal +
  // l * grad_stride_slot] (only read: any strides, e.g. a column slice or an expanded tensor).
  const T* grad = nullptr;
  index_t grad_stride_signal = 0;
  index_t grad_stride_slot = 1;
  T* out_dx = nullptr;                   // optional N x n
  T* out_dd = nullptr;                   // optional K x n
  int n_threads = 0;
};

// out[i] = sum_l coefs[i, l] * weight[indices[i, l]] (slots in order, padded ones skipped).
// Rows are independent: the result does not depend on the thread count.
template <class T>
struct SparseSynthesisArgs {
  index_t n_signals = 0;                 // N
  index_t n_features = 0;                // F, the length of a weight row
  index_t n_atoms = 0;                   // A, rows of `weight`
  index_t max_atoms = 0;                 // L
  const long long* indices = nullptr;    // N x L, -1 = padded
  const T* coefs = nullptr;              // N x L (ignored in padded slots)
  const T* weight = nullptr;             // A x F
  T* out = nullptr;                      // N x F (overwritten)
  int n_threads = 0;
};

// The backward of SparseSynthesisArgs for `grad` = dLoss / dout (N x F):
//   out_dcoefs[i, l] = grad[i] . weight[indices[i, l]]   (0 in padded slots)
//   out_dweight[a]   = sum over (i, l) with indices[i, l] = a of coefs[i, l] grad[i]
// Both optional and overwritten; out_dweight is summed in per-thread accumulators added in
// thread order (deterministic for a given thread count).
template <class T>
struct SparseSynthesisBackwardArgs {
  index_t n_signals = 0;
  index_t n_features = 0;
  index_t n_atoms = 0;
  index_t max_atoms = 0;
  const long long* indices = nullptr;    // N x L
  const T* coefs = nullptr;              // N x L
  const T* weight = nullptr;             // A x F
  // dLoss / dout, N x F, feature f of signal i at grad[i * grad_stride_signal +
  // f * grad_stride_feature] (only read: any strides; rows that are not contiguous are
  // copied, a chunk at a time, into a per-thread buffer).
  const T* grad = nullptr;
  index_t grad_stride_signal = 0;
  index_t grad_stride_feature = 1;
  T* out_dcoefs = nullptr;               // optional N x L
  T* out_dweight = nullptr;              // optional A x F
  int n_threads = 0;
};

// The dependence factor of the drop rule above (times eps of T). Native Batch-OMP stops at a
// pivot below 64 eps of the new atom's own squared norm (sparseforge/omp_signal.hpp): a
// pivot at that level is round-off in G, and solving with it would amplify the round-off by
// 1 / pivot. Here the scale is the row's largest diagonal, so that an atom with (almost) no
// weight on the observed entries is dropped as well.
constexpr int kSupportDependence = 64;

}  // namespace sparseforge
