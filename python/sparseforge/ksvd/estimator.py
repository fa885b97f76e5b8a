"""K-SVD as a scikit-learn estimator."""

from __future__ import annotations

from typing import Any, Callable

from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._validation import check_signals_for, default_n_nonzero_coefs
from ..omp import sparse_encode
from .driver import KSVDIteration, ksvd


class KSVD(TransformerMixin, BaseEstimator):
    """K-SVD dictionary learning as a scikit-learn estimator.

    Parameters are those of :func:`ksvd`; `transform` codes with the learned dictionary and the
    same `n_nonzero_coefs` / `tol`.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
    error_ : ndarray of shape (n_iter_,)
        RMSE after each iteration.
    n_iter_ : int
    n_replaced_ : list of (int, int)
        (dead, duplicate) atoms replaced in each iteration.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> X = np.random.default_rng(0).standard_normal((200, 16))
    >>> model = sf.KSVD(32, n_nonzero_coefs=3, n_iter=4, random_state=0).fit(X)
    >>> model.components_.shape, model.error_.shape, model.n_iter_
    ((32, 16), (4,), 4)
    >>> codes = model.transform(X[:5])
    >>> codes.shape, int(np.count_nonzero(codes, axis=1).max()) <= 3
    ((5, 32), True)
    """

    def __init__(self, n_components: int = 256, *, n_nonzero_coefs: int | None = None,
                 tol: float | None = None, n_iter: int = 10, method: str = "approximate",
                 dict_init: Any = "dct", random_state: Any = None, n_jobs: int | None = None,
                 callback: Callable | None = None, verbose: bool = False,
                 duplicate_threshold: float = 0.99, max_power_iter: int = 50,
                 atom_replacement: str = "residual", output: str = "dense"):
        self.n_components = n_components
        self.n_nonzero_coefs = n_nonzero_coefs
        self.tol = tol
        self.n_iter = n_iter
        self.method = method
        self.dict_init = dict_init
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.callback = callback
        self.verbose = verbose
        self.duplicate_threshold = duplicate_threshold
        self.max_power_iter = max_power_iter
        self.atom_replacement = atom_replacement
        self.output = output

    def fit(self, X: Any, y: Any = None) -> "KSVD":
        """Learn the dictionary from the rows of `X`."""
        del y
        replaced: list[tuple[int, int]] = []

        def record(step: KSVDIteration) -> None:
            replaced.append((step.n_dead, step.n_duplicate))
            if self.callback is not None:
                self.callback(step)

        D, _, errors = ksvd(X, self.n_components, n_nonzero_coefs=self.n_nonzero_coefs,
                            tol=self.tol, n_iter=self.n_iter, method=self.method,
                            dict_init=self.dict_init, random_state=self.random_state,
                            n_jobs=self.n_jobs, callback=record, verbose=self.verbose,
                            duplicate_threshold=self.duplicate_threshold,
                            max_power_iter=self.max_power_iter,
                            atom_replacement=self.atom_replacement)
        self.components_ = D
        self.error_ = errors
        self.n_iter_ = len(errors)
        self.n_replaced_ = replaced
        self.n_features_in_ = D.shape[1]
        return self

    def transform(self, X: Any):
        """Sparse codes of `X` over the learned dictionary (form set by `output`)."""
        check_is_fitted(self, "components_")
        X = check_signals_for(X, self.components_)
        n_nonzero = self.n_nonzero_coefs
        if n_nonzero is None and self.tol is None:
            n_nonzero = default_n_nonzero_coefs(self.n_features_in_,
                                                self.components_.shape[0])
        return sparse_encode(X, self.components_, n_nonzero_coefs=n_nonzero, tol=self.tol,
                             n_jobs=self.n_jobs, output=self.output)
