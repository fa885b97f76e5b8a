"""The opt-in Batch-OMP phase counters (``profile`` field, sparseforge._profile)."""

import numpy as np
import pytest

import sparseforge as sf
from sparseforge import _backend
from sparseforge._profile import PHASES, omp_phase_times

core = _backend._core


def _problem(dtype, n=32, K=96, N=700, L=5, seed=0):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((K, n))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    C = np.zeros((N, K))
    for i in range(N):
        C[i, rng.choice(K, L, replace=False)] = rng.standard_normal(L)
    X = C @ D + 0.01 * rng.standard_normal((N, n))
    return X.astype(dtype), D.astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output", ["compact", "dense"])
@pytest.mark.parametrize("mode", [dict(n_nonzero_coefs=5), dict(tol=0.05)])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_counters_change_no_bit_and_sum_to_total(dtype, output, mode, n_jobs):
    X, D = _problem(dtype)
    r = omp_phase_times(X, D, output=output, n_jobs=n_jobs, **mode)
    ref = sf.sparse_encode(X, D, output=output, n_jobs=n_jobs, **mode)
    if output == "dense":
        np.testing.assert_array_equal(r["codes"], ref)
    else:
        idx, val, counts = r["codes"]
        w = ref.indices.shape[1]
        np.testing.assert_array_equal(counts, ref.counts)
        np.testing.assert_array_equal(idx[:, :w], ref.indices)
        np.testing.assert_array_equal(val[:, :w], ref.values)
    phases = sum(r[p] for p in PHASES)
    assert r["total"] > 0
    assert all(r[p] >= 0 for p in PHASES)
    # The phases are laps of one clock: they cover the threads' run times up to the loop's
    # own overhead between the last lap and the end.
    assert phases == pytest.approx(r["total"], rel=0.05, abs=1e-3)
    assert r["correlations"] > 0 and r["selection"] > 0 and r["update"] > 0
    assert (r["output"] > 0) == (output == "dense")
    assert sum(r["fractions"].values()) == pytest.approx(1.0, abs=1e-9)


def test_profile_field_checks():
    X, D = _problem("float64", N=10)
    threads = core.resolve_threads(1)
    base = {"n_atoms": D.shape[0], "n_signals": X.shape[0], "n_features": X.shape[1],
            "max_atoms": 3, "n_threads": 1, "gram": core.gram(D), "x": X,
            "dt": np.ascontiguousarray(D.T), "out_index": np.empty((10, 3), np.int32),
            "out_value": np.empty((10, 3)), "out_count": np.empty(10, np.int32),
            "out_status": np.empty(10, np.int8)}
    with pytest.raises(ValueError, match="profile"):
        core.omp_batch({**base, "profile": np.zeros((threads + 1, core.omp_phases), np.int64)})
    with pytest.raises(ValueError, match="profile"):
        core.omp_batch({**base, "profile": np.zeros((threads, core.omp_phases), np.int32)})
    with pytest.raises(ValueError, match="profile"):
        core.omp_batch({**base, "lane": "emulated_warp",
                        "profile": np.zeros((threads, core.omp_phases), np.int64)})
    prof = np.full((threads, core.omp_phases), -7, np.int64)
    core.omp_batch({**base, "profile": prof})
    assert (prof >= 0).all() and prof[:, -1].sum() > 0  # overwritten


def test_gram_threads_same_bits():
    rng = np.random.default_rng(3)
    for K, n in [(7, 3), (100, 30), (256, 64), (300, 17)]:
        for dtype in ("float32", "float64"):
            D = rng.standard_normal((K, n)).astype(dtype)
            g1, g2 = core.gram(D, 1), core.gram(D, 2)
            np.testing.assert_array_equal(g1, g2)
            np.testing.assert_array_equal(g1, g1.T)
            np.testing.assert_allclose(g1, D.astype(np.float64) @ D.T.astype(np.float64),
                                       rtol=1e-5 if dtype == "float32" else 1e-12,
                                       atol=1e-4 if dtype == "float32" else 1e-12)
    with pytest.raises(ValueError):
        core.gram(D, -1)
