"""Batch Orthogonal Matching Pursuit with scikit-learn's names, shapes and semantics.

The front doors of the pursuit. Each does the same three things: describe its array
arguments (:func:`sparseforge._arrays.placement`), validate them once into a plan
(:mod:`sparseforge._plans`), and execute the plan on the backend where the arrays live
(:mod:`sparseforge.backends`): host arrays on the C++/OpenMP kernels, torch / CuPy CUDA
arrays on the CUDA kernels, with the results in the inputs' framework.
"""

from __future__ import annotations

from typing import Any, Literal

from ._arrays import placement
from ._codes import SparseCodes
from ._plans import plan_orthogonal_mp_gram, plan_sparse_encode
from ._status import LinearDependenceWarning, OMPStatus, check_status
from ._validation import check_finite, check_gram_values
from .backends import backend_for

__all__ = ["LinearDependenceWarning", "OMPStatus", "orthogonal_mp_gram", "sparse_encode"]

Output = Literal["dense", "compact", "scipy"]


def sparse_encode(
    X: Any,
    dictionary: Any,
    *,
    gram: Any = None,
    cov: Any = None,
    algorithm: str = "omp",
    n_nonzero_coefs: int | None = None,
    tol: float | None = None,
    n_jobs: int | None = None,
    output: Output = "dense",
    check_input: bool = True,
    chunk_size: int | None = None,
    mask: Any = None,
):
    """Sparse-code the rows of `X` over `dictionary` with Batch-OMP.

    A drop-in for ``sklearn.decomposition.sparse_encode(..., algorithm="omp")``: same argument
    names, shapes and defaults, float32 kept float32, and `tol` honoured.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Signals, float32 or float64, any strides (read in chunks; never copied whole).
    dictionary : ndarray of shape (n_components, n_features)
        Atoms as rows, same dtype as `X`. Unit-norm atoms are the usual choice; other norms are
        handled exactly as scikit-learn does (selection by raw correlation).
    gram : ndarray of shape (n_components, n_components), optional
        Precomputed ``dictionary @ dictionary.T``.
    cov : ndarray of shape (n_components, n_samples), optional
        Precomputed ``dictionary @ X.T`` (any strides). `X` is then used only for its squared
        norms in the `tol` mode.
    algorithm : {"omp"}
        Only OMP is implemented; accepted for scikit-learn compatibility.
    n_nonzero_coefs : int, optional
        Number of atoms per signal. Default ``max(n_features // 10, 1)``, as in scikit-learn.
        With `tol`, an optional cap on the number of atoms.
    tol : float, optional
        Maximum squared residual norm ``||x - code @ dictionary||^2``; overrides the fixed
        sparsity (each signal takes atoms until its residual is within `tol`, at most
        ``min(n_features, n_components)`` or `n_nonzero_coefs` when given). A signal whose
        squared norm is already within `tol` gets no atoms (scikit-learn always picks one).
    n_jobs : int, optional
        Threads for the pursuit. None: the OpenMP default (``OMP_NUM_THREADS`` or
        threadpoolctl's limit when set, else every CPU); negative: joblib's convention;
        larger than the CPU count: capped. Validated but unused for CUDA arrays.
    output : {"dense", "compact", "scipy"}
        "dense": ndarray (n_samples, n_components). "compact": :class:`SparseCodes`
        (indices, values, counts, status per signal). "scipy": ``scipy.sparse.csr_matrix``.
        Use "compact" for millions of signals: memory O(n_samples * n_nonzero_coefs).
    check_input : bool
        Validate the dictionary and Gram matrix (finite, symmetric). Signals are always
        checked for NaN/inf, by the kernel, at no extra cost.
    chunk_size : int, optional
        Signals per kernel call (default: all at once in the fixed-sparsity mode, 65536 in
        the `tol` mode; signals that must be copied to reach the kernel, such as strided or
        misaligned rows, go 4 MiB at a time). Results do not depend on it.
    mask : ndarray of bool, shape (n_samples, n_features), optional
        Observed entries (missing pixels are False). Each signal is then coded from its
        observed entries only: over the atoms restricted to those rows and normalised there
        (atoms are selected by normalised correlation, as SPAMS' ``ompMask``), with the
        coefficients returned for the original atoms, so ``code @ dictionary`` fills in the
        missing entries. `tol` then bounds the squared residual on the observed entries. A
        signal with nothing observed gets zero codes. `gram` and `cov` cannot be used with a
        mask (every signal has its own Gram matrix).

    Returns
    -------
    codes : ndarray, SparseCodes or scipy.sparse.csr_matrix
        Shape (n_samples, n_components), dtype of `X`.

    Warns
    -----
    LinearDependenceWarning
        Once per call (a RuntimeWarning, starting with scikit-learn's sentence), with the
        number of signals that stopped early because of linearly dependent atoms.

    Examples
    --------
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> D = sf.overcomplete_dct(4, 6)               # 36 unit-norm atoms of 16 features
    >>> X = 2.0 * D[3] - 0.5 * D[20]                  # one signal made of two atoms
    >>> codes = sf.sparse_encode(X[None], D, n_nonzero_coefs=2)
    >>> codes.shape
    (1, 36)
    >>> np.flatnonzero(codes[0]).tolist(), np.round(codes[0, [3, 20]], 6).tolist()
    ([3, 20], [2.0, -0.5])
    >>> sf.sparse_encode(X[None], D, tol=1e-12, output="compact").counts.tolist()
    [2]
    """

    place = placement({"X": X, "dictionary": dictionary, "gram": gram, "cov": cov,
                       "mask": mask})
    plan = plan_sparse_encode(place, algorithm=algorithm, n_nonzero_coefs=n_nonzero_coefs,
                              tol=tol, n_jobs=n_jobs, output=output, check_input=check_input,
                              chunk_size=chunk_size)
    arrays = {name: info.obj for name, info in place.infos.items()}
    if plan.check_input:
        check_finite(arrays["dictionary"], "dictionary", place.ctx)
        if plan.gram_given:
            check_gram_values(arrays["gram"], "gram", place.ctx)
    raw = backend_for(place).omp_batch(plan, arrays, place.ctx)
    check_status(raw.status_host, plan.status_source, stacklevel=3)
    if plan.output == "dense":
        return raw.dense
    codes = SparseCodes(raw.indices, raw.values, raw.counts, raw.status, plan.n_components)
    return codes.to_scipy() if plan.output == "scipy" else codes


