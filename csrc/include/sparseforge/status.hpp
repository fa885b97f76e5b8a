// Per-signal outcome of a pursuit. Device code cannot throw, so every signal reports one of
// these; Python turns them into warnings (counts) or errors (non-finite input).
#pragma once

#include <cstdint>

namespace sparseforge {

enum OmpStatus : std::int8_t {
  // Stopped because the requested sparsity was reached or the residual met `tol`.
  kOmpOk = 0,
  // Every remaining correlation is negligible (|<d_k, r>|^2 <= eps * max_k |<d_k, x>|^2): the
  // residual is orthogonal to the dictionary, so more atoms would get zero coefficients. This
  // includes all-zero signals. The codes are the exact OMP solution; not warned about.
  kOmpResidualOrthogonal = 1,
  // The best atom is (numerically) a linear combination of the atoms already chosen, or has
  // zero norm: the Cholesky pivot fell below eps * G[k, k]. Stopped early; warned about.
  kOmpLinearDependence = 2,
  // The correlation vector or the signal energy contained NaN or inf. Codes are zero; Python
  // raises an error naming the input.
  kOmpNonFinite = 3,
  // Error-constrained mode only: the atom cap (n_nonzero_coefs, or min(n_features, K)) was
  // reached before the residual met `tol`. The codes are the best with that many atoms.
  kOmpMaxAtoms = 4,
};

}  // namespace sparseforge
