"""The CUDA kernels' bodies run on the CPU: masked OMP and the K-SVD atom updates through the
EmulatedWarpLane (the warp's striding and xor-butterfly reductions), patch extraction and
aggregation through the per-element bodies the GPU threads run. Each must equal the CPU
drivers' results (ties in the atom selection aside). Plain OMP in both modes is covered by
test_threads_lanes_simd.py."""

from __future__ import annotations

import numpy as np
import pytest

import sparseforge as sf
from datasets import gaussian_dictionary
from sparseforge import _core


def _masked_core(X, D, mask, max_atoms, tol, lane):
    n, k = X.shape[0], D.shape[0]
    idx = np.empty((n, max_atoms), np.int32)
    val = np.empty((n, max_atoms), D.dtype)
    cnt = np.empty(n, np.int32)
    st = np.empty(n, np.int8)
    dense = np.empty((n, k), D.dtype)
    _core.omp_batch({"n_atoms": k, "n_signals": n, "n_features": X.shape[1],
                     "max_atoms": max_atoms, "tol": tol, "gram": _core.gram(D), "x": X,
                     "dt": np.ascontiguousarray(D.T), "mask": mask, "out_index": idx,
                     "out_value": val, "out_count": cnt, "out_status": st, "out_dense": dense,
                     "n_threads": 1, "lane": lane})
    return idx, val, cnt, st, dense


@pytest.mark.parametrize("mode", ["fixed", "tol"])
@pytest.mark.parametrize("K,n", [(40, 9), (150, 48)])  # K below and above the warp width
def test_masked_emulated_warp_matches_serial(mode, K, n, dtype):
    rng = np.random.default_rng(81)
    D = gaussian_dictionary(K, n, rng, dtype)
    X = rng.standard_normal((120, n)).astype(dtype)
    mask = rng.random(X.shape) > 0.4
    mask[3] = False                       # nothing observed: zero codes in both lanes
    X[7] = 0.0                            # a zero signal
    kw = (6, None) if mode == "fixed" else (min(K, n), 0.25 * n)
    si, sv, sc, ss, sd = _masked_core(X, D, mask, *kw, "serial")
    wi, wv, wc, ws, wd = _masked_core(X, D, mask, *kw, "emulated_warp")
    same = np.all(si == wi, axis=1)
    assert same.mean() >= 0.99            # a near-tie may resolve differently in round-off
    np.testing.assert_array_equal(sc[same], wc[same])
    np.testing.assert_array_equal(ss[same], ws[same])
    atol = (1e-5 if dtype == np.float32 else 1e-12) * max(1.0, np.abs(sv).max())
    np.testing.assert_allclose(wv[same], sv[same], rtol=0, atol=atol)
    np.testing.assert_allclose(wd[same], sd[same], rtol=0, atol=atol)
    assert wc[3] == 0 and not wd[3].any() and wc[7] == 0
    # The dense rows hold exactly the compact codes, rescaled to the original atoms.
    for i in range(X.shape[0]):
        row = np.zeros(K, dtype)
        row[wi[i, :wc[i]]] = wv[i, :wc[i]]
        np.testing.assert_array_equal(wd[i], row)


def _sweep(X, D, codes, lane, exact):
    D = D.copy()
    values = codes.values.copy()
    residual = np.empty_like(X)
    (N, n), (K, M) = X.shape, (D.shape[0], codes.indices.shape[1])
    usage, err = _core.ksvd_sweep({"n_signals": N, "n_features": n, "n_atoms": K,
                                   "max_atoms": M, "x": X, "dictionary": D,
                                   "indices": codes.indices, "values": values,
                                   "residual": residual, "exact": exact,
                                   "max_power_iter": 50, "power_tol": 1e-7, "n_threads": 1,
                                   "lane": lane})
    return D, values, residual, usage, err


