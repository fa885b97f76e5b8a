"""K-SVD: the native atom sweep against a NumPy reference, planted-dictionary recovery, the
error history, atom replacement, argument checks and the scikit-learn estimator.

`sf.ksvd` runs on every backend (tests/backends.py): the arrays stay where they are given
(the device backends sweep the atoms with the CUDA kernel, here its emulation). The sweep is
checked directly on both lanes of the native kernel (the CPU's and the emulated warp the GPU
runs) and through each backend's `ksvd_sweep`; the estimator is host-only."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import reference_ksvd
import sparseforge as sf
from datasets import gaussian_dictionary, planted_signals
from sparseforge import _core

METHODS = ["approximate", "exact"]


def raises_naming(exc, name):
    """pytest.raises whose message must name the argument as `name`."""
    return pytest.raises(exc, match=re.escape(f"`{name}`"))


def encode(X, D, k):
    """Compact OMP codes, quiet about linear dependence."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return sf.sparse_encode(X, D, n_nonzero_coefs=k, output="compact")


def sweep_args(X, D, indices, values, residual, *, exact=False, max_power_iter=50,
               power_tol=1e-7, n_threads=1, lane="serial"):
    """The argument dict of _core.ksvd_sweep (the fields of the C++ struct)."""
    return {"n_signals": X.shape[0], "n_features": X.shape[1], "n_atoms": D.shape[0],
            "max_atoms": indices.shape[1] if indices.ndim == 2 else 0, "x": X,
            "dictionary": D, "indices": indices, "values": values, "residual": residual,
            "exact": exact, "max_power_iter": max_power_iter, "power_tol": power_tol,
            "n_threads": n_threads, "lane": lane}


def native_sweep(X, D, codes, **kwargs):
    """Run _core.ksvd_sweep on copies; returns (dictionary, values, residual, usage, coded
    error, indices after the call)."""
    D = D.copy()
    indices = codes.indices.copy()
    values = codes.values.copy()
    residual = np.full_like(X, np.nan)
    usage, coded_error = _core.ksvd_sweep(sweep_args(X, D, indices, values, residual,
                                                     **kwargs))
    return D, values, residual, usage, coded_error, indices


LANES = pytest.mark.parametrize("lane", ["serial", "emulated_warp"])


def to_dense(indices, values, n_components):
    dense = np.zeros((indices.shape[0], n_components), dtype=np.float64)
    rows, slots = np.nonzero(indices >= 0)
    dense[rows, indices[rows, slots]] = values[rows, slots]
    return dense


def rmse(X, dense, D):
    X = np.asarray(X, np.float64)
    return float(np.sqrt(np.mean((X - np.asarray(dense, np.float64) @ np.asarray(D, np.float64))
                                 ** 2)))


def perturbed(D, rng, amount, dtype=np.float64):
    """`D` plus Gaussian noise, atoms renormalised."""
    P = D + amount * rng.standard_normal(D.shape)
    P /= np.linalg.norm(P, axis=1, keepdims=True)
    return np.ascontiguousarray(P, dtype=dtype)


# --- one sweep against the NumPy reference ------------------------------------------------------

def sweep_problem(kind, dtype):
    """(X, initial dictionary, sparsity) for the sweep comparisons."""
    rng = np.random.default_rng(11)
    if kind == "planted":
        D_true = gaussian_dictionary(40, 16, rng)
        X, _ = planted_signals(D_true, 300, 3, rng, noise=0.05)
        return X.astype(dtype), perturbed(D_true, rng, 0.3, dtype), 3
    # Random white signals on a random dictionary: no structure to latch on to.
    D = gaussian_dictionary(30, 12, rng, dtype)
    X = rng.standard_normal((200, 12)).astype(dtype)
    return X, D, 4


# (atoms, coefficients, residual) tolerances relative to the scale of the data.
SWEEP_TOL = {
    (np.dtype(np.float64), "approximate"): 1e-10,
    (np.dtype(np.float64), "exact"): 1e-8,
    (np.dtype(np.float32), "approximate"): 1e-3,
    (np.dtype(np.float32), "exact"): 1e-3,
}


