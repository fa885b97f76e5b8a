"""Batch Orthogonal Matching Pursuit with scikit-learn's names and shapes.

The front doors of the pursuit: :func:`sparse_encode` (scikit-learn's
``sklearn.decomposition.sparse_encode`` with ``algorithm="omp"``), :func:`orthogonal_mp` and
:func:`orthogonal_mp_gram` (``sklearn.linear_model``'s). Each does the same three things:
describe its array arguments (:func:`sparseforge._arrays.placement`), validate them once into
a plan (:mod:`sparseforge._plans`), and execute the plan on the backend where the arrays live
(:mod:`sparseforge.backends`): host arrays on the C++/OpenMP kernels, torch / CuPy CUDA
arrays on the CUDA kernels, with the results in the inputs' framework. All three run the same
pursuit (Batch-OMP, Rubinstein, Zibulevsky & Elad 2008); where the results differ from
scikit-learn's is listed in :mod:`sparseforge._compat`.
"""

from __future__ import annotations

from typing import Any, Literal

from ._arrays import placement
from ._codes import SparseCodes
from ._plans import (omp_design_arrays, place_signals, plan_orthogonal_mp,
                     plan_orthogonal_mp_gram, plan_sparse_encode)
from ._status import LinearDependenceWarning, OMPStatus, check_status
from ._validation import check_finite, check_gram_values
from .backends import backend_for

__all__ = ["LinearDependenceWarning", "OMPStatus", "orthogonal_mp", "orthogonal_mp_gram",
           "sparse_encode"]

Output = Literal["dense", "compact", "scipy"]


def _squeeze(a: Any) -> Any:
    """``np.squeeze`` for numpy, torch and CuPy arrays: every axis of length 1 dropped (a
    view; a 0-d array when every axis has length 1), as scikit-learn returns coefficients."""
    if all(int(n) != 1 for n in a.shape):
        return a
    return a.reshape(tuple(int(n) for n in a.shape if int(n) != 1))