@pytest.mark.parametrize("exact", [False, True], ids=["approximate", "exact"])
def test_ksvd_emulated_warp_matches_serial(exact, dtype):
    rng = np.random.default_rng(82)
    # 45 features: not a multiple of 32, so some lanes own one feature more than others.
    D = gaussian_dictionary(70, 45, rng, dtype)
    X = rng.standard_normal((400, 45)).astype(dtype)
    codes = sf.sparse_encode(X, D, n_nonzero_coefs=5, output="compact")
    sD, sv, sr, su, se = _sweep(X, D, codes, "serial", exact)
    wD, wv, wr, wu, we = _sweep(X, D, codes, "emulated_warp", exact)
    np.testing.assert_array_equal(su, wu)
    assert se == pytest.approx(we, rel=1e-12)
    # Only the reduction order differs (per-lane partial sums, then the butterfly).
    rtol = 2e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(wD, sD, rtol=0, atol=rtol)
    np.testing.assert_allclose(wv, sv, rtol=0, atol=rtol * np.abs(sv).max())
    np.testing.assert_allclose(wr, sr, rtol=0, atol=rtol * np.abs(sr).max())
    # The warp's sweep keeps codes, dictionary and residual consistent, and moved every used
    # atom (so the comparison above is not between two untouched copies).
    recon = np.zeros_like(X)
    for j in range(codes.indices.shape[1]):
        used = codes.indices[:, j] >= 0
        recon[used] += wv[used, j, None] * wD[codes.indices[used, j]]
    np.testing.assert_allclose(wr, X - recon, rtol=0, atol=50 * rtol * np.abs(X).max())
    moved = np.abs(wD - D).max(axis=1) > 0
    np.testing.assert_array_equal(moved, wu > 0)


def _aggregate_args(patches, weights, step, normalise, out, n_threads, per_element):
    H, W, C = out.shape
    return {"H": H, "W": W, "C": C, "ph": patches.shape[1], "pw": patches.shape[2],
            "step": step, "patches": patches, "weights": weights, "normalise": normalise,
            "out": out, "n_threads": n_threads, "per_element": per_element}


@pytest.mark.parametrize("step", [1, 3])
@pytest.mark.parametrize("channels", [None, 3])
def test_patch_kernels_per_element_match_row_drivers(step, channels, dtype):
    rng = np.random.default_rng(83)
    shape = (23, 31) + ((channels,) if channels else ())
    image = rng.standard_normal(shape).astype(dtype)
    hwc = np.ascontiguousarray(image if channels else image[..., None])
    ph, pw = 5, 4
    rows = sf.patches.grid_positions(shape[0], ph, step)
    cols = sf.patches.grid_positions(shape[1], pw, step)
    positions = np.ascontiguousarray(np.stack(np.meshgrid(rows, cols, indexing="ij"),
                                              axis=-1).reshape(-1, 2), np.int64)
    outs = []
    for per_element in (False, True):
        out = np.empty((positions.shape[0], ph, pw, hwc.shape[2]), dtype)
        _core.extract_patches({"H": hwc.shape[0], "W": hwc.shape[1], "C": hwc.shape[2],
                               "ph": ph, "pw": pw, "image": hwc, "positions": positions,
                               "n_patches": positions.shape[0], "out": out, "n_threads": 2,
                               "per_element": per_element})
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[1][7], hwc[positions[7, 0]:positions[7, 0] + ph,
                                               positions[7, 1]:positions[7, 1] + pw])
    patches = outs[0] * np.linspace(0.5, 2.0, outs[0].shape[0], dtype=dtype)[:, None, None, None]
    weights = rng.random(patches.shape[0]).astype(dtype)
    weights[::5] = 0.0
    for w in (None, weights):
        for normalise in (False, True):
            got = []
            for per_element in (False, True):
                out = np.empty(hwc.shape, dtype)
                _core.aggregate_patches(_aggregate_args(patches, w, step, normalise, out, 2,
                                                        per_element))
                got.append(out)
            # The same sums in the same order per pixel: bit-identical.
            np.testing.assert_array_equal(got[0], got[1])
    # And the per-pixel gather inverts extraction of an image (all weights 1).
    back = np.empty(hwc.shape, dtype)
    _core.aggregate_patches(_aggregate_args(outs[1], None, step, True, back, 1, True))
    np.testing.assert_allclose(back, hwc, rtol=1e-6 if dtype == np.float32 else 1e-14)