@pytest.mark.parametrize("kind", ["planted", "random"])
@pytest.mark.parametrize("method", METHODS)
@LANES
def test_sweep_matches_reference(kind, method, dtype, lane):
    X, D0, k = sweep_problem(kind, dtype)
    codes = encode(X, D0, k)
    K = D0.shape[0]
    exact = method == "exact"
    kwargs = dict(exact=exact, lane=lane)
    if exact:  # converge the power iterations so that the top singular vector is reached
        kwargs.update(max_power_iter=100_000,
                      power_tol=1e-14 if dtype == np.float64 else 1e-7)
    D, values, residual, usage, coded_error, indices = native_sweep(X, D0, codes, **kwargs)
    ref = reference_ksvd.ksvd_sweep(X, D0, codes.to_dense(), exact=exact)
    if exact:  # a well-separated top singular value: the comparison is meaningful
        assert np.nanmax(ref.sigma_ratio) < 0.95

    assert D.dtype == dtype and values.dtype == dtype and residual.dtype == dtype
    np.testing.assert_array_equal(indices, codes.indices)  # supports are fixed
    assert usage.dtype == np.int64 and usage.shape == (K,)
    np.testing.assert_array_equal(usage, ref.usage)
    np.testing.assert_array_equal(
        usage, np.bincount(codes.indices[codes.indices >= 0], minlength=K))
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(coded_error, ref.error_before, rtol=rtol)
    # The padding stays padding.
    np.testing.assert_array_equal(values[codes.indices < 0], 0)

    tol = SWEEP_TOL[(np.dtype(dtype), method)]
    # Atoms up to sign; each atom's coefficients flip with it.
    sign = np.sign(np.einsum("ij,ij->i", D.astype(np.float64), ref.dictionary))
    assert np.all(sign != 0)
    np.testing.assert_allclose(D * sign[:, None], ref.dictionary, rtol=0, atol=tol)
    dense = to_dense(indices, values, K)
    scale = np.abs(ref.codes).max()
    np.testing.assert_allclose(dense * sign, ref.codes, rtol=0, atol=tol * scale)
    np.testing.assert_allclose(np.linalg.norm(D.astype(np.float64), axis=1), 1.0,
                               rtol=0, atol=1e-12 if dtype == np.float64 else 1e-5)

    # The residual is X - codes @ D for the updated codes and dictionary.
    x_scale = np.abs(X).max()
    res_tol = (1e-12 if dtype == np.float64 else 1e-4) * x_scale
    np.testing.assert_allclose(residual, X.astype(np.float64) - dense @ D.astype(np.float64),
                               rtol=0, atol=res_tol)
    np.testing.assert_allclose(residual, ref.residual, rtol=0, atol=max(res_tol, tol * x_scale))


@pytest.mark.parametrize("method", METHODS)
@LANES
def test_sweep_unused_atoms_and_holes(method, dtype, lane):
    """Atoms no code uses are left bit for bit; -1 slots anywhere in a row are skipped."""
    X, D0, k = sweep_problem("planted", dtype)
    codes = encode(X, D0, k)
    indices, values = codes.indices.copy(), codes.values.copy()
    drop = np.isin(indices, [0, 7])          # atoms 0 and 7 lose all their users
    indices[drop], values[drop] = -1, 0
    assert drop[:, 0].any()                  # some holes sit before used slots
    holed = sf.SparseCodes(indices, values, codes.counts, codes.status, codes.n_components)
    exact = method == "exact"
    D, vals, residual, usage, _, _ = native_sweep(
        X, D0, holed, exact=exact, max_power_iter=100_000,
        power_tol=1e-14 if dtype == np.float64 else 1e-7, lane=lane)
    assert usage[0] == 0 and usage[7] == 0
    np.testing.assert_array_equal(D[[0, 7]], D0[[0, 7]])
    ref = reference_ksvd.ksvd_sweep(X, D0, holed.to_dense(), exact=exact)
    sign = np.sign(np.einsum("ij,ij->i", D.astype(np.float64), ref.dictionary))
    tol = 1e-8 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(D * sign[:, None], ref.dictionary, rtol=0, atol=tol)
    dense = to_dense(indices, vals, D0.shape[0])
    res_tol = (1e-12 if dtype == np.float64 else 1e-4) * np.abs(X).max()
    np.testing.assert_allclose(residual, X.astype(np.float64) - dense @ D.astype(np.float64),
                               rtol=0, atol=res_tol)


@pytest.mark.parametrize("method", METHODS)
def test_sweep_threads_do_not_change_the_result(method):
    X, D0, k = sweep_problem("planted", np.float64)
    codes = encode(X, D0, k)
    one = native_sweep(X, D0, codes, exact=method == "exact", n_threads=1)
    two = native_sweep(X, D0, codes, exact=method == "exact", n_threads=2)
    for a, b in zip(one[:3], two[:3]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one[3], two[3])
    np.testing.assert_allclose(one[4], two[4], rtol=1e-12)


def test_exact_beats_approximate_per_sweep():
    """The exact update is the best rank-1 fit of each atom's restricted error; on this
    problem its whole sweep ends with no more error than the approximate one."""
    X, D0, k = sweep_problem("planted", np.float64)
    codes = encode(X, D0, k)
    approx = native_sweep(X, D0, codes, exact=False)
    exact = native_sweep(X, D0, codes, exact=True, max_power_iter=1000)
    e_approx, e_exact = np.sum(approx[2] ** 2), np.sum(exact[2] ** 2)
    assert e_exact <= e_approx * (1 + 1e-12)
    assert e_approx < approx[4]                  # both improve on the codes they were given


@pytest.mark.parametrize("method", METHODS)
def test_backend_sweep_matches_native(backend, method, dtype):
    """Each backend's `ksvd_sweep` (the CUDA one: users per atom, coded residual, pointers,
    the kernel launch) against the native sweep on host memory (from the former
    emulated-dispatch marshalling test)."""
    from sparseforge import backends
    from sparseforge._arrays import placement

    B = backend.asarray
    rng = np.random.default_rng(106)
    D = gaussian_dictionary(30, 12, rng, dtype)
    X = rng.standard_normal((80, 12)).astype(dtype)
    codes = encode(X, D, 3)
    exact = method == "exact"
    want_D, want_values, want_residual, usage, err, _ = native_sweep(
        X, D, codes, exact=exact, max_power_iter=5)
    dev_D, dev_X = B(D.copy()), B(X)
    dev_codes = sf.SparseCodes(B(codes.indices.copy()), B(codes.values.copy()),
                               B(codes.counts), B(codes.status), codes.n_components)
    residual = B(np.full_like(X, np.nan))
    place = placement({"X": dev_X, "dictionary": dev_D})
    module = backends.backend_for(place)
    assert module is (backends.cuda if backend.is_device else backends.cpu)
    got_usage, got_err = module.ksvd_sweep(dev_X, dev_D, dev_codes, residual, exact=exact,
                                           max_power_iter=5, n_threads=1, ctx=place.ctx)
    if backend.cuda is not None:
        assert len(backend.cuda.launches("ksvd_update_atoms")) == 1
    np.testing.assert_array_equal(backend.result(got_usage), usage)
    assert got_err == pytest.approx(err, rel=1e-5)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for mine, theirs in zip((dev_D, dev_codes.values, residual),
                            (want_D, want_values, want_residual)):
        np.testing.assert_allclose(backend.result(mine), theirs, rtol=0, atol=tol)