def sparse_encode(
    X: Any,
    dictionary: Any,
    *,
    gram: Any = None,
    cov: Any = None,
    algorithm: str = "omp",
    n_nonzero_coefs: int | None = None,
    alpha: float | None = None,
    copy_cov: bool = True,
    init: Any = None,
    max_iter: int = 1000,
    n_jobs: int | None = None,
    check_input: bool = True,
    verbose: int | bool = 0,
    positive: bool = False,
    tol: float | None = None,
    output: Output = "dense",
    chunk_size: int | None = None,
    mask: Any = None,
    out: Any = None,
) -> Any:
    """Sparse-code the rows of `X` over `dictionary` with Batch-OMP.

    ``sklearn.decomposition.sparse_encode(..., algorithm="omp")`` with the same arguments in
    the same order (then sparseforge's own: `tol`, `output`, `chunk_size`, `mask`, `out`), the
    same shapes and default sparsity, float32 kept float32, and `alpha` honoured as the
    tolerance scikit-learn documents for OMP. The deliberate differences from scikit-learn are
    listed in :mod:`sparseforge._compat`.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix of shape (n_samples, n_features)
        Signals, float32 or float64, any strides (read in chunks; never copied whole). A
        scipy.sparse `X` (host dictionary only) is densified 4 MiB of rows at a time.
    dictionary : ndarray of shape (n_components, n_features)
        Atoms as rows, same dtype as `X` (mixed float32/float64 arguments are refused, not
        up-cast). Unit-norm atoms are the usual choice; other norms are handled exactly as
        scikit-learn does (selection by raw correlation).
    gram : ndarray of shape (n_components, n_components), optional
        Precomputed ``dictionary @ dictionary.T``.
    cov : ndarray of shape (n_components, n_samples), optional
        Precomputed ``dictionary @ X.T`` (any strides). `X` is then used only for its squared
        norms in the `tol` mode.
    algorithm : {"omp"}
        Only OMP is implemented; scikit-learn's other algorithms raise ValueError.
    n_nonzero_coefs : int, optional
        Number of atoms per signal. Default ``max(n_features // 10, 1)`` (at most
        `n_components`), as in scikit-learn. With `tol` (or `alpha`), an optional cap on the
        number of atoms.
    alpha : float, optional
        scikit-learn's name for `tol` with OMP: the maximum squared residual norm. (scikit-
        learn documents this meaning but ignores the value for OMP.) Passing both `alpha`
        and a different `tol` is an error.
    copy_cov : bool
        Accepted for scikit-learn compatibility; `cov` is never modified.
    init : ndarray of shape (n_samples, n_components), optional
        Ignored, as by scikit-learn for OMP (only its coordinate descent uses a warm start).
    max_iter : int
        Ignored, as by scikit-learn for OMP (validated: a non-negative integer).
    n_jobs : int, optional
        Threads for the pursuit. None: the OpenMP default (``OMP_NUM_THREADS`` or
        threadpoolctl's limit when set, else every CPU); negative: joblib's convention;
        larger than the CPU count: capped. Validated but unused for CUDA arrays.
    check_input : bool
        Validate the dictionary and Gram matrix (finite, symmetric). Signals are always
        checked for NaN/inf, by the kernel, at no extra cost.
    verbose : int or bool
        Accepted for scikit-learn compatibility; nothing is printed.
    positive : bool
        OMP has no positivity constraint: True raises scikit-learn's ValueError
        ("Positive constraint not supported for 'omp' coding method.").
    tol : float, optional
        Maximum squared residual norm ``||x - code @ dictionary||^2``; overrides the fixed
        sparsity (each signal takes atoms until its residual is within `tol`, at most
        ``min(n_features, n_components)`` or `n_nonzero_coefs` when given). A signal whose
        squared norm is already within `tol` gets no atoms (scikit-learn always picks one).
    output : {"dense", "compact", "scipy"}
        "dense": ndarray (n_samples, n_components). "compact": :class:`SparseCodes`
        (indices, values, counts, status per signal). "scipy": ``scipy.sparse.csr_matrix``.
        Use "compact" for millions of signals: memory O(n_samples * n_nonzero_coefs).
    chunk_size : int, optional
        Signals per kernel call (default: all at once in the fixed-sparsity mode, 65536 in
        the `tol` mode; signals that must be copied to reach the kernel, such as strided,
        misaligned or scipy.sparse rows, go 4 MiB at a time). Results do not depend on it.
    mask : ndarray of bool, shape (n_samples, n_features), optional
        Observed entries (missing pixels are False). Each signal is then coded from its
        observed entries only: textbook OMP over the atoms restricted to those entries and
        renormalised there, i.e. an atom is selected by its correlation with the residual
        divided by the norm of its restricted part. (SPAMS' ``ompMask`` selects by the raw
        masked correlation, undivided, which favours atoms with more energy on the observed
        entries: the two can choose different atoms. For the first atom the normalised
        choice is the one that reduces the residual most.) The coefficients are returned
        for the original atoms, so ``code @ dictionary`` fills in the missing entries.
        `tol` then bounds the squared residual on the observed entries. A signal with
        nothing observed gets zero codes. `gram` and `cov` cannot be used with a mask
        (every signal has its own Gram matrix).
    out : ndarray of shape (n_samples, n_components), optional
        With ``output="dense"``: the array the codes are written into, and returned (numpy
        for host inputs; a torch tensor or CuPy array on the inputs' device for CUDA ones;
        not for dask arrays). Same dtype as `X`, writeable, unit stride along its columns
        (rows may be strided, e.g. ``buf[:, :n_components]``), sharing no memory with an
        input. Every element is overwritten. A loop coding batch after batch into one
        buffer skips faulting in a fresh N x K array per call, which can cost more than the
        pursuit itself (docs/performance.md). If the call raises, `out`'s contents are
        unspecified.

    Returns
    -------
    codes : ndarray, SparseCodes or scipy.sparse.csr_matrix
        Shape (n_samples, n_components), dtype of `X`.

    Warns
    -----
    LinearDependenceWarning
        Once per call (a RuntimeWarning whose message starts with scikit-learn's sentence),
        with the number of signals that stopped early because of linearly dependent atoms.

    See Also
    --------
    orthogonal_mp, orthogonal_mp_gram : the same pursuit with scikit-learn's linear-model
        layout (atoms as columns, one coefficient column per target).
    SparseCoder : the scikit-learn estimator.

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
    >>> sf.sparse_encode(X[None], D, alpha=1e-12, output="compact").counts.tolist()
    [2]
    >>> import scipy.sparse as sp                     # sparse signals: densified by chunks
    >>> sf.sparse_encode(sp.csr_matrix(X[None]), D, n_nonzero_coefs=2).shape
    (1, 36)
    """

    del init  # ignored for OMP, as by scikit-learn
    place = place_signals({"X": X, "dictionary": dictionary, "gram": gram, "cov": cov,
                           "mask": mask, "out": out})
    plan = plan_sparse_encode(place, algorithm=algorithm, n_nonzero_coefs=n_nonzero_coefs,
                              tol=tol, n_jobs=n_jobs, output=output, check_input=check_input,
                              chunk_size=chunk_size, alpha=alpha, copy_cov=copy_cov,
                              max_iter=max_iter, verbose=verbose, positive=positive,
                              out=out)
    arrays = {name: info.obj for name, info in place.infos.items()}
    if plan.check_input and plan.gram_given:
        # The dictionary first, so that a non-finite one is blamed before a Gram matrix made
        # from it.
        check_finite(arrays["dictionary"], "dictionary", place.ctx)
        check_gram_values(arrays["gram"], "gram", place.ctx)
    # Without `gram`, the backend checks the dictionary's values (plan.check_input) where it
    # reads it: the CPU backend's Gram cache then skips the pass for the dictionary it
    # verified last.
    raw = backend_for(place).omp_batch(plan, arrays, place.ctx)
    check_status(raw.status_host, plan.status_source, stacklevel=3)
    if plan.output == "dense":
        return raw.dense
    codes = SparseCodes(raw.indices, raw.values, raw.counts, raw.status, plan.n_components)
    return codes.to_scipy() if plan.output == "scipy" else codes


