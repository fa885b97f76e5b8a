"""Batch-OMP plans on a CUDA device: one warp per signal (csrc/cuda/omp_kernels.cu)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import _backend
from ..._arrays import DeviceContext, describe, no_tf32
from ..._plans import OmpPlan
from ..._validation import check_finite
from .._chunks import OmpOutputs, run_omp

# Scratch memory the OMP kernel may take for its per-warp workspaces; fewer warps run (each
# codes more signals, grid-stride) when the resident warps' workspaces would exceed it.
WORKSPACE_BUDGET_BYTES = 1 << 30


def gram(dictionary: Any, ctx: DeviceContext) -> Any:
    """``dictionary @ dictionary.T`` on the device at full float32 precision."""
    with no_tf32(ctx.framework):
        return ctx.contiguous(dictionary @ dictionary.T)


def _rows(ctx: DeviceContext, arr: Any, copy: bool) -> Any:
    return ctx.contiguous(arr) if copy else arr


def _row_stride(ctx: DeviceContext, arr: Any, name: str) -> int:
    info = describe(arr, name)
    return info.strides[0] if info.shape[0] > 1 else info.shape[1]


def omp_batch(plan: OmpPlan, arrays: dict[str, Any], ctx: DeviceContext) -> OmpOutputs:
    """Execute an OMP plan over device arrays (the names of the CPU backend's)."""
    p = ctx.ptr
    if "Xy" in arrays:  # orthogonal_mp_gram
        gram_ = ctx.contiguous(arrays["Gram"])
        xy = arrays["Xy"]
        info = ctx.arrays["Xy"]
        norms = arrays.get("norms_squared")
        if norms is not None:
            norms = ctx.contiguous(ctx.cast(norms.reshape(plan.n_samples), plan.dtype))
        single = xy.ndim == 1
        stride_signal = 0 if single else info.strides[1]

        def inputs(a: int, b: int) -> dict[str, Any]:
            # Xy is (n_components, n_targets): signal a starts a * stride_signal elements in.
            itemsize = plan.dtype.itemsize
            return {"gram": p(gram_), "cov": info.ptr + a * stride_signal * itemsize,
                    "cov_stride_signal": stride_signal, "cov_stride_atom": info.strides[0],
                    "norms_sq": 0 if norms is None else p(norms) + a * itemsize}
        return _run(plan, ctx, inputs, keep=(gram_, norms))
    X, D = arrays["X"], ctx.contiguous(arrays["dictionary"])
    if plan.check_input and not plan.gram_given:  # (with `gram`, the front door checked it)
        check_finite(D, "dictionary", ctx)
    if plan.inputs == "masked":
        dt = ctx.contiguous(D.T)  # (n_features, K): what the masked kernel reads
        mask = arrays["mask"]
        held: list[Any] = []

        def inputs(a: int, b: int) -> dict[str, Any]:
            x, m = _rows(ctx, X[a:b], plan.copy_rows), _rows(ctx, mask[a:b], plan.copy_rows)
            held[:] = [x, m]  # alive until the status read-back of the chunk loop
            return {"x": p(x), "ldx": _row_stride(ctx, x, "X"), "mask": p(m),
                    "ldm": _row_stride(ctx, m, "mask"), "dt": p(dt)}
        return _run(plan, ctx, inputs, keep=(dt, held), out=arrays.get("out"))
    if plan.gram_given:
        gram_ = ctx.contiguous(arrays["gram"])
    else:
        gram_ = gram(D, ctx)
    cov_given = plan.inputs == "cov"
    held = []

    def inputs(a: int, b: int) -> dict[str, Any]:
        rows = X[a:b]
        if cov_given:
            cov = arrays["cov"][:, a:b].T
            cov = _rows(ctx, cov, plan.copy_rows)
        else:
            with no_tf32(ctx.framework):
                cov = ctx.contiguous(_rows(ctx, rows, plan.copy_rows) @ D.T)
        info = describe(cov, "cov")
        norms = None
        if plan.tol is not None:
            norms = ctx.contiguous((rows * rows).sum(1))
            # Without `cov`, a non-finite norm marks its signal NON_FINITE in the kernel,
            # whose error names `X` and the row; with `cov` the kernel would blame `cov`.
            if cov_given and not ctx.all_finite(norms):
                raise ValueError("`X` contains NaN or infinity (or its squared norms overflow "
                                 "the dtype)")
        held[:] = [cov, norms]
        return {"gram": p(gram_), "cov": info.ptr, "cov_stride_signal": info.strides[0],
                "cov_stride_atom": info.strides[1], "norms_sq": p(norms)}
    return _run(plan, ctx, inputs, keep=(gram_, held), out=arrays.get("out"))


def _run(plan: OmpPlan, ctx: DeviceContext, inputs, keep: Any,
         out: Any = None) -> OmpOutputs:
    """The chunk loop with this device's launcher; `keep` holds the inputs' buffers alive
    until the statuses are read back (which synchronises)."""
    cuda = _backend._cuda
    masked = plan.inputs == "masked"
    per_warp, per_warp_ints = cuda.omp_workspace(plan.dtype.name, plan.n_components,
                                                 plan.max_atoms, plan.n_features, masked)
    warp_bytes = per_warp * plan.dtype.itemsize + per_warp_ints * 4
    resident = cuda.omp_resident_warps(plan.dtype.name, ctx.device)
    p = ctx.ptr

    def launch(a: int, b: int, outputs: dict[str, Any]) -> None:
        n_warps = max(1, min(b - a, resident, WORKSPACE_BUDGET_BYTES // warp_bytes))
        ws_scalars = ctx.empty((n_warps * per_warp,), plan.dtype)
        ws_ints = ctx.empty((n_warps * per_warp_ints,), np.int32)
        dense = outputs["out_dense"]
        args = {**plan.kernel_args(a, b), **inputs(a, b),
                **{k: p(v) for k, v in outputs.items()},
                "dense_stride": plan.n_components if dense is None or dense.shape[0] < 2
                else describe(dense, "out_dense").strides[0],
                "ws_scalars": p(ws_scalars), "ws_ints": p(ws_ints),
                "ws_scalar_stride": per_warp, "ws_int_stride": per_warp_ints,
                "n_warps": n_warps}
        cuda.omp_batch(plan.dtype.name, ctx.device, ctx.stream, args)
        # The workspace goes back to the framework's caching allocator, which hands it out
        # again only to work on the same stream, ordered after this kernel.

    raw = run_omp(plan, ctx.empty, launch, ctx.to_host, out)
    del keep
    return raw