# --- the sweep never increases the error (hypothesis) -------------------------------------------

@st.composite
def sweep_cases(draw):
    n_features = draw(st.integers(1, 24))
    n_components = draw(st.integers(1, 40))
    n_samples = draw(st.integers(1, 60))
    k = draw(st.integers(1, max(1, min(n_features, n_components, 5))))
    dtype = draw(st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)]))
    exact = draw(st.booleans())
    planted = draw(st.booleans())
    rescale = draw(st.booleans())  # atoms of arbitrary norm when the sweep starts
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    D = gaussian_dictionary(n_components, n_features, rng)
    if planted:
        X, _ = planted_signals(D, n_samples, k, rng, noise=0.05)
        D = perturbed(D, rng, 0.5)
    else:
        X = rng.standard_normal((n_samples, n_features))
    X, D = X.astype(dtype), D.astype(dtype)
    codes = encode(X, D, k)
    if rescale:
        D = np.ascontiguousarray(D * rng.uniform(0.5, 2.0, (n_components, 1)).astype(dtype))
    return X, D, codes, exact


@given(sweep_cases(), st.sampled_from(["serial", "emulated_warp"]))
def test_sweep_never_increases_error(case, lane):
    X, D0, codes, exact = case
    dtype = X.dtype
    D, values, residual, usage, before, _ = native_sweep(X, D0, codes, exact=exact, lane=lane)
    X64 = X.astype(np.float64)
    energy = float(np.sum(X64 ** 2))
    # float32: the residual is updated in float32 through the sweep, so allow round-off.
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    atol = (1e-12 if dtype == np.float64 else 1e-5) * energy + 1e-30
    reported = float(np.sum(residual.astype(np.float64) ** 2))
    recomputed = float(np.sum((X64 - to_dense(codes.indices, values, D.shape[0])
                               @ D.astype(np.float64)) ** 2))
    dense0 = to_dense(codes.indices, codes.values, D.shape[0])
    assert before == pytest.approx(float(np.sum((X64 - dense0 @ D0.astype(np.float64)) ** 2)),
                                   rel=1e-5 if dtype == np.float32 else 1e-10, abs=atol)
    assert reported <= before * (1 + rtol) + atol
    assert recomputed <= before * (1 + rtol) + atol
    assert np.all(np.isfinite(D)) and np.all(np.isfinite(values))
    used = usage > 0
    # Updated atoms are unit norm (unless E g vanished and the atom was left alone).
    norms = np.linalg.norm(D.astype(np.float64), axis=1)
    changed = np.any(D != D0, axis=1)
    np.testing.assert_allclose(norms[changed], 1.0, atol=1e-4 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(D[~used], D0[~used])


# --- planted-dictionary recovery (Aharon, Elad & Bruckstein 2006, section V-A) ------------------

def planted_problem(seed, n_samples=2000, noise=0.01):
    """A random 20 x 50 unit-norm dictionary and signals each a combination of 3 of its atoms
    (magnitudes in [1, 2], random signs) plus white noise of standard deviation `noise`
    (about 35 dB SNR)."""
    rng = np.random.default_rng(seed)
    D = gaussian_dictionary(50, 20, rng)
    X, _ = planted_signals(D, n_samples, 3, rng, noise=noise)
    return D, X


# Seed 8 recovers all 50 atoms with both methods (and with the generic, AVX2 and AVX-512
# kernels); over seeds 0-39 plain K-SVD recovers 92% of the atoms on average here, with the
# usual local minima (two true atoms merged into one learned atom) on some seeds.
RECOVERY_SEED = 8


@pytest.mark.parametrize("method", METHODS)
def test_planted_dictionary_recovery(method, backend):
    D_true, X = planted_problem(RECOVERY_SEED)
    D, codes, errors = sf.ksvd(backend.asarray(X), 50, n_nonzero_coefs=3, n_iter=80,
                               dict_init="data", random_state=RECOVERY_SEED, method=method)
    D, codes, errors = backend.result(D), backend.result(codes), backend.to_numpy(errors)
    recovered, best = reference_ksvd.match_atoms(D_true, D)
    assert recovered.mean() >= 0.9, f"recovered {recovered.sum()}/50; best |<d, d^>|: " \
                                     f"{np.sort(best)[:8]}"
    assert errors.shape == (80,)
    assert errors[-1] < 0.5 * errors[0]
    assert codes.shape == (2000, 50) and np.all(codes.counts <= 3)


def run_ksvd(backend, X, n_components, **kwargs):
    """sf.ksvd with `X` (and an array `dict_init`) on `backend`; the results as numpy, after
    checking they stayed there."""
    B = backend.asarray
    if isinstance(kwargs.get("dict_init"), np.ndarray):
        kwargs["dict_init"] = B(kwargs["dict_init"])
    D, codes, errors = sf.ksvd(B(X), n_components, **kwargs)
    assert isinstance(errors, np.ndarray)
    return backend.result(D), backend.result(codes), errors


def test_planted_recovery_is_deterministic(backend):
    D_true, X = planted_problem(RECOVERY_SEED, n_samples=600)
    runs = [run_ksvd(backend, X, 50, n_nonzero_coefs=3, n_iter=5, dict_init="data",
                     random_state=3) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    other = run_ksvd(backend, X, 50, n_nonzero_coefs=3, n_iter=5, dict_init="data",
                     random_state=4)
    assert not np.array_equal(runs[0][0], other[0])
    if backend.is_device:  # the same draw and iteration as on the host
        host = sf.ksvd(X, 50, n_nonzero_coefs=3, n_iter=5, dict_init="data", random_state=3)
        np.testing.assert_allclose(runs[0][0], host[0], rtol=0, atol=1e-8)
        np.testing.assert_allclose(runs[0][2], host[2], rtol=1e-8)


# --- the error history ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_planted():
    rng = np.random.default_rng(31)
    D_true = gaussian_dictionary(24, 12, rng)
    X, _ = planted_signals(D_true, 240, 3, rng, noise=0.02)
    return X, D_true, perturbed(D_true, rng, 0.4)


@pytest.mark.parametrize("method", METHODS)
def test_error_history_is_honest(small_planted, method, dtype, backend):
    X, _, D_init = small_planted
    X, D_init = X.astype(dtype), D_init.astype(dtype)
    steps = []

    def record(step):
        # Copy (the dictionary stays in the input's framework; a host copy to compare).
        assert backend.is_native(step.dictionary)
        steps.append((step, np.array(backend.to_numpy(step.dictionary), copy=True)))

    n_iter = 6
    D, codes, errors = run_ksvd(backend, X, 24, n_nonzero_coefs=3, n_iter=n_iter,
                                method=method, dict_init=D_init, callback=record)
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    assert D.dtype == dtype and codes.values.dtype == dtype
    assert errors.shape == (n_iter,) and errors.dtype == np.float64
    assert len(steps) == n_iter
    assert [s.iteration for s, _ in steps] == list(range(n_iter))
    assert all(isinstance(s, sf.KSVDIteration) for s, _ in steps)
    np.testing.assert_array_equal([s.rmse for s, _ in steps], errors)
    np.testing.assert_array_equal(steps[-1][1], D)
    # The last reported error is that of the returned codes and dictionary.
    np.testing.assert_allclose(errors[-1], rmse(X, codes.to_dense(), D), rtol=rtol)
    np.testing.assert_allclose(np.linalg.norm(D.astype(np.float64), axis=1), 1, atol=1e-5)
    previous = D_init / np.linalg.norm(D_init, axis=1, keepdims=True)
    for step, dictionary in steps:
        # rmse_coded: OMP codes of X over the dictionary the iteration started from.
        coded = encode(X, previous, 3).to_dense()
        np.testing.assert_allclose(step.rmse_coded, rmse(X, coded, previous),
                                   rtol=1e-8 if dtype == np.float64 else 1e-4)
        if step.n_duplicate == 0:  # the sweep alone: it cannot make things worse
            assert step.rmse <= step.rmse_coded * (1 + rtol)
        assert step.n_dead >= 0 and step.n_duplicate >= 0
        assert dictionary.shape == (24, 12)
        previous = dictionary
    assert errors[-1] < errors[0]


def test_error_is_rmse_of_returned_codes_after_replacements(backend):
    """Also when the last iteration replaced atoms (codes of replaced duplicates dropped)."""
    X, D0 = replacement_problem()
    steps = []
    D, codes, errors = run_ksvd(backend, X, D0.shape[0], n_nonzero_coefs=2, n_iter=1,
                                dict_init=D0, callback=steps.append)
    assert steps[0].n_dead + steps[0].n_duplicate > 0
    np.testing.assert_allclose(errors[-1], rmse(X, codes.to_dense(), D), rtol=1e-10)
    np.testing.assert_allclose(errors[-1], rmse(X, codes.to_scipy().toarray(), D), rtol=1e-10)
    np.testing.assert_allclose(codes.reconstruct(D), codes.to_dense() @ D, atol=1e-12)


def test_zero_iterations(small_planted, backend):
    X, _, D_init = small_planted
    D, codes, errors = run_ksvd(backend, X, 24, n_nonzero_coefs=3, n_iter=0, dict_init=D_init)
    assert errors.shape == (0,)
    np.testing.assert_allclose(D, D_init, atol=1e-15)
    # The codes of the initial dictionary, computed where the arrays live.
    B = backend.asarray
    np.testing.assert_array_equal(codes.to_dense(), backend.result(
        sf.sparse_encode(B(X), B(D), n_nonzero_coefs=3)))


def test_estimator_records_history(small_planted):
    X, _, D_init = small_planted
    calls = []
    model = sf.KSVD(24, n_nonzero_coefs=3, n_iter=5, dict_init=D_init, callback=calls.append)
    assert model.fit(X) is model
    assert model.error_.shape == (5,) and model.n_iter_ == 5
    assert len(calls) == 5
    assert model.n_replaced_ == [(c.n_dead, c.n_duplicate) for c in calls]
    assert all(isinstance(a, int) and isinstance(b, int) for a, b in model.n_replaced_)
    np.testing.assert_array_equal(model.error_, [c.rmse for c in calls])
    D, _, errors = sf.ksvd(X, 24, n_nonzero_coefs=3, n_iter=5, dict_init=D_init)
    np.testing.assert_array_equal(model.components_, D)
    np.testing.assert_array_equal(model.error_, errors)


def test_verbose_progress_bar(small_planted, capsys, backend):
    X, _, D_init = small_planted
    run_ksvd(backend, X, 24, n_nonzero_coefs=3, n_iter=2, dict_init=D_init, verbose=True)
    assert "K-SVD" in capsys.readouterr().err


# --- dead and duplicate atoms -----------------------------------------------------------------

def replacement_problem():
    """Signals in the span of the first 8 of 16 coordinates, and 14 initial atoms: 12 that
    generate the data, a near-copy of atom 3 (atom 12, |coherence| 0.999) and the unit vector
    e_12 (atom 13), orthogonal to every signal."""
    rng = np.random.default_rng(5)
    n, sub = 16, 8
    D_true = np.zeros((12, n))
    D_true[:, :sub] = gaussian_dictionary(12, sub, rng)
    X, _ = planted_signals(D_true, 300, 2, rng)
    X[:, :sub] += 0.01 * rng.standard_normal((300, sub))
    near_copy = D_true[3] + 0.01 * np.r_[rng.standard_normal(sub), np.zeros(n - sub)]
    D0 = np.vstack([D_true, near_copy, np.eye(n)[12]])
    return X, D0


@pytest.mark.parametrize("rule", ["residual", "signal"])
def test_dead_and_duplicate_atoms_are_replaced(rule, backend):
    X, D0 = replacement_problem()
    D0n = D0 / np.linalg.norm(D0, axis=1, keepdims=True)
    assert abs(D0n[3] @ D0n[12]) > 0.99
    steps = []

    def record(step):
        steps.append((step.n_dead, step.n_duplicate, backend.to_numpy(step.dictionary)))

    D, codes, errors = run_ksvd(backend, X, 14, n_nonzero_coefs=2, n_iter=1, dict_init=D0,
                                callback=record, atom_replacement=rule)
    n_dead, n_duplicate, _ = steps[0]
    assert n_dead >= 1 and n_duplicate >= 1
    replaced = np.flatnonzero(np.any(np.abs(D - D0n) > 1e-3, axis=1))
    assert 13 in replaced and 12 in replaced
    # Every atom unit norm; the dead atom now lies where the data are.
    np.testing.assert_allclose(np.linalg.norm(D, axis=1), 1, atol=1e-12)
    np.testing.assert_array_equal(D[13, 8:], 0)
    # Replaced atoms duplicate nothing.
    coherence = np.abs(D @ D.T)
    np.fill_diagonal(coherence, 0)
    assert coherence[[12, 13]].max() <= 0.99
    assert not np.allclose(np.abs(D[12] @ D[13]), 1)
    # The returned codes do not use the replaced atoms (they were replaced after the sweep).
    assert not np.isin(codes.indices, [12, 13]).any()


@pytest.mark.parametrize("rule", ["residual", "signal"])
def test_dead_atom_becomes_the_worst_represented_signal(rule, backend):
    """Without duplicates nothing is dropped, so X - codes @ D is the residual the
    replacement saw: the dead atom is its worst row, normalised ("residual"), or that
    signal itself ("signal")."""
    X, D0 = replacement_problem()
    D0 = np.delete(D0, 12, axis=0)  # no near-copy: atom 12 is now e_12, dead
    D, codes, _ = run_ksvd(backend, X, 13, n_nonzero_coefs=2, n_iter=1, dict_init=D0,
                           atom_replacement=rule)
    assert not np.isin(codes.indices, 12).any()
    residual = X - codes.to_dense() @ D
    worst = np.argmax(np.einsum("ij,ij->i", residual, residual))
    source = residual[worst] if rule == "residual" else X[worst]
    np.testing.assert_allclose(D[12], source / np.linalg.norm(source), atol=1e-10)


def test_replacement_keeps_the_dictionary_free_of_duplicates(backend):
    X, D0 = replacement_problem()
    steps = []
    D, codes, errors = run_ksvd(backend, X, 14, n_nonzero_coefs=2, n_iter=8, dict_init=D0,
                                callback=steps.append)
    assert sum(s.n_dead + s.n_duplicate for s in steps) >= 2
    np.testing.assert_allclose(np.linalg.norm(D, axis=1), 1, atol=1e-12)
    coherence = np.abs(D @ D.T)
    np.fill_diagonal(coherence, 0)
    assert coherence.max() <= 0.99
    np.testing.assert_allclose(errors[-1], rmse(X, codes.to_dense(), D), rtol=1e-10)


def test_returned_codes_keep_the_compact_layout(backend):
    """SparseCodes documents `indices` as the chosen atoms in selection order padded with -1
    and `counts` as the atoms used: indices[i, :counts[i]] are atoms, the rest is padding.
    Dropping the codes of a replaced duplicate must keep that layout (no -1 hole before a
    used slot)."""
    X, D0 = replacement_problem()
    D, codes, _ = run_ksvd(backend, X, 14, n_nonzero_coefs=2, n_iter=1, dict_init=D0)
    slots = np.arange(codes.indices.shape[1])[None, :]
    inside = slots < codes.counts[:, None]
    bad = np.flatnonzero(np.any((codes.indices < 0) & inside, axis=1)
                         | np.any((codes.indices >= 0) & ~inside, axis=1))
    assert bad.size == 0, (f"{bad.size} rows break the layout, e.g. row {bad[0]}: indices "
                           f"{codes.indices[bad[0]].tolist()}, counts {codes.counts[bad[0]]}")
    np.testing.assert_array_equal(codes.values[~inside], 0)


# --- bad input ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def XK():
    rng = np.random.default_rng(41)
    return rng.standard_normal((60, 16)), 20


@pytest.mark.parametrize("value, exc", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                        (True, TypeError), ("8", TypeError)])
def test_bad_n_components(XK, value, exc, backend):
    X, _ = XK
    with raises_naming(exc, "n_components"):
        sf.ksvd(backend.asarray(X), value, n_iter=1)
    if not backend.is_device:  # the estimator is host-only
        with raises_naming(exc, "n_components"):
            sf.KSVD(value, n_iter=1).fit(X)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_X(XK, bad, backend):
    X, K = XK
    X = X.copy()
    X[3, 5] = bad
    with raises_naming(ValueError, "X"):
        sf.ksvd(backend.asarray(X), K, n_iter=1, dict_init="data")


def test_bad_X_shape_and_dtype(XK, backend):
    X, K = XK
    B = backend.asarray
    with raises_naming(ValueError, "X"):
        sf.ksvd(B(X[0]), K, n_iter=1)
    with raises_naming(ValueError, "X"):
        sf.ksvd(B(X[:0]), K, n_iter=1)
    with raises_naming(TypeError, "X"):
        sf.ksvd(B(X.astype(np.int64)), K, n_iter=1)


def test_bad_dict_init(XK, backend):
    X_host, K = XK
    B = backend.asarray
    X = B(X_host)
    rng = np.random.default_rng(0)
    with raises_naming(ValueError, "dict_init"):
        sf.ksvd(X, K, n_iter=1, dict_init=B(rng.standard_normal((K + 1, 16))))
    with raises_naming(ValueError, "dict_init"):
        sf.ksvd(X, K, n_iter=1, dict_init=B(rng.standard_normal((K, 15))))
    with raises_naming(ValueError, "dict_init"):
        sf.ksvd(X, K, n_iter=1, dict_init=B(rng.standard_normal(16)))
    with raises_naming(TypeError, "dict_init"):
        sf.ksvd(X, K, n_iter=1, dict_init=B(rng.standard_normal((K, 16)).astype(np.float32)))
    with raises_naming(TypeError, "dict_init"):
        sf.ksvd(B(X_host.astype(np.float32)), K, n_iter=1,
                dict_init=B(rng.standard_normal((K, 16))))
    zero = rng.standard_normal((K, 16))
    zero[4] = 0
    with raises_naming(ValueError, "dict_init"):
        sf.ksvd(X, K, n_iter=1, dict_init=B(zero))
    nan = rng.standard_normal((K, 16))
    nan[0, 0] = np.nan
    with raises_naming(ValueError, "dict_init"):
        sf.ksvd(X, K, n_iter=1, dict_init=B(nan))
    with raises_naming(ValueError, "dict_init"):
        sf.ksvd(X, K, n_iter=1, dict_init="random")
    with raises_naming(ValueError, "dict_init"):  # 15 features: not a square patch
        sf.ksvd(X[:, :15], K, n_iter=1, dict_init="dct")
    if backend.is_device:  # a host dict_init with device signals: named, never copied
        with raises_naming(ValueError, "dict_init"):
            sf.ksvd(X, K, n_iter=1, dict_init=rng.standard_normal((K, 16)))


@pytest.mark.parametrize("value, exc", [(0, ValueError), (21, ValueError), (-1, ValueError),
                                        (1.5, TypeError)])
def test_bad_n_nonzero_coefs(XK, value, exc, backend):
    X, K = XK
    with raises_naming(exc, "n_nonzero_coefs"):
        sf.ksvd(backend.asarray(X), K, n_nonzero_coefs=value, n_iter=1)


def test_bad_method_iterations_and_threshold(XK, backend):
    X, K = XK
    X = backend.asarray(X)
    for method in ("svd", "EXACT", None):
        with raises_naming(ValueError, "method"):
            sf.ksvd(X, K, n_iter=1, method=method)
    for n_iter in (-1, 1.5, True):
        with raises_naming(ValueError, "n_iter"):
            sf.ksvd(X, K, n_iter=n_iter)
    for threshold in (0.0, 1.5, -0.2):
        with raises_naming(ValueError, "duplicate_threshold"):
            sf.ksvd(X, K, n_iter=1, duplicate_threshold=threshold)
    for rule in ("worst", "", None):
        with raises_naming(ValueError, "atom_replacement"):
            sf.ksvd(X, K, n_iter=1, atom_replacement=rule)
    with raises_naming(ValueError, "tol"):
        sf.ksvd(X, K, n_iter=1, tol=-1.0)


@pytest.mark.parametrize("dict_init", ["data", "array"])
def test_fewer_signals_than_atoms_warns_but_runs(dict_init, dtype, backend):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10, 16)).astype(dtype)
    init = rng.standard_normal((32, 16)).astype(dtype) if dict_init == "array" else "data"
    with pytest.warns(RuntimeWarning, match="fewer signals"):
        D, codes, errors = run_ksvd(backend, X, 32, n_nonzero_coefs=2, n_iter=3,
                                    dict_init=init, random_state=0)
    assert D.shape == (32, 16) and D.dtype == dtype
    assert codes.shape == (10, 32) and errors.shape == (3,)
    assert np.all(np.isfinite(D)) and np.all(np.isfinite(errors))
    np.testing.assert_allclose(np.linalg.norm(D.astype(np.float64), axis=1), 1, atol=1e-5)
    if backend.is_device:  # the estimator is host-only
        return
    with pytest.warns(RuntimeWarning, match="fewer signals"):
        model = sf.KSVD(32, n_nonzero_coefs=2, n_iter=2, dict_init=init,
                        random_state=0).fit(X)
    assert model.transform(X).shape == (10, 32)


