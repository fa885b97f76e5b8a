"""Batch Orthogonal Matching Pursuit with scikit-learn's names, shapes and semantics.

Each native thread takes a block of 64 signals, computes their correlations with the atoms
(a register-blocked product, csrc/cpu/block_gemm.hpp) and codes them while they are still in
cache (csrc/include/sparseforge/omp_signal.hpp), with the GIL released.
"""

from __future__ import annotations

import enum
import numbers
import warnings
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from . import _core, _cuda_dispatch
from ._arrays import any_cuda
from ._codes import SparseCodes
from ._validation import (check_float_array, check_gram, check_n_jobs, check_n_nonzero_coefs,
                          check_tol)

Output = Literal["dense", "compact", "scipy"]

# Signals per kernel call in the error-constrained mode, whose padded per-signal buffers are
# min(n_features, n_components) wide until each chunk is trimmed to its widest signal.
_TOL_CHUNK = 1 << 16
# Non-contiguous signals are copied to contiguous rows this many bytes at a time.
_COPY_CHUNK_BYTES = 1 << 22


class OMPStatus(enum.IntEnum):
    """Per-signal outcome reported in :attr:`SparseCodes.status`."""

    #: Reached the requested sparsity, or the residual met `tol`.
    OK = 0
    #: Stopped early because the residual is orthogonal to every atom (up to round-off);
    #: includes all-zero signals. The codes are exact; no warning is issued.
    RESIDUAL_ORTHOGONAL = 1
    #: Stopped early because the next atom is linearly dependent on the chosen ones (duplicate,
    #: zero-norm or nearly collinear atoms: its squared distance to their span is below
    #: 64 eps times its squared norm). A RuntimeWarning reports how many signals.
    LINEAR_DEPENDENCE = 2
    #: The signal or its correlations contained NaN or infinity (an error is raised).
    NON_FINITE = 3
    #: `tol` mode only: the atom cap (`n_nonzero_coefs`, or ``min(n_features,
    #: n_components)``) was reached before the residual met `tol`. No warning is issued.
    MAX_ATOMS = 4


def _check_mask(mask: Any, shape: tuple[int, int]) -> np.ndarray:
    if not isinstance(mask, np.ndarray):
        mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"`mask` has dtype {mask.dtype}; expected bool (True = observed)")
    if mask.shape != shape:
        raise ValueError(f"`mask` has shape {mask.shape}; expected the shape of `X`, {shape}")
    return mask


def _default_sparsity(n: int) -> int:
    return max(int(n / 10), 1)


def _resolve_sparsity(n_nonzero_coefs: Any, tol: Any, n_features: int,
                      n_components: int) -> tuple[int, float | None]:
    """`sparse_encode`'s atom count (the sparsity, or the cap in the `tol` mode) and `tol`."""
    if tol is not None:
        tol = check_tol(tol)
        cap = min(n_features, n_components)
        max_atoms = cap if n_nonzero_coefs is None else min(
            check_n_nonzero_coefs(n_nonzero_coefs, n_components), cap)
    else:
        if n_nonzero_coefs is None:
            n_nonzero_coefs = min(_default_sparsity(n_features), n_components)
        max_atoms = check_n_nonzero_coefs(n_nonzero_coefs, n_components)
    return max_atoms, tol


def _gram_sparsity(n_nonzero_coefs: Any, tol: Any, norms_squared: Any,
                   n_components: int) -> tuple[int, float | None]:
    """`orthogonal_mp_gram`'s atom count and `tol` (which needs `norms_squared`)."""
    if tol is not None:
        tol = check_tol(tol)
        if norms_squared is None:
            raise ValueError("`norms_squared` is required when `tol` is given (the squared "
                             "norms of the targets)")
        return n_components, tol
    if n_nonzero_coefs is None:
        n_nonzero_coefs = _default_sparsity(n_components)
    return check_n_nonzero_coefs(n_nonzero_coefs, n_components), None


