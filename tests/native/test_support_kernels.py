"""The kernels on a given support (`_core.support_lstsq` and its backward, `_core.sparse_synthesis`
and its backward) against independent float64 references (dense numpy solves, dense scatter +
matmul, torch.autograd on a direct torch implementation), the dropped-slot rule on singular
systems, sizes of zero, float32 / float64, thread counts (agreement, bit-for-bit determinism),
every compiled SIMD path, named argument errors, and the autograd Functions built on them
(LeastSquaresOnSupport, SparseSynthesis: gradcheck, CPU only, torch's thread count)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import sparseforge as sf
from sparseforge import _core

EPS = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}


# ---- problems and references ----------------------------------------------------------------

def supports(rng, N, K, L, *, pad=0.25, empty_rows=2):
    """Random supports of distinct atoms, -1 padded at random slots (interior ones too), the
    first `empty_rows` rows with no atom at all."""
    idx = np.stack([rng.choice(K, L, replace=False) for _ in range(N)]).astype(np.int64)
    idx[rng.random((N, L)) < pad] = -1
    idx[:empty_rows] = -1
    return idx


def problem(seed=0, N=40, n=12, K=20, L=5, dtype=np.float64, weighted=False):
    """Signals, unit-norm atoms, supports and (optionally) positive weights with enough
    observed entries for every system to be well conditioned."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((K, n))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((N, n)) * 3
    idx = supports(rng, N, K, L)
    w = None
    if weighted:
        w = rng.uniform(0.5, 2.0, (N, n))
        w[rng.random((N, n)) < 0.25] = 0.0          # masked entries, >= ~6 observed of 12
        w[:, :L + 2] = np.maximum(w[:, :L + 2], 0.5)
    cast = (lambda a: None if a is None else a.astype(dtype))
    return cast(X), cast(D), idx, cast(w), rng


def lstsq_reference(X, D, idx, w=None, keep=None):
    """Per row np.linalg.solve of the normal equations on the non-padded (or `keep`) slots,
    in float64."""
    X, D = X.astype(np.float64), D.astype(np.float64)
    out = np.zeros(idx.shape)
    for i in range(idx.shape[0]):
        slots = np.flatnonzero(idx[i] >= 0 if keep is None else keep[i])
        if slots.size == 0:
            continue
        A = D[idx[i, slots]]
        ww = np.ones(X.shape[1]) if w is None else w[i].astype(np.float64)
        out[i, slots] = np.linalg.solve((A * ww) @ A.T, (A * ww) @ X[i])
    return out


def lstsq_grad_reference(X, D, idx, w, grad, keep=None):
    """dLoss/dX and dLoss/dD of sum(coefs * grad) by torch.autograd through a direct torch
    implementation (per row torch.linalg.solve), in float64."""
    torch = pytest.importorskip("torch")
    Xt = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    Dt = torch.tensor(D, dtype=torch.float64, requires_grad=True)
    total = torch.zeros((), dtype=torch.float64)
    for i in range(idx.shape[0]):
        slots = np.flatnonzero(idx[i] >= 0 if keep is None else keep[i])
        if slots.size == 0:
            continue
        A = Dt[torch.from_numpy(idx[i, slots])]
        ww = (torch.ones(X.shape[1], dtype=torch.float64) if w is None
              else torch.tensor(w[i], dtype=torch.float64))
        c = torch.linalg.solve((A * ww) @ A.T, (A * ww) @ Xt[i])
        total = total + (c * torch.tensor(grad[i, slots], dtype=torch.float64)).sum()
    total.backward()
    dX = np.zeros(X.shape) if Xt.grad is None else Xt.grad.numpy()
    dD = np.zeros(D.shape) if Dt.grad is None else Dt.grad.numpy()
    return dX, dD


def dense_codes(idx, coefs, n_columns):
    dense = np.zeros((idx.shape[0], n_columns))
    for i, l in zip(*np.nonzero(idx >= 0)):
        dense[i, idx[i, l]] += coefs[i, l]
    return dense


# ---- calling the kernels ---------------------------------------------------------------------

def lstsq_args(X, D, idx, w=None, **extra):
    return dict({"n_signals": X.shape[0], "n_features": X.shape[1], "n_atoms": D.shape[0],
                 "max_atoms": idx.shape[1], "x": X, "dictionary": D, "weights": w,
                 "indices": idx}, **extra)


def lstsq(X, D, idx, w=None, **extra):
    out = np.full(idx.shape, np.nan, X.dtype)
    _core.support_lstsq(lstsq_args(X, D, idx, w, out=out, **extra))
    return out


def lstsq_backward(X, D, idx, w, coefs, grad, *, dx=True, dd=True, **extra):
    out_dx = np.full(X.shape, np.nan, X.dtype) if dx else None
    out_dd = np.full(D.shape, np.nan, D.dtype) if dd else None
    _core.support_lstsq_backward(lstsq_args(X, D, idx, w, coefs=coefs, grad=grad,
                                            out_dx=out_dx, out_dd=out_dd, **extra))
    return out_dx, out_dd