def test_native_sweep_rejects_bad_arguments():
    rng = np.random.default_rng(9)
    D0 = gaussian_dictionary(10, 6, rng)
    X = rng.standard_normal((12, 6))
    codes = encode(X, D0, 2)

    X0 = X

    def call(X=X, D=None, indices=None, values=None, residual=None):
        D = D0.copy() if D is None else D
        indices = codes.indices.copy() if indices is None else indices
        values = codes.values.copy() if values is None else values
        residual = np.empty((12, 6)) if residual is None else residual
        # The sizes are those of the baseline: the arrays must match them.
        args = sweep_args(X0, D0, codes.indices, codes.values, residual)
        args.update(x=X, dictionary=D, indices=indices, values=values, residual=residual)
        return _core.ksvd_sweep(args)

    call()  # the baseline is accepted
    for bad_index in (10, 11, -2, np.iinfo(np.int32).min):
        indices = codes.indices.copy()
        indices[4, 1] = bad_index
        D, values = D0.copy(), codes.values.copy()
        with pytest.raises(ValueError, match=re.escape("[-1, K)")):
            call(D=D, indices=indices, values=values)
        np.testing.assert_array_equal(D, D0)          # rejected before anything was written
        np.testing.assert_array_equal(values, codes.values)
    with raises_naming(ValueError, "values"):
        call(values=np.zeros((12, 3)))
    with raises_naming(ValueError, "values"):
        call(values=np.zeros((11, 2)))
    with raises_naming(ValueError, "residual"):
        call(residual=np.empty((12, 5)))
    with raises_naming(ValueError, "residual"):
        call(residual=np.empty((12, 6), np.float32))
    # The signals are the struct's field `x`.
    with raises_naming(ValueError, "x"):
        call(X=X[:11])
    with raises_naming(ValueError, "x"):
        call(X=np.ascontiguousarray(X[:, :5]))
    with raises_naming(ValueError, "x"):
        call(X=X.astype(np.float32))
    with raises_naming(ValueError, "dictionary"):
        call(D=D0[0].copy())
    with raises_naming(ValueError, "indices"):
        call(indices=codes.indices.astype(np.int64))
    with raises_naming(ValueError, "indices"):
        call(indices=codes.indices[:, 0].copy())
    with raises_naming(ValueError, "dictionary"):
        call(D=np.asfortranarray(D0))
    read_only = codes.values.copy()
    read_only.setflags(write=False)
    with raises_naming(ValueError, "values"):
        call(values=read_only)


