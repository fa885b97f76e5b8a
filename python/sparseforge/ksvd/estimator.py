"""K-SVD as a scikit-learn estimator."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._arrays import is_dask_array
from .._codes import reconstruct_codes
from .._plans import OUTPUTS
from .._validation import check_choice, estimator_dictionary, estimator_input
from ..omp import sparse_encode
from .driver import KSVDIteration, ksvd


class KSVD(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """K-SVD dictionary learning as a scikit-learn estimator.

    Parameters are those of :func:`ksvd`; :meth:`transform` codes with the learned dictionary
    and the same `n_nonzero_coefs` / `tol`, :meth:`inverse_transform` maps codes back. It
    accepts what scikit-learn's ``check_array`` accepts (integers become float64; float32 is
    kept and learns a float32 dictionary).

    Parameters
    ----------
    n_components : int
        Number of atoms.
    n_nonzero_coefs : int, optional
        Atoms per signal (default ``max(n_features // 10, 1)``, at most `n_components`).
    tol : float, optional
        Error-constrained coding instead (maximum squared residual norm per signal).
    n_iter : int
        K-SVD iterations.
    method : {"approximate", "exact"}
    dict_init : {"auto", "dct", "data"} or array-like of shape (n_components, n_features)
        "auto" (default): the overcomplete DCT for square patches (n_features = 4, 9, 16,
        ...), random signals otherwise, so the defaults work on any data. An array is cast
        to the dtype of `X`.
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None
    n_jobs : int, optional
    callback : callable, optional
        Called with a :class:`KSVDIteration` after every iteration.
    verbose : bool
    duplicate_threshold : float
    max_power_iter : int
    atom_replacement : {"residual", "signal"}
    output : {"dense", "compact", "scipy"}
        Form of :meth:`transform`'s result.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
    error_ : ndarray of shape (n_iter_,)
        RMSE after each iteration.
    n_iter_ : int
    n_replaced_ : list of (int, int)
        (dead, duplicate) atoms replaced in each iteration.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when `X` had string feature names.

    See Also
    --------
    ksvd : the function.
    SparseCoder : coding over a fixed dictionary.

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
    >>> model.inverse_transform(codes).shape
    (5, 16)
    >>> sf.KSVD(8, n_iter=2, random_state=0).fit(np.arange(60).reshape(12, 5)).components_.dtype
    dtype('float64')
    """

    def __init__(self, n_components: int = 256, *, n_nonzero_coefs: int | None = None,
                 tol: float | None = None, n_iter: int = 10, method: str = "approximate",
                 dict_init: Any = "auto", random_state: Any = None, n_jobs: int | None = None,
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
        """Learn the dictionary from the rows of `X`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training signals (dense: the K-SVD sweep keeps an X-sized residual), or a dask
            array of float blocks (the distributed K-SVD of docs/dask.md).
        y : None
            Ignored.

        Returns
        -------
        self : KSVD
        """
        del y
        check_choice(self.output, "output", OUTPUTS)  # before the work, not at transform
        if is_dask_array(X):  # distributed K-SVD: ksvd validates the array's description
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        else:
            X = estimator_input(self, X, reset=True)
        dict_init = self.dict_init
        if not isinstance(dict_init, str):
            dict_init = estimator_dictionary(dict_init, "dict_init", dtype=X.dtype)
        replaced: list[tuple[int, int]] = []

        def record(step: KSVDIteration) -> None:
            replaced.append((step.n_dead, step.n_duplicate))
            if self.callback is not None:
                self.callback(step)

        D, _, errors = ksvd(X, self.n_components, n_nonzero_coefs=self.n_nonzero_coefs,
                            tol=self.tol, n_iter=self.n_iter, method=self.method,
                            dict_init=dict_init, random_state=self.random_state,
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

    def transform(self, X: Any) -> Any:
        """Sparse codes of `X` over the learned dictionary.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
            Anything ``check_array`` accepts; the codes take the dtype of `X`. A
            scipy.sparse `X` is densified a chunk at a time.

        Returns
        -------
        codes : ndarray, SparseCodes or scipy.sparse.csr_matrix
            Shape (n_samples, n_components), in the form set by `output`.
        """
        check_is_fitted(self, "components_")
        X = estimator_input(self, X, reset=False, sparse=True)
        components = self.components_
        if components.dtype != X.dtype:
            components = components.astype(X.dtype)
        return sparse_encode(X, components, n_nonzero_coefs=self.n_nonzero_coefs, tol=self.tol,
                             n_jobs=self.n_jobs, output=self.output)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """The signals represented by codes: ``codes @ components_``.

        Parameters
        ----------
        X : array-like, scipy.sparse matrix or SparseCodes of shape (n_samples, n_components)

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self, "components_")
        return reconstruct_codes(X, self.components_)

    @property
    def _n_features_out(self) -> int:
        """Number of atoms (columns of :meth:`transform`'s result)."""
        return int(self.components_.shape[0])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
