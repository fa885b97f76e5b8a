"""Properties of OMP checked with hypothesis on random problems.

Each example draws sizes, a dtype and a seed; the data are built from the seed with numpy
(hypothesis' shrinking then works on the sizes and the seed). Every property is checked on
every backend (tests/backends.py): the data move to the backend, the codes come back.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference
import sparseforge as sf
from datasets import gaussian_dictionary, planted_signals, selection_order

EPS = {np.dtype(np.float32): np.finfo(np.float32).eps,
       np.dtype(np.float64): np.finfo(np.float64).eps}

seeds = st.integers(0, 2 ** 32 - 1)
dtypes = st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])


@st.composite
def problems(draw, max_features=40, max_components=90):
    """A random problem: (X, D, k) with k <= min(n_features, n_components) // 2 + 1."""
    n_features = draw(st.integers(1, max_features))
    n_components = draw(st.integers(1, max_components))
    n_samples = draw(st.integers(1, 25))
    dtype = draw(dtypes)
    rng = np.random.default_rng(draw(seeds))
    D = gaussian_dictionary(n_components, n_features, rng, dtype)
    X = rng.standard_normal((n_samples, n_features)).astype(dtype)
    k = draw(st.integers(1, max(1, min(n_features, n_components) // 2)))
    return X, D, k


def encode(backend, X, D, **kwargs):
    """sparse_encode on `backend`'s arrays; the result (checked to live there) as numpy."""
    return backend.result(sf.sparse_encode(backend.asarray(X), backend.asarray(D), **kwargs))


def residuals(X, D, codes):
    X64 = X.astype(np.float64)
    return X64 - np.asarray(codes, dtype=np.float64) @ D.astype(np.float64)


@given(problems())
def test_support_size_at_most_k(backend, problem):
    X, D, k = problem
    dense = encode(backend, X, D, n_nonzero_coefs=k)
    compact = encode(backend, X, D, n_nonzero_coefs=k, output="compact")
    assert np.all(np.count_nonzero(dense, axis=1) <= k)
    assert np.all(compact.counts <= k)
    assert compact.indices.shape == (X.shape[0], k)
    # Chosen atoms are distinct and valid; padding is -1 / 0.
    for i, sel in enumerate(selection_order(compact)):
        assert len(set(sel)) == len(sel)
        assert all(0 <= j < D.shape[0] for j in sel)
        assert np.all(compact.indices[i, len(sel):] == -1)
        assert np.all(compact.values[i, len(sel):] == 0)


@given(problems())
def test_residual_orthogonal_to_chosen_atoms(backend, problem):
    """The coefficients are the least-squares fit on the support: D_I r = 0."""
    X, D, k = problem
    codes = encode(backend, X, D, n_nonzero_coefs=k, output="compact")
    R = residuals(X, D, codes.to_dense())
    D64 = D.astype(np.float64)
    eps = EPS[X.dtype]
    for i, sel in enumerate(selection_order(codes)):
        if not sel:
            continue
        atoms = D64[sel]
        # Round-off grows with the conditioning of the chosen atoms.
        cond = np.linalg.cond(atoms @ atoms.T)
        bound = 100 * eps * cond * np.linalg.norm(X[i].astype(np.float64))
        assert np.abs(atoms @ R[i]).max() <= bound


@given(problems(), st.data())
def test_residual_non_increasing_in_k(backend, problem, data):
    """OMP is greedy: the k-atom support extends the (k-1)-atom one and the residual does not
    grow."""
    X, D, _ = problem
    kmax = data.draw(st.integers(1, min(X.shape[1], D.shape[0], 12)))
    eps = EPS[X.dtype]
    energy = np.einsum("ij,ij->i", X.astype(np.float64), X.astype(np.float64))
    previous_sel = [[] for _ in range(X.shape[0])]
    previous_res = energy
    for k in range(1, kmax + 1):
        codes = encode(backend, X, D, n_nonzero_coefs=k, output="compact")
        res = np.einsum("ij,ij->i", *(2 * [residuals(X, D, codes.to_dense())]))
        assert np.all(res <= previous_res + 1e3 * eps * energy)
        for i, sel in enumerate(selection_order(codes)):
            assert sel[:len(previous_sel[i])] == previous_sel[i]
        previous_sel = selection_order(codes)
        previous_res = res


@given(problems(), st.floats(0.01, 0.9))
def test_tol_is_honoured_and_minimal(backend, problem, fraction):
    """With `tol`, the squared residual is within tol (unless the pursuit stopped early), and
    one atom fewer would not have been enough."""
    X, D, _ = problem
    energy = np.einsum("ij,ij->i", X.astype(np.float64), X.astype(np.float64))
    tol = float(fraction * np.median(energy))
    codes = encode(backend, X, D, tol=tol, output="compact")
    res = np.einsum("ij,ij->i", *(2 * [residuals(X, D, codes.to_dense())]))
    eps = EPS[X.dtype]
    slack = 100 * eps * energy * np.maximum(codes.counts, 1)
    stopped_early = codes.status != sf.OMPStatus.OK
    cap = min(X.shape[1], D.shape[0])
    reached_cap = codes.counts == cap
    ok = (res <= tol + slack) | stopped_early | reached_cap
    assert ok.all(), (res[~ok], tol)
    # Signals within tol from the start get no atom.
    assert np.all(codes.counts[energy <= tol - slack] == 0)
    # Minimality: the first count-1 atoms of the same path leave a residual above tol.
    for c in np.unique(codes.counts):
        if c < 2:
            continue
        rows = np.flatnonzero(codes.counts == c)
        shorter = encode(backend, X[rows], D, n_nonzero_coefs=int(c - 1))
        res_short = np.einsum("ij,ij->i", *(2 * [residuals(X[rows], D, shorter)]))
        assert np.all(res_short > tol - slack[rows])


@given(problems(), st.data())
def test_tol_with_cap(backend, problem, data):
    """`n_nonzero_coefs` together with `tol` caps the number of atoms."""
    X, D, _ = problem
    cap = data.draw(st.integers(1, min(X.shape[1], D.shape[0])))
    energy = np.einsum("ij,ij->i", X.astype(np.float64), X.astype(np.float64))
    tol = 1e-3 * float(energy.min())
    capped = encode(backend, X, D, tol=tol, n_nonzero_coefs=cap, output="compact")
    full = encode(backend, X, D, tol=tol, output="compact")
    assert np.all(capped.counts <= cap)
    np.testing.assert_array_equal(capped.counts, np.minimum(full.counts, cap))
    for a, b in zip(selection_order(capped), selection_order(full)):
        assert a == b[:len(a)]


@given(seeds, dtypes)
def test_exact_recovery_of_planted_sparse_signals(backend, seed, dtype):
    """Noise-free 4-sparse signals over a 64 x 128 Gaussian dictionary are recovered exactly
    whenever Tropp's Exact Recovery Condition holds for their support (checked here
    independently: max_j ||pinv(D_S^T) d_j||_1 < 1 over the atoms j outside S); the signals
    where it fails (a few percent) are left out."""
    rng = np.random.default_rng(seed)
    D = gaussian_dictionary(128, 64, rng)
    X, codes = planted_signals(D, 8, 4, rng)
    erc = np.ones(len(codes), dtype=bool)
    for i, row in enumerate(codes):
        S = np.flatnonzero(row)
        others = np.setdiff1d(np.arange(128), S)
        erc[i] = np.abs(np.linalg.pinv(D[S].T) @ D[others].T).sum(axis=0).max() < 1
    assume(erc.any())
    X, codes = X[erc], codes[erc]
    ours = encode(backend, X.astype(dtype), D.astype(dtype), n_nonzero_coefs=4)
    np.testing.assert_array_equal(ours != 0, codes != 0)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(ours, codes, rtol=0, atol=rtol * np.abs(codes).max())
    # Error-constrained with a tiny tol: the pursuit stops at exactly the planted support.
    energy = np.einsum("ij,ij->i", X, X)
    tol = (1e-4 if dtype == np.float32 else 1e-9) * float(energy.min())
    tol_codes = encode(backend, X.astype(dtype), D.astype(dtype), tol=tol, output="compact")
    np.testing.assert_array_equal(tol_codes.counts, 4)
    np.testing.assert_array_equal(tol_codes.to_dense() != 0, codes != 0)


@given(problems(), seeds)
def test_permutation_equivariance_of_atoms(backend, problem, seed):
    """Permuting the dictionary's atoms permutes the codes' columns the same way (ties aside:
    the lowest index wins a tie, and a permutation changes which one that is)."""
    X, D, k = problem
    ref = reference.omp(X, D, n_nonzero_coefs=k)
    assume(min((min(p.gaps, default=1.0) for p in ref.paths), default=1.0) > 1e-4)
    perm = np.random.default_rng(seed).permutation(D.shape[0])
    base = encode(backend, X, D, n_nonzero_coefs=k)
    permuted = encode(backend, X, np.ascontiguousarray(D[perm]), n_nonzero_coefs=k)
    np.testing.assert_array_equal(permuted != 0, base[:, perm] != 0)
    rtol = 1e-3 if X.dtype == np.float32 else 1e-9
    np.testing.assert_allclose(permuted, base[:, perm], rtol=0,
                               atol=rtol * max(np.abs(base).max(), 1e-30))


@given(problems(), seeds)
def test_permutation_equivariance_of_signals(backend, problem, seed):
    """Signals are coded independently: permuting the rows of X permutes the codes."""
    X, D, k = problem
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    base = encode(backend, X, D, n_nonzero_coefs=k)
    permuted = encode(backend, np.ascontiguousarray(X[perm]), D, n_nonzero_coefs=k)
    np.testing.assert_array_equal(permuted != 0, base[perm] != 0)
    rtol = 1e-5 if X.dtype == np.float32 else 1e-12
    if backend.is_device:
        # The device path forms the correlations with one GEMM (cuBLAS, or numpy's BLAS in
        # the emulation), whose summation order may depend on where a row sits in the
        # batch: round-off of the largest code, not of each element (the host kernel forms
        # each row's correlations alone, so there the match is elementwise).
        np.testing.assert_allclose(permuted, base[perm], rtol=0,
                                   atol=rtol * max(np.abs(base).max(), 1e-30))
    else:
        np.testing.assert_allclose(permuted, base[perm], rtol=rtol, atol=0)


@given(problems(), st.sampled_from([0.25, 3.0, 1e3]))
def test_scale_equivariance(backend, problem, scale):
    """Codes of c * X are c times the codes of X (selection is scale-free)."""
    X, D, k = problem
    base = encode(backend, X, D, n_nonzero_coefs=k)
    scaled = encode(backend, (X * X.dtype.type(scale)), D, n_nonzero_coefs=k)
    np.testing.assert_array_equal(scaled != 0, base != 0)
    rtol = 1e-4 if X.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(scaled, scale * base.astype(np.float64), rtol=0,
                               atol=rtol * scale * max(np.abs(base).max(), 1e-30))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_signal_in_span_of_full_support_is_reproduced(backend, dtype):
    """k = n_features atoms of a random dictionary span the space: the residual vanishes."""
    rng = np.random.default_rng(11)
    D = gaussian_dictionary(40, 10, rng, dtype)
    X = rng.standard_normal((15, 10)).astype(dtype)
    codes = encode(backend, X, D, n_nonzero_coefs=10, output="compact")
    R = residuals(X, D, codes.to_dense())
    assert np.abs(R).max() <= 1e3 * EPS[np.dtype(dtype)] * np.abs(X).max()


@given(problems(), st.floats(0.001, 0.5))
def test_tol_status_says_whether_tol_was_met(backend, problem, fraction):
    """In the tol mode with a small atom cap, status MAX_ATOMS marks exactly the signals whose
    residual is still above tol after the cap; OK ones met tol."""
    X, D, k = problem
    energy = np.einsum("ij,ij->i", X.astype(np.float64), X.astype(np.float64))
    tol = float(fraction * np.median(energy))
    codes = encode(backend, X, D, tol=tol, n_nonzero_coefs=k, output="compact")
    res = np.einsum("ij,ij->i", *(2 * [residuals(X, D, codes.to_dense())]))
    slack = 100 * EPS[X.dtype] * energy * max(k, 1)
    capped = codes.status == sf.OMPStatus.MAX_ATOMS
    assert np.all(codes.counts[capped] == k)
    assert np.all(res[capped] > tol - slack[capped])
    met = codes.status == sf.OMPStatus.OK
    assert np.all(res[met] <= tol + slack[met])