# --- the scikit-learn estimator ------------------------------------------------------------------

@pytest.fixture(scope="module")
def patches():
    rng = np.random.default_rng(51)
    return sf.overcomplete_dct(8, 12)[rng.integers(0, 144, (400, 3))].sum(axis=1) \
        + 0.01 * rng.standard_normal((400, 64))


def test_clone_and_params():
    init = np.random.default_rng(0).standard_normal((16, 9))
    model = sf.KSVD(16, n_nonzero_coefs=2, n_iter=4, method="exact", dict_init=init,
                    random_state=7)
    params = model.get_params()
    for name, value in dict(n_components=16, n_nonzero_coefs=2, tol=None, n_iter=4,
                            method="exact", random_state=7, n_jobs=None, callback=None,
                            verbose=False, duplicate_threshold=0.99, atom_replacement="residual",
                            output="dense").items():
        assert params[name] == value
    assert params["dict_init"] is init
    twin = clone(model)
    assert twin is not model and not hasattr(twin, "components_")
    assert twin.get_params()["n_iter"] == 4
    np.testing.assert_array_equal(twin.get_params()["dict_init"], init)
    assert model.set_params(n_iter=1, method="approximate") is model
    assert model.n_iter == 1 and model.method == "approximate"
    with pytest.raises(ValueError):
        model.set_params(not_a_parameter=1)


