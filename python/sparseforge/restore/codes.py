"""Sparse codes that torch can differentiate: the native OMP picks the support, a native
least-squares kernel recomputes the coefficients on it.

OMP's atom selection is piecewise constant in its inputs (no useful gradient), but given the
support, OMP's coefficients are the least-squares fit of the signal on the chosen atoms, a
smooth function of both the signal and the atoms. :class:`LeastSquaresOnSupport` computes that
fit for a batch of small systems (``_core.support_lstsq``) and differentiates it analytically
(``_core.support_lstsq_backward``), so a loss downstream trains the dictionary (and reaches
the input image).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from ..omp import sparse_encode
from ._torch import require_torch
from .synthesis import check_float, native_array, native_indices

torch = require_torch()
once_differentiable = torch.autograd.function.once_differentiable


class LeastSquaresOnSupport(torch.autograd.Function):
    """Coefficients of the least-squares fit of each signal on its chosen atoms.

    ``c_i = argmin_c sum_f w_if (x_if - sum_l c_l D[idx_il, f])²`` for every row i, where the
    optional weights `w` (0/1 for a mask of observed entries) select the entries that count.
    Differentiable in `X` and `D` (once: the backward is a native kernel); the support
    `indices` and the weights are constants.

    Forward arguments
    -----------------
    X : Tensor (N, n)
        Signals, on the CPU, float32 or float64.
    D : Tensor (K, n)
        Atoms as rows (any norms), the dtype of `X`.
    indices : LongTensor (N, L)
        Chosen atoms per signal, padded with -1 (other entries in [0, K)).
    weights : Tensor (N, n) or None
        Per-entry weights (the observation mask), converted to the dtype of `X`; None for
        all ones.

    Returns
    -------
    coefficients : Tensor (N, L)
        0 in padded and dropped slots.

    Notes
    -----
    Each row solves the normal equations ``G c = b``, ``G = A W Aᵀ``, ``b = A W x`` (A: the
    row's atoms, W = diag(w)) by Cholesky, slots in order, in a native kernel
    (``_core.support_lstsq``) on ``torch.get_num_threads()`` threads. Dropped slots: a slot
    whose Cholesky pivot (the squared weighted distance of its atom to the span of the
    earlier kept slots' atoms) is at most ``64 eps max_l G[l, l]`` (eps of the dtype; the
    maximum over the row's non-padded slots) gets coefficient 0 and is treated as padded from
    then on, here and in the backward: the fit is on the kept slots. That covers an atom
    repeated in a support, an atom with no weight on the observed entries and masks with
    fewer observed entries than atoms (G singular): the result stays finite (when the kept
    atoms are themselves ill-conditioned, round-off decides which slots drop). A NaN in the
    inputs is not dropped: it reaches the coefficients.

    Backward (``_core.support_lstsq_backward``): with ``u = G⁻¹ ∂L/∂c`` (0 in padded and
    dropped slots), ``∂L/∂x = W Aᵀ u`` and ``∂L/∂A = u rᵀ − c (W Aᵀ u)ᵀ`` with
    ``r = W (x − Aᵀ c)``; the rows of ``∂L/∂A`` are added to the atoms they came from.
    Nothing but the inputs and the coefficients is kept between forward and backward: the
    systems are rebuilt and refactored. The coefficients do not depend on the thread count;
    ``∂L/∂D`` is summed per thread and the sums added in thread order (deterministic for a
    given thread count).

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
        args = _native_args(X, D, indices, weights)
        out = torch.empty(args["indices"].shape, dtype=X.dtype)
        _core.support_lstsq(dict(args, out=out.numpy()))
        ctx.save_for_backward(X, D, indices, out, weights)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Any) -> Any:
        X, D, indices, coefs, weights = ctx.saved_tensors
        dX = torch.empty(X.shape, dtype=X.dtype) if ctx.needs_input_grad[0] else None
        dD = torch.empty(D.shape, dtype=D.dtype) if ctx.needs_input_grad[1] else None
        if dX is None and dD is None:
            return None, None, None, None
        owner = "LeastSquaresOnSupport"
        args = _native_args(X, D, indices, weights)
        _core.support_lstsq_backward(dict(
            args, coefs=native_array(coefs, "coefs", owner),
            grad=native_array(grad.to(X.dtype), "grad", owner, strided=True),
            out_dx=None if dX is None else dX.numpy(),
            out_dd=None if dD is None else dD.numpy()))
        return dX, dD, None, None


def _native_args(X: Any, D: Any, indices: Any, weights: Any) -> dict[str, Any]:
    """The `args` of ``_core.support_lstsq`` (without `out`) for the autograd Function's
    inputs, checked and named here; numpy views, copied only when not contiguous (or, for
    `indices` / `weights`, not int64 / of X's dtype)."""
    owner = "LeastSquaresOnSupport"
    check_float(X, "X", None, owner)
    check_float(D, "D", X.dtype, owner)
    if X.dim() != 2:
        raise ValueError(f"{owner}: `X` must have shape (N, n), got {tuple(X.shape)}")
    if D.dim() != 2 or D.shape[1] != X.shape[1]:
        raise ValueError(f"{owner}: `D` must have shape (K, n={X.shape[1]}), got "
                         f"{tuple(D.shape)}")
    idx = native_indices(indices, X.shape[0], owner)
    w = None
    if weights is not None:
        if tuple(weights.shape) != tuple(X.shape):
            raise ValueError(f"{owner}: `weights` must have the shape of `X` "
                             f"{tuple(X.shape)}, got {tuple(weights.shape)}")
        w = native_array(weights.to(X.dtype), "weights", owner)
    return {"n_signals": X.shape[0], "n_features": X.shape[1], "n_atoms": D.shape[0],
            "max_atoms": idx.shape[1], "x": native_array(X, "X", owner),
            "dictionary": native_array(D, "D", owner), "weights": w, "indices": idx,
            "n_threads": torch.get_num_threads()}


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
    :class:`LeastSquaresOnSupport` (native too, differentiable), which equal OMP's own up to
    round-off.

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
