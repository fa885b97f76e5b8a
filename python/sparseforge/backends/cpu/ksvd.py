"""The K-SVD atom sweep on host memory: one call of the native sweep (csrc/cpu/ksvd_sweep.cpp,
the shared atom update of csrc/include/sparseforge/ksvd_atom.hpp)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import _core
from ..._codes import SparseCodes

# Convergence of the exact method's power iterations (the native sweep's documented default;
# the CUDA backend uses the same).
POWER_TOL = 1e-7


def ksvd_sweep(X: np.ndarray, D: np.ndarray, codes: SparseCodes, residual: np.ndarray, *,
               exact: bool, max_power_iter: int, n_threads: int, ctx: Any = None,
               power_tol: float = POWER_TOL) -> tuple[np.ndarray, float]:
    """One sequential K-SVD sweep over all atoms, in place.

    Parameters
    ----------
    X : ndarray of shape (n_signals, n_features)
        The signals, C-contiguous.
    D : ndarray of shape (n_atoms, n_features)
        The dictionary, C-contiguous; updated in place.
    codes : SparseCodes
        Compact codes of `X` over `D` (int32 `indices` padded with -1, C-contiguous);
        `codes.values` is updated in place, the supports are fixed.
    residual : ndarray of shape (n_signals, n_features)
        Filled with ``X - codes @ D`` for the updated codes and dictionary.
    exact : bool
        Exact rank-1 updates (power iterations) instead of the approximate K-SVD step.
    max_power_iter : int
        Cap on the power iterations of the exact method.
    n_threads : int
        OpenMP threads (0: the OpenMP default).
    ctx : None
        Unused on the CPU (the CUDA backend's device context).
    power_tol : float
        Convergence threshold of the power iterations.

    Returns
    -------
    usage : ndarray of int64, shape (n_atoms,)
        Users of each atom.
    coded_error : float
        Squared Frobenius norm of ``X - codes @ D`` before the sweep.
    """
    del ctx
    n_signals, n_features = X.shape
    usage, coded_error = _core.ksvd_sweep({
        "n_signals": n_signals, "n_features": n_features, "n_atoms": D.shape[0],
        "max_atoms": codes.indices.shape[1], "x": X, "dictionary": D,
        "indices": codes.indices, "values": codes.values, "residual": residual,
        "exact": bool(exact), "max_power_iter": int(max_power_iter),
        "power_tol": float(power_tol), "n_threads": int(n_threads), "lane": "serial"})
    return usage, float(coded_error)
