"""Concurrency (Python threads over the GIL-free kernel), the CPU emulation of the CUDA warp
lane, and every compiled SIMD path give the same codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import reference
import sparseforge as sf
from datasets import camera_patches, gaussian_dictionary
from sparseforge import _core


def _value_rtol(dtype):
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-12


# --- four Python threads -----------------------------------------------------------------------

def test_four_threads_match_serial_calls():
    rng = np.random.default_rng(51)
    jobs = []
    for j in range(4):
        dtype = (np.float32, np.float64)[j % 2]
        D = gaussian_dictionary(150 + 10 * j, 40, rng, dtype)
        X = rng.standard_normal((300 + 50 * j, 40)).astype(dtype)
        kw = {"n_nonzero_coefs": 6} if j < 2 else {"tol": 10.0}
        jobs.append((X, D, kw))
    serial = [sf.sparse_encode(X, D, output="compact", n_jobs=1, **kw) for X, D, kw in jobs]

    def work(j):
        X, D, kw = jobs[j]
        # Several calls per thread, alternating thread counts inside the kernel.
        return [sf.sparse_encode(X, D, output="compact", n_jobs=1 + r % 2, chunk_size=64, **kw)
                for r in range(3)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(4)))
    for j, runs in enumerate(results):
        for got in runs:
            want = serial[j]
            np.testing.assert_array_equal(got.indices, want.indices)
            np.testing.assert_array_equal(got.counts, want.counts)
            np.testing.assert_array_equal(got.status, want.status)
            np.testing.assert_allclose(got.values, want.values,
                                       rtol=_value_rtol(want.values.dtype), atol=0)


# --- the emulated warp lane --------------------------------------------------------------------

def run_core(G, cov, max_atoms, *, norms=None, tol=None, lane="serial", n_threads=1, x=None,
             dt=None):
    """Call the native kernel directly, with precomputed correlations `cov` or with signals
    `x` and the transposed dictionary `dt`; returns (indices, values, counts, status, dense)."""
    n, k = (cov.shape[0] if cov is not None else x.shape[0]), G.shape[0]
    idx = np.empty((n, max_atoms), np.int32)
    val = np.empty((n, max_atoms), G.dtype)
    cnt = np.empty(n, np.int32)
    st = np.empty(n, np.int8)
    dense = np.empty((n, k), G.dtype)
    args = {"n_atoms": k, "n_signals": n, "max_atoms": max_atoms, "tol": tol, "gram": G,
            "cov": cov, "norms_sq": norms, "out_index": idx, "out_value": val,
            "out_count": cnt, "out_status": st, "out_dense": dense, "lane": lane,
            "n_threads": n_threads}
    if x is not None:
        args.update(x=x, dt=dt, n_features=x.shape[1])
    _core.omp_batch(args)
    return idx, val, cnt, st, dense


def _lane_cases():
    rng = np.random.default_rng(61)
    cases = {}
    for K, n in ((5, 4), (37, 16), (100, 30), (256, 64)):
        D = gaussian_dictionary(K, n, rng)
        X = rng.standard_normal((40, n))
        cases[f"gauss{K}"] = (X, D, min(6, K, n), 0.2 * n)
    X = camera_patches(300)
    cases["dct"] = (X, sf.overcomplete_dct(8, 16), 6, 64 * (3 / 255) ** 2)
    return cases


LANE_CASES = _lane_cases()


@pytest.mark.parametrize("case", sorted(LANE_CASES))
@pytest.mark.parametrize("mode", ["fixed", "tol"])
def test_emulated_warp_lane_matches_serial_lane(case, mode, dtype):
    X, D, k, tol = LANE_CASES[case]
    X, D = X.astype(dtype), D.astype(dtype)
    G, cov = D @ D.T, X @ D.T
    if mode == "fixed":
        kw = {"max_atoms": k}
    else:
        kw = {"max_atoms": min(D.shape), "tol": tol, "norms": np.einsum("ij,ij->i", X, X)}
    si, sv, sc, ss, sd = run_core(G, cov, lane="serial", **kw)
    wi, wv, wc, ws, wd = run_core(G, cov, lane="emulated_warp", **kw)
    ref = reference.omp(X, D, n_nonzero_coefs=k) if mode == "fixed" else \
        reference.omp(X, D, tol=tol)
    n_ties = 0
    for i in range(X.shape[0]):
        a, b = si[i, :sc[i]].tolist(), wi[i, :wc[i]].tolist()
        if a != b:
            step = reference.first_divergence(a, b)
            assert reference.explained_by_roundoff(
                ref.paths[i], step, tie_rtol=1e-5, tol=kw.get("tol"), tol_rtol=1e-5), (i, a, b)
            n_ties += 1
            continue
        assert ss[i] == ws[i]
        np.testing.assert_allclose(wv[i, :wc[i]], sv[i, :sc[i]], rtol=0,
                                   atol=_value_rtol(dtype) * np.abs(sv[i]).max(initial=0))
        np.testing.assert_allclose(wd[i], sd[i], rtol=0,
                                   atol=_value_rtol(dtype) * np.abs(sd[i]).max(initial=0))
    assert n_ties <= 0.02 * X.shape[0]
    # The kernel can also compute the correlations itself from the signals (x, dt = D^T):
    # same codes in either lane.
    xkw = dict(kw, norms=None) if mode == "tol" else kw
    for lane, (ci, cv, cc) in (("serial", (si, sv, sc)), ("emulated_warp", (wi, wv, wc))):
        xi, xv, xc, xs, _ = run_core(G, None, lane=lane, x=X, dt=np.ascontiguousarray(D.T),
                                     **xkw)
        same = np.all(xi == ci, axis=1)
        assert same.mean() >= 0.98
        np.testing.assert_array_equal(xc[same], cc[same])
        np.testing.assert_allclose(xv[same], cv[same], rtol=0,
                                   atol=100 * _value_rtol(dtype) * np.abs(cv).max())
    # Padding and dense rows are consistent in both lanes.
    for idx, val, cnt, dense in ((si, sv, sc, sd), (wi, wv, wc, wd)):
        for i in range(X.shape[0]):
            assert np.all(idx[i, cnt[i]:] == -1) and np.all(val[i, cnt[i]:] == 0)
            assert np.count_nonzero(dense[i]) == cnt[i]
            np.testing.assert_array_equal(dense[i, idx[i, :cnt[i]]], val[i, :cnt[i]])


def _tie_problem(dtype):
    """Exact ties between copies of atoms placed in different warp lanes and SIMD slots."""
    rng = np.random.default_rng(62)
    base = gaussian_dictionary(70, 24, rng)
    source = np.arange(110) % 70
    copies = {3: [35, 67, 99], 20: [53, 84]}          # 3 mod 32 != 35 mod 32 etc.
    for atom, where in copies.items():
        source[where] = atom
    X = 2.0 * base[3] - 1.5 * base[20] + 0.05 * rng.standard_normal((9, 24))
    X[4] = 0.0
    G = (base @ base.T)[np.ix_(source, source)].astype(dtype)
    cov = np.ascontiguousarray((X @ base.T)[:, source].astype(dtype))
    return X, base[source], G, cov, copies


@pytest.mark.parametrize("lane", ["serial", "emulated_warp"])
def test_lanes_break_exact_ties_to_lowest_index(lane, dtype):
    X, D, G, cov, copies = _tie_problem(dtype)
    idx, val, cnt, st, _ = run_core(G, cov, 4, lane=lane)
    for i in range(X.shape[0]):
        sel = idx[i, :cnt[i]].tolist()
        if i == 4:                                     # the zero signal
            assert sel == [] and st[i] == sf.OMPStatus.RESIDUAL_ORTHOGONAL
            continue
        assert sel[:2] == [3, 20]
        for atom, where in copies.items():
            assert not set(where) & set(sel)
        assert sel == reference.omp(X[i:i + 1], D, n_nonzero_coefs=4).paths[0].support


@pytest.mark.parametrize("lane", ["serial", "emulated_warp"])
def test_lanes_report_non_finite_and_dependence(lane, dtype):
    rng = np.random.default_rng(63)
    D = gaussian_dictionary(50, 12, rng, dtype)
    X = rng.standard_normal((6, 12)).astype(dtype)
    cov = X @ D.T
    cov[2, 40] = np.nan
    cov[5, 0] = np.inf
    norms = np.einsum("ij,ij->i", X, X)
    norms[3] = np.inf
    G = D @ D.T
    _, _, cnt, st, dense = run_core(G, cov, 3, lane=lane)
    np.testing.assert_array_equal(st, [0, 0, 3, 0, 0, 3])
    np.testing.assert_array_equal(cnt[[2, 5]], 0)
    np.testing.assert_array_equal(dense[[2, 5]], 0)
    _, _, cnt, st, _ = run_core(G, cov, 12, lane=lane, norms=norms, tol=0.5)
    np.testing.assert_array_equal(st[[2, 3, 5]], 3)
    # Linear dependence (an atom duplicated with a tiny perturbation) is reported alike.
    delta = 1e-8 if dtype == np.float64 else 1e-4
    E = np.linalg.qr(rng.standard_normal((16, 16)))[0].T
    d2 = E[0] + delta * E[1]
    D2 = np.vstack([E[0], d2 / np.linalg.norm(d2), E[2:5]]).astype(dtype)
    x = (E[0] + 100 * E[1])[None].astype(dtype)
    _, _, cnt, st, _ = run_core(D2 @ D2.T, x @ D2.T, 3, lane=lane)
    assert st[0] == sf.OMPStatus.LINEAR_DEPENDENCE and cnt[0] == 1


def test_core_backstop_checks():
    """Direct calls with wrong arrays are rejected by the native module, naming the array."""
    rng = np.random.default_rng(64)
    D = gaussian_dictionary(20, 8, rng)
    X = rng.standard_normal((4, 8))
    G, cov = D @ D.T, X @ D.T
    with pytest.raises(ValueError, match="`lane`"):
        run_core(G, cov, 3, lane="warp")
    with pytest.raises(ValueError, match="`max_atoms`"):
        run_core(G, cov, 21)
    with pytest.raises(ValueError, match="`max_atoms`"):
        run_core(G, cov, 0)
    with pytest.raises(ValueError, match="`gram`"):
        run_core(np.asfortranarray(G), cov, 3)          # must be C-contiguous
    with pytest.raises(ValueError, match="`cov`"):
        run_core(G, cov.astype(np.float32), 3)
    with pytest.raises(ValueError, match="`norms_sq`"):
        run_core(G, cov, 3, tol=1.0)
    base = {"n_atoms": 20, "n_signals": 4, "max_atoms": 3, "gram": G, "cov": cov,
            "n_threads": 1, "lane": "serial"}
    idx = np.empty((4, 3), np.int64)
    with pytest.raises(ValueError, match="`out_index`"):
        _core.omp_batch(dict(base, out_index=idx, out_value=np.empty((4, 3)),
                             out_count=np.empty(4, np.int32), out_status=np.empty(4, np.int8)))
    ro = np.empty(4, np.int32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="`out_count`"):
        _core.omp_batch(dict(base, out_index=np.empty((4, 3), np.int32),
                             out_value=np.empty((4, 3)), out_count=ro,
                             out_status=np.empty(4, np.int8)))


# --- SIMD dispatch -----------------------------------------------------------------------------

_SIMD_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import sparseforge as sf
    data = np.load(sys.argv[1])
    out = {}
    for dt in ("float32", "float64"):
        X, D = data["X"].astype(dt), data["D"].astype(dt)
        f = sf.sparse_encode(X, D, n_nonzero_coefs=7, output="compact", n_jobs=1)
        t = sf.sparse_encode(X, D, tol=float(data["tol"]), output="compact", n_jobs=1)
        G, cov = data["G_tie"].astype(dt), data["cov_tie"].astype(dt)
        c = sf.orthogonal_mp_gram(G, cov, n_nonzero_coefs=4)
        for name, codes in (("fixed", f), ("tol", t)):
            out[f"{dt}_{name}_indices"] = codes.indices
            out[f"{dt}_{name}_values"] = codes.values
            out[f"{dt}_{name}_counts"] = codes.counts
        out[f"{dt}_tie"] = c
    np.savez(sys.argv[2], **out)
    print(json.dumps({"simd": sf.build_info()["simd"]}))
""")


