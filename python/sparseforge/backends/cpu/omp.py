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
from ..._validation import check_finite
from .._chunks import OmpOutputs, run_omp


def aligned(arr: np.ndarray) -> np.ndarray:
    """`arr` C-contiguous and aligned to its dtype: itself when it is, else a copy (used on
    chunks and on small arrays only). np.ascontiguousarray would keep a misaligned buffer."""
    return np.require(arr, requirements=["C_CONTIGUOUS", "ALIGNED"])


def rows(arr: Any, copy: bool) -> np.ndarray:
    """A chunk of signal rows as the kernel reads them (unit feature stride, aligned); the
    rows of a scipy.sparse chunk are densified (C order, its dtype)."""
    if type(arr) is not np.ndarray and sp.issparse(arr):  # (an ndarray never is: no ABC test)
        return arr.toarray(order="C")
    return aligned(arr) if copy else arr


def _squared_norms(chunk: Any) -> np.ndarray:
    """Squared norm of every row of a dense or scipy.sparse chunk, in its dtype."""
    if sp.issparse(chunk):
        return np.asarray(chunk.multiply(chunk).sum(axis=1), dtype=chunk.dtype).ravel()
    return np.einsum("ij,ij->i", chunk, chunk)


def gram(dictionary: np.ndarray, ctx: Any = None, n_threads: int = 0) -> np.ndarray:
    """``dictionary @ dictionary.T``, exactly symmetric (native, the upper triangle on an
    OpenMP team of `n_threads`, 0 = the OpenMP default; no BLAS thread pool)."""
    del ctx
    return _backend._core.gram(aligned(dictionary), n_threads)


# The last dictionary's Gram matrix and transpose, reused while callers pass an equal
# dictionary (estimators and loops coding batch after batch): (copy of D, gram, D^T). Checked
# by value on every call (its bytes against the copy's: ~2 us at K = 256, n = 64, against
# forming the Gram matrix and the transpose again), so a dictionary modified in place is
# never served stale.
# Gram matrices above _GRAM_CACHE_BYTES are not kept. The entry is (D, D @ D.T, D.T, and a
# slot list: [the float32 copy of D @ D.T that large float64 pursuits rank with, whether D
# was checked finite]). A hit on a checked entry skips the finiteness pass over D, which
# cost as much as the comparison (~100 us at (1024, 256) float64, cache-cold).
_GRAM_CACHE: tuple[np.ndarray, np.ndarray, np.ndarray, list] | None = None
_GRAM_CACHE_BYTES = 32 << 20


def _gram_entry(D: np.ndarray, n_threads: int,
                check: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """The cache entry of `D` (same shape, dtype and values as the last dictionary seen), or a
    fresh one, cached when small enough; with `check`, `D` is first checked finite (once per
    cached dictionary)."""
    global _GRAM_CACHE
    entry = _cached_entry(D)
    if entry is not None:
        if check and not entry[3][1]:
            check_finite(D, "dictionary")
            entry[3][1] = True
        return entry
    if check:
        check_finite(D, "dictionary")
    g = gram(D, n_threads=n_threads)
    dt = np.array(D.T, order="C")
    entry = (D, g, dt, [None, check])
    # Everything the entry holds counts: orthogonal_mp's "dictionary" is the whole design
    # matrix X, which must not stay behind twice in a module-level cache.
    if g.nbytes + 2 * D.nbytes <= _GRAM_CACHE_BYTES:
        g.setflags(write=False)
        dt.setflags(write=False)
        entry = (np.array(D, order="C"), g, dt, [None, check])
        _GRAM_CACHE = entry
    return entry


def same_values(d0: np.ndarray, D: np.ndarray) -> bool:
    """Whether `D` holds the values of the C-contiguous `d0` (same shape and dtype): one
    memcmp pass ((d0 == D).all() wrote and re-read a boolean temporary, ~100 us a call at
    (1024, 256) float64; identical bits give identical results, and -0.0 against 0.0 only
    costs a recomputation). A strided D (a transposed view, say) is compared element-wise."""
    return d0.shape == D.shape and d0.dtype == D.dtype and (
        _backend._core.same_bytes(d0, D) if D.flags.c_contiguous else bool((d0 == D).all()))


def _cached_entry(D: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list] | None:
    """The cache entry when `D` holds the values of the last cached dictionary, else None."""
    entry = _GRAM_CACHE
    if entry is not None and same_values(entry[0], D):
        return entry
    return None


def _gram_f32(g: np.ndarray, slot: list, max_atoms: int) -> np.ndarray | None:
    """The float32 copy of the Gram matrix `g` for a float64 pursuit the kernel ranks in
    float32 (``_core.float32_q_by_size``), kept in its cache entry's `slot`: converting it in
    every call cost a fifth of a 1,000-signal call at (256, 1024, 8). None when not needed."""
    if g.dtype != np.float64 or not _backend._core.float32_q_by_size(g.shape[0], max_atoms):
        return None
    if slot[0] is None:
        g32 = g.astype(np.float32)
        g32.setflags(write=False)
        slot[0] = g32
    return slot[0]


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
    X, D, out = arrays["X"], arrays["dictionary"], arrays.get("out")
    # The dictionary's values (plan.check_input): checked here for the masked kernel; the
    # front door checked them when `gram` was given; the Gram cache path below checks them
    # once per cached dictionary.
    if plan.inputs == "masked":
        if plan.check_input:
            check_finite(D, "dictionary")
        dt = aligned(D.T)
        mask = arrays["mask"]

        def inputs(a: int, b: int) -> dict[str, Any]:
            x, m = rows(X[a:b], plan.copy_rows), rows(mask[a:b], plan.copy_rows)
            return {"x": x, "ldx": _row_stride(x), "mask": m, "ldm": _row_stride(m), "dt": dt}
        return _run(plan, fields, inputs, out)
    if plan.gram_given:
        gram_ = aligned(arrays["gram"])
        dt = None
    else:
        _, gram_, dt, slot = _gram_entry(D, plan.n_threads, plan.check_input)
        fields["gram_f32"] = _gram_f32(gram_, slot, plan.max_atoms)
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
        return _run(plan, fields, inputs, out)
    if dt is None:
        dt = aligned(D.T)

    def inputs(a: int, b: int) -> dict[str, Any]:
        x = rows(X[a:b], plan.copy_rows)
        return {"gram": gram_, "x": x, "ldx": _row_stride(x), "dt": dt}
    return _run(plan, fields, inputs, out)


def _row_stride(arr: np.ndarray) -> int:
    return arr.strides[0] // arr.itemsize if arr.shape[0] > 1 else arr.shape[1]


def _cov_fields(cov: np.ndarray, gram_: np.ndarray, norms: Any) -> dict[str, Any]:
    item = cov.itemsize
    return {"gram": gram_, "cov": cov, "cov_stride_signal": cov.strides[0] // item,
            "cov_stride_atom": cov.strides[1] // item, "norms_sq": norms}


def _run(plan: OmpPlan, fields: dict[str, Any], inputs, out: Any = None) -> OmpOutputs:
    def launch(a: int, b: int, outputs: dict[str, Any]) -> None:
        dense = outputs["out_dense"]
        # (one row: its stride is meaningless, numpy may report anything)
        args = {**plan.kernel_args(a, b), **fields, **inputs(a, b), **outputs,
                "dense_stride": plan.n_components if dense is None or dense.shape[0] < 2
                else dense.strides[0] // dense.itemsize}
        _backend._core.omp_batch(args)

    return run_omp(plan, np.empty, launch, np.asarray, out)
