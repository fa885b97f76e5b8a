"""Compact sparse codes: what OMP returns when a dense (n_samples, n_components) array would
not fit in memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True, eq=False)
class SparseCodes:
    """Sparse codes of ``n_samples`` signals, one padded row per signal.

    Attributes
    ----------
    indices : ndarray of int32, shape (n_samples, k_max)
        Chosen atoms of each signal in selection order, padded with -1.
    values : ndarray, shape (n_samples, k_max)
        Their coefficients, padded with 0.
    counts : ndarray of int32, shape (n_samples,)
        Number of atoms each signal used.
    status : ndarray of int8, shape (n_samples,)
        Per-signal outcome (see :class:`sparseforge.OMPStatus`).
    n_components : int
        Number of atoms in the dictionary.

    Examples
    --------
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> D = sf.overcomplete_dct(4, 6)
    >>> X = np.stack([2.0 * D[3] - 0.5 * D[20], D[7]])
    >>> codes = sf.sparse_encode(X, D, n_nonzero_coefs=2, output="compact")
    >>> codes.shape, codes.nnz, codes.counts.tolist()
    ((2, 36), 3, [2, 1])
    >>> codes.indices.tolist()                       # selection order, padded with -1
    [[3, 20], [7, -1]]
    >>> bool(np.allclose(codes.reconstruct(D), X)), codes.to_scipy().format
    (True, 'csr')
    """

    indices: np.ndarray
    values: np.ndarray
    counts: np.ndarray
    status: np.ndarray
    n_components: int

    # The generated __eq__ would compare tuples of arrays (an error for any two objects):
    # equal codes are the same atoms, values, counts and statuses over as many atoms.
    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseCodes):
            return NotImplemented
        return self.n_components == other.n_components and all(
            _array_equal(getattr(self, name), getattr(other, name))
            for name in ("indices", "values", "counts", "status"))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.indices.shape[0], self.n_components)

    @property
    def nnz(self) -> int:
        return int(self.counts.sum(dtype=np.int64))

    def to_scipy(self) -> sp.csr_matrix:
        """CSR matrix of shape (n_samples, n_components), indices sorted within rows."""
        return self._csr(sort=True)

    def _csr(self, sort: bool) -> sp.csr_matrix:
        used = self.indices >= 0  # the layout itself, not `counts`, says which slots hold atoms
        indptr = np.zeros(self.indices.shape[0] + 1, dtype=np.int64)
        np.cumsum(used.sum(axis=1), out=indptr[1:])
        out = sp.csr_matrix((self.values[used], self.indices[used], indptr), shape=self.shape)
        if sort:
            out.sort_indices()
        return out

    def to_dense(self) -> np.ndarray:
        """Dense codes of shape (n_samples, n_components)."""
        dense = np.zeros(self.shape, dtype=self.values.dtype)
        rows, slots = np.nonzero(self.indices >= 0)
        dense[rows, self.indices[rows, slots]] = self.values[rows, slots]
        return dense

    def reconstruct(self, dictionary: np.ndarray) -> np.ndarray:
        """The signals the codes represent, ``codes @ dictionary``, without densifying."""
        dictionary = np.asarray(dictionary)
        if dictionary.shape[0] != self.n_components:
            raise ValueError(f"`dictionary` has {dictionary.shape[0]} atoms; the codes use "
                             f"{self.n_components}")
        # scipy's CSR x dense product: 4x faster than gathering the atoms (it reads each
        # code once and streams the rows of the dictionary), memory O(nnz).
        return np.asarray(self._csr(sort=False) @ dictionary)


# ------------------------------------------------------------------ scikit-learn's layout

def split_sign(codes: Any) -> Any:
    """scikit-learn's ``split_sign``: (n, K) codes -> (n, 2K), the positive parts first, then
    the magnitudes of the negative parts (both non-negative), for dense, compact
    (:class:`SparseCodes`) and scipy.sparse codes alike, in the codes' dtype.

    Examples
    --------
    >>> import numpy as np
    >>> split_sign(np.array([[1.5, -2.0, 0.0]])).tolist()
    [[1.5, 0.0, 0.0, 0.0, 2.0, 0.0]]
    """
    if isinstance(codes, SparseCodes):
        k = codes.n_components
        negative = codes.values < 0
        indices = np.where(negative, codes.indices + k, codes.indices).astype(np.int32)
        return SparseCodes(indices, np.abs(codes.values), codes.counts, codes.status, 2 * k)
    if sp.issparse(codes):
        csr = sp.csr_matrix(codes)
        k = csr.shape[1]
        negative = csr.data < 0
        out = sp.csr_matrix((np.abs(csr.data), np.where(negative, csr.indices + k, csr.indices),
                             csr.indptr.copy()), shape=(csr.shape[0], 2 * k))
        out.sort_indices()
        return out
    codes = np.asarray(codes)
    zero = codes.dtype.type(0)
    return np.concatenate([np.where(codes > 0, codes, zero), np.where(codes < 0, -codes, zero)],
                          axis=1)


def reconstruct_codes(codes: Any, dictionary: np.ndarray, *, split: bool = False) -> np.ndarray:
    """``codes @ dictionary`` for the estimators' ``inverse_transform``: dense (anything
    ``check_array`` accepts), scipy.sparse or :class:`SparseCodes` codes; with `split`, codes
    laid out by :func:`split_sign` (positive parts, then negative parts)."""
    from sklearn.utils import check_array

    n_components = dictionary.shape[0]
    expected = 2 * n_components if split else n_components
    if isinstance(codes, SparseCodes):
        _check_n_codes(codes.shape[1], expected)
        if split:
            negative = codes.indices >= n_components
            codes = SparseCodes(np.where(negative, codes.indices - n_components,
                                         codes.indices).astype(np.int32),
                                np.where(negative, -codes.values, codes.values), codes.counts,
                                codes.status, n_components)
        return codes.reconstruct(dictionary)
    codes = check_array(codes, accept_sparse="csr", input_name="codes")
    _check_n_codes(codes.shape[1], expected)
    if split:
        codes = codes[:, :n_components] - codes[:, n_components:]
    return np.asarray(codes @ dictionary)


def _check_n_codes(got: int, expected: int) -> None:
    if got != expected:
        # scikit-learn's sentence first.
        raise ValueError("The number of components in the code is different from the number "
                         f"of components in the dictionary: expected {expected}, got {got}")


def _array_equal(a: Any, b: Any) -> bool:
    """Exact equality of two arrays of any framework (host copies of device ones)."""
    from ._namespace import namespace

    return bool(np.array_equal(namespace(a).to_numpy(a), namespace(b).to_numpy(b)))
