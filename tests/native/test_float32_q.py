"""Float64 Batch-OMP ranking its candidates in float32 (``q_precision``, omp_signal_mixed.hpp).

The float32 ranking must choose the atoms the float64 kernel chooses and give its codes up to
float64 round-off, including where float32 cannot tell the candidates apart (near-duplicate
atoms, exact ties), at linear dependence, at an exactly recovered signal, in the tol mode,
with dense output, precomputed correlations and any thread count.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import orthogonal_mp_gram

import sparseforge as sf
from sparseforge import _backend

core = _backend._core


def _unit_rows(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _planted(n, K, L, N, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    D = _unit_rows(rng.standard_normal((K, n)))
    C = np.zeros((N, K))
    for i in range(N):
        C[i, rng.choice(K, L, replace=False)] = rng.standard_normal(L)
    return C @ D + noise * rng.standard_normal((N, n)), D


def _code(X, D, max_atoms, q_precision, *, tol=None, threads=1, dense=False, fused=True):
    N, n = X.shape
    K = D.shape[0]
    G = core.gram(D)
    args = {"n_atoms": K, "n_signals": N, "n_features": n, "max_atoms": max_atoms,
            "n_threads": threads, "gram": G, "q_precision": q_precision,
            "out_index": np.empty((N, max_atoms), np.int32),
            "out_value": np.empty((N, max_atoms)), "out_count": np.empty(N, np.int32),
            "out_status": np.empty(N, np.int8)}
    if fused:
        args.update(x=X, dt=np.ascontiguousarray(D.T))
    else:
        cov = X @ D.T
        args.update(cov=cov)
        if tol is not None:
            args["norms_sq"] = np.einsum("ij,ij->i", X, X)
    if tol is not None:
        args["tol"] = tol
    if dense:
        args["out_dense"] = np.full((N, K), np.nan)
    core.omp_batch(args)
    return args


def _assert_same_pursuit(a, b):
    np.testing.assert_array_equal(a["out_status"], b["out_status"])
    np.testing.assert_array_equal(a["out_count"], b["out_count"])
    np.testing.assert_array_equal(a["out_index"], b["out_index"])
    scale = np.abs(a["out_value"]).max(axis=1, keepdims=True) + 1e-300
    np.testing.assert_array_less(np.abs(a["out_value"] - b["out_value"]) / scale, 1e-10)


@pytest.mark.parametrize("n, K, L", [(16, 64, 4), (64, 256, 8), (64, 512, 12), (100, 300, 40)])
def test_same_atoms_and_codes_as_float64(n, K, L):
    X, D = _planted(n, K, L, 300)
    _assert_same_pursuit(_code(X, D, L, "native"), _code(X, D, L, "float32"))


def test_white_signals_long_pursuits():
    # No planted support: late steps rank many similar correlations (the near-ties float32
    # cannot order), and the pursuits run to 48 atoms.
    rng = np.random.default_rng(1)
    D = _unit_rows(rng.standard_normal((400, 64)))
    X = rng.standard_normal((300, 64))
    _assert_same_pursuit(_code(X, D, 48, "native"), _code(X, D, 48, "float32"))


def test_near_duplicate_atoms_decided_exactly():
    # Each atom has a twin 1e-7 away: their correlations differ below float32's resolution,
    # so every selection is a near-tie that float32 alone would decide at random.
    rng = np.random.default_rng(2)
    A = _unit_rows(rng.standard_normal((128, 32)))
    twins = _unit_rows(A + 1e-7 * rng.standard_normal(A.shape))
    D = np.vstack([A, twins])
    C = np.zeros((300, 128))
    for i in range(300):
        C[i, rng.choice(128, 5, replace=False)] = rng.standard_normal(5)
    X = C @ A + 0.01 * rng.standard_normal((300, 32))
    a, b = _code(X, D, 10, "native"), _code(X, D, 10, "float32")
    _assert_same_pursuit(a, b)
    # The float64 choices really were below float32's resolution: twins picked both ways.
    first = a["out_index"][:, 0]
    assert (first < 128).any() and (first >= 128).any()


def test_duplicate_atoms():
    # Duplicate atoms tie up to round-off (their Gram rows and running correlations may differ
    # in the last bit), so either kernel may take either copy: the same pursuits once the
    # copies are identified, and the second copy is never taken too (dependent).
    rng = np.random.default_rng(4)
    A = _unit_rows(rng.standard_normal((40, 16)))
    D = np.vstack([A, A])
    X = rng.standard_normal((200, 16))
    a, b = _code(X, D, 12, "native"), _code(X, D, 12, "float32")
    for r in (a, b):
        r["out_index"] = np.where(r["out_index"] >= 40, r["out_index"] - 40, r["out_index"])
        for row, c in zip(r["out_index"], r["out_count"]):
            assert len(set(row[:c])) == c
    _assert_same_pursuit(a, b)


def test_linear_dependence_stops_alike():
    # Atoms 40.. are combinations of atoms 0..9: pursuits reach dependence.
    rng = np.random.default_rng(5)
    base = _unit_rows(rng.standard_normal((40, 24)))
    mixes = _unit_rows(rng.standard_normal((30, 10)) @ base[:10])
    D = np.vstack([base, mixes])
    X = rng.standard_normal((200, 24))
    a, b = _code(X, D, 30, "native"), _code(X, D, 30, "float32")
    _assert_same_pursuit(a, b)
    assert (b["out_count"] <= 24).all() and (b["out_status"] != 0).all()  # stopped early


def test_exact_recovery_stops_at_orthogonal_residual():
    X, D = _planted(64, 256, 5, 200, noise=0.0, seed=6)
    a, b = _code(X, D, 20, "native"), _code(X, D, 20, "float32")
    _assert_same_pursuit(a, b)
    assert (b["out_count"] <= 6).mean() > 0.95  # stopped near the planted 5, not at 20


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("dense", [False, True])
def test_tol_mode_dense_and_precomputed_correlations(fused, dense):
    X, D = _planted(64, 512, 10, 300, seed=7)
    tol = 64 * 0.01 ** 2 * 1.2
    a = _code(X, D, 30, "native", tol=tol, dense=dense, fused=fused)
    b = _code(X, D, 30, "float32", tol=tol, dense=dense, fused=fused)
    _assert_same_pursuit(a, b)
    if dense:
        rows = np.zeros_like(b["out_dense"])
        for i in range(len(rows)):
            c = b["out_count"][i]
            rows[i, b["out_index"][i, :c]] = b["out_value"][i, :c]
        np.testing.assert_array_equal(b["out_dense"], rows)


def test_thread_count_changes_no_bit():
    # 1,500 signals: blocks of 64 on 1 thread, of 32 on 2 (small batches take smaller blocks).
    X, D = _planted(64, 512, 12, 1500, seed=8)
    one, two = _code(X, D, 12, "float32", threads=1), _code(X, D, 12, "float32", threads=2)
    for key in ("out_index", "out_value", "out_count", "out_status"):
        np.testing.assert_array_equal(one[key], two[key])


@pytest.mark.parametrize("x_scale, d_scale", [(1e-21, 1e-21), (1e20, 1e20), (1e39, 1.0),
                                              (1e-36, 1.0), (1e-39, 1.0), (1.0, 1e-19)])
def test_values_beyond_float32_range_rank_exactly(x_scale, d_scale):
    # Valid float64 data whose Gram matrix or correlations float32 cannot hold (overflow or
    # subnormal): the pursuit must still choose the float64 kernel's atoms.
    X, D = _planted(64, 512, 12, 300, seed=3)
    X, D = X * x_scale, D * d_scale
    _assert_same_pursuit(_code(X, D, 12, "native"), _code(X, D, 12, "float32"))


def test_nonfinite_signal_reported():
    X, D = _planted(64, 512, 12, 10, seed=9)
    X[3, 5] = np.nan
    b = _code(X, D, 12, "float32")
    a = _code(X, D, 12, "native")
    np.testing.assert_array_equal(a["out_status"], b["out_status"])
    assert b["out_status"][3] != 0 and (np.delete(b["out_status"], 3) == 0).all()


def test_public_api_large_case_agrees_with_sklearn():
    # (64, 512, 12) float64 takes the float32 ranking by default (K >= 512, Q of 48 KiB).
    X, D = _planted(64, 512, 12, 200, seed=10)
    codes = sf.sparse_encode(X, D, n_nonzero_coefs=12, output="dense")
    ref = orthogonal_mp_gram(D @ D.T, (X @ D.T).T, n_nonzero_coefs=12).T
    np.testing.assert_allclose(codes, ref, rtol=0, atol=1e-10 * np.abs(ref).max())


def test_cached_float32_gram_same_bits_and_checked():
    X, D = _planted(64, 512, 12, 100, seed=12)
    a = _code(X, D, 12, "float32")
    args = dict(a, gram_f32=a["gram"].astype(np.float32), out_value=np.empty_like(a["out_value"]))
    core.omp_batch(args)
    np.testing.assert_array_equal(args["out_value"], a["out_value"])
    with pytest.raises(ValueError, match="gram_f32"):
        core.omp_batch(dict(args, gram_f32=np.zeros((3, 3), np.float32)))
    with pytest.raises(ValueError, match="gram_f32.*float32"):
        core.omp_batch(dict(args, gram_f32=a["gram"]))  # float64


def test_backend_caches_float32_gram_with_the_dictionary():
    from sparseforge.backends.cpu import omp as cpu_omp
    X, D = _planted(64, 512, 12, 50, seed=13)
    sf.sparse_encode(X, D, n_nonzero_coefs=12)
    entry = cpu_omp._GRAM_CACHE
    assert entry is not None and entry[3][0] is not None
    np.testing.assert_array_equal(entry[3][0], entry[1].astype(np.float32))
    first = entry[3][0]
    sf.sparse_encode(X, D, n_nonzero_coefs=12)
    assert cpu_omp._GRAM_CACHE[3][0] is first  # reused, not converted again
    assert core.float32_q_by_size(512, 12) and core.float32_q_by_size(1024, 4)
    assert not core.float32_q_by_size(256, 8) and not core.float32_q_by_size(256, 16)


def test_q_precision_field_checks():
    X, D = _planted(16, 64, 4, 5, seed=11)
    base = _code(X, D, 4, "native")
    args = {k: base[k] for k in ("n_atoms", "n_signals", "n_features", "max_atoms", "gram",
                                 "out_index", "out_value", "out_count", "out_status")}
    args.update(x=X, dt=np.ascontiguousarray(D.T))
    with pytest.raises(ValueError, match="q_precision"):
        core.omp_batch({**args, "q_precision": "half"})
    with pytest.raises(TypeError, match="q_precision"):
        core.omp_batch({**args, "q_precision": 32})
    with pytest.raises(ValueError, match="q_precision"):
        core.omp_batch({**args, "q_precision": "float32", "lane": "emulated_warp"})
    with pytest.raises(ValueError, match="q_precision"):
        core.omp_batch({**args, "q_precision": "float32",
                        "mask": np.ones(X.shape, np.uint8)})
    # float32 signals: 'float32' is their native storage.
    X32, D32 = X.astype(np.float32), D.astype(np.float32)
    args32 = {**args, "x": X32, "dt": np.ascontiguousarray(D32.T), "gram": core.gram(D32),
              "out_value": np.empty((5, 4), np.float32)}
    core.omp_batch({**args32, "q_precision": "float32"})
    v = args32["out_value"].copy()
    core.omp_batch({**args32, "q_precision": "native"})
    np.testing.assert_array_equal(v, args32["out_value"])