def synthesis_args(idx, coefs, weight, **extra):
    return dict({"n_signals": idx.shape[0], "n_features": weight.shape[1],
                 "n_atoms": weight.shape[0], "max_atoms": idx.shape[1], "indices": idx,
                 "coefs": coefs, "weight": weight}, **extra)


def synthesis(idx, coefs, weight, **extra):
    out = np.full((idx.shape[0], weight.shape[1]), np.nan, weight.dtype)
    _core.sparse_synthesis(synthesis_args(idx, coefs, weight, out=out, **extra))
    return out


def synthesis_backward(idx, coefs, weight, grad, *, dc=True, dw=True, **extra):
    out_dc = np.full(idx.shape, np.nan, weight.dtype) if dc else None
    out_dw = np.full(weight.shape, np.nan, weight.dtype) if dw else None
    _core.sparse_synthesis_backward(synthesis_args(idx, coefs, weight, grad=grad,
                                                   out_dcoefs=out_dc, out_dweight=out_dw,
                                                   **extra))
    return out_dc, out_dw


def synthesis_problem(seed=0, N=50, L=6, A=9, F=37, dtype=np.float64):
    """F = 37: full vectors and a scalar tail in every instruction set."""
    rng = np.random.default_rng(seed)
    idx = supports(rng, N, A, L)
    coefs = rng.standard_normal((N, L)).astype(dtype)
    weight = rng.standard_normal((A, F)).astype(dtype)
    grad = rng.standard_normal((N, F)).astype(dtype)
    return idx, coefs, weight, grad


# ---- least squares: values -------------------------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n", [12, 40])   # 40 features: vector bodies and a scalar tail
def test_lstsq_matches_dense_solves(weighted, n):
    X, D, idx, w, _ = problem(1, n=n, weighted=weighted)
    got = lstsq(X, D, idx, w, n_threads=2)
    np.testing.assert_allclose(got, lstsq_reference(X, D, idx, w), rtol=1e-10, atol=1e-12)
    assert np.all(got[idx < 0] == 0)
    assert np.all(got[:2] == 0)                 # rows with no atom