def test_constructor_only_stores_parameters():
    # scikit-learn convention: no validation in __init__, errors come from fit.
    model = sf.KSVD(-5, method="nope", n_iter=-1)
    assert model.n_components == -5
    with pytest.raises(ValueError):
        model.fit(np.ones((4, 4)))


@pytest.mark.parametrize("output", ["dense", "compact", "scipy"])
def test_fit_transform_shapes(patches, output):
    model = sf.KSVD(100, n_nonzero_coefs=3, n_iter=3, dict_init="data", random_state=0,
                    output=output)
    with pytest.raises(NotFittedError):
        model.transform(patches)
    model.fit(patches)
    assert model.components_.shape == (100, 64) and model.n_features_in_ == 64
    codes = model.transform(patches[:50])
    assert codes.shape == (50, 100)
    dense = codes if output == "dense" else (
        codes.to_dense() if output == "compact" else codes.toarray())
    np.testing.assert_array_equal(
        dense, sf.sparse_encode(patches[:50], model.components_, n_nonzero_coefs=3))
    assert np.all(np.count_nonzero(dense, axis=1) <= 3)
    with raises_naming(ValueError, "X"):
        model.transform(patches[:, :63])


def test_default_sparsity(patches):
    model = sf.KSVD(80, n_iter=1, dict_init="data", random_state=0).fit(patches)
    # max(n_features // 10, 1) = 6 atoms per signal
    np.testing.assert_array_equal(model.transform(patches),
                                  sf.sparse_encode(patches, model.components_,
                                                   n_nonzero_coefs=6))


