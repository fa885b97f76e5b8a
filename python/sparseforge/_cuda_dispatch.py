"""CUDA paths of the public functions: torch CUDA tensors and CuPy arrays in, outputs in the
same framework on the same device, kernels enqueued on the caller's current stream.

The public functions (``omp.py``, ``patches.py``) call in here when any array argument is a
CUDA array; the validation mirrors theirs and reuses their helpers. The large products
(``D Dᵀ``, ``X Dᵀ``) are the framework's matmul (cuBLAS under torch/CuPy); the pursuit, the
patch kernels and the K-SVD atom updates are ours (csrc/cuda).

Synchronisation: kernels never synchronise. A call does read back what its result or its
documented errors need: the per-signal status (to raise on NaN input and warn on linear
dependence, as the CPU path does) and, for checked inputs, one finiteness / symmetry flag.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from . import _backend
from ._arrays import (DeviceArray, DeviceContext, check_float, device_context,
                      require_rows_contiguous)
from ._codes import SparseCodes


@contextlib.contextmanager
def no_tf32(framework: str):
    """Full float32 precision for torch's products while Gram and correlations are formed:
    Batch-OMP's updates assume both come exactly from the same dictionary, and TF32 (which
    `torch.set_float32_matmul_precision("high")` turns on) would err by ~1e-3 relative. CuPy
    uses TF32 only when CUPY_TF32=1 is set by the user (documented in the README)."""
    if framework != "torch":
        yield
        return
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved

# Scratch memory the OMP kernel may take for its per-warp workspaces; fewer warps run (each
# codes more signals, grid-stride) when the resident warps' workspaces would exceed it.
_WORKSPACE_BUDGET_BYTES = 1 << 30


def _omp_module():
    from . import omp  # omp imports this module: resolve the cycle at call time

    return omp


def _launch_omp(ctx: DeviceContext, dtype: np.dtype, n_signals: int, n_atoms: int,
                max_atoms: int, tol: float | None, inputs: dict[str, Any], dense: bool,
                n_features: int = 0):
    """Allocate the outputs and workspace, launch the kernel, check the statuses.

    Returns (indices, values, counts, status, dense or None) as device arrays, and the
    status copied to the host.
    """
    masked = bool(inputs.get("mask"))
    out_index = ctx.empty((n_signals, max_atoms), np.int32)
    out_value = ctx.empty((n_signals, max_atoms), dtype)
    out_count = ctx.empty((n_signals,), np.int32)
    out_status = ctx.empty((n_signals,), np.int8)
    out_dense = ctx.empty((n_signals, n_atoms), dtype) if dense else None
    if n_signals == 0:
        return out_index, out_value, out_count, out_status, out_dense, np.empty(0, np.int8)
    cuda = _backend._cuda
    per_warp, per_warp_ints = cuda.omp_workspace(dtype.name, n_atoms, max_atoms, n_features,
                                                 masked)
    warp_bytes = per_warp * dtype.itemsize + per_warp_ints * 4
    n_warps = max(1, min(n_signals, cuda.omp_resident_warps(dtype.name, ctx.device),
                         _WORKSPACE_BUDGET_BYTES // warp_bytes))
    ws_scalars = ctx.empty((n_warps * per_warp,), dtype)
    ws_ints = ctx.empty((n_warps * per_warp_ints,), np.int32)
    args = {"n_atoms": n_atoms, "n_signals": n_signals, "n_features": n_features,
            "max_atoms": max_atoms, "tol": tol, "gram": 0, "cov": 0, "cov_stride_signal": 0,
            "cov_stride_atom": 1, "norms_sq": 0, "x": 0, "ldx": 0, "mask": 0, "ldm": 0,
            "dt": 0, "out_index": ctx.ptr(out_index), "out_value": ctx.ptr(out_value),
            "out_count": ctx.ptr(out_count), "out_status": ctx.ptr(out_status),
            "out_dense": ctx.ptr(out_dense), "dense_stride": n_atoms,
            "ws_scalars": ctx.ptr(ws_scalars), "ws_ints": ctx.ptr(ws_ints),
            "ws_scalar_stride": per_warp, "ws_int_stride": per_warp_ints, "n_warps": n_warps}
    args.update(inputs)
    cuda.omp_batch(dtype.name, ctx.device, ctx.stream, args)
    status = ctx.to_host(out_status)  # synchronises: the kernel is done with the workspace
    return out_index, out_value, out_count, out_status, out_dense, status


def _described(ctx: DeviceContext, name: str) -> DeviceArray:
    if name not in ctx.arrays:
        raise ValueError(f"`{name}` must be a CUDA array like the other arguments")
    return ctx.arrays[name]


def _check_gram_shape(ctx: DeviceContext, name: str, n_components: int,
                      dtype: np.dtype) -> None:
    g = check_float(_described(ctx, name), ndim=2, dtype=dtype)
    if g.shape != (n_components, n_components):
        raise ValueError(f"`{name}` has shape {g.shape}; expected (n_components, "
                         f"n_components) = ({n_components}, {n_components})")


def _checked_gram(ctx: DeviceContext, gram: Any, name: str, dtype: np.dtype, check: bool):
    """`gram` C-contiguous, and (when `check`) finite and symmetric as on the CPU path."""
    gram = ctx.contiguous(gram)
    if check:
        if not ctx.all_finite(gram):
            raise ValueError(f"`{name}` contains NaN or infinity")
        scale = max(float(abs(gram.diagonal()).max()), 1e-300)
        tol = (1e-4 if dtype == np.float32 else 1e-10) * scale
        if float(abs(gram - gram.T).max()) > tol:
            raise ValueError(f"`{name}` is not symmetric; pass dictionary @ dictionary.T")
    return gram


def sparse_encode(X: Any, dictionary: Any, *, gram: Any, cov: Any, algorithm: str,
                  n_nonzero_coefs: Any, tol: Any, output: str, check_input: bool, mask: Any):
    """:func:`sparseforge.sparse_encode` for CUDA arrays (same arguments and semantics;
    `output` "dense" or "compact": a SparseCodes of device arrays)."""
    omp = _omp_module()
    ctx = device_context({"X": X, "dictionary": dictionary, "gram": gram, "cov": cov,
                          "mask": mask})
    if algorithm != "omp":
        raise ValueError(f"`algorithm` must be 'omp' (sparseforge implements OMP), got "
                         f"{algorithm!r}")
    if output not in ("dense", "compact"):
        raise ValueError(f"`output`={output!r} is not available for CUDA arrays (scipy "
                         "matrices live in host memory); use 'dense' or 'compact'")
    x = check_float(_described(ctx, "X"), ndim=2)
    d = check_float(_described(ctx, "dictionary"), ndim=2, dtype=x.dtype)
    (n_samples, n_features), n_components = x.shape, d.shape[0]
    if d.shape[1] != n_features:
        raise ValueError(f"`dictionary` has {d.shape[1]} features but `X` has {n_features}")
    if n_components == 0 or n_features == 0:
        raise ValueError(f"`dictionary` must have at least one atom and one feature, got "
                         f"shape {d.shape}")
    max_atoms, tol = omp._resolve_sparsity(n_nonzero_coefs, tol, n_features, n_components)
    if mask is not None:
        m = require_rows_contiguous(_described(ctx, "mask"))
        if m.dtype != np.bool_:
            raise TypeError(f"`mask` has dtype {m.dtype}; expected bool (True = observed)")
        if m.shape != x.shape:
            raise ValueError(f"`mask` has shape {m.shape}; expected the shape of `X`, "
                             f"{x.shape}")
        if cov is not None or gram is not None:
            raise ValueError("`gram` and `cov` cannot be combined with `mask`: each masked "
                             "signal has its own Gram matrix")
        require_rows_contiguous(x)
    else:
        if gram is not None:
            _check_gram_shape(ctx, "gram", n_components, x.dtype)
        if cov is not None:
            c = check_float(_described(ctx, "cov"), ndim=2, dtype=x.dtype)
            if c.shape != (n_components, n_samples):
                raise ValueError(f"`cov` has shape {c.shape}; expected (n_components, "
                                 f"n_samples) = ({n_components}, {n_samples})")
    # Every argument is checked; from here on the framework computes.
    dictionary = ctx.contiguous(dictionary)
    if check_input and not ctx.all_finite(dictionary):
        raise ValueError("`dictionary` contains NaN or infinity")
    if mask is not None:
        dt = ctx.contiguous(dictionary.T)  # (n_features, K): what the masked kernel reads
        inputs = {"x": x.ptr, "ldx": x.strides[0], "mask": m.ptr, "ldm": m.strides[0],
                  "dt": ctx.ptr(dt)}
    else:
        with no_tf32(ctx.framework):
            if gram is None:
                gram = ctx.contiguous(dictionary @ dictionary.T)
            if cov is None:
                cov = ctx.contiguous(X @ dictionary.T)   # (n_samples, n_components)
        if "gram" in ctx.arrays:
            gram = _checked_gram(ctx, gram, "gram", x.dtype, check_input)
        if "cov" not in ctx.arrays:
            stride_signal, stride_atom = n_components, 1
        else:
            stride_signal, stride_atom = c.strides[1], c.strides[0]
        norms = None
        if tol is not None:
            norms = ctx.contiguous((X * X).sum(1))
            if not ctx.all_finite(norms):
                raise ValueError("`X` contains NaN or infinity (or its squared norms overflow "
                                 "the dtype)")
        inputs = {"gram": ctx.ptr(gram), "cov": ctx.ptr(cov),
                  "cov_stride_signal": stride_signal, "cov_stride_atom": stride_atom,
                  "norms_sq": ctx.ptr(norms)}
    # gram, cov and norms stay referenced here until _launch_omp has read the status back.
    idx, val, cnt, st, dense, status = _launch_omp(ctx, x.dtype, n_samples, n_components,
                                                   max_atoms, tol, inputs, output == "dense",
                                                   n_features)
    given_cov = "cov" in ctx.arrays
    omp._check_status(status, "cov" if given_cov else "X" if check_input else
                      "X` or `dictionary")
    if output == "dense":
        return dense
    if tol is not None:  # trim the padded width to the widest signal, as on the CPU
        width = int(cnt.max()) if n_samples else 0
        idx, val = idx[:, :width], val[:, :width]
    return SparseCodes(idx, val, cnt, st, n_components)


def orthogonal_mp_gram(Gram: Any, Xy: Any, *, n_nonzero_coefs: Any, tol: Any,
                       norms_squared: Any, return_path: bool, return_n_iter: bool):
    """:func:`sparseforge.orthogonal_mp_gram` for CUDA arrays (dense device result)."""
    omp = _omp_module()
    ctx = device_context({"Gram": Gram, "Xy": Xy, "norms_squared": norms_squared})
    if return_path:
        raise ValueError("`return_path=True` is not supported by sparseforge; use "
                         "sklearn.linear_model.orthogonal_mp_gram for coefficient paths")
    g = check_float(_described(ctx, "Gram"), ndim=2)
    xy = check_float(_described(ctx, "Xy"), ndim=(1, 2), dtype=g.dtype)
    n_components = g.shape[0]
    _check_gram_shape(ctx, "Gram", n_components, g.dtype)
    single = xy.ndim == 1
    if xy.shape[0] != n_components:
        raise ValueError(f"`Xy` has {xy.shape[0]} rows; expected n_components={n_components}")
    n_targets = 1 if single else xy.shape[1]
    stride_signal = 0 if single else xy.strides[1]
    max_atoms, tol = omp._gram_sparsity(n_nonzero_coefs, tol, norms_squared, n_components)
    norms = None
    if tol is not None:
        # Any float dtype, cast to Gram's like the CPU path (a vector of n_targets).
        nrm = check_float(_described(ctx, "norms_squared"), ndim=(0, 1))
        if int(np.prod(nrm.shape)) != n_targets:
            raise ValueError(f"`norms_squared` has shape {nrm.shape}; expected ({n_targets},)")
        norms = ctx.contiguous(ctx.cast(norms_squared.reshape(n_targets), g.dtype))
    gram = _checked_gram(ctx, Gram, "Gram", g.dtype, True)
    inputs = {"gram": ctx.ptr(gram), "cov": xy.ptr, "cov_stride_signal": stride_signal,
              "cov_stride_atom": xy.strides[0], "norms_sq": ctx.ptr(norms)}
    _, _, counts, _, dense, status = _launch_omp(ctx, g.dtype, n_targets, n_components,
                                                 max_atoms, tol, inputs, True)
    omp._check_status(status, "Xy")
    coef = dense.T
    if single:
        coef = coef[:, 0]
    if return_n_iter:
        return coef, (int(counts[0]) if single else counts)
    return coef


def extract_patches_2d(image: Any, patch_size: Any, *, step: int, max_patches: Any,
                       random_state: Any):
    """:func:`sparseforge.extract_patches_2d` for a CUDA image.

    The patch positions are computed on the host (as on the CPU, so a `random_state` draws
    the same patches) and copied to the device: 16 bytes per patch.
    """
    from .patches import check_patch_size, check_step, patch_positions

    ctx = device_context({"image": image})
    a = check_float(ctx.arrays["image"], ndim=(2, 3))
    gray = a.ndim == 2
    shape = a.shape + ((1,) if gray else ())
    ph, pw = check_patch_size(patch_size, shape)
    step = check_step(step, (ph, pw))
    hwc = ctx.contiguous(image)
    positions = ctx.to_device(patch_positions(shape, (ph, pw), step, max_patches, random_state))
    n = positions.shape[0]
    out = ctx.empty((n, ph, pw, shape[2]), a.dtype)
    if n == 0:  # an empty array has no device pointer to hand to the kernel
        return out[..., 0] if gray else out
    _backend._cuda.extract_patches(a.dtype.name, ctx.device, ctx.stream, {
        "H": shape[0], "W": shape[1], "C": shape[2], "ph": ph, "pw": pw,
        "image": ctx.ptr(hwc), "positions": ctx.ptr(positions), "n_patches": n,
        "out": ctx.ptr(out)})
    return out[..., 0] if gray else out


def reconstruct_from_patches_2d(patches: Any, image_size: Any, *, step: int, weights: Any):
    """:func:`sparseforge.reconstruct_from_patches_2d` for CUDA patches: one GPU thread per
    output value gathers its covering patches in a fixed order (deterministic, no atomics)."""
    from .patches import aggregation_geometry

    ctx = device_context({"patches": patches, "weights": weights})
    a = check_float(_described(ctx, "patches"), ndim=(3, 4))
    size, step, expected = aggregation_geometry(a.shape, image_size, step)
    if weights is not None:
        w = check_float(_described(ctx, "weights"), ndim=1, dtype=a.dtype)
        if w.shape != (expected,):
            raise ValueError(f"`weights` has shape {w.shape}; expected ({expected},)")
        weights = ctx.contiguous(weights)
        if not bool((weights >= 0).all()):
            raise ValueError("`weights` must be non-negative")
    channels = 1 if len(size) == 2 else size[2]
    src = ctx.contiguous(patches)
    out = ctx.empty((size[0], size[1], channels), a.dtype)
    _backend._cuda.aggregate_patches(a.dtype.name, ctx.device, ctx.stream, {
        "H": size[0], "W": size[1], "C": channels, "ph": a.shape[1], "pw": a.shape[2],
        "step": step, "patches": ctx.ptr(src), "weights": ctx.ptr(weights),
        "normalise": True, "out": ctx.ptr(out)})
    return out[..., 0] if len(size) == 2 else out
