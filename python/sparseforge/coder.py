"""A scikit-learn estimator over a fixed dictionary (transform = Batch-OMP)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin

from ._arrays import describe
from ._codes import reconstruct_codes, split_sign
from ._plans import OUTPUTS, describe_signals
from ._validation import (check_algorithm, check_bool, check_choice, check_int, check_n_jobs,
                          check_positive, check_signals, estimator_dictionary,
                          estimator_input, resolve_sparsity)
from .backends import cpu
from .omp import sparse_encode


#: How SparseCoder's errors name its sparsity parameters (scikit-learn's names).
_PARAMETERS = ("transform_n_nonzero_coefs", "transform_alpha")


class SparseCoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Sparse coding over a fixed dictionary with Batch-OMP.

    A drop-in for ``sklearn.decomposition.SparseCoder(transform_algorithm="omp")``: the same
    parameters in the same order (then `output`), stateless like scikit-learn's (`transform`
    works without `fit`), usable in a :class:`~sklearn.pipeline.Pipeline`, with
    :func:`~sklearn.base.clone`, ``get_feature_names_out`` and ``set_output``. The deliberate
    differences from scikit-learn are listed in :mod:`sparseforge._compat`.

    Parameters
    ----------
    dictionary : array-like of shape (n_components, n_features)
        Atoms as rows (anything ``check_array`` accepts; integers become float64). Not
        copied when it is a float array. Unit-norm atoms are the usual choice.
    transform_algorithm : {"omp"}
        Only OMP is implemented (scikit-learn's other algorithms raise ValueError).
    transform_n_nonzero_coefs : int, optional
        Atoms per signal (default ``max(n_features // 10, 1)``, at most `n_components`).
    transform_alpha : float, optional
        Maximum squared residual norm per signal (the `tol` of :func:`sparse_encode`); when
        given it overrides the fixed sparsity and `transform_n_nonzero_coefs` caps the
        number of atoms. (scikit-learn documents this meaning for OMP but ignores the value.)
    split_sign : bool
        Return ``[max(code, 0), max(-code, 0)]`` (n_samples, 2 * n_components), as
        scikit-learn does, in every `output` form.
    n_jobs : int, optional
        Threads (None: the OpenMP default).
    positive_code : bool
        OMP has no positivity constraint: True raises scikit-learn's ValueError.
    transform_max_iter : int
        Ignored, as by scikit-learn for OMP (validated: a non-negative integer).
    output : {"dense", "compact", "scipy"}
        Form of :meth:`transform`'s result (see :func:`sparse_encode`).

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The dictionary as of :meth:`fit` (float, not copied when it already was).
    gram_ : ndarray of shape (n_components, n_components)
        ``components_ @ components_.T``, computed once in :meth:`fit` and used by
        :meth:`transform` while `dictionary` is the object that was fitted.
    n_components_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when `X` in :meth:`fit` had string feature names.

    See Also
    --------
    sparse_encode : the function it calls.
    KSVD : learns a dictionary.

    Examples
    --------
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> D = sf.overcomplete_dct(4, 6)                     # 36 atoms of 16 features
    >>> X = np.stack([2.0 * D[3] - 0.5 * D[20], D[7]])
    >>> coder = sf.SparseCoder(D, transform_n_nonzero_coefs=2)
    >>> codes = coder.transform(X)                          # no fit needed
    >>> codes.shape, np.flatnonzero(codes[0]).tolist()
    ((2, 36), [3, 20])
    >>> bool(np.allclose(coder.inverse_transform(codes), X))
    True
    >>> coder.fit(X).get_feature_names_out()[:3].tolist()
    ['sparsecoder0', 'sparsecoder1', 'sparsecoder2']
    >>> sf.SparseCoder(D, transform_n_nonzero_coefs=2, split_sign=True).transform(X).shape
    (2, 72)
    """

    def __init__(self, dictionary: Any, *, transform_algorithm: str = "omp",
                 transform_n_nonzero_coefs: int | None = None,
                 transform_alpha: float | None = None, split_sign: bool = False,
                 n_jobs: int | None = None, positive_code: bool = False,
                 transform_max_iter: int = 1000, output: str = "dense"):
        self.dictionary = dictionary
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.split_sign = split_sign
        self.n_jobs = n_jobs
        self.positive_code = positive_code
        self.transform_max_iter = transform_max_iter
        self.output = output

    def _check_params(self) -> None:
        check_algorithm(self.transform_algorithm, "transform_algorithm")
        check_bool(self.split_sign, "split_sign")
        check_positive(self.positive_code, "positive_code")
        check_int(self.transform_max_iter, "transform_max_iter", minimum=0)
        check_choice(self.output, "output", OUTPUTS)
        check_n_jobs(self.n_jobs)

    def _components(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The dictionary to code over and its Gram matrix when precomputed: the fitted ones
        while `dictionary` is the object that was fitted and still holds the fitted values
        (an online-learning loop may update it in place), else `dictionary` validated now."""
        snapshot = getattr(self, "_fitted_values", None)
        if getattr(self, "_fitted_dictionary", None) is self.dictionary and \
                snapshot is not None and cpu.same_values(snapshot, np.asarray(self.dictionary)):
            # (the dictionary as given, not components_: a list or an integer array was
            # copied at fit, and its in-place changes show only in the original)
            return self.components_, self.gram_
        return estimator_dictionary(self.dictionary, "dictionary"), None

    def fit(self, X: Any = None, y: Any = None) -> "SparseCoder":
        """Validate the parameters, the dictionary and `X`, and precompute the Gram matrix.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features), optional
            Only validated (as scikit-learn does): its features must match the dictionary's.
            Records ``n_features_in_`` (and ``feature_names_in_``).
        y : None
            Ignored.

        Returns
        -------
        self : SparseCoder
        """
        del y
        self._check_params()
        components = estimator_dictionary(self.dictionary, "dictionary")
        if X is not None:
            X = estimator_input(self, X, reset=True, sparse=True, finite=True)
            check_signals(describe_signals(X, "X"), describe(components, "dictionary"))
        else:
            check_signals(describe(components[:0], "X"), describe(components, "dictionary"))
            if hasattr(self, "feature_names_in_"):  # from an earlier fit
                del self.feature_names_in_
        n_components, n_features = components.shape
        resolve_sparsity(self.transform_n_nonzero_coefs, self.transform_alpha, n_features,
                         n_components, _PARAMETERS)
        self.components_ = components
        self.gram_ = cpu.gram(components)
        self.n_components_ = n_components
        self.n_features_in_ = n_features
        self._fitted_dictionary = self.dictionary
        self._fitted_values = np.array(components, order="C")  # what gram_ was computed from
        return self

    def transform(self, X: Any, y: Any = None) -> Any:
        """Sparse codes of `X` (fitted or not).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
            Anything ``check_array`` accepts; integers become float64 and the codes take the
            dtype of `X` (the dictionary is cast to it when it differs). A scipy.sparse `X`
            is densified a chunk at a time.
        y : None
            Ignored.

        Returns
        -------
        codes : ndarray, SparseCodes or scipy.sparse.csr_matrix
            Shape (n_samples, n_components), or (n_samples, 2 * n_components) with
            `split_sign`; the form set by `output`.
        """
        del y
        self._check_params()
        components, gram = self._components()
        X = estimator_input(self, X, reset=False, sparse=True,
                            n_features=components.shape[1])
        if components.dtype != X.dtype:
            components, gram = components.astype(X.dtype), None
        resolve_sparsity(self.transform_n_nonzero_coefs, self.transform_alpha,
                         components.shape[1], components.shape[0], _PARAMETERS)
        codes = sparse_encode(X, components, gram=gram,
                              n_nonzero_coefs=self.transform_n_nonzero_coefs,
                              alpha=self.transform_alpha, n_jobs=self.n_jobs,
                              output=self.output)
        return split_sign(codes) if self.split_sign else codes

    def inverse_transform(self, X: Any) -> np.ndarray:
        """The signals represented by codes: ``codes @ dictionary``.

        Parameters
        ----------
        X : array-like, scipy.sparse matrix or SparseCodes of shape (n_samples, n_components)
            Codes as :meth:`transform` returns them (with `split_sign`, 2 * n_components
            columns).

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
        """
        components, _ = self._components()
        return reconstruct_codes(X, components, split=bool(self.split_sign))

    @property
    def _n_features_out(self) -> int:
        """Columns of :meth:`transform`'s result (known without fitting: the coder is
        stateless)."""
        try:
            n = int(np.shape(self.dictionary)[0])
        except (TypeError, IndexError, ValueError):
            raise AttributeError("`dictionary` has no rows") from None
        return 2 * n if self.split_sign else n

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
