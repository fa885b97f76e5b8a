"""Per-signal outcomes of the pursuit, the warning classes, and the one place that turns a
status vector into an error or a warning (for every backend: a device status is copied to
the host first, it is one byte per signal)."""

from __future__ import annotations

import enum
import warnings

import numpy as np

# scikit-learn's sentence, verbatim, so that filters written for scikit-learn's warning
# (``message="Orthogonal matching pursuit ended prematurely"``) also match ours.
SKLEARN_DEPENDENCE_MESSAGE = ("Orthogonal matching pursuit ended prematurely due to linear "
                              "dependence in the dictionary. The requested precision might "
                              "not have been met.")


class LinearDependenceWarning(RuntimeWarning):
    """Some signals stopped early because the next atom was linearly dependent on the chosen
    ones (duplicate, zero-norm or nearly collinear atoms).

    A subclass of RuntimeWarning (scikit-learn issues a plain RuntimeWarning with the same
    first sentence), so ``warnings.filterwarnings("ignore", category=RuntimeWarning)`` still
    silences it; filter on this class to silence only it.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> D = np.array([[1.0, 0.0], [1.0, 1e-8]])          # two nearly collinear atoms
    >>> D /= np.linalg.norm(D, axis=1, keepdims=True)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = sf.sparse_encode(np.array([[1.0, 100.0]]), D, n_nonzero_coefs=2)
    >>> [w.category.__name__ for w in caught]
    ['LinearDependenceWarning']
    >>> str(caught[0].message).startswith("Orthogonal matching pursuit ended prematurely")
    True
    """


class OMPStatus(enum.IntEnum):
    """Per-signal outcome reported in :attr:`SparseCodes.status`.

    Examples
    --------
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> D = sf.overcomplete_dct(4, 6)
    >>> X = np.stack([D[3], np.zeros(16), 2.0 * D[5] + D[9]])
    >>> codes = sf.sparse_encode(X, D, tol=1e-10, n_nonzero_coefs=1, output="compact")
    >>> [sf.OMPStatus(s).name for s in codes.status]
    ['OK', 'OK', 'MAX_ATOMS']
    """

    #: Reached the requested sparsity, or the residual met `tol`.
    OK = 0
    #: Stopped early because the residual is orthogonal to every atom (up to round-off);
    #: includes all-zero signals. The codes are exact; no warning is issued.
    RESIDUAL_ORTHOGONAL = 1
    #: Stopped early because the next atom is linearly dependent on the chosen ones (duplicate,
    #: zero-norm or nearly collinear atoms: its squared distance to their span is below
    #: 64 eps times its squared norm). A :class:`LinearDependenceWarning` reports how many.
    LINEAR_DEPENDENCE = 2
    #: The signal or its correlations contained NaN or infinity (an error is raised).
    NON_FINITE = 3
    #: `tol` mode only: the atom cap (`n_nonzero_coefs`, or ``min(n_features,
    #: n_components)``) was reached before the residual met `tol`. No warning is issued.
    MAX_ATOMS = 4


# The two statuses check_status acts on, as the bytes they are in an int8 status vector.
_NON_FINITE_BYTE = bytes([OMPStatus.NON_FINITE])
_DEPENDENCE_BYTE = bytes([OMPStatus.LINEAR_DEPENDENCE])


def check_status(status: np.ndarray, source: str, stacklevel: int = 3,
                 row_offset: int = 0) -> None:
    """Raise for non-finite input, warn once for linear dependence.

    Parameters
    ----------
    status : ndarray of int8
        Host copy of the per-signal statuses of one call.
    source : str
        The argument to blame for non-finite values (``"X"``, ``"cov"``, ``"Xy"``).
    stacklevel : int
        Passed to :func:`warnings.warn` so the warning points at the user's call.
    row_offset : int
        Row of the first status in the whole input (a block of a larger array), so the error
        names the global row.
    """
    status = np.asarray(status)
    # The common outcome first: no NON_FINITE and no LINEAR_DEPENDENCE byte at all, found by
    # two memchr scans of the statuses' bytes (~0.2 us at any batch size up to a few
    # thousand signals, against ~0.8-2 us for the tally below); nothing to raise or warn.
    raw = status.tobytes()
    if _NON_FINITE_BYTE not in raw and _DEPENDENCE_BYTE not in raw:
        return
    # One pass counts every status (a call on a small batch pays per pass, not per signal).
    tally = np.bincount(status.view(np.uint8).ravel(), minlength=5)
    if tally[OMPStatus.NON_FINITE]:
        bad = np.flatnonzero(status == OMPStatus.NON_FINITE)
        # orthogonal_mp's signals are the columns (targets) of `y` and `Xy`.
        unit = "column" if source in ("y", "Xy") else "row"
        raise ValueError(f"`{source}` contains NaN or infinity (in {bad.size} signal(s), the "
                         f"first at {unit} {row_offset + int(bad[0])}); in the `tol` mode a "
                         "squared norm that "
                         "overflows the dtype counts too")
    n_dep = int(tally[OMPStatus.LINEAR_DEPENDENCE])
    if n_dep:
        warnings.warn(f"{SKLEARN_DEPENDENCE_MESSAGE} ({n_dep} of {status.size} signal(s); "
                      "duplicate, zero-norm or nearly collinear atoms)",
                      LinearDependenceWarning, stacklevel=stacklevel)