def _check_status(status: np.ndarray, source: str) -> None:
    bad = np.flatnonzero(status == OMPStatus.NON_FINITE)
    if bad.size:
        raise ValueError(f"`{source}` contains NaN or infinity (in {bad.size} signal(s), the "
                         f"first at row {bad[0]}); in the `tol` mode a squared norm that "
                         "overflows the dtype counts too")
    n_dep = int(np.count_nonzero(status == OMPStatus.LINEAR_DEPENDENCE))
    if n_dep:
        warnings.warn(
            f"Orthogonal matching pursuit ended prematurely for {n_dep} of {status.size} "
            "signal(s) due to linear dependence in the dictionary (duplicate, zero-norm or "
            "nearly collinear atoms). The requested precision might not have been met.",
            # user -> public function -> _run_chunks -> here
            RuntimeWarning, stacklevel=4)


class _Plan:
    """Sizes and buffers of one batched OMP call."""

    def __init__(self, n_samples: int, n_components: int, max_atoms: int, dtype: np.dtype,
                 output: str, fixed: bool):
        self.n, self.k, self.m = n_samples, n_components, max_atoms
        self.dtype, self.output, self.fixed = dtype, output, fixed
        self.status = np.empty(n_samples, dtype=np.int8)
        self.counts = np.empty(n_samples, dtype=np.int32)
        self.dense = np.empty((n_samples, n_components), dtype) if output == "dense" else None
        # Fixed sparsity: every signal has at most m atoms, so the final compact arrays are
        # allocated once. Error-constrained: the width is unknown until the end, so each chunk
        # is trimmed to its own widest row and the chunks are assembled afterwards.
        if fixed:
            self.indices = np.empty((n_samples, max_atoms), np.int32)
            self.values = np.empty((n_samples, max_atoms), dtype)
        self.chunks: list[tuple[int, np.ndarray, np.ndarray]] = []

    def buffers(self, start: int, stop: int):
        if self.fixed:
            idx, val = self.indices[start:stop], self.values[start:stop]
        else:
            idx = np.empty((stop - start, self.m), np.int32)
            val = np.empty((stop - start, self.m), self.dtype)
        dense = None if self.dense is None else self.dense[start:stop]
        return idx, val, self.counts[start:stop], self.status[start:stop], dense

    def keep(self, start: int, stop: int, idx: np.ndarray, val: np.ndarray) -> None:
        if not self.fixed and self.output != "dense":
            width = int(self.counts[start:stop].max(initial=0))
            self.chunks.append((start, idx[:, :width].copy(), val[:, :width].copy()))

    def result(self):
        if self.output == "dense":
            return self.dense
        if self.fixed:
            indices, values = self.indices, self.values
        else:
            width = max((c[1].shape[1] for c in self.chunks), default=0)
            indices = np.full((self.n, width), -1, np.int32)
            values = np.zeros((self.n, width), self.dtype)
            for start, idx, val in self.chunks:
                indices[start:start + idx.shape[0], :idx.shape[1]] = idx
                values[start:start + val.shape[0], :val.shape[1]] = val
        codes = SparseCodes(indices, values, self.counts, self.status, self.k)
        return codes.to_scipy() if self.output == "scipy" else codes