def test_fit_transform_equals_fit_then_transform(patches):
    kwargs = dict(n_nonzero_coefs=3, n_iter=2, dict_init="data", random_state=1)
    a = sf.KSVD(60, **kwargs).fit_transform(patches)
    b = sf.KSVD(60, **kwargs).fit(patches).transform(patches)
    np.testing.assert_array_equal(a, b)


def test_in_pipeline(patches):
    y = patches[:, 0] + patches[:, 9]
    pipe = Pipeline([("center", FunctionTransformer(lambda X: X - X.mean(axis=1, keepdims=True))),
                     ("ksvd", sf.KSVD(64, n_nonzero_coefs=4, n_iter=2, dict_init="data",
                                      random_state=0)),
                     ("ridge", Ridge(alpha=1e-3))])
    pipe.fit(patches, y)
    assert pipe.predict(patches).shape == (400,)
    assert pipe.named_steps["ksvd"].components_.shape == (64, 64)
    fresh = clone(pipe)
    assert not hasattr(fresh.named_steps["ksvd"], "components_")


def test_float32_stays_float32(patches):
    X32 = patches.astype(np.float32)
    model = sf.KSVD(64, n_nonzero_coefs=3, n_iter=2, dict_init="data", random_state=0,
                    method="exact").fit(X32)
    assert model.components_.dtype == np.float32
    assert model.transform(X32).dtype == np.float32
    assert model.error_.shape == (2,) and np.all(np.isfinite(model.error_))
    D, codes, _ = sf.ksvd(X32, 64, n_nonzero_coefs=3, n_iter=2, dict_init="dct")
    assert D.dtype == np.float32 and codes.values.dtype == np.float32


