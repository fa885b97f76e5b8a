"""The chunk loop of one batched OMP plan, written once for every backend.

A backend supplies ``empty(shape, dtype)`` (allocation in its framework), ``launch(start,
stop, outputs)`` (one kernel call for signals start..stop writing into ``outputs``) and
``to_host(array)``; this module decides which buffers exist, how the error-constrained mode's
padded per-chunk buffers are trimmed to their widest signal and assembled, and returns the
raw outputs. Slicing, ``fill`` and ``copy``/``clone`` behave alike in numpy, CuPy and torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .._plans import OmpPlan


@dataclass
class OmpOutputs:
    """What one plan produced, in the backend's framework (status also on the host)."""

    indices: Any
    values: Any
    counts: Any
    status: Any
    dense: Any
    status_host: np.ndarray


def _fill(arr: Any, value: Any) -> None:
    (arr.fill_ if hasattr(arr, "fill_") else arr.fill)(value)


def _copy(arr: Any) -> Any:
    return arr.clone() if hasattr(arr, "clone") else arr.copy()


def run_omp(plan: OmpPlan, empty: Callable, launch: Callable,
            to_host: Callable, out: Any = None) -> OmpOutputs:
    """Run `plan` chunk by chunk through `launch`; see the module docstring. The dense
    output is written into `out` when given (the caller's array, validated by the plan)."""
    n, k, m = plan.n_samples, plan.n_components, plan.max_atoms
    status = empty((n,), np.int8)
    counts = empty((n,), np.int32)
    dense = None
    if plan.output == "dense":
        dense = empty((n, k), plan.dtype) if out is None else out
    # Fixed sparsity: every signal has at most m atoms, so the final compact arrays are
    # allocated once. Error-constrained: the width is unknown until the end, so each chunk
    # is trimmed to its own widest row and the chunks are assembled afterwards. Dense output
    # needs the compact arrays only as per-chunk scratch.
    whole = plan.fixed and plan.output != "dense"
    indices = empty((n, m), np.int32) if whole else None
    values = empty((n, m), plan.dtype) if whole else None
    chunks = plan.chunks()
    if not whole and chunks:
        # One scratch pair for every chunk (each chunk's rows are copied out or expanded
        # before the next): fresh ones per chunk faulted in their pages every time, 48 MiB a
        # chunk in the tol mode at K = 256 (max_atoms 64).
        rows = max(stop - start for start, stop in chunks)
        scratch_idx, scratch_val = empty((rows, m), np.int32), empty((rows, m), plan.dtype)
    kept: list[tuple[int, Any, Any]] = []
    for start, stop in chunks:
        if whole:
            idx, val = indices[start:stop], values[start:stop]
        else:
            idx, val = scratch_idx[:stop - start], scratch_val[:stop - start]
        launch(start, stop, {"out_index": idx, "out_value": val,
                             "out_count": counts[start:stop], "out_status": status[start:stop],
                             "out_dense": None if dense is None else dense[start:stop]})
        if not whole and plan.output != "dense":
            width = int(counts[start:stop].max())
            kept.append((start, _copy(idx[:, :width]), _copy(val[:, :width])))
    if not whole and plan.output != "dense":
        width = max((c[1].shape[1] for c in kept), default=0)
        indices, values = empty((n, width), np.int32), empty((n, width), plan.dtype)
        _fill(indices, -1)
        _fill(values, 0)
        for start, idx, val in kept:
            indices[start:start + idx.shape[0], :idx.shape[1]] = idx
            values[start:start + val.shape[0], :val.shape[1]] = val
    return OmpOutputs(indices, values, counts, status, dense, to_host(status))
