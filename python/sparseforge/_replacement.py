"""K-SVD's atom replacement steps shared by the in-memory sweep
(:mod:`sparseforge.ksvd.replacement`) and the dask one (:mod:`sparseforge.backends.dask_ksvd`,
which may not import public modules): which signals may give a new atom, which atoms are
replaced when the sources run short, and dropping a replaced atom's codes."""

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


def replaced_atoms(n_dead: int, duplicate: Any, n_sources: int) -> tuple[Any, int, int]:
    """(the duplicates replaced, dead atoms replaced, duplicates replaced) when `n_sources`
    new atoms go to the atoms to replace, dead ones first (``atoms_to_replace``'s order).
    A duplicate left without a new atom keeps its codes: dropping them would only lose
    the signals' terms (and the atom stays a duplicate)."""
    dead_replaced = min(n_dead, n_sources)
    dup_replaced = max(0, min(int(duplicate.shape[0]), n_sources - n_dead))
    return duplicate[:dup_replaced], dead_replaced, dup_replaced


def drop_atom_codes(xp: Any, indices: Any, values: Any, counts: Any, residual: Any, D: Any,
                    atoms: Any) -> None:
    """Drop the codes that use `atoms`, in place, adding their terms back to the residual so
    that codes, residual and dictionary stay consistent; keeps the compact layout (a row's
    atoms first, the -1 padding last)."""
    if not atoms.shape[0]:
        return
    hit = xp.isin(indices, atoms)
    rows, slots = xp.nonzero(hit)
    # Slot by slot, so that a signal that used several of the atoms gets each term added
    # (within one slot the rows are distinct), in slot order as a scatter-add would.
    for j in range(indices.shape[1]):
        r = xp.flatnonzero(hit[:, j])
        if r.shape[0]:
            residual[r] += values[r, j][:, None] * D[xp.index(indices[r, j])]
    values[rows, slots] = 0
    indices[rows, slots] = -1
    counts -= xp.astype(hit.sum(1), xp.numpy_dtype(counts))
    touched = xp.unique_values(rows)
    order = xp.argsort(indices[touched] < 0, axis=1, stable=True)
    indices[touched] = xp.take_along_axis(indices[touched], order, 1)
    values[touched] = xp.take_along_axis(values[touched], order, 1)
