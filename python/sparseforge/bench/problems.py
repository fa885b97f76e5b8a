"""Seeded test problems: Gaussian dictionaries and planted-sparse signals."""

from __future__ import annotations

from typing import Any

import numpy as np


def gaussian_dictionary(n_components: int, n_features: int, seed: int = 0) -> np.ndarray:
    """(n_components, n_features) float64 Gaussian dictionary with unit-norm rows (atoms)."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((n_components, n_features))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    return D


def planted_sparse_problem(n_samples: int, n_features: int, n_components: int,
                           n_nonzero: int, noise: float = 0.01, seed: int = 0,
                           dtype: Any = "float64"):
    """Planted-sparse coding problem.

    Returns ``(X, D, support, coefs)``: X (n_samples, n_features) = sum of `n_nonzero`
    distinct atoms with standard-normal coefficients + N(0, noise²) per entry; D
    (n_components, n_features) Gaussian with unit-norm rows; support (n_samples, n_nonzero)
    int32 planted atom indices; coefs the planted coefficients. Everything is generated in
    float64 from `seed` and then cast to `dtype`, so the float32 and float64 problems are the
    same problem.
    """
    if not 0 < n_nonzero <= n_components:
        raise ValueError("need 0 < n_nonzero <= n_components")
    D = gaussian_dictionary(n_components, n_features, seed)
    rng = np.random.default_rng([seed, 1])
    # L distinct atoms per signal: draw with replacement, redraw rows holding a duplicate.
    support = rng.integers(0, n_components, size=(n_samples, n_nonzero), dtype=np.int32)
    while True:
        s = np.sort(support, axis=1)
        bad = np.flatnonzero((s[:, 1:] == s[:, :-1]).any(axis=1)) if n_nonzero > 1 else []
        if len(bad) == 0:
            break
        support[bad] = rng.integers(0, n_components, size=(len(bad), n_nonzero),
                                    dtype=np.int32)
    coefs = rng.standard_normal((n_samples, n_nonzero))
    X = noise * rng.standard_normal((n_samples, n_features))
    for j in range(n_nonzero):
        X += coefs[:, j, None] * D[support[:, j]]
    return (np.ascontiguousarray(X, dtype=dtype), np.ascontiguousarray(D, dtype=dtype),
            support, coefs)
