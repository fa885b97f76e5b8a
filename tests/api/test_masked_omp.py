"""Masked OMP (missing entries): against a NumPy reference, and its documented results, on
every backend (tests/backends.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import sparseforge as sf
from datasets import gaussian_dictionary


def reference_masked_omp(x, observed, D, k=None, tol=None):
    """Textbook OMP over the atoms restricted to the observed rows and normalised there;
    coefficients returned for the original atoms."""
    Dm = D[:, observed].astype(np.float64)
    norms = np.linalg.norm(Dm, axis=1)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    Dn = Dm * scale[:, None]
    xm = x[observed].astype(np.float64)
    code = np.zeros(D.shape[0])
    r, support, coef = xm.copy(), [], np.zeros(0)
    limit = k if tol is None else min(observed.sum(), D.shape[0])
    while len(support) < limit:
        if tol is not None and r @ r <= tol:
            break
        corr = np.abs(Dn @ r)
        if corr.max() <= 1e-10 * max(1.0, np.abs(Dn @ xm).max()):
            break
        support.append(int(np.argmax(corr)))
        coef = np.linalg.lstsq(Dn[support].T, xm, rcond=None)[0]
        r = xm - Dn[support].T @ coef
    code[support] = coef * scale[support]
    return code


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["fixed", "tol"])
@pytest.mark.parametrize("missing", [0.3, 0.7])
def test_against_reference(dtype, mode, missing, backend):
    rng = np.random.default_rng(4)
    D = gaussian_dictionary(96, 32, rng, dtype)
    X = rng.standard_normal((60, 32)).astype(dtype)
    mask = rng.random(X.shape) > missing
    kw = {"n_nonzero_coefs": 5} if mode == "fixed" else {"tol": 0.3 * float(np.median(
        (X.astype(np.float64) ** 2 * mask).sum(1)))}
    B = backend.asarray
    ours = backend.result(sf.sparse_encode(B(X), B(D), mask=B(mask), **kw))
    ref = np.stack([reference_masked_omp(X[i], mask[i], D, kw.get("n_nonzero_coefs"),
                                         kw.get("tol")) for i in range(len(X))])
    np.testing.assert_array_equal(ours != 0, ref != 0)
    tol = 2e-3 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(ours, ref, rtol=0, atol=tol * np.abs(ref).max())


def test_all_true_mask_equals_plain_omp(backend, dtype=np.float64):
    B, H = backend.asarray, backend.result
    rng = np.random.default_rng(5)
    D = B(gaussian_dictionary(128, 40, rng, dtype))
    X = B(rng.standard_normal((80, 40)))
    mask = B(np.ones((80, 40), bool))
    for kw in ({"n_nonzero_coefs": 6}, {"tol": 5.0}):
        np.testing.assert_allclose(H(sf.sparse_encode(X, D, mask=mask, **kw)),
                                   H(sf.sparse_encode(X, D, **kw)), atol=1e-12)


def test_fills_in_missing_entries_of_planted_signals(backend):
    """4-sparse signals over a Gaussian dictionary, 40% of entries missing: the codes found on
    the observed entries reconstruct the missing ones."""
    rng = np.random.default_rng(6)
    D = gaussian_dictionary(100, 64, rng, np.float64)
    codes = np.zeros((50, 100))
    for row in codes:
        row[rng.choice(100, 4, replace=False)] = rng.choice([-1, 1], 4) * (1 + rng.random(4))
    X = codes @ D
    mask = rng.random(X.shape) > 0.4
    B = backend.asarray
    found = backend.result(sf.sparse_encode(B(X), B(D), n_nonzero_coefs=4, mask=B(mask)))
    filled = found @ D
    np.testing.assert_allclose(filled[~mask], X[~mask], atol=1e-8)


def test_signal_with_nothing_observed_gets_zero_codes_without_warning(backend):
    rng = np.random.default_rng(7)
    D = gaussian_dictionary(30, 10, rng, np.float64)
    X = rng.standard_normal((4, 10))
    mask = rng.random(X.shape) > 0.2
    mask[2] = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        B = backend.asarray
        codes = backend.result(sf.sparse_encode(B(X), B(D), n_nonzero_coefs=3, mask=B(mask),
                                                output="compact"))
    assert codes.counts[2] == 0 and codes.status[2] == sf.OMPStatus.RESIDUAL_ORTHOGONAL
    assert np.all(codes.counts[[0, 1, 3]] == 3)


def test_emulated_warp_lane_matches_serial_lane():
    rng = np.random.default_rng(8)
    D = gaussian_dictionary(64, 24, rng, np.float64)
    X = rng.standard_normal((40, 24))
    mask = rng.random(X.shape) > 0.5
    out = {}
    for lane in ("serial", "emulated_warp"):
        idx = np.empty((40, 5), np.int32)
        val = np.empty((40, 5))
        cnt = np.empty(40, np.int32)
        st = np.empty(40, np.int8)
        sf._core.omp_batch({"n_atoms": 64, "n_signals": 40, "n_features": 24, "max_atoms": 5,
                            "tol": None, "x": X, "ldx": 24, "mask": mask, "ldm": 24,
                            "dt": np.ascontiguousarray(D.T), "out_index": idx,
                            "out_value": val, "out_count": cnt, "out_status": st,
                            "n_threads": 2, "lane": lane})
        out[lane] = (idx, val)
    np.testing.assert_array_equal(out["serial"][0], out["emulated_warp"][0])
    np.testing.assert_allclose(out["serial"][1], out["emulated_warp"][1], atol=1e-12)


@pytest.mark.parametrize("bad,exc", [
    (lambda m: m.astype(np.uint8), TypeError),
    (lambda m: m[:, :-1], ValueError),
    (lambda m: m[:-1], ValueError),
])
def test_bad_mask_names_the_argument(bad, exc, backend):
    B = backend.asarray
    rng = np.random.default_rng(9)
    D = gaussian_dictionary(30, 10, rng, np.float64)
    X = rng.standard_normal((5, 10))
    with pytest.raises(exc, match="`mask`"):
        sf.sparse_encode(B(X), B(D), mask=B(bad(np.ones(X.shape, bool))))


def test_mask_cannot_be_combined_with_gram_or_cov(backend):
    B = backend.asarray
    rng = np.random.default_rng(10)
    D = gaussian_dictionary(30, 10, rng, np.float64)
    X = rng.standard_normal((5, 10))
    mask = np.ones(X.shape, bool)
    with pytest.raises(ValueError, match="`gram`"):
        sf.sparse_encode(B(X), B(D), mask=B(mask), gram=B(D @ D.T))
    with pytest.raises(ValueError, match="`cov`"):
        sf.sparse_encode(B(X), B(D), mask=B(mask), cov=B(D @ X.T))


def test_masked_strided_rows(backend, dtype):
    """Rows with a gap between them (unit feature stride) reach the kernel in place: the row
    stride is passed, no copy (from the former emulated-dispatch tests)."""
    B, H = backend.asarray, backend.result
    rng = np.random.default_rng(102)
    D = gaussian_dictionary(50, 16, rng, dtype)
    wide = rng.standard_normal((30, 20)).astype(dtype)
    X = wide[:, :16]                                  # rows 20 apart
    mask = rng.random((30, 16)) > 0.3
    want = sf.sparse_encode(X, D, mask=mask, n_nonzero_coefs=4)
    got = H(sf.sparse_encode(B(wide)[:, :16], B(D), mask=B(mask), n_nonzero_coefs=4))
    if backend.cuda is not None:
        assert backend.cuda.last("omp_batch")["ldx"] == 20
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)
    # A mask with gaps between its rows too, and both in Fortran order (copied per chunk).
    wide_mask = np.zeros((30, 20), bool)
    wide_mask[:, :16] = mask
    got = H(sf.sparse_encode(B(wide)[:, :16], B(D), mask=B(wide_mask)[:, :16],
                             n_nonzero_coefs=4))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)
    got = H(sf.sparse_encode(B(np.asfortranarray(X)), B(D), mask=B(np.asfortranarray(mask)),
                             n_nonzero_coefs=4))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)