@pytest.mark.parametrize("dtype_", [np.float64, np.float32])
def test_dct_start(patches, dtype_):
    X = patches.astype(dtype_)
    model = sf.KSVD(256, n_iter=0, dict_init="dct").fit(X)
    expected = sf.overcomplete_dct(8, 16, dtype=dtype_)
    assert model.components_.dtype == dtype_
    assert model.error_.shape == (0,) and model.n_iter_ == 0 and model.n_replaced_ == []
    np.testing.assert_allclose(np.linalg.norm(model.components_.astype(np.float64), axis=1),
                               1, atol=1e-6)
    np.testing.assert_allclose(model.components_, expected, rtol=0,
                               atol=4 * np.finfo(dtype_).eps)


@pytest.mark.parametrize("dtype_", [np.float64, np.float32])
def test_dct_start_is_exactly_overcomplete_dct(patches, dtype_):
    """The issue asks for fit(n_iter=0) with dict_init="dct" to give exactly
    overcomplete_dct(8, 16): its atoms are unit norm already, renormalising must not move them."""
    model = sf.KSVD(256, n_iter=0, dict_init="dct").fit(patches.astype(dtype_))
    np.testing.assert_array_equal(model.components_, sf.overcomplete_dct(8, 16, dtype=dtype_))


def test_dct_start_fewer_atoms(patches):
    model = sf.KSVD(100, n_iter=0, dict_init="dct").fit(patches)
    np.testing.assert_allclose(model.components_, sf.overcomplete_dct(8, 10), atol=1e-15)


def test_duplicates_left_without_a_new_atom_keep_their_codes():
    """300 signals in a 3-D subspace, 32 atoms initialised from the data: the codes are exact
    (round-off) and the residuals give no replacement source, so the duplicate atoms keep
    their atoms and their codes; the error stays at round-off (it jumped to 0.41 when their
    codes were dropped anyway) and no replacement is reported."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3)) @ rng.standard_normal((3, 16))
    log = []
    D, codes, errors = sf.ksvd(X, 32, n_nonzero_coefs=3, n_iter=4, dict_init="data",
                               random_state=0, callback=log.append)
    assert errors.max() < 1e-12, errors
    assert [(s.n_dead, s.n_duplicate) for s in log] == [(0, 0)] * 4
    np.testing.assert_allclose(codes.to_dense() @ D, X, atol=1e-10)


def test_ksvd_argument_checks_before_any_work():
    X = np.random.default_rng(0).standard_normal((50, 8))
    for bad, exc in (("a", TypeError), (2.7, TypeError), (True, TypeError), (-1, ValueError)):
        with pytest.raises(exc, match="`max_power_iter`"):
            sf.ksvd(X, 8, n_iter=0, max_power_iter=bad)
    with pytest.raises(TypeError, match="`callback` must be callable"):
        sf.ksvd(X, 8, n_iter=1, callback=5)
    with pytest.raises(ValueError, match="`output`"):
        sf.KSVD(8, n_iter=1, output="foo").fit(X)