def _simd_codes_in_process(data):
    out = {}
    for dt in ("float32", "float64"):
        X, D = data["X"].astype(dt), data["D"].astype(dt)
        f = sf.sparse_encode(X, D, n_nonzero_coefs=7, output="compact", n_jobs=1)
        t = sf.sparse_encode(X, D, tol=float(data["tol"]), output="compact", n_jobs=1)
        for name, codes in (("fixed", f), ("tol", t)):
            out[f"{dt}_{name}_indices"] = codes.indices
            out[f"{dt}_{name}_values"] = codes.values
            out[f"{dt}_{name}_counts"] = codes.counts
        out[f"{dt}_tie"] = sf.orthogonal_mp_gram(data["G_tie"].astype(dt),
                                                 data["cov_tie"].astype(dt), n_nonzero_coefs=4)
    return out


@pytest.fixture(scope="module")
def simd_problem(tmp_path_factory):
    rng = np.random.default_rng(71)
    # 203 atoms: not a multiple of any vector width, so the scalar tails run too.
    D = gaussian_dictionary(203, 48, rng)
    X = rng.standard_normal((120, 48))
    _, _, G, cov, _ = _tie_problem(np.float64)
    path = tmp_path_factory.mktemp("simd") / "problem.npz"
    np.savez(path, X=X, D=D, tol=np.float64(12.0), G_tie=G, cov_tie=cov.T.copy())
    return path