def orthogonal_mp(
    X: Any,
    y: Any,
    *,
    n_nonzero_coefs: int | None = None,
    tol: float | None = None,
    precompute: bool | str = False,
    copy_X: bool = True,
    return_path: bool = False,
    return_n_iter: bool = False,
    n_jobs: int | None = None,
) -> Any:
    """Orthogonal Matching Pursuit over the columns of `X`, a drop-in for
    ``sklearn.linear_model.orthogonal_mp``.

    The same pursuit as :func:`sparse_encode` (one front door, one kernel): the columns of
    `X` are the atoms and each column of `y` a signal.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Design matrix; its columns are the atoms (unit norm is the usual choice; other norms
        are handled as scikit-learn does). float32 or float64.
    y : ndarray of shape (n_samples,) or (n_samples, n_targets)
        Targets, same dtype as `X` (any strides).
    n_nonzero_coefs : int, optional
        Atoms per target; default ``max(int(0.1 * n_features), 1)``, as in scikit-learn.
        Ignored when `tol` is given.
    tol : float, optional
        Maximum squared residual norm; overrides `n_nonzero_coefs` (at most
        ``min(n_samples, n_features)`` atoms). A target already within `tol` gets no atoms.
    precompute : bool or "auto"
        Accepted for compatibility: the pursuit always works from the Gram matrix (the
        results do not depend on it).
    copy_X : bool
        Accepted for compatibility; `X` is never modified.
    return_path : bool
        Not supported (raises ValueError): the kernel keeps only the final coefficients.
    return_n_iter : bool
        Also return the number of atoms used per target.
    n_jobs : int, optional
        Threads (None: the OpenMP default, see :func:`sparse_encode`).

    Returns
    -------
    coef : ndarray of shape (n_features,) or (n_features, n_targets)
        Coefficients, squeezed like scikit-learn's (``np.squeeze``: every axis of length 1
        dropped), in the dtype and framework of `X`.
    n_iters : int or ndarray of int32
        Only when `return_n_iter`: an int for one target, else one count per target.

    Warns
    -----
    LinearDependenceWarning
        As :func:`sparse_encode`.

    Examples
    --------
    >>> import numpy as np
    >>> import sparseforge as sf
    >>> A = sf.overcomplete_dct(4, 6).T               # 36 unit-norm columns of 16 samples
    >>> y = 3.0 * A[:, 5] + 1.0 * A[:, 30]
    >>> coef, n_iter = sf.orthogonal_mp(A, y, n_nonzero_coefs=2, return_n_iter=True)
    >>> coef.shape, np.flatnonzero(coef).tolist(), n_iter
    ((36,), [5, 30], 2)
    >>> sf.orthogonal_mp(A, np.stack([y, 2 * y], axis=1), n_nonzero_coefs=2).shape
    (36, 2)
    """

    place = placement({"X": X, "y": y})
    plan = plan_orthogonal_mp(place, n_nonzero_coefs=n_nonzero_coefs, tol=tol,
                              precompute=precompute, copy_X=copy_X, return_path=return_path,
                              n_jobs=n_jobs)
    design = place.infos["X"].obj
    check_finite(design, "X", place.ctx)
    arrays = omp_design_arrays(design, place.infos["y"].obj)
    raw = backend_for(place).omp_batch(plan, arrays, place.ctx)
    check_status(raw.status_host, plan.status_source, stacklevel=3)
    return _coefficients(raw, plan.n_samples, return_n_iter)


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
) -> Any:
    """Gram-based OMP, a drop-in for ``sklearn.linear_model.orthogonal_mp_gram``.

    Parameters
    ----------
    Gram : ndarray of shape (n_components, n_components)
        ``dictionary @ dictionary.T`` (scikit-learn's ``X.T @ X`` of its design matrix).
    Xy : ndarray of shape (n_components,) or (n_components, n_targets)
        Correlations ``dictionary @ y`` of each target (any strides), same dtype as `Gram`.
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
        Dense coefficients in the dtype of `Gram`, squeezed like scikit-learn's
        (``np.squeeze``: (n_components, 1) gives (n_components,), one atom gives
        (n_targets,)). The 2-D result is a transposed view of a row-per-target array.
    n_iters : int or ndarray of int32
        Only when `return_n_iter`: an int for one target, else one count per target.

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
    >>> sf.orthogonal_mp_gram(D @ D.T, (D @ y)[:, None], n_nonzero_coefs=1).shape
    (36,)
    """

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
    return _coefficients(raw, plan.n_samples, return_n_iter)


def _coefficients(raw: Any, n_targets: int, return_n_iter: bool) -> Any:
    """scikit-learn's return convention: (n_atoms, n_targets) squeezed, and the atom counts
    (an int for one target)."""
    coef = _squeeze(raw.dense.T)
    if not return_n_iter:
        return coef
    return coef, (int(raw.counts[0]) if n_targets == 1 else raw.counts)
