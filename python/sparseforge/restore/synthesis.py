"""Sparse transposed convolution: patch codes -> images, without a dense code map.

The aggregate of coded patches, ``sum_p P_p^T (sum_k g_pk w_k)``, is a transposed convolution
of the code map (one channel per atom, nonzero only at patch positions and only on each
patch's few atoms) with the atoms as kernels. Forming that map densely costs K channels per
pixel (256 x H x W floats); here each patch's output is summed from its own atoms only
(:class:`SparseSynthesis`) and the patches are averaged where they overlap by the native patch
aggregation (:class:`PatchAverage`). :func:`dense_code_map` builds the dense map for tests that
compare with ``conv_transpose2d``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from ..patches import extract_patches_2d, grid_positions, reconstruct_from_patches_2d
from ._torch import require_torch

torch = require_torch()
F = torch.nn.functional
once_differentiable = torch.autograd.function.once_differentiable


def native_array(tensor: Any, name: str, owner: str, *, strided: bool = False) -> np.ndarray:
    """A numpy view of a CPU tensor for the native kernels: detached, and copied only when
    it is not contiguous (`strided`: never; for the incoming gradients, which the kernels
    read with any strides). Tensors elsewhere are refused, naming the argument: the kernels
    on a support run on the CPU only."""
    if tensor.device.type != "cpu":
        raise ValueError(f"{owner}: `{name}` is on {tensor.device}, but it runs on the CPU "
                         "only; move the tensors there with .cpu()")
    tensor = tensor.detach()
    return (tensor if strided else tensor.contiguous()).numpy()


def native_indices(indices: Any, rows: int, owner: str) -> np.ndarray:
    """`indices` (rows, L) as a contiguous int64 numpy view (converted from another integer
    dtype); the native kernel checks that every entry is -1 or a valid row."""
    if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
        raise TypeError(f"{owner}: `indices` must hold integers, got {indices.dtype}")
    if indices.dim() != 2 or indices.shape[0] != rows:
        raise ValueError(f"{owner}: `indices` must have shape ({rows}, L), got "
                         f"{tuple(indices.shape)}")
    return native_array(indices.to(torch.long), "indices", owner)


def check_float(tensor: Any, name: str, dtype: Any, owner: str) -> None:
    """`tensor` is float32 / float64 and, when `dtype` is given, of that dtype."""
    if tensor.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{owner}: `{name}` must be float32 or float64, got {tensor.dtype}")
    if dtype is not None and tensor.dtype != dtype:
        raise TypeError(f"{owner}: `{name}` has dtype {tensor.dtype}, expected {dtype} like "
                        "the other floating-point arguments")


class SparseSynthesis(torch.autograd.Function):
    """``out[i] = sum_l coefs[i, l] * weight[indices[i, l]]`` for padded sparse codes.

    Forward arguments
    -----------------
    indices : LongTensor (N, L)
        Atom (row of `weight`) per slot, -1 for an empty slot.
    coefs : Tensor (N, L)
        Coefficients (ignored in empty slots).
    weight : Tensor (A, F)
        One flattened kernel per atom.

    Returns
    -------
    out : Tensor (N, F)

    Differentiable in `coefs` and `weight` (once: the backward is a native kernel). CPU
    tensors, float32 or float64; the native kernels (``_core.sparse_synthesis`` and its
    backward) run on ``torch.get_num_threads()`` threads. Each row's output sums its slots'
    kernels in slot order (independent of the thread count); the kernel gradient
    ``dW[a] = sum of coefs[i, l] grad[i] over the slots using kernel a`` is summed per thread
    and the threads' sums added in order, so it is deterministic for a given thread count.
    ``dcoefs[i, l] = grad[i] . weight[indices[i, l]]`` (0 in empty slots).
    """

    @staticmethod
    def forward(ctx, indices, coefs, weight):
        owner = "SparseSynthesis"
        check_float(weight, "weight", None, owner)
        check_float(coefs, "coefs", weight.dtype, owner)
        if weight.dim() != 2:
            raise ValueError(f"{owner}: `weight` must have shape (A, F), got "
                             f"{tuple(weight.shape)}")
        if coefs.dim() != 2:
            raise ValueError(f"{owner}: `coefs` must have shape (N, L), got "
                             f"{tuple(coefs.shape)}")
        idx = native_indices(indices, coefs.shape[0], owner)
        if idx.shape != tuple(coefs.shape):
            raise ValueError(f"{owner}: `indices` {tuple(idx.shape)} and `coefs` "
                             f"{tuple(coefs.shape)} must have the same shape")
        w = native_array(weight, "weight", owner)
        out = torch.empty((idx.shape[0], w.shape[1]), dtype=weight.dtype)
        _core.sparse_synthesis({
            "n_signals": idx.shape[0], "n_features": w.shape[1], "n_atoms": w.shape[0],
            "max_atoms": idx.shape[1], "indices": idx,
            "coefs": native_array(coefs, "coefs", owner), "weight": w, "out": out.numpy(),
            "n_threads": torch.get_num_threads()})
        ctx.save_for_backward(indices, coefs, weight)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        indices, coefs, weight = ctx.saved_tensors
        owner = "SparseSynthesis"
        dc = torch.empty(coefs.shape, dtype=coefs.dtype) if ctx.needs_input_grad[1] else None
        dw = torch.empty(weight.shape, dtype=weight.dtype) if ctx.needs_input_grad[2] else None
        if dc is None and dw is None:
            return None, None, None
        idx = native_indices(indices, coefs.shape[0], owner)
        w = native_array(weight, "weight", owner)
        _core.sparse_synthesis_backward({
            "n_signals": idx.shape[0], "n_features": w.shape[1], "n_atoms": w.shape[0],
            "max_atoms": idx.shape[1], "indices": idx,
            "coefs": native_array(coefs, "coefs", owner), "weight": w,
            "grad": native_array(grad.to(weight.dtype), "grad", owner, strided=True),
            "out_dcoefs": None if dc is None else dc.numpy(),
            "out_dweight": None if dw is None else dw.numpy(),
            "n_threads": torch.get_num_threads()})
        return None, dc, dw


def patch_grid(height: int, width: int, patch: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left rows and columns of the grid patches (sparseforge's grid: every `step`, plus
    always the last position)."""
    return grid_positions(height, patch, step), grid_positions(width, patch, step)