def _run_forced(isa, problem_path, out_path):
    env = dict(os.environ)
    env["SPARSEFORGE_SIMD"] = isa
    env["OMP_NUM_THREADS"] = "1"
    # The same sparseforge as this process, whatever sys.path the test runner set up.
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(sf.__file__))] + sys.path)
    proc = subprocess.run([sys.executable, "-c", _SIMD_SCRIPT, str(problem_path),
                           str(out_path)], env=env, capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(out_path))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])["simd"]


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
def test_forced_simd_level_gives_same_codes(isa, simd_problem, tmp_path):
    info = sf.build_info()
    if isa not in info["simd_compiled"]:
        pytest.skip(f"{isa} kernels are not compiled in this build ({info['simd_compiled']})")
    out = tmp_path / f"{isa}.npz"
    active = _run_forced(isa, simd_problem, out)
    if active != isa:
        pytest.skip(f"this CPU cannot run {isa} (the dispatcher chose {active})")
    theirs = np.load(out)
    ours = _simd_codes_in_process(np.load(simd_problem))
    for key, want in ours.items():
        got = theirs[key]
        assert got.shape == want.shape, key
        if key.endswith(("indices", "counts")):
            np.testing.assert_array_equal(got, want, err_msg=key)
        else:
            rtol = _value_rtol(want.dtype)
            np.testing.assert_array_equal(got != 0, want != 0, err_msg=key)
            np.testing.assert_allclose(got, want, rtol=0, atol=rtol * np.abs(want).max(),
                                       err_msg=key)
    # The exact ties went to the lowest index in every ISA.
    for dt in ("float32", "float64"):
        chosen = np.flatnonzero(theirs[f"{dt}_tie"][:, 0]).tolist()
        assert 3 in chosen and 20 in chosen and not {35, 67, 99, 53, 84} & set(chosen)


def test_unknown_simd_value_is_ignored(simd_problem, tmp_path):
    active = _run_forced("sse9000", simd_problem, tmp_path / "unknown.npz")
    assert active == sf.build_info()["simd"]


def test_simd_choice_is_fixed_at_import(monkeypatch):
    """The variable is read once: changing it later does not change the active ISA."""
    before = sf.build_info()["simd"]
    monkeypatch.setenv("SPARSEFORGE_SIMD", "generic")
    assert sf.build_info()["simd"] == before
