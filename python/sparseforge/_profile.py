"""Batch-OMP phase counters (private; for the benchmarks and the cost model).

:func:`omp_phase_times` codes host signals like :func:`sparseforge.sparse_encode` (fused
path: the kernel forms the correlations block by block) with the kernel's opt-in counters on
(the ``profile`` field of ``_core.omp_batch``) and returns where the time went. Without that
field the kernel runs an instantiation with no counter code at all; with it the results are
the same bits (tests/native/test_phase_counters.py), and each lap costs one time-stamp-counter
read (~20-40 cycles, a few per cent of a (64, 256, 8) pursuit).

Phases, summed over the threads, in seconds of thread time:

- ``correlations``: the X Dᵀ product of each block of 64 signals (register-blocked GEMM);
- ``selection``: argmax |α| after each update, and the initial argmax / finiteness check;
- ``update``: the new Cholesky row and pivot, and the fused pass that writes the new Q column
  and updates α (the β = G_I γ update of Rubinstein et al. is this pass: α = α⁰ − β);
- ``solve``: the back-substitution Lᵀγ = u into the output slots;
- ``output``: writing the dense row (zeros, then the values; dense output only);
- ``other``: the thread's total minus the phases (loop and interleaving overhead);
- ``total``: the threads' run times added.

Per call (seconds of wall time): ``gram`` (forming D Dᵀ), ``kernel`` (the ``_core.omp_batch``
call), ``wall`` (everything, Python included, allocation of the outputs included).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from . import _backend
from ._arrays import placement
from ._plans import plan_sparse_encode

PHASES = ("correlations", "selection", "update", "solve", "output")


def omp_phase_times(X: Any, dictionary: Any, *, n_nonzero_coefs: int | None = None,
                    tol: float | None = None, output: str = "compact",
                    n_jobs: int | None = None) -> dict[str, Any]:
    """Code `X` over `dictionary` once with the phase counters on; see the module docstring.

    Returns a dict with the phases (thread-seconds), ``other``, ``total``, ``fractions``
    (each phase and ``other`` over ``total``), ``gram``, ``kernel``, ``wall`` (seconds),
    ``threads``, ``ticks_per_second`` and ``codes`` (the dense array or the
    (indices, values, counts) of the compact output, to compare with sparse_encode's).
    """
    core = _backend._core
    start = time.perf_counter()
    X = np.asarray(X)
    D = np.asarray(dictionary)
    place = placement({"X": X, "dictionary": D})
    plan = plan_sparse_encode(place, algorithm="omp", n_nonzero_coefs=n_nonzero_coefs,
                              tol=tol, n_jobs=n_jobs, output=output, check_input=True,
                              chunk_size=None)
    if plan.copy_rows:
        X = np.ascontiguousarray(X)
    threads = core.resolve_threads(plan.n_threads)
    t0 = time.perf_counter()
    gram = core.gram(np.ascontiguousarray(D), plan.n_threads)
    t_gram = time.perf_counter() - t0
    n, k, m = plan.n_samples, plan.n_components, plan.max_atoms
    idx = np.empty((n, m), np.int32)
    val = np.empty((n, m), plan.dtype)
    counts = np.empty(n, np.int32)
    status = np.empty(n, np.int8)
    dense = np.empty((n, k), plan.dtype) if output == "dense" else None
    profile = np.zeros((threads, core.omp_phases), np.int64)
    args = {**plan.kernel_args(0, n), "n_threads": plan.n_threads, "gram": gram, "x": X,
            "dt": np.ascontiguousarray(D.T), "out_index": idx, "out_value": val,
            "out_count": counts, "out_status": status, "out_dense": dense,
            "profile": profile}
    t0, c0 = time.perf_counter(), core.clock_ticks()
    core.omp_batch(args)
    c1, t1 = core.clock_ticks(), time.perf_counter()
    wall = time.perf_counter() - start
    rate = (c1 - c0) / max(t1 - t0, 1e-12)
    ticks = profile.sum(axis=0)
    out: dict[str, Any] = {name: float(ticks[i]) / rate for i, name in enumerate(PHASES)}
    total = float(ticks[len(PHASES)]) / rate
    out["other"] = total - sum(out[p] for p in PHASES)
    out["total"] = total
    out["fractions"] = {p: (out[p] / total if total > 0 else 0.0) for p in (*PHASES, "other")}
    out.update(gram=t_gram, kernel=t1 - t0, wall=wall, threads=threads, ticks_per_second=rate)
    out["codes"] = dense if dense is not None else (idx, val, counts)
    return out
