"""K-SVD on CUDA arrays: the CPU path's iteration (code, sweep the atoms, replace dead and
duplicate atoms) with every array on the GPU.

The atom sweep is sequential K-SVD, the CPU's algorithm and order: one warp updates the atoms
one after another on the shared ksvd_atom.hpp body (csrc/cuda/ksvd_kernels.cu). The
bookkeeping around it (users of each atom, residual, replacements) is torch code, written
device-agnostically so the tests run it on CPU tensors against the numpy path. CuPy inputs are
viewed as torch tensors through DLPack (zero-copy; torch must be installed) and the results
handed back as CuPy arrays.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np

from . import _backend
from ._arrays import DeviceContext, check_float, device_context
from ._codes import SparseCodes


def users_per_atom(indices, n_atoms: int):
    """Users of every atom, in signal order, from compact code indices (N, M), -1 = empty.

    Returns
    -------
    start : int64 tensor (n_atoms + 1,)
        Atom k's users are entries start[k] .. start[k + 1] - 1 of the next two.
    user_signal, user_slot : int32 tensors (N * M,)
        Signal index and code slot of each user (entries past start[-1] are unused).
    usage : int64 tensor (n_atoms,)
    """
    import torch

    flat = indices.reshape(-1).long()
    # Empty slots sort last, as a virtual atom n_atoms; a stable sort keeps signal order.
    key = torch.where(flat >= 0, flat, torch.full_like(flat, n_atoms))
    usage = torch.bincount(key, minlength=n_atoms + 1)[:n_atoms]
    order = torch.argsort(key, stable=True)
    start = torch.zeros(n_atoms + 1, dtype=torch.int64, device=indices.device)
    start[1:] = torch.cumsum(usage, 0)
    m = indices.shape[1]
    return start, (order // m).int(), (order % m).int(), usage


def coded_residual(X, D, indices, values, residual):
    """residual = X - codes @ D in place (atoms subtracted in slot order, as on the CPU);
    returns the squared Frobenius norm as a float64 tensor."""
    import torch

    residual.copy_(X)
    for j in range(indices.shape[1]):
        idx = indices[:, j].long()
        used = idx >= 0
        coef = torch.where(used, values[:, j], torch.zeros_like(values[:, j]))
        residual -= coef[:, None] * D[idx.clamp(min=0)]
    return (residual.double() ** 2).sum()


def replace_atoms(X, D, codes: SparseCodes, residual, usage, threshold: float, x_norms,
                  replacement: str = "residual"):
    """The CPU path's replacement (ksvd._replace_atoms) in torch, in place: unused atoms and
    near-duplicates become the worst-represented signals' normalised residuals (or the
    signals: `replacement`), chosen before the codes that used a replaced duplicate are
    dropped with the residual corrected. Returns (dead, duplicates, per-signal squared
    residual norms)."""
    import torch

    indices, values, counts = codes.indices, codes.values, codes.counts
    dead = torch.nonzero(usage == 0).flatten()
    from ._cuda_dispatch import no_tf32

    with no_tf32("torch"):  # TF32's ~1e-3 error could flip the 0.99 duplicate test
        coherent = (torch.tril((D @ D.T).abs(), -1) > threshold).any(1)
    coherent[dead] = False
    duplicate = torch.nonzero(coherent).flatten()
    replace = torch.cat([dead, duplicate])
    sources = _replacement_atoms(X, residual, x_norms, replace.numel(), replacement)
    if duplicate.numel():
        rows, slots = torch.nonzero(torch.isin(indices.long(), duplicate), as_tuple=True)
        # index_add_ accumulates a signal that used several duplicates.
        residual.index_add_(0, rows, values[rows, slots][:, None] * D[indices[rows, slots].long()])
        values[rows, slots] = 0
        indices[rows, slots] = -1
        counts.index_add_(0, rows, torch.full_like(rows, -1, dtype=counts.dtype))
        touched = torch.unique(rows)
        order = torch.argsort((indices[touched] < 0).int(), dim=1, stable=True)
        indices[touched] = torch.gather(indices[touched], 1, order)
        values[touched] = torch.gather(values[touched], 1, order)
    D[replace[:sources.shape[0]]] = sources
    return int(dead.numel()), int(duplicate.numel()), (residual * residual).sum(1)


def _replacement_atoms(X, residual, x_norms, count: int, replacement: str):
    """ksvd._replacement_atoms in torch."""
    import torch

    if count == 0:
        return X[:0]
    errors = (residual * residual).sum(1)
    candidates = torch.where(x_norms > 0, errors, torch.full_like(errors, -1.0))
    worst = torch.topk(candidates, min(count, candidates.numel())).indices
    worst = worst[candidates[worst] > 0]
    if replacement == "residual":
        return residual[worst] / torch.sqrt(errors[worst])[:, None]
    return X[worst] / torch.sqrt(x_norms[worst])[:, None]


def sweep_on_device(ctx: DeviceContext, X, D, codes: SparseCodes, residual, *, exact: bool,
                    max_power_iter: int, power_tol: float = 1e-7):
    """One sequential atom sweep on the GPU, in place on D, codes.values and residual.

    Returns (usage, squared Frobenius error of the codes before the sweep)."""
    import torch

    n_atoms, n_features = D.shape
    start, user_signal, user_slot, usage = users_per_atom(codes.indices, n_atoms)
    coded_error = float(coded_residual(X, D, codes.indices, codes.values, residual))
    if codes.indices.shape[1] == 0:  # tol mode, every signal coded by zero atoms
        return usage, coded_error
    most = max(1, int(usage.max()))
    rows = torch.empty(most * n_features, dtype=D.dtype, device=D.device)
    g, h = (torch.empty(most, dtype=D.dtype, device=D.device) for _ in range(2))
    d, e = (torch.empty(n_features, dtype=D.dtype, device=D.device) for _ in range(2))
    ptr = ctx.ptr
    # The stream current now (a callback may have switched it since the context was made):
    # the scratch above was allocated on it, so the kernel must run on it too.
    stream = torch.cuda.current_stream(D.device).cuda_stream if D.is_cuda else ctx.stream
    _backend._cuda.ksvd_update_atoms(_numpy_dtype(D).name, ctx.device, stream, {
        "n_features": n_features, "max_atoms": codes.indices.shape[1], "n_atoms": n_atoms,
        "dictionary": ptr(D), "values": ptr(codes.values), "residual": ptr(residual),
        "user_start": ptr(start), "user_signal": ptr(user_signal),
        "user_slot": ptr(user_slot), "rows": ptr(rows), "g": ptr(g), "h": ptr(h),
        "d": ptr(d), "e": ptr(e), "exact": exact, "max_power_iter": max_power_iter,
        "power_tol": power_tol})
    # No sync: the scratch goes back to torch's caching allocator, which hands it out again
    # only to work on the same stream, ordered after this kernel.
    return usage, coded_error


def run(X, D, *, encode: Callable, sweep: Callable, n_iter: int, duplicate_threshold: float,
        callback: Callable | None, progress, atom_replacement: str = "residual",
        to_caller: Callable = lambda t: t) -> tuple[Any, SparseCodes, np.ndarray]:
    """The K-SVD iterations on torch tensors X (N, n) and D (K, n), D updated in place.

    `encode(X, D)` returns compact SparseCodes of torch tensors; `sweep(X, D, codes,
    residual)` updates the atoms in place and returns (usage, coded squared error).
    """
    import torch

    from .ksvd import KSVDIteration

    x_norms = (X * X).sum(1)
    residual = torch.empty_like(X)
    errors = np.empty(n_iter)
    codes = None
    for it in range(n_iter):
        with warnings.catch_warnings():
            # Dependent atoms (duplicates the sweep has not replaced yet) are expected.
            warnings.filterwarnings("ignore", message="Orthogonal matching pursuit ended")
            coded = encode(X, D)
        codes = SparseCodes(coded.indices.contiguous(), coded.values.contiguous(),
                            coded.counts, coded.status, D.shape[0])
        usage, coded_error = sweep(X, D, codes, residual)
        n_dead, n_dup, signal_errors = replace_atoms(X, D, codes, residual, usage,
                                                     duplicate_threshold, x_norms,
                                                     atom_replacement)
        errors[it] = math.sqrt(float(signal_errors.double().sum()) / X.numel())
        if progress is not None:
            progress.set_postfix(rmse=f"{errors[it]:.4g}", replaced=n_dead + n_dup)
            progress.update()
        if callback is not None:
            callback(KSVDIteration(it, errors[it], math.sqrt(coded_error / X.numel()), n_dead,
                                   n_dup, to_caller(D.clone())))
    if codes is None:
        codes = encode(X, D)
    return D, codes, errors


def _context(X: Any, dict_init: Any) -> DeviceContext:
    named = {"X": X}
    if not isinstance(dict_init, str):
        named["dict_init"] = dict_init
    return device_context(named)


def check_signals(X: Any, dict_init: Any):
    """`X` (returned as is) when it and a `dict_init` array are CUDA arrays on one device and
    `X` is a 2-D float array; raises naming the argument otherwise."""
    check_float(_context(X, dict_init).arrays["X"], ndim=2)
    return X


def ksvd(X: Any, n_components: int, *, n_nonzero_coefs: int | None, tol: float | None,
         n_iter: int, method: str, dict_init: Any, random_state: Any,
         callback: Callable | None, verbose: bool, duplicate_threshold: float,
         max_power_iter: int, atom_replacement: str = "residual"):
    """:func:`sparseforge.ksvd` for a CUDA `X` (torch tensor or CuPy array), its arguments
    already checked there: the dictionary and codes on the device, `errors` a numpy array."""
    from .omp import sparse_encode

    ctx = _context(X, dict_init)
    Xt = _as_torch(ctx, X).contiguous()
    D = _initial_dictionary(ctx, Xt, n_components, dict_init, random_state)
    tctx = device_context({"X": Xt}) if ctx.framework != "torch" else ctx

    def encode(X_, D_):
        return sparse_encode(X_, D_, n_nonzero_coefs=n_nonzero_coefs, tol=tol,
                             output="compact", check_input=False)

    def sweep(X_, D_, codes, residual):
        return sweep_on_device(tctx, X_, D_, codes, residual, exact=method == "exact",
                               max_power_iter=max_power_iter)

    progress = None
    if verbose:
        from tqdm.auto import tqdm
        progress = tqdm(total=n_iter, desc=f"K-SVD ({method}, CUDA)", unit="it")
    try:
        D, codes, errors = run(Xt, D, encode=encode, sweep=sweep, n_iter=n_iter,
                               duplicate_threshold=duplicate_threshold, callback=callback,
                               progress=progress, atom_replacement=atom_replacement,
                               # the callback sees the caller's framework (CuPy stays CuPy)
                               to_caller=(lambda t: t) if ctx.framework == "torch"
                               else _from_torch)
    finally:
        if progress is not None:
            progress.close()
    if ctx.framework == "torch":
        return D, codes, errors
    back = _from_torch
    return back(D), SparseCodes(back(codes.indices), back(codes.values), back(codes.counts),
                                back(codes.status), codes.n_components), errors


def _numpy_dtype(t) -> np.dtype:
    return np.dtype(str(t.dtype).replace("torch.", ""))


def _as_torch(ctx: DeviceContext, arr):
    import torch

    return arr if ctx.framework == "torch" else torch.from_dlpack(arr)


def _from_torch(t):
    import cupy

    return cupy.from_dlpack(t)


def _initial_dictionary(ctx: DeviceContext, X, n_components: int, dict_init: Any,
                        random_state: Any):
    """The CPU path's starting dictionaries, on the device (unit-norm rows, contiguous)."""
    import torch

    from . import ksvd as cpu

    n_features = X.shape[1]
    if isinstance(dict_init, str) and dict_init == "data":
        rng = np.random.default_rng(random_state)
        norms = (X * X).sum(1)
        candidates = torch.nonzero(norms > 0).flatten().cpu().numpy()
        if candidates.size == 0:
            raise ValueError("`X` has no non-zero signal to initialise atoms from")
        pick = torch.as_tensor(rng.choice(candidates, size=n_components,
                                          replace=candidates.size < n_components),
                               device=X.device)
        D = X[pick].clone()
        if candidates.size < n_components:  # repeated signals: perturb so atoms differ
            noise = rng.standard_normal(tuple(D.shape)).astype(_numpy_dtype(X))
            D += 1e-3 * torch.sqrt(norms[pick].mean() / n_features) * torch.as_tensor(
                noise, device=X.device)
    elif isinstance(dict_init, str):  # "dct" (or a bad name): built on the host, K x n floats
        host = cpu._initial_dictionary(np.empty((1, n_features), _numpy_dtype(X)),
                                       n_components, dict_init, None)
        return torch.as_tensor(host, device=X.device).contiguous()
    else:
        D = _as_torch(ctx, dict_init).clone()
        if D.dtype != X.dtype:  # as on the CPU: a dtype mix is a TypeError
            raise TypeError(f"`dict_init` has dtype {D.dtype} but `X` has {X.dtype}; pass "
                            "both in one dtype")
        if tuple(D.shape) != (n_components, n_features):
            raise ValueError(f"`dict_init` has shape {tuple(D.shape)}; expected "
                             f"({n_components}, {n_features})")
    norms = torch.linalg.vector_norm(D, dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("`dict_init` has zero-norm atoms")
    return (D / norms).contiguous()