def _linear_positions(height: int, width: int, patch: int, step: int) -> Any:
    """Indices of the grid patches among all ``(H-p+1) * (W-p+1)`` stride-1 positions, in
    row-major order (that of :func:`sparseforge.extract_patches_2d`)."""
    rows, cols = patch_grid(height, width, patch, step)
    lin = rows[:, None] * (width - patch + 1) + cols[None, :]
    return torch.from_numpy(lin.ravel().astype(np.int64))


def extract_patches(images: Any, patch: int, step: int) -> Any:
    """Grid patches of a batch, differentiably: (B, C, H, W) -> (B, n_patches, C*p*p), the
    features of each patch in C-order (channel, row, column)."""
    _, _, h, w = images.shape
    cols = F.unfold(images, patch)                               # (B, C*p*p, all positions)
    if step != 1:
        cols = cols[:, :, _linear_positions(h, w, patch, step)]
    return cols.transpose(1, 2)


def overlap_add(patches: Any, height: int, width: int, patch: int, step: int) -> Any:
    """Sum of the grid patches where they overlap: (B, n_patches, C*p*p) -> (B, C, H, W);
    the adjoint of :func:`extract_patches`."""
    b, _, features = patches.shape
    cols = patches.transpose(1, 2)
    if step != 1:
        full = cols.new_zeros((b, features, (height - patch + 1) * (width - patch + 1)))
        full[:, :, _linear_positions(height, width, patch, step)] = cols
        cols = full
    return F.fold(cols, (height, width), patch)


