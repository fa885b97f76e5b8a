"""A scikit-learn estimator over a fixed dictionary (transform = Batch-OMP)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._codes import SparseCodes
from ._validation import check_signals_for, host_float_array
from .backends import cpu
from .omp import sparse_encode


class SparseCoder(TransformerMixin, BaseEstimator):
    """Sparse coding over a fixed dictionary with Batch-OMP.

    A drop-in for ``sklearn.decomposition.SparseCoder(transform_algorithm="omp")`` that works
    in a :class:`~sklearn.pipeline.Pipeline` and with :func:`~sklearn.base.clone`.

    Parameters
    ----------
    dictionary : ndarray of shape (n_components, n_features)
        Atoms as rows (float32 or float64). Not copied.
    transform_algorithm : {"omp"}
        Accepted for compatibility with scikit-learn.
    transform_n_nonzero_coefs : int, optional
        Atoms per signal (default ``max(n_features // 10, 1)``).
    transform_alpha : float, optional
        Maximum squared residual norm per signal (the `tol` of :func:`sparse_encode`); when
        given it overrides the fixed sparsity. (scikit-learn documents this meaning for OMP
        but ignores the value.)
    n_jobs : int, optional
        Threads (None: the OpenMP default).
    output : {"dense", "compact", "scipy"}
        Form of :meth:`transform`'s result.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The dictionary.
    gram_ : ndarray of shape (n_components, n_components)
        ``components_ @ components_.T``, computed once in :meth:`fit`.
    n_components_ : int
    n_features_in_ : int
    """

    def __init__(self, dictionary: Any, *, transform_algorithm: str = "omp",
                 transform_n_nonzero_coefs: int | None = None,
                 transform_alpha: float | None = None, n_jobs: int | None = None,
                 output: str = "dense"):
        self.dictionary = dictionary
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.n_jobs = n_jobs
        self.output = output

    def fit(self, X: Any = None, y: Any = None) -> "SparseCoder":
        """Validate the dictionary and precompute its Gram matrix. `X` and `y` are ignored."""
        del X, y
        if self.transform_algorithm != "omp":
            raise ValueError(f"`transform_algorithm` must be 'omp', got "
                             f"{self.transform_algorithm!r}")
        components = host_float_array(self.dictionary, "dictionary", ndim=2)
        self.components_ = components
        self.gram_ = cpu.gram(components)
        self.n_components_, self.n_features_in_ = components.shape
        return self

    def transform(self, X: Any):
        """Sparse codes of `X`, shape (n_samples, n_components), in the form of `output`."""
        check_is_fitted(self, "components_")
        X = check_signals_for(X, self.components_)
        return sparse_encode(X, self.components_, gram=self.gram_, check_input=False,
                             n_nonzero_coefs=self.transform_n_nonzero_coefs,
                             tol=self.transform_alpha, n_jobs=self.n_jobs, output=self.output)

    def inverse_transform(self, codes: Any) -> np.ndarray:
        """Signals represented by `codes` (dense, scipy.sparse or SparseCodes)."""
        check_is_fitted(self, "components_")
        if isinstance(codes, SparseCodes):
            return codes.reconstruct(self.components_)
        if sp.issparse(codes):
            return np.asarray(codes @ self.components_)
        return np.asarray(codes) @ self.components_