def test_lstsq_given_gram_equals_computed_gram():
    X, D, idx, _, _ = problem(2)
    np.testing.assert_allclose(lstsq(X, D, idx, gram=D @ D.T), lstsq(X, D, idx),
                               rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("weighted", [False, True])
def test_lstsq_float32_agrees_with_float64(weighted):
    X, D, idx, w, _ = problem(3, weighted=weighted)
    want = lstsq(X, D, idx, w)
    X32, D32 = X.astype(np.float32), D.astype(np.float32)
    got = lstsq(X32, D32, idx, None if w is None else w.astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_singular_masked_systems_drop_the_dependent_slots(dtype):
    """Two observed entries and four atoms: the first two (restricted) atoms span the observed
    space, the last two are dependent on them and dropped (coefficient 0, finite); the kept
    ones fit the observed entries exactly, and the backward treats the dropped as padded.
    The first two restricted atoms are kept well conditioned (condition number <= 4): their
    pivots are then far above the threshold and the dependent ones within a few eps of 0."""
    rng = np.random.default_rng(4)
    N, n, K, L = 30, 10, 16, 4
    D = rng.standard_normal((K, n))
    X = rng.standard_normal((N, n))
    idx = np.empty((N, L), np.int64)
    w = np.zeros((N, n))
    for i in range(N):
        while True:
            atoms, observed = rng.choice(K, L, replace=False), rng.choice(n, 2, replace=False)
            if np.linalg.cond(D[np.ix_(atoms[:2], observed)]) <= 4:
                break
        idx[i], w[i, observed] = atoms, 1.0
    X, D, w = X.astype(dtype), D.astype(dtype), w.astype(dtype)
    got = lstsq(X, D, idx, w, n_threads=2)
    assert np.all(np.isfinite(got))
    assert np.all(got[:, 2:] == 0) and np.all(got[:, :2] != 0)
    keep = np.zeros(idx.shape, bool)
    keep[:, :2] = True
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, lstsq_reference(X, D, idx, w, keep=keep), rtol=tol,
                               atol=tol)
    fit = np.einsum("il,ilf->if", got.astype(np.float64), D[idx].astype(np.float64))
    np.testing.assert_allclose(w * fit, w * X, atol=10 * tol)
    grad = rng.standard_normal((N, L)).astype(dtype)
    dx, dd = lstsq_backward(X, D, idx, w, got, grad)
    want_dx, want_dd = lstsq_grad_reference(X.astype(np.float64), D.astype(np.float64), idx,
                                            w, grad.astype(np.float64), keep=keep)
    np.testing.assert_allclose(dx, want_dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(dd, want_dd, rtol=tol, atol=tol * np.abs(want_dd).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_masks_with_fewer_observed_entries_than_atoms_stay_finite(dtype):
    """Any support on 0 to 3 observed entries (ill-conditioned ones included): finite
    coefficients and gradients, whichever slots the rule drops."""
    rng = np.random.default_rng(5)
    N, n, K, L = 2000, 8, 24, 6
    D = rng.standard_normal((K, n)).astype(dtype)
    X = (rng.standard_normal((N, n)) * 100).astype(dtype)
    idx = supports(rng, N, K, L, pad=0.1)
    w = np.zeros((N, n), dtype)
    for i in range(N):
        w[i, rng.choice(n, rng.integers(0, 4), replace=False)] = 1.0
    coefs = lstsq(X, D, idx, w, n_threads=2)
    grad = rng.standard_normal(idx.shape).astype(dtype)
    dx, dd = lstsq_backward(X, D, idx, w, coefs, grad, n_threads=2)
    for a in (coefs, dx, dd):
        assert np.all(np.isfinite(a))
    assert np.all(coefs[w.sum(axis=1) == 0] == 0)      # nothing observed: every slot dropped


def test_repeated_atoms_and_unobserved_atoms_are_dropped():
    X, D, _, _, _ = problem(5)
    idx = np.array([[3, 7, 3, -1, 9]] * 2, np.int64)       # atom 3 twice
    w = np.ones((2, X.shape[1]))
    w[1] = 0.0
    w[1, :4] = 1.0
    D = D.copy()
    D[9, :4] = 0.0                                          # no weight on the observed entries
    got = lstsq(X[:2], D, idx, w)
    keep = np.array([[1, 1, 0, 0, 1], [1, 1, 0, 0, 0]], bool)
    np.testing.assert_allclose(got, lstsq_reference(X[:2], D, idx, w, keep=keep), rtol=1e-10,
                               atol=1e-12)
    assert got[0, 2] == 0 and got[1, 2] == 0 and got[1, 4] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_drop_threshold_is_64_eps_of_the_largest_diagonal(dtype):
    """With a given Gram matrix the pivot is set exactly: slot 1's pivot 1 - c^2 is dropped at
    32 eps and kept at 128 eps of the largest diagonal (here 1)."""
    eps = EPS[dtype]
    D = np.eye(2, 3, dtype=dtype)
    X = np.array([[1.0, 2.0, 0.0]], dtype)
    idx = np.array([[0, 1]], np.int64)
    for factor, dropped in ((32, True), (128, False)):
        c = np.sqrt(1 - factor * eps)
        gram = np.array([[1, c], [c, 1]], dtype)
        got = lstsq(X, D, idx, gram=gram)
        assert (got[0, 1] == 0) == dropped, factor
        assert np.all(np.isfinite(got))


def test_non_finite_atoms_reach_the_coefficients():
    """A NaN is not mistaken for a dependent slot (it would then vanish silently)."""
    X, D, idx, _, _ = problem(6)
    D = D.copy()
    D[idx[5, idx[5] >= 0][0]] = np.nan
    got = lstsq(X, D, idx)
    rows = np.flatnonzero((idx == idx[5, idx[5] >= 0][0]).any(axis=1))
    assert np.all(np.isnan(got[5][idx[5] >= 0]))
    others = np.setdiff1d(np.arange(X.shape[0]), rows)
    assert np.all(np.isfinite(got[others]))


# ---- least squares: backward -----------------------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True])
def test_lstsq_backward_matches_torch_autograd(weighted):
    X, D, idx, w, rng = problem(7, n=40, weighted=weighted)
    coefs = lstsq(X, D, idx, w)
    grad = rng.standard_normal(idx.shape)
    grad_padded = np.where(idx < 0, 1e3, grad)           # ignored in padded slots
    coefs_padded = np.where(idx < 0, -1e3, coefs)
    dx, dd = lstsq_backward(X, D, idx, w, coefs_padded, grad_padded, n_threads=2)
    want_dx, want_dd = lstsq_grad_reference(X, D, idx, w, grad)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(dd, want_dd, rtol=1e-9, atol=1e-11)
    only_dx, none_dd = lstsq_backward(X, D, idx, w, coefs, grad, dd=False)
    none_dx, only_dd = lstsq_backward(X, D, idx, w, coefs, grad, dx=False)
    assert none_dd is None and none_dx is None
    np.testing.assert_allclose(only_dx, want_dx, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(only_dd, want_dd, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("weighted", [False, True])
def test_lstsq_backward_float32_agrees_with_float64(weighted):
    X, D, idx, w, rng = problem(8, weighted=weighted)
    coefs = lstsq(X, D, idx, w)
    grad = rng.standard_normal(idx.shape)
    want_dx, want_dd = lstsq_backward(X, D, idx, w, coefs, grad)
    f32 = (lambda a: None if a is None else a.astype(np.float32))
    dx, dd = lstsq_backward(f32(X), f32(D), idx, f32(w), f32(coefs), f32(grad))
    assert dx.dtype == dd.dtype == np.float32
    np.testing.assert_allclose(dx, want_dx, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(dd, want_dd, rtol=1e-3, atol=1e-3 * np.abs(want_dd).max())


# ---- synthesis -------------------------------------------------------------------------------

def test_synthesis_matches_dense_scatter_and_matmul():
    idx, coefs, weight, grad = synthesis_problem(9)
    dense = dense_codes(idx, coefs, weight.shape[0])
    np.testing.assert_allclose(synthesis(idx, coefs, weight, n_threads=2), dense @ weight,
                               rtol=1e-12, atol=1e-12)
    dc, dw = synthesis_backward(idx, coefs, weight, grad, n_threads=2)
    np.testing.assert_allclose(dc, np.where(idx >= 0, (grad @ weight.T)[
        np.arange(idx.shape[0])[:, None], np.maximum(idx, 0)], 0), rtol=1e-12, atol=1e-12)
    assert np.all(dc[idx < 0] == 0)
    np.testing.assert_allclose(dw, dense.T @ grad, rtol=1e-12, atol=1e-12)
    only_dc, none_dw = synthesis_backward(idx, coefs, weight, grad, dw=False)
    none_dc, only_dw = synthesis_backward(idx, coefs, weight, grad, dc=False)
    assert none_dw is None and none_dc is None
    np.testing.assert_array_equal(only_dc, dc)
    np.testing.assert_allclose(only_dw, dw, rtol=1e-12, atol=1e-12)


def test_synthesis_float32_agrees_with_float64():
    idx, coefs, weight, grad = synthesis_problem(10)
    f32 = (lambda a: a.astype(np.float32))
    np.testing.assert_allclose(synthesis(idx, f32(coefs), f32(weight)),
                               synthesis(idx, coefs, weight), rtol=1e-4, atol=1e-4)
    got = synthesis_backward(idx, f32(coefs), f32(weight), f32(grad))
    want = synthesis_backward(idx, coefs, weight, grad)
    for g, w_ in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w_, rtol=1e-4, atol=1e-4)


def test_gradients_with_any_strides_read_the_same_values():
    """The incoming gradients are read with their own strides: a column slice, a transposed
    array and a broadcast one give exactly what their contiguous copies give."""
    X, D, idx, _, rng = problem(28, n=40)
    coefs = lstsq(X, D, idx)
    wide = rng.standard_normal((idx.shape[0], idx.shape[1] + 1))
    sliced = wide[:, :-1]                                   # row stride L + 1
    want = lstsq_backward(X, D, idx, None, coefs, np.ascontiguousarray(sliced))
    got = lstsq_backward(X, D, idx, None, coefs, sliced)
    for g, w_ in zip(got, want):
        np.testing.assert_array_equal(g, w_)
    row = rng.standard_normal(idx.shape[1])
    expanded = np.broadcast_to(row, idx.shape)              # strides (0, 8)
    for g, w_ in zip(lstsq_backward(X, D, idx, None, coefs, expanded),
                     lstsq_backward(X, D, idx, None, coefs, np.ascontiguousarray(expanded))):
        np.testing.assert_array_equal(g, w_)
    with pytest.raises(ValueError, match="`grad_stride_signal` is 5 but `grad` has a row "
                                         "stride of 6 elements"):
        _core.support_lstsq_backward(lstsq_args(X, D, idx, coefs=coefs, grad=sliced,
                                                grad_stride_signal=5,
                                                out_dd=np.empty(D.shape)))

    sidx, scoefs, weight, grad = synthesis_problem(29, N=300)
    want = synthesis_backward(sidx, scoefs, weight, grad, n_threads=2)
    for strided in (np.asfortranarray(grad),                  # a transposed gradient
                    np.repeat(grad, 2, axis=1)[:, ::2],      # feature stride 2
                    rng.standard_normal((grad.shape[1], grad.shape[0])).T):
        expect = synthesis_backward(sidx, scoefs, weight, np.ascontiguousarray(strided),
                                    n_threads=2)
        for g, w_ in zip(synthesis_backward(sidx, scoefs, weight, strided, n_threads=2),
                         expect):
            np.testing.assert_array_equal(g, w_)
    for g, w_ in zip(synthesis_backward(sidx, scoefs, weight, np.asfortranarray(grad),
                                        n_threads=2), want):
        np.testing.assert_array_equal(g, w_)
    every = np.broadcast_to(grad[0], grad.shape)            # one row for all: stride 0
    for g, w_ in zip(synthesis_backward(sidx, scoefs, weight, every),
                     synthesis_backward(sidx, scoefs, weight, np.ascontiguousarray(every))):
        np.testing.assert_array_equal(g, w_)


# ---- sizes of zero ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_signals(dtype):
    X, D, idx, _, _ = problem(11, dtype=dtype)
    X0, idx0 = X[:0], idx[:0]
    assert lstsq(X0, D, idx0).shape == (0, idx.shape[1])
    dx, dd = lstsq_backward(X0, D, idx0, None, np.zeros((0, 5), dtype),
                            np.zeros((0, 5), dtype))
    assert dx.shape == X0.shape and np.all(dd == 0)     # overwritten with the empty sum
    sidx, coefs, weight, grad = synthesis_problem(12, dtype=dtype)
    assert synthesis(sidx[:0], coefs[:0], weight).shape == (0, weight.shape[1])
    dc, dw = synthesis_backward(sidx[:0], coefs[:0], weight, grad[:0])
    assert dc.shape == (0, sidx.shape[1]) and np.all(dw == 0)


def test_zero_slots():
    X, D, _, _, _ = problem(13)
    idx = np.zeros((X.shape[0], 0), np.int64)
    assert lstsq(X, D, idx).shape == (X.shape[0], 0)
    dx, dd = lstsq_backward(X, D, idx, None, np.zeros(idx.shape), np.zeros(idx.shape))
    assert np.all(dx == 0) and np.all(dd == 0)
    weight = np.ones((3, 4))
    assert np.all(synthesis(idx, np.zeros(idx.shape), weight) == 0)


# ---- threads ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_thread_counts_agree_and_repeat_bit_for_bit(dtype, weighted):
    # Enough rows for several 16-signal batches per thread.
    X, D, idx, w, rng = problem(14, N=300, n=20, K=30, L=6, dtype=dtype, weighted=weighted)
    grad = rng.standard_normal(idx.shape).astype(dtype)
    runs = {}
    for threads in (1, 2, 2):
        coefs = lstsq(X, D, idx, w, n_threads=threads)
        runs.setdefault(threads, []).append((coefs,) + lstsq_backward(
            X, D, idx, w, coefs, grad, n_threads=threads))
    # The coefficients do not depend on the thread count at all; the gradients do, to
    # round-off (the per-thread sums of dD); a thread count repeats itself exactly.
    np.testing.assert_array_equal(runs[1][0][0], runs[2][0][0])
    for a, b in zip(runs[2][0], runs[2][1]):
        assert a.tobytes() == b.tobytes()
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for a, b in zip(runs[1][0], runs[2][0]):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(a).max())

    idx, coefs, weight, grad = synthesis_problem(15, N=500, dtype=dtype)
    outs = {t: [synthesis(idx, coefs, weight, n_threads=t)] for t in (1, 2)}
    for t in (1, 2, 2):
        outs[t].append(synthesis_backward(idx, coefs, weight, grad, n_threads=t))
    np.testing.assert_array_equal(outs[1][0], outs[2][0])
    assert all(a.tobytes() == b.tobytes() for a, b in zip(outs[2][1], outs[2][2]))
    for a, b in zip(outs[1][1], outs[2][1]):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(a).max())


def test_n_threads_zero_is_the_openmp_default():
    X, D, idx, _, _ = problem(16)
    np.testing.assert_array_equal(lstsq(X, D, idx, n_threads=0), lstsq(X, D, idx))
    assert _core.last_team_size() == _core.resolve_threads(0)


# ---- every compiled instruction set ----------------------------------------------------------

_SIMD_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
import test_support_kernels as t
from sparseforge import _core
out = {}
for dtype in (np.float32, np.float64):
    for weighted in (False, True):
        X, D, idx, w, rng = t.problem(17, N=70, n=37, dtype=dtype, weighted=weighted)
        c = t.lstsq(X, D, idx, w)
        dx, dd = t.lstsq_backward(X, D, idx, w, c, rng.standard_normal(idx.shape).astype(dtype))
        key = f"{np.dtype(dtype).name}_{weighted}"
        out.update({key + "_c": c, key + "_dx": dx, key + "_dd": dd})
    i, c, W, g = t.synthesis_problem(18, dtype=dtype)
    out[np.dtype(dtype).name + "_s"] = t.synthesis(i, c, W)
    dc, dw = t.synthesis_backward(i, c, W, g)
    out.update({np.dtype(dtype).name + "_dc": dc, np.dtype(dtype).name + "_dw": dw})
np.savez(sys.argv[1], **out)
print(json.dumps({"simd": _core.build_info()["simd"]}))
"""


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
def test_every_simd_level_gives_the_same_results(isa, tmp_path):
    info = sf.build_info()
    if isa not in info["simd_compiled"]:
        pytest.skip(f"{isa} kernels are not compiled in this build")
    env = dict(os.environ, SPARSEFORGE_SIMD=isa, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(sf.__file__))]
                                        + sys.path)
    results = {}
    for level, extra in (("forced", env), ("generic", dict(env, SPARSEFORGE_SIMD="generic"))):
        out = tmp_path / f"{level}.npz"
        proc = subprocess.run([sys.executable, "-c", _SIMD_SCRIPT, str(out),
                               os.path.dirname(os.path.abspath(__file__))], env=extra,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        active = json.loads(proc.stdout.strip().splitlines()[-1])["simd"]
        if level == "forced" and active != isa:
            pytest.skip(f"this CPU cannot run {isa} (the dispatcher chose {active})")
        results[level] = np.load(out)
    for key in results["generic"].files:
        got, want = results["forced"][key], results["generic"][key]
        tol = 1e-4 if key.startswith("float32") else 1e-10
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1, np.abs(want).max()),
                                   err_msg=key)


# ---- argument errors -------------------------------------------------------------------------

def _lstsq_call(**change):
    X, D, idx, _, _ = problem(19, N=6)
    args = lstsq_args(X, D, idx, out=np.empty(idx.shape))
    args.update(change)
    _core.support_lstsq(args)


def _readonly(shape):
    a = np.empty(shape)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("change,error,message", [
    ({"bogus": 1}, ValueError, "support_lstsq: unknown key `bogus`"),
    ({"x": np.zeros((6, 12), np.float32)}, ValueError, "`x` has dtype float32; expected float64"),
    ({"indices": np.zeros((6, 5), np.int32)}, ValueError, "`indices` has dtype int32"),
    ({"x": [[1.0]]}, TypeError, "`x` must be a numpy array"),
    ({"n_atoms": "20"}, TypeError, "`n_atoms` must be an integer"),
    ({"x": None}, ValueError, "`x` is required"),
    ({"out": None}, ValueError, "`out` is required"),
    ({"n_signals": -1}, ValueError, "`n_signals` must be >= 0"),
    ({"n_threads": -1}, ValueError, "`n_threads` must be >= 0"),
    ({"n_signals": 5}, ValueError, "`x` has shape\\[0\\] = 6; expected 5"),
    ({"max_atoms": 4}, ValueError, "`indices` has shape\\[1\\] = 5; expected 4"),
    ({"out": np.empty((6, 4))}, ValueError, "`out` has shape\\[1\\] = 4; expected 5"),
    ({"out": _readonly((6, 5))}, ValueError, "`out` must be writeable"),
    ({"out": np.empty((5, 6)).T}, ValueError, "`out` must be C-contiguous"),
    ({"weights": np.ones((6, 12)), "gram": np.eye(20)}, ValueError,
     "`gram` is only used without `weights`"),
    ({"gram": np.eye(19)}, ValueError, "`gram` has shape\\[0\\] = 19; expected 20"),
    ({"indices": np.full((6, 5), 20, np.int64)}, ValueError,
     "`indices` holds 20 at \\(0, 0\\), outside \\[-1, n_atoms=20\\)"),
    ({"indices": np.array([[0, 1, 2, 3, 4]] * 5 + [[0, 1, -2, 3, 4]], np.int64)}, ValueError,
     "`indices` holds -2 at \\(5, 2\\)"),
])
def test_lstsq_argument_errors_name_the_field(change, error, message):
    with pytest.raises(error, match=message):
        _lstsq_call(**change)


def test_backward_and_synthesis_argument_errors_name_the_field():
    X, D, idx, _, rng = problem(20, N=6)
    coefs, grad = lstsq(X, D, idx), rng.standard_normal(idx.shape)
    base = lstsq_args(X, D, idx, coefs=coefs, grad=grad, out_dd=np.empty(D.shape))
    with pytest.raises(ValueError, match="support_lstsq_backward: unknown key `out`"):
        _core.support_lstsq_backward(dict(base, out=np.empty(idx.shape)))
    with pytest.raises(ValueError, match="`grad` is required"):
        _core.support_lstsq_backward(dict(base, grad=None))
    with pytest.raises(ValueError, match="`out_dd` has shape\\[0\\] = 19; expected 20"):
        _core.support_lstsq_backward(dict(base, out_dd=np.empty((19, 12))))
    with pytest.raises(ValueError, match="`out_dx` must be writeable"):
        _core.support_lstsq_backward(dict(base, out_dx=_readonly(X.shape)))
    with pytest.raises(ValueError, match="`coefs` has dtype float32"):
        _core.support_lstsq_backward(dict(base, coefs=coefs.astype(np.float32)))
    idx, coefs, weight, grad = synthesis_problem(21)
    sbase = synthesis_args(idx, coefs, weight)
    with pytest.raises(ValueError, match="sparse_synthesis: unknown key `grad`"):
        _core.sparse_synthesis(dict(sbase, grad=grad, out=np.empty(grad.shape)))
    with pytest.raises(ValueError, match="`out` must be writeable"):
        _core.sparse_synthesis(dict(sbase, out=_readonly(grad.shape)))
    with pytest.raises(ValueError, match="`weight` has shape\\[1\\] = 37; expected 36"):
        _core.sparse_synthesis(dict(sbase, n_features=36, out=np.empty((50, 36))))
    bad = idx.copy()
    bad[3, 1] = 9
    with pytest.raises(ValueError, match="`indices` holds 9 at \\(3, 1\\), outside "
                                         "\\[-1, n_atoms=9\\)"):
        _core.sparse_synthesis(dict(sbase, indices=bad, out=np.empty(grad.shape)))
    with pytest.raises(ValueError, match="`out_dweight` has shape\\[0\\] = 8; expected 9"):
        _core.sparse_synthesis_backward(dict(sbase, grad=grad, out_dweight=np.empty((8, 37))))
    with pytest.raises(ValueError, match="`grad` has dtype float32"):
        _core.sparse_synthesis_backward(dict(sbase, grad=grad.astype(np.float32)))
    with pytest.raises(ValueError, match="`out_dcoefs` must be C-contiguous"):
        _core.sparse_synthesis_backward(dict(sbase, grad=grad,
                                             out_dcoefs=np.empty((6, 50)).T))


# ---- the autograd Functions ------------------------------------------------------------------

def _torch():
    return pytest.importorskip("torch", reason="the autograd Functions need PyTorch")


@pytest.mark.parametrize("weighted", [False, True])
def test_least_squares_function_gradcheck_with_padding_and_weights(weighted):
    torch = _torch()
    from sparseforge.restore.codes import LeastSquaresOnSupport
    X, D, idx, w, _ = problem(22, N=8, n=7, K=10, L=3, weighted=weighted)
    Xt = torch.tensor(X, requires_grad=True)
    Dt = torch.tensor(D, requires_grad=True)
    it = torch.from_numpy(idx)
    wt = None if w is None else torch.tensor(w)
    assert torch.autograd.gradcheck(lambda x, d: LeastSquaresOnSupport.apply(x, d, it, wt),
                                    (Xt, Dt))
    out = LeastSquaresOnSupport.apply(Xt, Dt, it, wt)
    np.testing.assert_allclose(out.detach().numpy(), lstsq_reference(X, D, idx, w),
                               rtol=1e-10, atol=1e-12)


def test_sparse_synthesis_function_gradcheck_with_padding():
    torch = _torch()
    from sparseforge.restore.synthesis import SparseSynthesis
    idx, coefs, weight, _ = synthesis_problem(23, N=7, L=4, A=5, F=6)
    ct = torch.tensor(coefs, requires_grad=True)
    wt = torch.tensor(weight, requires_grad=True)
    it = torch.from_numpy(idx)
    assert torch.autograd.gradcheck(lambda c, w: SparseSynthesis.apply(it, c, w), (ct, wt))


def test_functions_accept_views_and_other_integer_indices():
    torch = _torch()
    from sparseforge.restore.codes import LeastSquaresOnSupport
    from sparseforge.restore.synthesis import SparseSynthesis
    X, D, idx, _, _ = problem(24)
    want = lstsq(X, D, idx)
    Xt = torch.tensor(X.T.copy()).T                     # a transposed (non-contiguous) view
    got = LeastSquaresOnSupport.apply(Xt, torch.tensor(D), torch.from_numpy(idx).int(), None)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    sidx, coefs, weight, _ = synthesis_problem(25)
    got = SparseSynthesis.apply(torch.from_numpy(sidx), torch.tensor(coefs),
                                torch.tensor(weight.T.copy()).T)
    np.testing.assert_allclose(got.numpy(), synthesis(sidx, coefs, weight), rtol=1e-12)


def test_functions_take_strided_incoming_gradients():
    """A transposed gradient (what a batch of one image gets back through fold) and a column
    slice of one (the coefficients are concatenated with the patch means in the hybrid)
    give the gradients of their contiguous copies."""
    torch = _torch()
    from sparseforge.restore.codes import LeastSquaresOnSupport
    from sparseforge.restore.synthesis import SparseSynthesis
    sidx, coefs, weight, _ = synthesis_problem(30, N=80)
    rng = np.random.default_rng(31)
    M = torch.tensor(rng.standard_normal((weight.shape[1], sidx.shape[0])))
    grads = []
    for transposed in (True, False):
        c = torch.tensor(coefs, requires_grad=True)
        w = torch.tensor(weight, requires_grad=True)
        out = SparseSynthesis.apply(torch.from_numpy(sidx), c, w)
        loss = (out.t() * M).sum() if transposed else (out * M.t().contiguous()).sum()
        loss.backward()
        grads.append((c.grad, w.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    X, D, idx, _, _ = problem(32)
    grads = []
    for sliced in (True, False):
        Xt, Dt = torch.tensor(X, requires_grad=True), torch.tensor(D, requires_grad=True)
        c = LeastSquaresOnSupport.apply(Xt, Dt, torch.from_numpy(idx), None)
        weights = torch.arange(c.numel() + c.shape[0], dtype=c.dtype).reshape(c.shape[0], -1)
        if sliced:   # c's gradient arrives as a column slice of the concatenation's
            full = torch.cat([c, torch.ones((c.shape[0], 1), dtype=c.dtype)], dim=1)
            (full * weights).sum().backward()
        else:
            (c * weights[:, :-1].contiguous()).sum().backward()
        grads.append((Xt.grad, Dt.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_functions_refuse_tensors_off_the_cpu_and_name_them():
    torch = _torch()
    from sparseforge.restore.codes import LeastSquaresOnSupport
    from sparseforge.restore.synthesis import SparseSynthesis
    X, D = torch.zeros((4, 6)), torch.zeros((5, 6))
    idx = torch.zeros((4, 2), dtype=torch.long)
    meta = (lambda t: t.to("meta"))
    with pytest.raises(ValueError, match="LeastSquaresOnSupport: `X` is on meta.*CPU only"):
        LeastSquaresOnSupport.apply(meta(X), D, idx, None)
    with pytest.raises(ValueError, match="`D` is on meta"):
        LeastSquaresOnSupport.apply(X, meta(D), idx, None)
    with pytest.raises(ValueError, match="`indices` is on meta"):
        LeastSquaresOnSupport.apply(X, D, meta(idx), None)
    with pytest.raises(ValueError, match="`weights` is on meta"):
        LeastSquaresOnSupport.apply(X, D, idx, meta(torch.ones((4, 6))))
    with pytest.raises(ValueError, match="SparseSynthesis: `weight` is on meta"):
        SparseSynthesis.apply(idx, torch.zeros((4, 2)), meta(D))
    with pytest.raises(ValueError, match="SparseSynthesis: `coefs` is on meta"):
        SparseSynthesis.apply(idx, meta(torch.zeros((4, 2))), D)


def test_functions_name_wrong_dtypes_and_shapes():
    torch = _torch()
    from sparseforge.restore.codes import LeastSquaresOnSupport
    from sparseforge.restore.synthesis import SparseSynthesis
    X, D = torch.zeros((4, 6)), torch.zeros((5, 6))
    idx = torch.zeros((4, 2), dtype=torch.long)
    with pytest.raises(TypeError, match="`D` has dtype torch.float64, expected torch.float32"):
        LeastSquaresOnSupport.apply(X, D.double(), idx, None)
    with pytest.raises(TypeError, match="`X` must be float32 or float64"):
        LeastSquaresOnSupport.apply(X.half(), D, idx, None)
    with pytest.raises(TypeError, match="`indices` must hold integers"):
        LeastSquaresOnSupport.apply(X, D, idx.float(), None)
    with pytest.raises(ValueError, match="`D` must have shape \\(K, n=6\\)"):
        LeastSquaresOnSupport.apply(X, D[:, :5], idx, None)
    with pytest.raises(ValueError, match="`indices` must have shape \\(4, L\\)"):
        LeastSquaresOnSupport.apply(X, D, idx[:3], None)
    with pytest.raises(ValueError, match="`weights` must have the shape of `X`"):
        LeastSquaresOnSupport.apply(X, D, idx, torch.ones((4, 5)))
    with pytest.raises(ValueError, match="`indices` holds 5 at \\(0, 0\\)"):
        LeastSquaresOnSupport.apply(X, D, idx + 5, None)
    with pytest.raises(TypeError, match="SparseSynthesis: `coefs` has dtype torch.float64"):
        SparseSynthesis.apply(idx, torch.zeros((4, 2), dtype=torch.float64), D)
    with pytest.raises(ValueError, match="`indices` \\(4, 3\\) and `coefs` \\(4, 2\\)"):
        SparseSynthesis.apply(torch.zeros((4, 3), dtype=torch.long), torch.zeros((4, 2)), D)


def test_functions_run_on_torchs_thread_count():
    torch = _torch()
    from sparseforge.restore.codes import LeastSquaresOnSupport
    from sparseforge.restore.synthesis import SparseSynthesis
    X, D, idx, _, _ = problem(26, N=64)
    Xt, Dt = torch.tensor(X, requires_grad=True), torch.tensor(D, requires_grad=True)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            coefs = LeastSquaresOnSupport.apply(Xt, Dt, torch.from_numpy(idx), None)
            assert _core.last_team_size() == _core.resolve_threads(threads)
            coefs.sum().backward()
            assert _core.last_team_size() == _core.resolve_threads(threads)
            out = SparseSynthesis.apply(torch.from_numpy(idx), coefs.detach(), Dt)
            assert _core.last_team_size() == _core.resolve_threads(threads)
            out.sum().backward()
            assert _core.last_team_size() == _core.resolve_threads(threads)
    finally:
        torch.set_num_threads(before)


def test_backward_is_differentiable_once_only():
    torch = _torch()
    from sparseforge.restore.codes import LeastSquaresOnSupport
    X, D, idx, _, _ = problem(27, N=5)
    Xt = torch.tensor(X, requires_grad=True)
    coefs = LeastSquaresOnSupport.apply(Xt, torch.tensor(D), torch.from_numpy(idx), None)
    (g,) = torch.autograd.grad(coefs.square().sum(), Xt, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|twice"):
        g.sum().backward()
