"""Compact sparse codes: what OMP returns when a dense (n_samples, n_components) array would
not fit in memory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
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
    """

    indices: np.ndarray
    values: np.ndarray
    counts: np.ndarray
    status: np.ndarray
    n_components: int

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
