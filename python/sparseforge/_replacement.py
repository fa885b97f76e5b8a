"""The rule choosing K-SVD's replacement atoms' sources, shared by the in-memory sweep
(:mod:`sparseforge.ksvd.replacement`) and the dask one (:mod:`sparseforge.backends.dask_ksvd`),
which may not import public modules."""

from __future__ import annotations

from typing import Any

import numpy as np


def replacement_candidates(xp: Any, residual: Any, x_norms: Any) -> tuple[Any, Any]:
    """(squared residual norms, candidate values): each signal's squared residual norm when
    it may give a replacement atom, -1 when not: a zero signal, or a residual at round-off
    level (at most (eps n_features)^2 times the signal's squared norm), whose direction is
    rounding noise that the in-memory and dask sweeps (summing in other orders) would rank
    differently. The one rule of both."""
    errors = xp.row_norms_sq(residual)
    floor = (float(np.finfo(xp.numpy_dtype(residual)).eps) * residual.shape[1]) ** 2
    return errors, xp.where((x_norms > 0) & (errors > floor * x_norms), errors, -1.0)
