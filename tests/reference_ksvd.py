"""An independent, plain-NumPy K-SVD dictionary-update sweep used as the oracle of the tests.

One sweep of the K-SVD atom update (Aharon, Elad & Bruckstein 2006) with fixed supports, and
its approximate variant (Rubinstein, Zibulevsky & Elad 2008), written for clarity rather than
speed and sharing no code with sparseforge. Dense codes ``Gamma`` (n_samples, n_components),
atoms as the rows of ``D`` (n_components, n_features), so that ``X ~ Gamma @ D``.

For every atom k in order (each update sees the atoms and coefficients already updated):

* users ``w``: the signals whose code uses atom k (non-zero ``Gamma[:, k]``);
* restricted error ``E = X[w] - Gamma[w] @ D + outer(Gamma[w, k], D[k])``, formed explicitly;
* exact: the top singular triplet of ``E`` from ``np.linalg.svd``: ``D[k]`` is the top right
  singular vector and ``Gamma[w, k] = sigma * u``;
* approximate: one alternating step from the current coefficients ``g = Gamma[w, k]``:
  ``d = E.T @ g / |E.T @ g|``, then ``Gamma[w, k] = E @ d``.

Everything is computed in float64 whatever the input dtype. A singular vector is defined only
up to sign; the exact update here picks the sign that agrees with the approximate direction
``E.T @ g`` (the sign power iterations started from that direction keep), and the tests still
compare atoms up to sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SweepResult:
    dictionary: np.ndarray   # (n_components, n_features), float64
    codes: np.ndarray        # (n_samples, n_components), float64, same support as the input
    residual: np.ndarray     # X - codes @ dictionary, float64
    usage: np.ndarray        # int64: users of each atom
    error_before: float      # |X - Gamma @ D|_F^2 with the input dictionary and codes
    # sigma_ratio[k]: second / top singular value of atom k's restricted error (nan when
    # undefined); near 1 the top singular vector is ill-determined.
    sigma_ratio: np.ndarray


def atom_update(E: np.ndarray, g: np.ndarray, *, exact: bool):
    """New (atom, coefficients, second/top singular-value ratio) for the restricted error `E`
    (n_users, n_features) and current coefficients `g` (n_users,). Returns None when
    ``E.T @ g`` vanishes (the atom is left alone)."""
    start = E.T @ g
    norm = float(np.linalg.norm(start))
    if norm == 0.0:
        return None
    s = np.linalg.svd(E, compute_uv=False)
    ratio = float(s[1] / s[0]) if s.size > 1 and s[0] > 0 else float("nan")
    if not exact:
        d = start / norm
        return d, E @ d, ratio
    U, s, Vt = np.linalg.svd(E, full_matrices=False)
    d, u = Vt[0].copy(), U[:, 0].copy()
    if d @ start < 0:
        d, u = -d, -u
    return d, s[0] * u, ratio


def ksvd_sweep(X: np.ndarray, D: np.ndarray, Gamma: np.ndarray, *,
               exact: bool = False) -> SweepResult:
    """One K-SVD dictionary-update sweep over all atoms, in order. Inputs are not modified."""
    X = np.asarray(X, dtype=np.float64)
    D = np.array(D, dtype=np.float64)
    Gamma = np.array(Gamma, dtype=np.float64)
    n_components = D.shape[0]
    if Gamma.shape != (X.shape[0], n_components) or D.shape[1] != X.shape[1]:
        raise ValueError("shapes of X, D and Gamma do not agree")
    usage = np.count_nonzero(Gamma, axis=0).astype(np.int64)
    error_before = float(np.sum((X - Gamma @ D) ** 2))
    ratios = np.full(n_components, np.nan)
    for k in range(n_components):
        w = np.flatnonzero(Gamma[:, k])
        if w.size == 0:
            continue
        E = X[w] - Gamma[w] @ D + np.outer(Gamma[w, k], D[k])
        new = atom_update(E, Gamma[w, k], exact=exact)
        if new is None:
            continue
        D[k], Gamma[w, k], ratios[k] = new
    return SweepResult(D, Gamma, X - Gamma @ D, usage, error_before, ratios)


def match_atoms(true_D: np.ndarray, learned_D: np.ndarray, threshold: float = 0.99):
    """Aharon et al.'s recovery criterion: a true atom is recovered when some learned atom has
    ``|<d, d_hat>| > threshold`` (atoms unit norm). Returns (recovered mask over the true
    atoms, best |coherence| of every true atom)."""
    A = np.asarray(true_D, dtype=np.float64)
    B = np.asarray(learned_D, dtype=np.float64)
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    B = B / np.linalg.norm(B, axis=1, keepdims=True)
    best = np.abs(A @ B.T).max(axis=1)
    return best > threshold, best
