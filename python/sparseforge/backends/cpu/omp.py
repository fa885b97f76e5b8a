"""Batch-OMP plans on the CPU.

Each native thread takes a block of 64 signals, computes their correlations with the atoms
(a register-blocked product, csrc/cpu/block_gemm.hpp) and codes them while they are still in
cache (csrc/include/sparseforge/omp_signal.hpp), with the GIL released. Signals whose rows
cannot reach the kernel as they are (strided features, a misaligned buffer, a scipy.sparse
matrix) are copied -- densified -- a chunk at a time, never whole.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ... import _backend
from ..._plans import OmpPlan
from .._chunks import OmpOutputs, run_omp


def aligned(arr: np.ndarray) -> np.ndarray:
    """`arr` C-contiguous and aligned to its dtype: itself when it is, else a copy (used on
    chunks and on small arrays only). np.ascontiguousarray would keep a misaligned buffer."""
    return np.require(arr, requirements=["C_CONTIGUOUS", "ALIGNED"])


def rows(arr: Any, copy: bool) -> np.ndarray:
    """A chunk of signal rows as the kernel reads them (unit feature stride, aligned); the
    rows of a scipy.sparse chunk are densified (C order, its dtype)."""
    if sp.issparse(arr):
        return arr.toarray(order="C")
    return aligned(arr) if copy else arr


def _squared_norms(chunk: Any) -> np.ndarray:
    """Squared norm of every row of a dense or scipy.sparse chunk, in its dtype."""
    if sp.issparse(chunk):
        return np.asarray(chunk.multiply(chunk).sum(axis=1), dtype=chunk.dtype).ravel()
    return np.einsum("ij,ij->i", chunk, chunk)


def gram(dictionary: np.ndarray, ctx: Any = None) -> np.ndarray:
    """``dictionary @ dictionary.T``, exactly symmetric (native, no BLAS thread pool)."""
    del ctx
    return _backend._core.gram(aligned(dictionary))


def omp_batch(plan: OmpPlan, arrays: dict[str, Any], ctx: Any = None) -> OmpOutputs:
    """Execute an OMP plan over host arrays (``X``, ``dictionary``, optional ``gram``,
    ``cov``, ``mask``; for orthogonal_mp_gram ``Gram``, ``Xy``, ``norms_squared``)."""
    del ctx
    fields: dict[str, Any] = {"n_threads": plan.n_threads, "lane": "serial"}
    if "Xy" in arrays:  # orthogonal_mp_gram: Xy is (n_components, n_targets)
        gram_ = aligned(arrays["Gram"])
        xy = arrays["Xy"]
        cov = xy[:, None] if xy.ndim == 1 else xy
        norms = arrays.get("norms_squared")
        if norms is not None:
            norms = aligned(np.atleast_1d(norms).astype(plan.dtype, copy=False))

        def inputs(a: int, b: int) -> dict[str, Any]:
            chunk = cov[:, a:b].T
            if not chunk.flags.aligned:
                chunk = aligned(chunk)
            return _cov_fields(chunk, gram_, None if norms is None else norms[a:b])
        return _run(plan, fields, inputs)
    X, D = arrays["X"], arrays["dictionary"]
    if plan.inputs == "masked":
        dt = aligned(D.T)
        mask = arrays["mask"]

        def inputs(a: int, b: int) -> dict[str, Any]:
            x, m = rows(X[a:b], plan.copy_rows), rows(mask[a:b], plan.copy_rows)
            return {"x": x, "ldx": _row_stride(x), "mask": m, "ldm": _row_stride(m), "dt": dt}
        return _run(plan, fields, inputs)
    if plan.gram_given:
        gram_ = aligned(arrays["gram"])
    else:
        gram_ = gram(D)
    if plan.inputs == "cov":
        cov = arrays["cov"]

        def inputs(a: int, b: int) -> dict[str, Any]:
            norms = None
            if plan.tol is not None:  # X is read only for its squared norms
                norms = _squared_norms(X[a:b])
                if not np.isfinite(norms).all():
                    raise ValueError("`X` contains NaN or infinity (or its squared norms "
                                     "overflow the dtype)")
            return _cov_fields(rows(cov[:, a:b].T, plan.copy_rows), gram_, norms)
        return _run(plan, fields, inputs)
    dt = aligned(D.T)

    def inputs(a: int, b: int) -> dict[str, Any]:
        x = rows(X[a:b], plan.copy_rows)
        return {"gram": gram_, "x": x, "ldx": _row_stride(x), "dt": dt}
    return _run(plan, fields, inputs)


def _row_stride(arr: np.ndarray) -> int:
    return arr.strides[0] // arr.itemsize if arr.shape[0] > 1 else arr.shape[1]


def _cov_fields(cov: np.ndarray, gram_: np.ndarray, norms: Any) -> dict[str, Any]:
    item = cov.itemsize
    return {"gram": gram_, "cov": cov, "cov_stride_signal": cov.strides[0] // item,
            "cov_stride_atom": cov.strides[1] // item, "norms_sq": norms}


def _run(plan: OmpPlan, fields: dict[str, Any], inputs) -> OmpOutputs:
    def launch(a: int, b: int, outputs: dict[str, Any]) -> None:
        dense = outputs["out_dense"]
        args = {**plan.kernel_args(a, b), **fields, **inputs(a, b), **outputs,
                "dense_stride": plan.n_components if dense is None else
                dense.strides[0] // dense.itemsize}
        _backend._core.omp_batch(args)

    return run_omp(plan, np.empty, launch, np.asarray)