def _run_chunks(gram: np.ndarray, n_samples: int, max_atoms: int, output: str,
                tol: float | None, n_threads: int, chunk_inputs, source: str,
                chunk_size: int | None = None, lane: str = "serial"):
    """Drive the kernel over chunks of signals.

    ``chunk_inputs(a, b)`` returns the kernel's input keywords for signals a..b: either
    ``cov=`` (precomputed correlations, any strides; plus ``norms_sq=`` in the tol mode) or
    ``x=`` and ``dt=`` (signals and the transposed dictionary; the kernel computes the
    correlations in cache). Chunks exist only to bound the memory of the padded tol-mode
    buffers and of non-contiguous inputs; the fixed-sparsity mode is one call by default.
    """
    if output not in ("dense", "compact", "scipy"):
        raise ValueError(f"`output` must be 'dense', 'compact' or 'scipy', got {output!r}")
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
            raise TypeError(f"`chunk_size` must be an integer or None, got {chunk_size!r}")
        if chunk_size < 1:
            raise ValueError(f"`chunk_size` must be positive, got {chunk_size}")
    n_components, dtype = gram.shape[0], gram.dtype
    plan = _Plan(n_samples, n_components, max_atoms, dtype, output, fixed=tol is None)
    step = max(1, chunk_size or (n_samples if tol is None else _TOL_CHUNK))
    for start in range(0, n_samples, step):
        stop = min(start + step, n_samples)
        idx, val, cnt, st, dense = plan.buffers(start, stop)
        inputs = chunk_inputs(start, stop)
        _core.omp_batch(gram, inputs.get("cov"), inputs.get("norms_sq"), max_atoms, tol,
                        n_threads, idx, val, cnt, st, dense, lane,
                        x=inputs.get("x"), dt=inputs.get("dt"), mask=inputs.get("mask"))
        plan.keep(start, stop, idx, val)
    _check_status(plan.status, source)
    return plan.result()


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
        Threads for the pursuit (None: all CPUs; negative: joblib convention). The ``X @ D.T``
        product uses numpy's BLAS with its own threading.
    output : {"dense", "compact", "scipy"}
        "dense": ndarray (n_samples, n_components). "compact": :class:`SparseCodes`
        (indices, values, counts, status per signal). "scipy": ``scipy.sparse.csr_matrix``.
        Use "compact" for millions of signals: memory O(n_samples * n_nonzero_coefs).
    check_input : bool
        Validate the dictionary and Gram matrix (finite, symmetric). Signals are always
        checked for NaN/inf, by the kernel, at no extra cost.
    chunk_size : int, optional
        Signals per kernel call (default: all at once in the fixed-sparsity mode, 65536 in
        the `tol` mode). Results do not depend on it.
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
    RuntimeWarning
        Once per call, with the number of signals that stopped early because of linearly
        dependent atoms.
    """
    if any_cuda(X, dictionary, gram, cov, mask):  # torch / CuPy arrays on a GPU
        return _cuda_dispatch.sparse_encode(
            X, dictionary, gram=gram, cov=cov, algorithm=algorithm,
            n_nonzero_coefs=n_nonzero_coefs, tol=tol, output=output, check_input=check_input,
            mask=mask)
    if algorithm != "omp":
        raise ValueError(f"`algorithm` must be 'omp' (sparseforge implements OMP), got "
                         f"{algorithm!r}")
    X = check_float_array(X, "X", ndim=2, check_finite=False)
    dictionary = check_float_array(dictionary, "dictionary", ndim=2, dtype=X.dtype,
                                   check_finite=check_input)
    n_samples, n_features = X.shape
    n_components = dictionary.shape[0]
    if dictionary.shape[1] != n_features:
        raise ValueError(f"`dictionary` has {dictionary.shape[1]} features but `X` has "
                         f"{n_features}")
    if n_components == 0 or n_features == 0:
        raise ValueError(f"`dictionary` must have at least one atom and one feature, got shape "
                         f"{dictionary.shape}")
    gram_given = gram is not None
    if gram is None:
        gram = _core.gram(np.ascontiguousarray(dictionary))
    elif check_input:
        gram = check_gram(gram, n_components, X.dtype)
    else:
        gram = np.ascontiguousarray(check_float_array(gram, "gram", ndim=2, dtype=X.dtype,
                                                      check_finite=False))
    if cov is not None:
        cov = check_float_array(cov, "cov", ndim=2, dtype=X.dtype, check_finite=False)
        if cov.shape != (n_components, n_samples):
            raise ValueError(f"`cov` has shape {cov.shape}; expected (n_components, n_samples)"
                             f" = ({n_components}, {n_samples})")
    max_atoms, tol = _resolve_sparsity(n_nonzero_coefs, tol, n_features, n_components)
    n_threads = check_n_jobs(n_jobs)

    if mask is not None:
        mask = _check_mask(mask, X.shape)
        if cov is not None or gram_given:
            raise ValueError("`gram` and `cov` cannot be combined with `mask`: each masked "
                             "signal has its own Gram matrix")
        dt = np.ascontiguousarray(dictionary.T)
        contiguous_rows = X.shape[1] <= 1 or X.strides[1] == X.itemsize

        def chunk_inputs(a, b):
            rows = X[a:b] if contiguous_rows else np.ascontiguousarray(X[a:b])
            return {"x": rows, "dt": dt, "mask": np.ascontiguousarray(mask[a:b])}
        step = chunk_size
    elif cov is not None:
        def chunk_inputs(a, b):
            norms = None
            if tol is not None:  # X is read only for its squared norms
                rows = X[a:b]
                norms = np.einsum("ij,ij->i", rows, rows)
                if not np.isfinite(norms).all():
                    raise ValueError("`X` contains NaN or infinity (or its squared norms "
                                     "overflow the dtype)")
            return {"cov": cov[:, a:b].T, "norms_sq": norms}
        step = chunk_size
    else:
        dt = np.ascontiguousarray(dictionary.T)
        contiguous_rows = X.shape[1] <= 1 or X.strides[1] == X.itemsize

        def chunk_inputs(a, b):
            # Rows with strided features are copied a chunk at a time (never the whole X).
            rows = X[a:b] if contiguous_rows else np.ascontiguousarray(X[a:b])
            return {"x": rows, "dt": dt}
        step = chunk_size or (None if contiguous_rows else
                              max(1, _COPY_CHUNK_BYTES // max(1, n_features * X.itemsize)))
    source = "cov" if cov is not None else "X" if check_input else "X` or `dictionary"
    return _run_chunks(gram, n_samples, max_atoms, output, tol, n_threads, chunk_inputs,
                       source, step)


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
        Threads (None: all CPUs).

    Returns
    -------
    coef : ndarray of shape (n_components,) or (n_components, n_targets)
        Dense coefficients, in the dtype of `Gram` (the 2-D result is a transposed view of a
        row-per-target array).
    n_iters : int or ndarray of int32
        Only when `return_n_iter`.
    """
    del copy_Gram, copy_Xy  # never modified
    if any_cuda(Gram, Xy, norms_squared):  # torch / CuPy arrays on a GPU
        return _cuda_dispatch.orthogonal_mp_gram(
            Gram, Xy, n_nonzero_coefs=n_nonzero_coefs, tol=tol, norms_squared=norms_squared,
            return_path=return_path, return_n_iter=return_n_iter)
    if return_path:
        raise ValueError("`return_path=True` is not supported by sparseforge; use "
                         "sklearn.linear_model.orthogonal_mp_gram for coefficient paths")
    Gram = check_float_array(Gram, "Gram", ndim=2)
    Xy = check_float_array(Xy, "Xy", ndim=(1, 2), dtype=Gram.dtype, check_finite=False)
    n_components = Gram.shape[0]
    Gram = check_gram(Gram, n_components, Gram.dtype, name="Gram")
    single = Xy.ndim == 1
    cov = Xy[:, None] if single else Xy
    if cov.shape[0] != n_components:
        raise ValueError(f"`Xy` has {cov.shape[0]} rows; expected n_components={n_components}")
    n_targets = cov.shape[1]
    max_atoms, tol = _gram_sparsity(n_nonzero_coefs, tol, norms_squared, n_components)
    norms = None
    if tol is not None:
        norms = check_float_array(np.atleast_1d(norms_squared), "norms_squared", ndim=1)
        norms = np.ascontiguousarray(norms, dtype=Gram.dtype)
        if norms.shape != (n_targets,):
            raise ValueError(f"`norms_squared` has shape {norms.shape}; expected ({n_targets},)")

    codes = _run_chunks(Gram, n_targets, max_atoms, "compact", tol, check_n_jobs(n_jobs),
                        lambda a, b: {"cov": cov[:, a:b].T,
                                      "norms_sq": None if norms is None else norms[a:b]},
                        "Xy")
    coef = codes.to_dense().T
    if single:
        coef = coef[:, 0]
    if return_n_iter:
        return coef, (int(codes.counts[0]) if single else codes.counts)
    return coef
