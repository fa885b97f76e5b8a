"""Replacement of dead and duplicate atoms after each K-SVD sweep, written once over the
array namespace (numpy, CuPy, torch)."""

from __future__ import annotations

from typing import Any


from .._codes import SparseCodes
from .._namespace import namespace
from .._replacement import drop_atom_codes, replaced_atoms, replacement_candidates

REPLACEMENTS = ("residual", "signal")


def replace_atoms(X: Any, D: Any, codes: SparseCodes, residual: Any, usage: Any,
                  threshold: float, x_norms: Any,
                  replacement: str = "residual") -> tuple[int, int, Any]:
    """Replace unused atoms and near-duplicates by the worst-represented signals, in place.

    Atoms no signal uses ("dead") and atoms whose |coherence| with an earlier atom exceeds
    `threshold` (the earlier one is kept) become the normalised residuals of the signals with
    the largest residual norm (or those signals themselves: `replacement`), each signal used
    once; when the sources run short (few signals, or residuals at round-off), the dead atoms
    come first and the duplicates left over keep their atoms and codes. The codes that
    referenced a replaced duplicate are dropped and the residual is corrected, so codes,
    residual and dictionary stay consistent; the compact layout (a row's atoms first, the -1
    padding last) is kept.

    Parameters
    ----------
    X : array of shape (n_signals, n_features)
    D : array of shape (n_atoms, n_features)
        The dictionary after the sweep (C-contiguous); updated in place.
    codes : SparseCodes
        Compact codes of `X` (updated in place: indices, values, counts).
    residual : array of shape (n_signals, n_features)
        ``X - codes @ D``; updated in place.
    usage : int array of shape (n_atoms,)
        Users of each atom in the sweep.
    threshold : float
        Duplicate threshold on |<d_j, d_k>|.
    x_norms : array of shape (n_signals,)
        Squared norms of the signals.
    replacement : {"residual", "signal"}

    Returns
    -------
    n_dead, n_duplicate : int
        The dead and duplicate atoms replaced.
    signal_errors : array of shape (n_signals,)
        Squared residual norm of every signal afterwards.
    """
    xp = namespace(X, D, residual)
    indices, values, counts = codes.indices, codes.values, codes.counts
    dead, duplicate, replace = atoms_to_replace(xp, D, usage, threshold)
    # The replacements are chosen before the duplicates' codes are dropped: afterwards the
    # largest residuals would be those dropped terms, i.e. the duplicates themselves.
    sources = replacement_atoms(X, residual, x_norms, int(replace.shape[0]), replacement)
    dropped, n_dead, n_dup = replaced_atoms(int(dead.shape[0]), duplicate, sources.shape[0])
    drop_atom_codes(xp, indices, values, counts, residual, D, dropped)
    D[replace[:sources.shape[0]]] = sources
    return n_dead, n_dup, xp.row_norms_sq(residual)


def atoms_to_replace(xp: Any, D: Any, usage: Any, threshold: float) -> tuple[Any, Any, Any]:
    """The dead atoms, the duplicates and both (dead first), from the dictionary and usage
    only (also used by the dask K-SVD on the client)."""
    dead = xp.flatnonzero(usage == 0)
    # Atom k duplicates an earlier atom j < k (the earlier one is kept); dead atoms are
    # replaced as dead ones.
    coherent = (xp.tril(xp.abs(xp.gram(D)), -1) > threshold).any(1)
    coherent[dead] = False
    duplicate = xp.flatnonzero(coherent)
    return dead, duplicate, xp.concat([dead, duplicate])


def replacement_atoms(X: Any, residual: Any, x_norms: Any, count: int, replacement: str) -> Any:
    """Up to `count` unit-norm replacement atoms from the worst-represented signals (largest
    residual norm first, each signal once; zero signals and round-off residuals skipped:
    :func:`replacement_candidates`)."""
    if count == 0:
        return X[:0]
    xp = namespace(X, residual)
    errors, candidates = replacement_candidates(xp, residual, x_norms)
    worst = xp.top_k(candidates, min(count, candidates.shape[0]))
    worst = worst[candidates[worst] > 0]
    if replacement == "residual":
        return residual[worst] / xp.sqrt(errors[worst])[:, None]
    return X[worst] / xp.sqrt(x_norms[worst])[:, None]