class PatchAverage(torch.autograd.Function):
    """The image whose pixels average the grid patches covering them:
    ``(B, n_patches, p*p*C) -> (B, C, H, W)``, each patch's features channels last (row,
    column, channel: the layout of :func:`sparseforge.extract_patches_2d`).

    Forward arguments: ``patches, height, width, patch, step``. Equal to
    ``overlap_add(...) / coverage(...)`` on the features reordered (tested to round-off), but
    by the native aggregation (``sparseforge.reconstruct_from_patches_2d``) on
    ``torch.get_num_threads()`` threads: ``F.fold`` took 0.64 s for the 97,000 patches of a
    352 x 288 image (4 channels, 1 thread; a third of the blind hybrid's inference), the
    native kernel 0.05 s. The backward is the adjoint, the native extraction of
    ``grad / coverage``. CPU tensors, float32 or float64. Non-finite values (a diverged
    model) take the ``fold`` path, which propagates them as any torch operation does, where
    the native kernels would refuse them.
    """

    @staticmethod
    def forward(ctx, patches, height, width, patch, step):
        b, n, features = patches.shape
        channels = features // (patch * patch)
        ctx.geometry = (height, width, patch, step, channels)
        src = native_array(patches, "patches", "PatchAverage").reshape(
            b, n, patch, patch, channels)
        threads = torch.get_num_threads()
        try:
            out = np.stack([reconstruct_from_patches_2d(src[i], (height, width, channels),
                                                        step=step, n_jobs=threads)
                            for i in range(b)])
        except ValueError:
            if bool(torch.isfinite(patches).all()):
                raise
            cols = patches.detach().reshape(b, n, patch, patch, channels).permute(0, 1, 4, 2, 3)
            return (overlap_add(cols.reshape(b, n, features), height, width, patch, step)
                    / coverage(height, width, patch, step, patches.dtype))
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        height, width, patch, step, channels = ctx.geometry
        spread = grad / coverage(height, width, patch, step, grad.dtype)
        image = spread.permute(0, 2, 3, 1).contiguous()          # (B, H, W, C)
        b = image.shape[0]
        threads = torch.get_num_threads()
        try:
            out = np.stack([extract_patches_2d(image[i].numpy(), (patch, patch), step=step,
                                               n_jobs=threads).reshape(-1, patch * patch * channels)
                            for i in range(b)])
            dpatches = torch.from_numpy(out)
        except ValueError:
            if bool(torch.isfinite(image).all()):
                raise
            cols = extract_patches(spread, patch, step)               # (B, n, C*p*p)
            n = cols.shape[1]
            dpatches = cols.reshape(b, n, channels, patch, patch).permute(0, 1, 3, 4, 2)
            dpatches = dpatches.reshape(b, n, -1)
        return dpatches, None, None, None, None


def coverage(height: int, width: int, patch: int, step: int, dtype: Any) -> Any:
    """Number of grid patches covering each pixel, (1, 1, H, W)."""
    # The classical restorers' separable count (an outer product of per-axis counts), not an
    # overlap-add of an N x p^2 tensor of ones (1 GB for a 2048 x 2048 image).
    from .classical import _coverage

    count = _coverage((height, width), patch, step, np.float64)
    return torch.from_numpy(count).to(dtype)[None, None]


def dense_code_map(indices: Any, coefs: Any, n_atoms: int, batch: int, height: int,
                   width: int, patch: int, step: int) -> Any:
    """The code map as a dense (B, n_atoms, H-p+1, W-p+1) tensor (zero off the patch grid),
    the input of the equivalent ``conv_transpose2d``; for tests and small images only."""
    rows, cols = patch_grid(height, width, patch, step)
    hp, wp = height - patch + 1, width - patch + 1
    n_patches = rows.size * cols.size
    out = coefs.new_zeros((batch, n_atoms, hp * wp))
    lin = _linear_positions(height, width, patch, step)
    valid = indices >= 0
    patch_id = torch.arange(indices.shape[0]).unsqueeze(1).expand_as(indices)[valid]
    image, pos = patch_id // n_patches, lin[patch_id % n_patches]
    out.index_put_((image, indices[valid], pos), coefs[valid], accumulate=True)
    return out.reshape(batch, n_atoms, hp, wp)
