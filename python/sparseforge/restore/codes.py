"""Sparse codes that torch can differentiate: the native OMP picks the support, torch
recomputes the coefficients on it.

OMP's atom selection is piecewise constant in its inputs (no useful gradient), but given the
support, OMP's coefficients are the least-squares fit of the signal on the chosen atoms, a
smooth function of both the signal and the atoms. :class:`LeastSquaresOnSupport` computes that
fit for a batch of small systems and differentiates it analytically, so a loss downstream
trains the dictionary (and reaches the input image).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..omp import sparse_encode
from ._torch import require_torch
from .synthesis import scatter_codes

torch = require_torch()

# Signals per block in the batched solves: bounds the (block, L, n) gathered atoms (about
# 64 MiB at L=16, n=64, float32) whatever the number of patches.
_BLOCK = 16384


def _systems(X, D, indices, weights, gram):
    """The normal equations ``G c = b`` of every row: ``G = A W Aᵀ`` (N, L, L) with 1 on the
    diagonal of padded slots (so their coefficient solves to 0) and ``b = A W x`` (N, L),
    where A holds the row's atoms. Without weights G is gathered from the full Gram `gram`;
    b is always a gather of the dense product ``(W x) Dᵀ`` (BLAS, not N small products)."""
    valid = indices >= 0
    idx = indices.clamp(min=0)
    xw = X if weights is None else X * weights
    b = torch.where(valid, (xw @ D.T).gather(1, idx), 0)
    pair = valid.unsqueeze(2) & valid.unsqueeze(1)
    if weights is None:
        G = gram[idx.unsqueeze(2), idx.unsqueeze(1)]
    else:
        A = D[idx]
        G = (A * weights.unsqueeze(1)) @ A.transpose(1, 2)
    G = torch.where(pair, G, 0) + torch.diag_embed((~valid).to(D.dtype))
    return G, b


class LeastSquaresOnSupport(torch.autograd.Function):
    """Coefficients of the least-squares fit of each signal on its chosen atoms.

    ``c_i = argmin_c || w_i * (x_i - sum_l c_l D[idx_il]) ||²`` for every row i, where the
    optional weights `w` (0/1 for a mask of observed entries) select the entries that count.
    Differentiable in `X` and `D`; the support `indices` and the weights are constants.

    Forward arguments
    -----------------
    X : Tensor (N, n)
        Signals.
    D : Tensor (K, n)
        Atoms as rows (any norms).
    indices : LongTensor (N, L)
        Chosen atoms per signal, padded with -1.
    weights : Tensor (N, n) or None
        Per-entry weights (the observation mask); None for all ones.

    Returns
    -------
    coefficients : Tensor (N, L)
        0 in padded slots.

    Notes
    -----
    With ``G = A W Aᵀ``, ``c = G⁻¹ A W x`` and ``u = G⁻¹ ∂L/∂c``:
    ``∂L/∂x = W Aᵀ u`` and ``∂L/∂A = u rᵀ − c (W Aᵀ u)ᵀ`` with ``r = W (x − Aᵀ c)``; the rows of
    ``∂L/∂A`` are added to the atoms they came from. Nothing of size (N, L, n) is kept between
    forward and backward: the systems are rebuilt block by block.

    Examples
    --------
    >>> import torch
    >>> import sparseforge as sf
    >>> from sparseforge.restore import LeastSquaresOnSupport
    >>> D = torch.tensor(sf.overcomplete_dct(4, 6))         # 36 atoms of 16 features
    >>> X = torch.stack([2.0 * D[3] - 0.5 * D[20], D[7]])   # two signals
    >>> indices = torch.tensor([[3, 20], [7, -1]])          # their supports, -1 padded
    >>> LeastSquaresOnSupport.apply(X, D, indices, None).round(decimals=6).tolist()
    [[2.0, -0.5], [1.0, 0.0]]

    The analytic backward agrees with finite differences, in the signals and the atoms:

    >>> X, D = X.requires_grad_(), D.requires_grad_()
    >>> torch.autograd.gradcheck(LeastSquaresOnSupport.apply, (X, D, indices, None),
    ...                          fast_mode=True)
    True
    """

    @staticmethod
    def forward(ctx: Any, X: Any, D: Any, indices: Any, weights: Any = None) -> Any:
        out = X.new_zeros(indices.shape, dtype=X.dtype)
        gram = D @ D.T if weights is None else None
        for s in range(0, X.shape[0], _BLOCK):
            e = s + _BLOCK
            w = None if weights is None else weights[s:e]
            G, b = _systems(X[s:e], D, indices[s:e], w, gram)
            out[s:e] = torch.linalg.solve(G, b)
        ctx.save_for_backward(X, D, indices, out, weights)
        return out

    @staticmethod
    def backward(ctx, grad):
        X, D, indices, coefs, weights = ctx.saved_tensors
        dX = torch.zeros_like(X) if ctx.needs_input_grad[0] else None
        dD = torch.zeros_like(D) if ctx.needs_input_grad[1] else None
        gram = D @ D.T if weights is None else None
        k = D.shape[0]
        for s in range(0, X.shape[0], _BLOCK):
            e = s + _BLOCK
            w = None if weights is None else weights[s:e]
            idx = indices[s:e]
            G, _ = _systems(X[s:e], D, idx, w, gram)
            # G is symmetric, so G⁻ᵀ g = G⁻¹ g; u is 0 in padded slots (G is the identity
            # there and the incoming gradient of a padded coefficient is ignored).
            u = torch.where(idx >= 0, torch.linalg.solve(G, grad[s:e]), 0)
            # With U and C the codes u and c scattered densely (B, K): Aᵀu = U D and
            # Aᵀc = C D, and dA[i, l] = u_il r_i - c_il (W Aᵀu)_i summed into atom idx_il is
            # dD = Uᵀ R - Cᵀ (W Aᵀu): BLAS products instead of (B, L, n) gathers.
            U = scatter_codes(idx, u, k)
            WAtu = U @ D if w is None else (U @ D) * w
            if dX is not None:
                dX[s:e] = WAtu
            if dD is not None:
                C = scatter_codes(idx, coefs[s:e], k)
                r = X[s:e] - C @ D
                if w is not None:
                    r = r * w
                dD.addmm_(U.T, r)
                dD.addmm_(C.T, WAtu, alpha=-1)
        return dX, dD, None, None


def omp_support(X: Any, D: Any, *, tol: float | None = None,
                n_nonzero_coefs: int | None = None, mask: Any = None,
                n_jobs: int | None = None) -> Any:
    """The atoms the native Batch-OMP chooses for each row of `X` (no gradient).

    Parameters
    ----------
    X : Tensor (N, n)
        Signals on the CPU, float32 or float64 (detached and read as numpy without a copy).
    D : Tensor (K, n)
        Atoms as rows, same dtype.
    tol, n_nonzero_coefs
        As in :func:`sparseforge.sparse_encode` (`tol`: maximum squared residual norm).
    mask : Tensor (N, n) of bool, optional
        Observed entries: masked OMP.
    n_jobs : int, optional
        Threads of the native kernel.

    Returns
    -------
    indices : LongTensor (N, L)
        Chosen atoms in selection order, padded with -1 (L = the widest support, >= 1).
    """
    Xn = np.ascontiguousarray(X.detach().cpu().numpy())
    Dn = np.ascontiguousarray(D.detach().cpu().numpy())
    Mn = None if mask is None else np.ascontiguousarray(mask.detach().cpu().numpy())
    if Xn.shape[0] == 0:
        return torch.full((0, 1), -1, dtype=torch.long)
    codes = sparse_encode(Xn, Dn, tol=tol, n_nonzero_coefs=n_nonzero_coefs, mask=Mn,
                          n_jobs=n_jobs, output="compact")
    indices = codes.indices
    if indices.shape[1] == 0:  # every signal coded with no atom (all below tol)
        indices = np.full((Xn.shape[0], 1), -1, np.int32)
    return torch.from_numpy(indices.astype(np.int64))


def sparse_codes(X: Any, D: Any, *, tol: float | None = None,
                 n_nonzero_coefs: int | None = None, mask: Any = None,
                 n_jobs: int | None = None) -> tuple[Any, Any]:
    """OMP codes of the rows of `X` over `D`, differentiable in `X` and `D`.

    The support comes from :func:`omp_support` (native kernel); the coefficients from
    :class:`LeastSquaresOnSupport` (torch), which equal OMP's own up to round-off.

    Parameters
    ----------
    X : Tensor (N, n)
        Signals on the CPU, float32 or float64.
    D : Tensor (K, n)
        Atoms as rows, same dtype.
    tol, n_nonzero_coefs
        As in :func:`sparseforge.sparse_encode` (`tol`: maximum squared residual norm).
    mask : Tensor (N, n) of bool, optional
        Observed entries: masked OMP, and the least squares on those entries only.
    n_jobs : int, optional
        Threads of the native kernel.

    Returns
    -------
    indices : LongTensor (N, L)
        Chosen atoms, padded with -1.
    coefficients : Tensor (N, L)
        Their coefficients, 0 in padded slots.

    Examples
    --------
    >>> import torch
    >>> import sparseforge as sf
    >>> from sparseforge.restore import sparse_codes
    >>> D = torch.tensor(sf.overcomplete_dct(4, 6))          # 36 atoms of 16 features
    >>> X = torch.stack([2.0 * D[3] - 0.5 * D[20], D[7]])
    >>> indices, coefs = sparse_codes(X, D, n_nonzero_coefs=2)
    >>> indices.tolist(), coefs.round(decimals=6).tolist()
    ([[3, 20], [7, -1]], [[2.0, -0.5], [1.0, 0.0]])

    A loss on the codes reaches the atoms that were used (and only those):

    >>> atoms = D.clone().requires_grad_()
    >>> _, coefs = sparse_codes(X, atoms, n_nonzero_coefs=2)
    >>> coefs.abs().sum().backward()
    >>> torch.nonzero(atoms.grad.abs().sum(dim=1)).flatten().tolist()
    [3, 7, 20]
    """
    indices = omp_support(X, D, tol=tol, n_nonzero_coefs=n_nonzero_coefs, mask=mask,
                          n_jobs=n_jobs)
    weights = None if mask is None else mask.to(X.dtype)
    return indices, LeastSquaresOnSupport.apply(X, D, indices, weights)
