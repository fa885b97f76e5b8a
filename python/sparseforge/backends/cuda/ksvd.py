"""The K-SVD atom sweep on a CUDA device: one warp updates the atoms one after another
(csrc/cuda/ksvd_kernels.cu, on the shared atom update of ksvd_atom.hpp), the CPU's sequential
algorithm and order.

The bookkeeping around the kernel (users of each atom, the residual of the codes) is written
over the array namespace (:mod:`sparseforge._namespace`), so it runs on torch and CuPy arrays
alike, and the tests check it on numpy arrays and torch CPU tensors against the CPU sweep.
"""

from __future__ import annotations

from typing import Any

from ... import _backend
from ..._arrays import DeviceContext
from ..._codes import SparseCodes
from ..._namespace import namespace

# As on the CPU (backends/cpu/ksvd.py).
POWER_TOL = 1e-7


def users_per_atom(indices: Any, n_atoms: int) -> tuple[Any, Any, Any, Any]:
    """Users of every atom, in signal order, from compact code indices (N, M), -1 = empty.

    Returns
    -------
    start : int64 array (n_atoms + 1,)
        Atom k's users are entries start[k] .. start[k + 1] - 1 of the next two.
    user_signal, user_slot : int32 arrays (N * M,)
        Signal index and code slot of each user (entries past start[-1] are unused).
    usage : int64 array (n_atoms,)
    """
    xp = namespace(indices)
    flat = xp.astype(indices.reshape(-1), "int64")
    # Empty slots sort last, as a virtual atom n_atoms; a stable sort keeps signal order.
    key = xp.where(flat >= 0, flat, n_atoms)
    usage = xp.astype(xp.bincount(key, minlength=n_atoms + 1)[:n_atoms], "int64")
    order = xp.argsort(key, stable=True)
    start = xp.zeros((n_atoms + 1,), "int64")
    start[1:] = xp.cumulative_sum(usage)
    m = indices.shape[1]
    return start, xp.astype(order // m, "int32"), xp.astype(order % m, "int32"), usage


def coded_residual(X: Any, D: Any, indices: Any, values: Any, residual: Any) -> float:
    """residual = X - codes @ D in place (atoms subtracted in slot order, as on the CPU);
    returns its squared Frobenius norm (accumulated in float64)."""
    xp = namespace(X, D, residual)
    residual[...] = X
    for j in range(indices.shape[1]):
        idx = indices[:, j]
        used = idx >= 0
        coef = xp.where(used, values[:, j], 0)
        residual -= coef[:, None] * D[xp.index(xp.where(used, idx, 0))]
    return xp.sum_sq_float64(residual)


def _stream(ctx: DeviceContext, D: Any) -> int:
    """The stream to launch on: torch's current one (a callback may have switched it since
    the context was made; the scratch was allocated on it), else the context's."""
    if getattr(D, "is_cuda", False):
        import torch

        return int(torch.cuda.current_stream(D.device).cuda_stream)
    return ctx.stream


def ksvd_sweep(X: Any, D: Any, codes: SparseCodes, residual: Any, *, exact: bool,
               max_power_iter: int, n_threads: int = 0, ctx: DeviceContext,
               power_tol: float = POWER_TOL) -> tuple[Any, float]:
    """One sequential atom sweep on the device, in place on `D`, ``codes.values`` and
    `residual` (the CPU backend's contract; `n_threads` is unused here).

    Returns
    -------
    usage : int64 array (n_atoms,), on the device
    coded_error : float
        Squared Frobenius norm of ``X - codes @ D`` before the sweep.
    """
    del n_threads
    xp = namespace(X, D, residual)
    n_atoms, n_features = D.shape
    with xp.device_scope():
        start, user_signal, user_slot, usage = users_per_atom(codes.indices, n_atoms)
        coded_error = coded_residual(X, D, codes.indices, codes.values, residual)
        if codes.indices.shape[1] == 0 or X.shape[0] == 0:  # nothing coded: nothing to update
            return usage, coded_error
        most = max(1, int(usage.max()))
        dtype = xp.numpy_dtype(D)
        rows = xp.empty((most * n_features,), dtype)
        g, h = xp.empty((most,), dtype), xp.empty((most,), dtype)
        d, e = xp.empty((n_features,), dtype), xp.empty((n_features,), dtype)
        ptr = ctx.ptr
        _backend._cuda.ksvd_update_atoms(dtype.name, ctx.device, _stream(ctx, D), {
            "n_features": n_features, "n_atoms": n_atoms,
            "max_atoms": codes.indices.shape[1], "dictionary": ptr(D),
            "values": ptr(codes.values), "residual": ptr(residual),
            "user_start": ptr(start), "user_signal": ptr(user_signal),
            "user_slot": ptr(user_slot), "rows": ptr(rows), "g": ptr(g), "h": ptr(h),
            "d": ptr(d), "e": ptr(e), "exact": bool(exact),
            "max_power_iter": int(max_power_iter), "power_tol": float(power_tol)})
    # No sync: the scratch goes back to the framework's caching allocator, which hands it out
    # again only to work on the same stream, ordered after this kernel.
    return usage, coded_error
