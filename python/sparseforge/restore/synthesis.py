"""Sparse transposed convolution: patch codes -> images, without a dense code map.

The aggregate of coded patches, ``sum_p P_p^T (sum_k g_pk w_k)``, is a transposed convolution
of the code map (one channel per atom, nonzero only at patch positions and only on each
patch's few atoms) with the atoms as kernels. Forming that map densely costs K channels per
pixel (256 x H x W floats); here each patch's output is summed from its own atoms only and the
overlap-add is ``torch.nn.functional.fold``. :func:`dense_code_map` builds the dense map for
tests that compare with ``conv_transpose2d``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..patches import grid_positions
from ._torch import require_torch

torch = require_torch()
F = torch.nn.functional

# Entries of a dense (block, n_kernels) code block: bounds the scratch to 16 MiB of float32
# per block whatever the number of patches.
_BLOCK_ELEMENTS = 1 << 22


def _block_rows(n_kernels: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(1, n_kernels))


def scatter_codes(indices: Any, coefs: Any, n_columns: int) -> Any:
    """Padded sparse codes (N, L) as a dense (N, n_columns) matrix; -1 slots dropped.

    Repeated indices in a row add up (a row of OMP codes never repeats an atom)."""
    valid = indices >= 0
    dense = coefs.new_zeros((indices.shape[0], n_columns))
    return dense.scatter_add_(1, indices.clamp(min=0), torch.where(valid, coefs, 0))


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

    Differentiable in `coefs` and `weight`. Block by block the codes are scattered into a
    dense (block, A) matrix C and ``out = C W``, ``dW = Cᵀ g``, ``dcoefs = (g Wᵀ)[i, idx]``:
    three BLAS products. Gathering each slot's kernel instead, an (N, L, F) stream, was 4x
    slower on 2 cores (memory bound) although it does fewer flops.
    """

    @staticmethod
    def forward(ctx, indices, coefs, weight):
        n_kernels = weight.shape[0]
        out = weight.new_empty((indices.shape[0], weight.shape[1]))
        step = _block_rows(n_kernels)
        for s in range(0, indices.shape[0], step):
            dense = scatter_codes(indices[s:s + step], coefs[s:s + step], n_kernels)
            torch.mm(dense, weight, out=out[s:s + step])
        ctx.save_for_backward(indices, coefs, weight)
        return out

    @staticmethod
    def backward(ctx, grad):
        indices, coefs, weight = ctx.saved_tensors
        n_kernels = weight.shape[0]
        dc = torch.zeros_like(coefs) if ctx.needs_input_grad[1] else None
        dw = torch.zeros_like(weight) if ctx.needs_input_grad[2] else None
        step = _block_rows(n_kernels)
        for s in range(0, indices.shape[0], step):
            idx, g = indices[s:s + step], grad[s:s + step]
            if dc is not None:
                per_kernel = g @ weight.T                                  # (B, A)
                dc[s:s + step] = torch.where(idx >= 0,
                                             per_kernel.gather(1, idx.clamp(min=0)), 0)
            if dw is not None:
                dw.addmm_(scatter_codes(idx, coefs[s:s + step], n_kernels).T, g)
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


def coverage(height: int, width: int, patch: int, step: int, dtype: Any) -> Any:
    """Number of grid patches covering each pixel, (1, 1, H, W)."""
    n = patch_grid(height, width, patch, step)
    ones = torch.ones((1, n[0].size * n[1].size, patch * patch), dtype=dtype)
    return overlap_add(ones, height, width, patch, step)


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