def orthogonal_mp_gram(
    Gram: Any,
    Xy: Any,
    *,
    n_nonzero_coefs: int | None = None,
    tol: float | None = None,
    norms_squared: Any = None,
    copy_Gram: bool = True,
    copy_Xy: bool = True,
    return_path: bool = False,
    return_n_iter: bool = False,
    n_jobs: int | None = None,
):
    """Gram-based OMP, a drop-in for ``sklearn.linear_model.orthogonal_mp_gram``.

    Parameters
    ----------
    Gram : ndarray of shape (n_components, n_components)
        ``dictionary @ dictionary.T`` (scikit-learn's ``X.T @ X`` of its design matrix).
    Xy : ndarray of shape (n_components,) or (n_components, n_targets)
        Correlations ``dictionary @ y`` of each target (any strides).
    n_nonzero_coefs : int, optional
        Atoms per target; default ``max(int(0.1 * n_components), 1)``. Ignored when `tol` is
        given, as in scikit-learn.
    tol : float, optional
        Maximum squared residual norm; requires `norms_squared`. A target already within `tol`
        gets no atoms.
    norms_squared : array-like of shape (n_targets,), optional
        Squared norms of the targets (needed with `tol`).
    copy_Gram, copy_Xy : bool
        Accepted for compatibility; inputs are never modified.
    return_path : bool
        Not supported (raises ValueError): the kernel keeps only the final coefficients.
    return_n_iter : bool
        Also return the number of atoms used per target.
    n_jobs : int, optional
        Threads (None: the OpenMP default, see :func:`sparse_encode`).

    Returns
    -------
    coef : ndarray of shape (n_components,) or (n_components, n_targets)
        Dense coefficients, in the dtype of `Gram` (the 2-D result is a transposed view of a
        row-per-target array).
    n_iters : int or ndarray of int32
        Only when `return_n_iter`.

    Examples
    --------
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> D = sf.overcomplete_dct(4, 6)
    >>> y = 1.5 * D[7]
    >>> coef, n_iter = sf.orthogonal_mp_gram(D @ D.T, D @ y, n_nonzero_coefs=1,
    ...                                      return_n_iter=True)
    >>> int(np.argmax(np.abs(coef))), round(float(coef[7]), 6), n_iter
    (7, 1.5, 1)
    """

    del copy_Gram, copy_Xy  # never modified
    place = placement({"Gram": Gram, "Xy": Xy,
                       "norms_squared": norms_squared if tol is not None else None})
    plan = plan_orthogonal_mp_gram(place, n_nonzero_coefs=n_nonzero_coefs, tol=tol,
                                   norms_squared=norms_squared, return_path=return_path,
                                   n_jobs=n_jobs)
    arrays = {name: info.obj for name, info in place.infos.items()}
    check_gram_values(arrays["Gram"], "Gram", place.ctx)
    if plan.tol is not None:
        check_finite(arrays["norms_squared"], "norms_squared", place.ctx)
    raw = backend_for(place).omp_batch(plan, arrays, place.ctx)
    check_status(raw.status_host, plan.status_source, stacklevel=3)
    coef = raw.dense.T
    single = place.infos["Xy"].ndim == 1
    if single:
        coef = coef[:, 0]
    if return_n_iter:
        return coef, (int(raw.counts[0]) if single else raw.counts)
    return coef
